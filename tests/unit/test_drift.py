"""Drift checks (Evidently behind a validation gate) and realised performance of old scorings."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clv.data.generator import DriftScenario, GeneratorConfig, generate
from clv.features import build_features
from monitoring.drift import (
    MIN_ROWS,
    DriftInputError,
    DriftResult,
    compute_drift,
    prediction_drift,
)
from monitoring.performance import pending_reason, realised_performance

CUTOFF = pd.Timestamp("2025-12-31 23:59:59.999999")
#: Columns the generator's drift scenario (prices x1.4, eco share +0.3 from July 2025) moves.
SHIFTED = ["monetary_value", "avg_purchase_day_value", "spend_180d", "eco_spend_share"]
#: Columns it cannot move: same seed, same purchase times (prices and eco flags only change).
UNMOVED = ["frequency", "recency", "T", "purchase_days", "purchase_days_180d"]
COLUMNS = SHIFTED + UNMOVED

# Importing Evidently 0.7.23 triggers deprecation warnings of its own dependencies.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*litestar.*|.*DependencyKwarg.*|.*Dependency'.*"),
]


def _features(drift: DriftScenario | None) -> pd.DataFrame:
    config = GeneratorConfig(n_customers=1500, start=date(2024, 1, 1), drift=drift)
    data = generate(config, seed=11)
    return build_features(
        data.frame("transactions"), cutoff=CUTOFF, horizon_days=90, include_btyd=False
    )


@pytest.fixture(scope="module")
def reference_features() -> pd.DataFrame:
    return _features(None)


@pytest.fixture(scope="module")
def drifted_features() -> pd.DataFrame:
    return _features(DriftScenario(start=date(2025, 7, 1), price_level=1.4, eco_share_shift=0.3))


@pytest.fixture(scope="module")
def no_drift(reference_features: pd.DataFrame) -> DriftResult:
    return compute_drift(reference_features, reference_features.copy(), columns=COLUMNS)


@pytest.fixture(scope="module")
def scenario_drift(
    reference_features: pd.DataFrame,
    drifted_features: pd.DataFrame,
    tmp_path_factory: pytest.TempPathFactory,
) -> DriftResult:
    return compute_drift(
        reference_features,
        drifted_features,
        columns=COLUMNS,
        report_dir=tmp_path_factory.mktemp("drift-reports"),
        threshold=0.3,
        name="features",
    )


# --------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------


def test_identical_data_has_no_drift(no_drift: DriftResult) -> None:
    assert no_drift.share == 0.0
    assert not no_drift.detected
    assert no_drift.drifted_columns == []
    assert no_drift.columns_checked == COLUMNS
    assert no_drift.report_path is None
    assert all(not c.drifted for c in no_drift.column_scores.values())


def test_generator_drift_scenario_is_detected_and_named(scenario_drift: DriftResult) -> None:
    assert scenario_drift.detected
    assert set(SHIFTED) <= set(scenario_drift.drifted_columns)
    assert not set(UNMOVED) & set(scenario_drift.drifted_columns)
    assert scenario_drift.share == pytest.approx(len(scenario_drift.drifted_columns) / len(COLUMNS))
    assert scenario_drift.n_reference == scenario_drift.n_current == 1500
    eco = scenario_drift.column_scores["eco_spend_share"]
    # Above 1,000 rows Evidently compares numeric columns with the normed Wasserstein distance.
    assert eco.stattest == "Wasserstein distance (normed)"
    assert eco.score >= eco.threshold and not eco.is_p_value


def test_html_report_is_written(scenario_drift: DriftResult) -> None:
    path = scenario_drift.report_path
    assert path is not None and path.exists()
    assert path.name.startswith("drift-features-") and path.suffix == ".html"
    assert path.stat().st_size > 10_000
    assert "<html" in path.read_text(encoding="utf-8")[:2000].lower()
    assert not [p for p in path.parent.iterdir() if p != path]  # no temporary file left


def test_result_is_json_friendly(scenario_drift: DriftResult) -> None:
    import json

    payload = json.loads(json.dumps(scenario_drift.to_dict()))
    assert payload["detected"] is True
    assert payload["column_scores"]["eco_spend_share"]["drifted"] is True
    assert payload["report_path"] == str(scenario_drift.report_path)
    summary = payload["data_summary"]
    assert summary["rows"] == 1500
    assert set(summary["missing_share_by_column"]) == set(COLUMNS)
    assert 0.0 <= summary["missing_share"] <= 1.0


def test_plainly_shifted_copy_with_a_categorical_column() -> None:
    rng = np.random.default_rng(0)
    n = 400
    reference = pd.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(n)],
            "spend": rng.gamma(2.0, 50.0, n),
            "visits": rng.poisson(4, n).astype(float),
            "channel": rng.choice(["web", "app", "store"], n, p=[0.6, 0.3, 0.1]),
        }
    )
    current = reference.copy()
    current["spend"] = current["spend"] * 1.5 + 20
    current["channel"] = rng.choice(["web", "app", "store"], n, p=[0.2, 0.7, 0.1])
    result = compute_drift(reference, current, categorical_columns=["channel"])
    # Default columns: the shared numeric ones minus identifiers, then the categorical ones.
    assert result.columns_checked == ["spend", "visits", "channel"]
    assert result.drifted_columns == ["spend", "channel"]
    assert result.share == pytest.approx(2 / 3)
    # Up to 1,000 rows: a K-S p-value for numbers, chi-square for categories.
    assert result.column_scores["spend"].is_p_value
    assert result.column_scores["spend"].score < 0.05


# --------------------------------------------------------------------------------------------
# Validation gate: each bad input has its own message, before Evidently runs
# --------------------------------------------------------------------------------------------


def _frame(n: int = 50, **extra: object) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), **extra})


@pytest.mark.parametrize(
    ("reference", "current", "columns", "message"),
    [
        (pd.DataFrame(), _frame(), None, "the reference data is empty"),
        (_frame(), _frame().iloc[0:0], None, "the current data is empty"),
        (_frame(), _frame(), ["a", "zz"], "'zz' missing from the reference data"),
        (_frame(), _frame().drop(columns="b"), ["a", "b"], "'b' missing from the current data"),
        (_frame(), _frame(b=np.nan), ["a", "b"], "'b' is entirely missing .* current data"),
        (_frame(b=np.nan), _frame(), None, "'b' is entirely missing .* reference data"),
        (_frame(MIN_ROWS - 1), _frame(), None, f"reference data has only {MIN_ROWS - 1} rows"),
        (_frame(), _frame(5), None, "current data has only 5 rows"),
        (_frame(), _frame(c="x"), ["a", "c"], "'c' missing from the reference data"),
        (_frame(c="x"), _frame(c="y"), ["a", "c"], "'c' .* not numeric; pass it in categorical"),
        (_frame(b=np.inf), _frame(), None, "'b' in the reference data has 50 infinite"),
        (_frame(), _frame(), [], "columns is an empty list"),
        (
            _frame().astype(str),
            _frame().astype(str),
            None,
            "no numeric column in common",
        ),
    ],
    ids=[
        "empty-reference",
        "empty-current",
        "missing-in-reference",
        "missing-in-current",
        "all-nan-current",
        "all-nan-reference",
        "too-few-reference",
        "too-few-current",
        "text-column-missing",
        "text-not-categorical",
        "infinite",
        "no-columns",
        "nothing-numeric",
    ],
)
def test_bad_input_is_rejected_with_its_message(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str] | None, message: str
) -> None:
    with pytest.raises(DriftInputError, match=message):
        compute_drift(reference, current, columns=columns)


def test_clv_monitor_shows_a_drift_input_error_as_its_message_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys
    from types import SimpleNamespace

    from typer.testing import CliRunner

    from clv.cli import app

    def monitoring_flow(**kwargs: object) -> None:
        compute_drift(_frame(), _frame(5))  # what the flow's check does with too few customers

    # The flow module stands in for flows.drift_monitoring (whose Prefect import is slow).
    stub = SimpleNamespace(monitoring_flow=monitoring_flow)
    monkeypatch.setitem(sys.modules, "flows.drift_monitoring", stub)
    result = CliRunner(env={"COLUMNS": "240"}).invoke(
        app, ["monitor", "--transactions", "now.parquet"]
    )
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "current data has only 5 rows" in output
    assert "unexpected error" not in output and "Traceback" not in output


def test_importing_monitoring_does_not_import_evidently() -> None:
    import subprocess
    import sys

    code = (
        "import sys, monitoring, monitoring.drift, monitoring.metrics, monitoring.performance; "
        "print('evidently' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"


def test_bad_threshold_is_rejected() -> None:
    with pytest.raises(DriftInputError, match="threshold must be a share"):
        compute_drift(_frame(), _frame(), threshold=0.0)


# --------------------------------------------------------------------------------------------
# Prediction drift
# --------------------------------------------------------------------------------------------


def _scores(n: int, *, scale: float, seed: int, churn: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    clv = rng.lognormal(4.0, 1.0, n) * scale
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "predicted_clv": clv,
            "predicted_clv_lower": clv * 0.5,
            "predicted_clv_upper": clv * 1.8,
            "as_of": pd.Timestamp("2025-06-30 23:59:59.999999"),
            "horizon_days": 90,
            "model_version": "3",
        }
    )
    if churn:
        frame["churn_probability"] = rng.beta(2.0, 5.0, n)
    return frame


def test_prediction_drift_on_clv_and_churn(tmp_path: Path) -> None:
    reference = _scores(600, scale=1.0, seed=1)
    current = _scores(600, scale=1.6, seed=2)
    result = prediction_drift(reference, current, report_dir=tmp_path)
    assert result.name == "predictions"
    assert result.columns_checked == ["predicted_clv", "churn_probability"]
    assert result.drifted_columns == ["predicted_clv"]
    assert result.share == 0.5 and result.detected
    assert result.report_path is not None and result.report_path.parent == tmp_path


def test_prediction_drift_without_churn_and_without_predictions() -> None:
    reference = _scores(200, scale=1.0, seed=1)
    current = _scores(200, scale=1.0, seed=1, churn=False)
    result = prediction_drift(reference, current)
    assert result.columns_checked == ["predicted_clv"]
    assert not result.detected
    with pytest.raises(DriftInputError, match="'predicted_clv' missing from the current data"):
        prediction_drift(reference, current.drop(columns="predicted_clv"))


# --------------------------------------------------------------------------------------------
# Realised performance
# --------------------------------------------------------------------------------------------

AS_OF = pd.Timestamp("2025-01-31 23:59:59.999999")
HORIZON = 30  # window (2025-01-31 end of day, 2025-03-02 end of day]


def _tx(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "timestamp": pd.to_datetime([r[1] for r in rows], format="ISO8601"),
            "amount": [r[2] for r in rows],
        }
    )


@pytest.fixture
def small_scoring() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ten customers with known actual spend in the window: 0, 0, 10, 20, ..., 80."""
    rows = [
        ("c0", "2025-01-10", 500.0),  # before the window: ignored
        ("c1", "2025-02-05", 30.0),
        ("c1", "2025-02-20", -45.0),  # net -15 in the window: floored at 0
    ]
    for i in range(2, 10):
        rows.append((f"c{i}", "2025-02-10", 10.0 * (i - 1)))  # c2 -> 10, ..., c9 -> 80
    rows.append(("c9", "2025-03-03 08:00", 999.0))  # after the window: ignored
    actual = np.array([0, 0, 10, 20, 30, 40, 50, 60, 70, 80], dtype=float)
    predicted = actual + 5.0
    lower = predicted - 10.0
    upper = predicted + 10.0
    upper[[2, 3]] = predicted[[2, 3]] - 6.0  # two intervals miss the actual value
    scores = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(10)],
            "predicted_clv": predicted,
            "predicted_clv_lower": lower,
            "predicted_clv_upper": upper,
            "as_of": AS_OF,
            "horizon_days": HORIZON,
        }
    )
    return scores, _tx(rows)


def test_realised_performance_waits_for_the_horizon(
    small_scoring: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    scores, transactions = small_scoring
    early = transactions[transactions["timestamp"] < pd.Timestamp("2025-02-25")]
    assert realised_performance(scores, early) is None
    reason = pending_reason(scores, early)
    assert reason is not None
    assert "30-day horizon" in reason and "2025-03-02" in reason and "2025-02-20" in reason


@pytest.mark.filterwarnings("ignore:decile_mape")  # two bins with zero true spend: skipped
def test_realised_performance_after_the_horizon_hand_computed(
    small_scoring: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    scores, transactions = small_scoring
    assert pending_reason(scores, transactions) is None
    report = realised_performance(scores, transactions)
    assert report is not None
    # Every prediction is 5 above the actual spend: MAE = RMSE = 5, ranking perfect.
    assert report["mae"] == pytest.approx(5.0)
    assert report["rmse"] == pytest.approx(5.0)
    assert report["normalized_gini"] == pytest.approx(1.0)
    assert report["spearman"] == pytest.approx(1.0)
    # Total actual 360, total predicted 410: (410 - 360) / 360.
    assert report["aggregate_error"] == pytest.approx(50.0 / 360.0)
    # The intervals of c2 and c3 end below their actual spend: 8 of 10 covered.
    assert report["interval_coverage"] == pytest.approx(0.8)
    assert report["as_of"] == AS_OF.isoformat()
    assert report["horizon_days"] == HORIZON
    assert report["customers"] == 10


def test_realised_performance_rejects_mixed_runs(
    small_scoring: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    scores, transactions = small_scoring
    mixed = scores.copy()
    mixed.loc[0, "horizon_days"] = 60
    with pytest.raises(ValueError, match="2 distinct 'horizon_days'"):
        realised_performance(mixed, transactions)
