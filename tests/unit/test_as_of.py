"""``--as-of`` is read once, as the end of that day, and train, score, monitor and backtest cut at
the same instant: a purchase at 15:00 on the as-of day is in, one at 00:00:01 the next day is out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clv.cli import app
from clv.data.generator import GeneratorConfig, generate

AS_OF = "2024-06-30"
END_OF_DAY = pd.Timestamp("2024-06-30 23:59:59.999999")
HORIZON = 30
SEEN_AMOUNT = 123.45  # bought at 15:00 on the as-of day
LATE_AMOUNT = 67.89  # bought at 00:00:01 the day after
AT_15H = pd.Timestamp("2024-06-30 15:00")
NEXT_DAY = pd.Timestamp("2024-07-01 00:00:01")
EARLY = pd.Timestamp("2024-03-01 12:00")  # before every cut-off of the plans below


class CapturedError(ValueError):
    """Raised by the stand-ins below once they hold what the command passed on."""


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    tx = generate(GeneratorConfig(n_customers=300), seed=5).transactions
    tx = tx.to_pandas()[["customer_id", "timestamp", "amount"]]
    # Shift the history so that it runs to a week after the as-of day.
    tx["timestamp"] = tx["timestamp"] + (END_OF_DAY + pd.Timedelta(days=7) - tx["timestamp"].max())
    # old-* bought early and again on the as-of day (old-in) or just after it (old-out);
    # new-* bought only then.
    probes = pd.DataFrame(
        [
            ("old-in", EARLY, 10.0),
            ("old-in", AT_15H, SEEN_AMOUNT),
            ("old-out", EARLY, 10.0),
            ("old-out", NEXT_DAY, LATE_AMOUNT),
            ("new-in", AT_15H, SEEN_AMOUNT),
            ("new-out", NEXT_DAY, LATE_AMOUNT),
        ],
        columns=["customer_id", "timestamp", "amount"],
    )
    tx = pd.concat([tx, probes], ignore_index=True)
    tx["customer_id"] = tx["customer_id"].astype(str)
    return tx.sort_values("timestamp").reset_index(drop=True)


@pytest.fixture
def csv(transactions: pd.DataFrame, tmp_path: Path) -> Path:
    path = tmp_path / "transactions.csv"
    transactions.assign(
        timestamp=transactions["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    ).to_csv(path, index=False)
    return path


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_as_of_is_the_last_microsecond_of_the_day() -> None:
    from clv.cli import _parse_as_of

    assert _parse_as_of(AS_OF) == END_OF_DAY
    assert _parse_as_of(None) is None


def test_train_passes_the_end_of_the_day_and_its_holdout_target_includes_15h(
    csv: Path, transactions: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.training
    from clv.training.dataset import TARGET, build_training_frames
    from clv.training.pipeline import make_plan

    seen: dict[str, Any] = {}

    def training_flow(**kwargs: Any) -> None:
        seen.update(kwargs)
        raise CapturedError("captured")

    monkeypatch.setattr(flows.training, "training_flow", training_flow)
    args = ["--transactions", str(csv), "--horizon-days", str(HORIZON), "--as-of", AS_OF]
    result = _invoke("train", *args, "--windows", "2")
    assert result.exit_code == 1 and "captured" in result.output
    # The flow gets the instant as text, and keeps it (no re-normalising to midnight).
    config = flows.training._config(
        {
            "horizon_days": HORIZON,
            "as_of": seen["as_of"],
            "families": ["lightgbm"],
            "n_trials": 1,
            "n_windows": 2,
            "step_days": 30,
            "seed": 0,
        }
    )
    assert config.as_of == END_OF_DAY
    plan = make_plan(transactions, config)
    frames = build_training_frames(
        transactions, plan=plan, input_hashes={"transactions": "x"}, cache_dir=None
    )
    assert plan.as_of == END_OF_DAY and plan.fit[0] > EARLY
    holdout = frames.holdout.set_index("customer_id")
    # The holdout's target window (as-of - horizon, as-of] holds the 15:00 purchase, not the
    # one a second after midnight.
    assert holdout.loc["old-in", TARGET] == pytest.approx(SEEN_AMOUNT)
    assert holdout.loc["old-out", TARGET] == 0.0


def test_a_date_given_to_the_flow_directly_is_also_the_end_of_that_day() -> None:
    from flows.training import _config

    config = _config(
        {
            "horizon_days": HORIZON,
            "as_of": AS_OF,
            "families": ["lightgbm"],
            "n_trials": 1,
            "n_windows": 2,
            "step_days": 30,
            "seed": 0,
        }
    )
    assert config.as_of == END_OF_DAY


class _StubSpend:
    """Enough of a SpendBundle for score_customers (its predictions do not matter here)."""

    family = "stub"
    horizon_days = HORIZON

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"predicted_clv": np.zeros(len(features))}, index=features.index)


def test_score_cuts_at_the_end_of_the_day(
    csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import clv.training.scoring as scoring

    monkeypatch.setattr(
        scoring,
        "load_registered",
        lambda alias, folder: scoring.RegisteredModels(_StubSpend(), 1, None, None),  # type: ignore[arg-type]
    )
    monkeypatch.setattr("clv.tracking.configure", lambda: "stub")
    out = tmp_path / "scores.csv"
    result = _invoke(
        "score", "--transactions", str(csv), "--horizon-days", str(HORIZON),
        "--as-of", AS_OF, "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out, dtype={"customer_id": str})
    assert {"new-in", "old-in", "old-out"} <= set(scores["customer_id"])
    assert "new-out" not in set(scores["customer_id"])
    assert pd.Timestamp(scores["as_of"].iloc[0]) == END_OF_DAY


def test_monitor_cuts_at_the_same_instant(csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.drift_monitoring

    seen: dict[str, Any] = {}

    def monitoring_flow(**kwargs: Any) -> None:
        seen.update(kwargs)
        raise CapturedError("captured")

    monkeypatch.setattr(flows.drift_monitoring, "monitoring_flow", monitoring_flow)
    result = _invoke("monitor", "--transactions", str(csv), "--as-of", AS_OF)
    assert result.exit_code == 1 and "captured" in result.output
    from clv.training.windows import end_of_day

    # check_drift reads it with end_of_day, which keeps the instant.
    assert end_of_day(pd.Timestamp(seen["as_of"])) == END_OF_DAY == pd.Timestamp(seen["as_of"])


def test_backtest_cuts_at_the_same_instant(csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import clv.evaluation.backtest

    seen: dict[str, Any] = {}

    def backtest(transactions: pd.DataFrame, **kwargs: Any) -> None:
        seen.update(kwargs, transactions=transactions)
        raise CapturedError("captured")

    monkeypatch.setattr(clv.evaluation.backtest, "backtest", backtest)
    result = _invoke(
        "backtest", "--transactions", str(csv), "--horizon-days", str(HORIZON), "--as-of", AS_OF
    )
    assert result.exit_code == 1 and "captured" in result.output
    assert seen["as_of"] == END_OF_DAY
    tx = seen["transactions"]
    history = tx[tx["timestamp"] <= seen["as_of"]]
    assert "new-in" in set(history["customer_id"])
    assert "new-out" not in set(history["customer_id"])
