"""Backtests train only on the past, score the horizon after the as-of date and compare fairly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clv.cli import app
from clv.data.generator import GeneratorConfig, generate
from clv.data.validation import validate_frame
from clv.evaluation.backtest import BTYD, RUN_RATE, backtest, write_backtest_report

from ._backtest_cli import backtest_args

HORIZON = 60


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    data = generate(GeneratorConfig(n_customers=1500), seed=17)
    return validate_frame(data.frame("transactions"))


@pytest.fixture(scope="module")
def result(transactions: pd.DataFrame):  # type: ignore[no-untyped-def]
    return backtest(
        transactions,
        horizon_days=HORIZON,
        families=("xgboost", "lightgbm"),
        n_windows=4,
        step_days=45,
    )


def test_training_targets_end_before_the_as_of_date(result) -> None:  # type: ignore[no-untyped-def]
    assert len(result.train_cutoffs) == 4
    for cutoff in result.train_cutoffs:
        assert cutoff + pd.Timedelta(days=HORIZON) <= result.as_of
    # The registered model was refitted one holdout later: the window that validated it ends
    # exactly at the as-of date, as a user's `clv train --as-of` model would.
    assert result.train_cutoffs[-1] + pd.Timedelta(days=HORIZON) == result.as_of


def test_the_winner_is_scored_exactly_as_clv_score_scores_the_registered_bundle(  # type: ignore[no-untyped-def]
    result, transactions
) -> None:
    from clv.training.scoring import score_customers

    scores = score_customers(
        transactions,
        spend=result.spend,
        churn=result.churn,
        horizon_days=HORIZON,
        as_of=result.as_of,
    ).set_index("customer_id")
    ours = result.predictions.reindex(scores.index)
    np.testing.assert_allclose(ours[result.winner], scores["predicted_clv"], rtol=1e-9)
    np.testing.assert_allclose(ours["churn_probability"], scores["churn_probability"], rtol=1e-9)
    assert result.metrics[result.winner]["normalized_gini"] > 0.5
    # the run's own holdout is kept beside the scored horizon
    assert set(result.holdout_metrics) == set(result.metrics)


def test_transactions_after_the_as_of_date_never_change_a_prediction(  # type: ignore[no-untyped-def]
    result, transactions
) -> None:
    # The future part of the data only sets the truth: a backtest on the same data with a
    # doubled future spends the same predictions.
    future = transactions["timestamp"] > result.as_of
    doubled = transactions.assign(
        amount=np.where(future, transactions["amount"] * 2, transactions["amount"])
    )
    again = backtest(
        doubled, horizon_days=HORIZON, families=("xgboost", "lightgbm"), n_windows=4, step_days=45
    )
    assert again.as_of == result.as_of
    for name in ("xgboost", "lightgbm", "ensemble", BTYD, RUN_RATE, "churn_probability"):
        pd.testing.assert_series_equal(again.predictions[name], result.predictions[name])
    np.testing.assert_allclose(again.predictions["actual"], 2 * result.predictions["actual"])


def test_every_model_and_both_references_are_scored(result, transactions) -> None:  # type: ignore[no-untyped-def]
    assert set(result.metrics) == {"xgboost", "lightgbm", "ensemble", BTYD, RUN_RATE}
    assert result.winner in {"xgboost", "lightgbm", "ensemble"}
    seen = transactions.loc[
        (transactions["timestamp"] <= result.as_of) & (transactions["amount"] > 0), "customer_id"
    ].nunique()
    assert len(result.predictions) == seen
    for name in result.metrics:
        assert (result.predictions[name] >= 0).all(), name
    assert all(w >= 0 for w in result.ensemble_weights.values())
    assert result.metrics["xgboost"]["normalized_gini"] > 0.5


def test_actuals_are_the_spend_in_the_horizon(result, transactions) -> None:  # type: ignore[no-untyped-def]
    end = result.as_of + pd.Timedelta(days=HORIZON)
    window = transactions[
        (transactions["timestamp"] > result.as_of) & (transactions["timestamp"] <= end)
    ]
    expected = window.groupby("customer_id")["amount"].sum().clip(lower=0)
    actual = result.predictions["actual"]
    np.testing.assert_allclose(actual, expected.reindex(actual.index).fillna(0.0))
    assert actual.sum() > 0


def test_churn_model_is_compared_with_one_minus_p_alive(result) -> None:  # type: ignore[no-untyped-def]
    assert set(result.churn_metrics) == {
        "churn_model",
        "bgnbd_1_minus_p_alive",
        "bgnbd_p_no_purchase_in_horizon",
    }
    assert result.churn_metrics["churn_model"]["auc"] > 0.7


def test_report_files_are_written(result, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    written = write_backtest_report(result, tmp_path / "report")
    summary = json.loads(written["json"].read_text())
    assert summary["horizon_days"] == HORIZON
    assert set(summary["metrics"]) == set(result.metrics)
    assert "| model |" in written["markdown"].read_text()
    for key in ("lift_plot", "decile_plot", "churn_calibration_plot"):
        assert written[key].read_bytes().startswith(b"\x89PNG"), key
    assert len(pd.read_parquet(written["predictions"])) == len(result.predictions)


def test_an_unobserved_horizon_is_refused(transactions: pd.DataFrame) -> None:
    late = transactions["timestamp"].max() - pd.Timedelta(days=10)
    with pytest.raises(ValueError, match="is not fully observed"):
        backtest(transactions, horizon_days=HORIZON, as_of=late)


def test_clv_backtest_writes_a_report(tmp_path: Path) -> None:
    runner = CliRunner(env={"COLUMNS": "240"})
    args = backtest_args(tmp_path, tmp_path / "r")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "bgnbd_gamma_gamma" in result.stdout and "run_rate" in result.stdout
    summary = json.loads((tmp_path / "r" / "backtest.json").read_text())
    assert summary["as_of"].startswith("2025-09-30T23:59:59")
    bad = runner.invoke(app, [*args[:5], "--as-of", "2025-12-20", "--families", "lightgbm"])
    assert bad.exit_code == 1
    assert "is not fully observed" in " ".join(bad.output.split())
    unknown = runner.invoke(app, [*args[:5], "--families", "catboost"])
    assert unknown.exit_code == 2


@pytest.mark.slow
def test_learnt_model_recovers_the_generators_expected_spend() -> None:
    from datetime import date

    from clv.evaluation.metrics import aggregate_error, normalized_gini

    data = generate(GeneratorConfig(n_customers=4000, end=date(2025, 9, 30)), seed=8)
    history = validate_frame(
        pd.concat([data.frame("transactions"), data.frame("future_transactions")])
    )
    result = backtest(
        history,
        horizon_days=90,
        as_of=pd.Timestamp("2025-09-30 23:59:59.999999"),
        families=("lightgbm",),
    )
    truth = data.frame("truth").set_index("customer_id")["expected_spend_90d"]
    expected = truth.reindex(result.predictions.index)
    # Against the latent expectation the ranking is near the oracle's, and the level is close:
    # the BG/NBD reference, fitted on the same history, does no better on either.
    learnt = result.predictions["lightgbm"]
    assert normalized_gini(expected, learnt) > 0.85
    assert abs(aggregate_error(expected, learnt)) < 0.15
    btyd = result.predictions[BTYD]
    assert normalized_gini(expected, learnt) >= normalized_gini(expected, btyd) - 0.01


def test_tuning_runs_the_trials_asked_for_and_scores_every_model(
    transactions: pd.DataFrame,
) -> None:
    tuned = backtest(
        transactions,
        horizon_days=HORIZON,
        families=("xgboost", "lightgbm"),
        n_windows=3,
        step_days=45,
        trials=2,
    )
    assert set(tuned.tuning) == {"xgboost", "lightgbm"}
    for family, study in tuned.tuning.items():
        assert -1.0 <= study["best_value"] <= 1.0, family
    assert set(tuned.metrics) == {"xgboost", "lightgbm", "ensemble", BTYD, RUN_RATE}
    for name in tuned.metrics:
        assert np.isfinite(tuned.metrics[name]["normalized_gini"]), name
        assert (tuned.predictions[name] >= 0).all(), name


def test_a_short_history_still_backtests_and_says_what_it_reduced(
    transactions: pd.DataFrame,
) -> None:
    # 150 days of history before the as-of: full 60-day windows need 2 * 60 + 2 * 30 = 180.
    start = transactions["timestamp"].min()
    as_of = (start + pd.Timedelta(days=150)).normalize() + pd.Timedelta(days=1, microseconds=-1)
    short = backtest(transactions, horizon_days=HORIZON, as_of=as_of, families=("lightgbm",))
    assert any("shortened" in r for r in short.reductions)
    assert "Short history" in short.to_markdown()
    assert {"lightgbm", "ensemble", BTYD, RUN_RATE} <= set(short.metrics)


def test_too_short_a_history_for_learnt_models_backtests_bgnbd(
    transactions: pd.DataFrame,
) -> None:
    start = transactions["timestamp"].min()
    as_of = (start + pd.Timedelta(days=80)).normalize() + pd.Timedelta(days=1, microseconds=-1)
    fallback = backtest(transactions, horizon_days=HORIZON, as_of=as_of, families=("lightgbm",))
    assert fallback.winner == BTYD
    assert set(fallback.metrics) == {BTYD, RUN_RATE}
    assert fallback.spend.family == "btyd" and fallback.churn.family == "btyd_churn"
    assert any("no learnt model" in r for r in fallback.reductions)
    assert np.isfinite(fallback.metrics[BTYD]["normalized_gini"])


def _single_cohort(transactions: pd.DataFrame, days: int = 90) -> pd.DataFrame:
    """The customers whose first purchase falls in the first ``days`` days (one cohort)."""
    first = transactions.groupby("customer_id")["timestamp"].transform("min")
    start = transactions["timestamp"].min()
    return transactions[first <= start + pd.Timedelta(days=days)].reset_index(drop=True)


def test_customer_age_beyond_every_training_window_is_reported_and_left_out_by_default(
    transactions: pd.DataFrame,
) -> None:
    cohort = _single_cohort(transactions)
    as_of = pd.Timestamp("2023-12-31 23:59:59")
    kwargs = {
        "horizon_days": HORIZON,
        "as_of": as_of,
        "families": ("xgboost",),
        "n_windows": 4,
        "step_days": 30,
    }

    kept = backtest(cohort, **kwargs, max_extrapolated_share=None)
    guarded = backtest(cohort, **kwargs)

    # Nearly every customer is older at the as-of date than any customer in the fit windows:
    # reported either way, left out unless every feature is asked for.
    for result in (kept, guarded):
        assert result.out_of_range["T"] > 0.9
        assert "Customers scored outside the range" in result.to_markdown()
    assert kept.extrapolated_features == {}
    assert guarded.extrapolated_features["T"] == kept.out_of_range["T"]
    assert "T" in kept.model_features["xgboost"]
    assert "T" not in guarded.model_features["xgboost"]
    # Monotone features are kept even when out of range: their direction is known.
    assert "days_since_last_purchase" in guarded.model_features["xgboost"]
    assert guarded.to_dict()["extrapolated_features"] == guarded.extrapolated_features
    assert "Left out of the learnt models as out of range: T" in guarded.to_markdown()


def test_customer_age_is_within_range_when_cohorts_are_mixed(result) -> None:  # type: ignore[no-untyped-def]
    assert "T" not in result.out_of_range
    assert "T" in result.model_features["xgboost"]
    # Four fit windows 45 days apart cover half a year of calendar positions: the horizon's
    # position is outside them for every customer, so only the calendar columns are left out.
    calendar = {"horizon_doy_sin", "horizon_doy_cos", "horizon_peak_days"}
    left_out = set(result.extrapolated_features)
    assert left_out <= calendar | {c for c in result.out_of_range if "seasonal" in c}
    assert not left_out & set(result.model_features["xgboost"])


def test_backtest_command_warns_when_customers_lie_outside_the_training_range(
    transactions: pd.DataFrame, tmp_path: Path
) -> None:
    orders = tmp_path / "orders.csv"
    _single_cohort(transactions).to_csv(orders, index=False)
    runner = CliRunner(env={"COLUMNS": "240"})
    args = [
        "backtest",
        "--transactions",
        str(orders),
        "--horizon-days",
        str(HORIZON),
        "--as-of",
        "2023-12-31",
        "--families",
        "lightgbm",
        "--windows",
        "3",
        "--out",
        str(tmp_path / "r"),
    ]

    warned = runner.invoke(app, [*args, "--max-extrapolated-share", "1"])
    guarded = runner.invoke(app, args)

    assert warned.exit_code == 0 and guarded.exit_code == 0, warned.output + guarded.output
    for result in (warned, guarded):
        text = " ".join(result.output.split())
        assert "customers outside the range the models learnt from" in text
        assert "T 100%" in text or "T 9" in text  # nearly every customer
    assert "the models extrapolate there" in " ".join(warned.output.split())
    assert "left out of the learnt models: T" in " ".join(guarded.output.split())


def test_an_as_of_day_without_sales_still_backtests(transactions: pd.DataFrame) -> None:
    # Online Retail was closed on Saturdays: a fold's as-of may be a day nobody bought on.
    as_of = pd.Timestamp("2025-06-30 23:59:59.999999")
    quiet = transactions[transactions["timestamp"].dt.normalize() != as_of.normalize()]
    result = backtest(quiet, horizon_days=HORIZON, as_of=as_of, families=("lightgbm",))
    assert result.as_of == as_of
    assert result.train_cutoffs[-1] + pd.Timedelta(days=HORIZON) == as_of
