"""Time-series cross-validation: backtests at rolling origins, each blind to what follows it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from clv.cli import app
from clv.data.generator import GeneratorConfig, generate
from clv.data.validation import validate_frame
from clv.evaluation.backtest import BTYD, RUN_RATE, BacktestResult, default_as_of
from clv.evaluation.crossval import (
    CrossValidationResult,
    cross_validate,
    mean_sd,
    rolling_origins,
    write_cross_validation_report,
)

from ._backtest_cli import backtest_args

HORIZON = 60


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    data = generate(GeneratorConfig(n_customers=1200), seed=17)
    return validate_frame(data.frame("transactions"))


@pytest.fixture(scope="module")
def validated(transactions: pd.DataFrame) -> CrossValidationResult:
    return cross_validate(
        transactions,
        horizon_days=HORIZON,
        folds=2,
        families=("lightgbm",),
        n_windows=3,
        step_days=45,
    )


def test_origins_are_a_horizon_apart_and_end_at_the_latest_observed_as_of(
    transactions: pd.DataFrame,
) -> None:
    origins = rolling_origins(transactions, horizon_days=HORIZON, folds=3)
    latest = default_as_of(transactions, HORIZON)
    assert origins == [latest - pd.Timedelta(days=d) for d in (120, 60, 0)]
    stepped = rolling_origins(
        transactions,
        horizon_days=HORIZON,
        folds=2,
        fold_step_days=7,
        as_of=pd.Timestamp("2025-06-30"),
    )
    assert stepped == [pd.Timestamp("2025-06-23"), pd.Timestamp("2025-06-30")]


def test_every_fold_learns_only_from_targets_that_end_by_its_origin(
    validated: CrossValidationResult,
) -> None:
    assert len(validated.folds) == 2
    first, second = validated.folds
    assert second.as_of - first.as_of == pd.Timedelta(days=HORIZON)  # disjoint scored windows
    for fold in validated.folds:
        assert fold.train_cutoffs, fold.as_of
        for cutoff in fold.train_cutoffs:
            assert cutoff + pd.Timedelta(days=HORIZON) <= fold.as_of
    # The two folds score different horizons, so their actual spend differs.
    assert first.predictions["actual"].sum() != second.predictions["actual"].sum()


def test_summary_is_the_mean_and_spread_of_the_folds(validated: CrossValidationResult) -> None:
    stats = validated.statistics()
    assert set(stats) == {"lightgbm", "ensemble", BTYD, RUN_RATE}
    values = [fold.metrics["lightgbm"]["normalized_gini"] for fold in validated.folds]
    gini = stats["lightgbm"]["normalized_gini"]
    assert gini["mean"] == pytest.approx(sum(values) / 2)
    assert gini["std"] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))
    assert (gini["min"], gini["max"], gini["folds"]) == (min(values), max(values), 2)


def _fold(day: str, metrics: dict[str, dict[str, float]]) -> BacktestResult:
    return BacktestResult(
        as_of=pd.Timestamp(day),
        horizon_days=30,
        train_cutoffs=[pd.Timestamp(day) - pd.Timedelta(days=30)],
        metrics=metrics,
        predictions=pd.DataFrame({"actual": [1.0]}),
    )


def _m(gini: float, dmape: float, agg: float) -> dict[str, float]:
    return {"normalized_gini": gini, "decile_mape": dmape, "abs_aggregate_error": agg}


def test_wins_count_folds_beating_the_better_reference_on_each_criterion() -> None:
    result = CrossValidationResult(
        horizon_days=30,
        folds=[
            # Fold 1: the model beats both references on Gini and level, not on decile MAPE.
            _fold(
                "2025-01-31",
                {
                    "m": _m(0.70, 0.30, 0.05),
                    BTYD: _m(0.60, 0.20, 0.10),
                    RUN_RATE: _m(0.65, 0.40, 0.08),
                },
            ),
            # Fold 2: it ties the run rate's Gini (no win) and wins decile MAPE; level undefined.
            _fold(
                "2025-03-02",
                {
                    "m": _m(0.65, 0.10, math.nan),
                    BTYD: _m(0.60, 0.20, 0.10),
                    RUN_RATE: _m(0.65, 0.40, 0.08),
                },
            ),
        ],
    )
    assert result.wins() == {
        "m": {"normalized_gini": 1, "decile_mape": 1, "abs_aggregate_error": 1}
    }
    stats = result.statistics()["m"]
    assert stats["normalized_gini"]["mean"] == pytest.approx(0.675)
    assert stats["normalized_gini"]["std"] == pytest.approx(0.05 / math.sqrt(2))
    # A metric one fold leaves undefined is summarised over the folds that define it.
    assert stats["abs_aggregate_error"]["folds"] == 1
    assert stats["abs_aggregate_error"]["mean"] == pytest.approx(0.05)
    assert math.isnan(stats["abs_aggregate_error"]["std"])
    assert mean_sd(stats["abs_aggregate_error"]) == "0.0500 ± –"
    assert result.ranked_models() == ["m", RUN_RATE, BTYD]


def test_a_model_whose_gini_no_fold_defines_ranks_last() -> None:
    folds = [
        _fold(day, {"flat": _m(math.nan, 0.1, 0.1), "m": _m(-0.5, 0.3, 0.2)})
        for day in ("2025-01-31", "2025-03-02")
    ]
    result = CrossValidationResult(horizon_days=30, folds=folds)
    assert result.ranked_models() == ["m", "flat"]
    assert result.statistics()["flat"]["normalized_gini"]["folds"] == 0
    assert mean_sd(result.statistics()["flat"]["normalized_gini"]) == "–"


def test_too_early_an_origin_names_the_fold_and_what_to_change(
    transactions: pd.DataFrame,
) -> None:
    with pytest.raises(
        ValueError, match=r"fold 1 of 30 \(as of .*\): .*before the first transaction"
    ) as err:
        cross_validate(transactions, horizon_days=HORIZON, folds=30, families=("lightgbm",))
    assert "use fewer folds or a shorter fold step" in str(err.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"folds": 1}, "folds must be at least 2"), ({"fold_step_days": 0}, "fold_step_days must be")],
)
def test_invalid_cross_validation_options_are_refused(
    transactions: pd.DataFrame, options: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        cross_validate(transactions, horizon_days=HORIZON, **{"folds": 2, **options})


def test_report_holds_the_summary_and_every_folds_own_report(
    validated: CrossValidationResult, tmp_path: Path
) -> None:
    written = write_cross_validation_report(validated, tmp_path / "cv")
    payload = json.loads(written["json"].read_text())
    assert payload["origins"] == [o.isoformat() for o in validated.origins]
    assert payload["summary"]["lightgbm"]["normalized_gini"]["folds"] == 2
    assert set(payload["wins_over_both_references"]) == {"lightgbm", "ensemble"}
    markdown = written["markdown"].read_text()
    assert "| lightgbm | " in markdown and " ± " in markdown
    for k, fold in enumerate(validated.folds, start=1):
        folder = tmp_path / "cv" / f"fold-{k}-{fold.as_of:%Y-%m-%d}"
        assert (folder / "backtest.json").is_file() and (folder / "predictions.parquet").is_file()


def test_clv_backtest_with_folds_cross_validates(tmp_path: Path) -> None:
    runner = CliRunner(env={"COLUMNS": "240"})
    args = [*backtest_args(tmp_path, tmp_path / "r"), "--folds", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    output = " ".join(result.stdout.split())
    assert "Time-series cross-validation, 2 folds as of 2025-08-01, 2025-09-30" in output
    assert "run_rate" in output and "reference" in output
    summary = json.loads((tmp_path / "r" / "cv.json").read_text())
    assert [o[:10] for o in summary["origins"]] == ["2025-08-01", "2025-09-30"]
    too_many = runner.invoke(app, [*args[:-4], "--folds", "40", "--out", str(tmp_path / "x")])
    assert too_many.exit_code == 1
    assert "fold 1 of 40" in " ".join(too_many.output.split())
    lonely_step = runner.invoke(app, [*args[:-2], "--fold-step-days", "30"])
    assert lonely_step.exit_code == 2
    assert "--folds 2 or more" in " ".join(lonely_step.output.split())
