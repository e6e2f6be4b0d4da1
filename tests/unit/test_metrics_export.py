"""Recorded metrics reach the textfile with the right names, labels and values."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from monitoring.drift import ColumnDrift, DriftResult
from monitoring.metrics import (
    METRIC_NAMES,
    MonitoringMetrics,
    default_textfile,
    record_drift,
    record_drift_result,
    record_flow_run,
    record_model_metrics,
    record_predictions,
    restore_textfile,
    write_default_textfile,
    write_textfile,
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _samples(path: Path) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(path.read_text(encoding="utf-8"))
        for s in family.samples
        if not s.name.endswith("_created")
    }


def _key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def _drift_result(name: str, drifted: list[str], checked: list[str]) -> DriftResult:
    return DriftResult(
        name=name,
        share=len(drifted) / len(checked),
        drifted_columns=drifted,
        column_scores={c: ColumnDrift(c, 0.5, "K-S p_value", 0.05, c in drifted) for c in checked},
        n_reference=100,
        n_current=100,
        columns_checked=checked,
        threshold=0.3,
        detected=len(drifted) / len(checked) >= 0.3,
    )


@pytest.fixture
def metrics() -> MonitoringMetrics:
    return MonitoringMetrics()


def test_recorded_metrics_appear_in_the_textfile(
    metrics: MonitoringMetrics, tmp_path: Path
) -> None:
    features = _drift_result("features", ["spend_90d", "eco_spend_share"], ["a", "b", "c", "d"])
    record_drift_result(features, model="clv-spend", timestamp=1_750_000_000.0, metrics=metrics)
    record_drift(
        "clv-spend", 0.5, 1, dataset="predictions", timestamp=1_750_000_100.0, metrics=metrics
    )
    record_model_metrics(
        "clv-spend",
        4,
        {"normalized_gini": 0.52, "mae": 31.5, "as_of": "2025-06-30", "top20_lift": float("nan")},
        metrics=metrics,
    )
    record_model_metrics(
        "clv-spend", "4", {"normalized_gini": 0.41}, prefix="realised_", metrics=metrics
    )
    record_predictions("clv-spend", 1200, metrics=metrics)
    record_predictions("clv-spend", 300, metrics=metrics)
    record_flow_run("clv-training", "COMPLETED", metrics=metrics)
    record_flow_run("clv-training", "Failed", metrics=metrics)
    record_flow_run("clv-training", "failed", metrics=metrics)

    path = tmp_path / "textfile" / "clv.prom"
    write_textfile(path, metrics=metrics)
    samples = _samples(path)

    assert samples == {
        _key("clv_drift_share", model="clv-spend", dataset="features"): 0.5,
        _key("clv_drift_share", model="clv-spend", dataset="predictions"): 0.5,
        # Only the features check sets the drifted-column count.
        _key("clv_drifted_columns", model="clv-spend"): 2.0,
        _key("clv_model_metric", model="clv-spend", version="4", metric="normalized_gini"): 0.52,
        _key("clv_model_metric", model="clv-spend", version="4", metric="mae"): 31.5,
        _key(
            "clv_model_metric", model="clv-spend", version="4", metric="realised_normalized_gini"
        ): 0.41,
        _key("clv_predictions_total", model="clv-spend"): 1500.0,
        _key("clv_flow_runs_total", flow="clv-training", state="completed"): 1.0,
        _key("clv_flow_runs_total", flow="clv-training", state="failed"): 2.0,
        _key("clv_last_drift_check_timestamp_seconds"): 1_750_000_100.0,
    }
    assert {name for name, _ in samples} == METRIC_NAMES
    assert [p.name for p in path.parent.iterdir()] == ["clv.prom"]  # no temporary file left


def test_metrics_live_in_their_own_registry(metrics: MonitoringMetrics) -> None:
    record_predictions("clv-spend", 7, metrics=metrics)
    assert REGISTRY.get_sample_value("clv_predictions_total", {"model": "clv-spend"}) is None
    assert metrics.registry.get_sample_value("clv_predictions_total", {"model": "clv-spend"}) == 7


def test_no_drift_timestamp_until_a_check_is_recorded(
    metrics: MonitoringMetrics, tmp_path: Path
) -> None:
    record_predictions("clv-spend", 10, metrics=metrics)
    path = tmp_path / "clv.prom"
    write_textfile(path, metrics=metrics)
    assert _key("clv_last_drift_check_timestamp_seconds") not in _samples(path)


def test_restore_keeps_counting_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "clv.prom"
    first = MonitoringMetrics()
    record_predictions("clv-spend", 100, metrics=first)
    record_flow_run("clv-scoring", "completed", metrics=first)
    record_drift("clv-spend", 0.4, 3, timestamp=1000.0, metrics=first)
    write_textfile(path, metrics=first)

    second = MonitoringMetrics()  # the next flow run: a new process
    record_predictions("clv-spend", 50, metrics=second)
    record_drift("clv-spend", 0.1, 1, timestamp=2000.0, metrics=second)
    assert restore_textfile(path, metrics=second) == 2  # the counters; newer gauges win
    write_textfile(path, metrics=second)
    samples = _samples(path)
    assert samples[_key("clv_predictions_total", model="clv-spend")] == 150.0
    assert samples[_key("clv_flow_runs_total", flow="clv-scoring", state="completed")] == 1.0
    assert samples[_key("clv_drift_share", model="clv-spend", dataset="features")] == 0.1
    assert samples[_key("clv_drifted_columns", model="clv-spend")] == 1.0
    assert samples[_key("clv_last_drift_check_timestamp_seconds")] == 2000.0
    assert restore_textfile(tmp_path / "missing.prom", metrics=MonitoringMetrics()) == 0


def test_write_default_textfile_merges_successive_processes(isolated_settings: Path) -> None:
    scoring = MonitoringMetrics()
    record_predictions("clv-spend", 40, metrics=scoring)
    path = write_default_textfile(metrics=scoring)
    assert path == default_textfile() == isolated_settings / "monitoring" / "metrics" / "clv.prom"

    monitoring = MonitoringMetrics()
    record_drift("clv-spend", 0.2, 2, timestamp=5.0, metrics=monitoring)
    write_default_textfile(metrics=monitoring)
    write_default_textfile(metrics=monitoring)  # a second write must not double the counters
    samples = _samples(path)
    assert samples[_key("clv_predictions_total", model="clv-spend")] == 40.0
    assert samples[_key("clv_drift_share", model="clv-spend", dataset="features")] == 0.2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: record_drift("clv-spend", 1.5, 1, metrics=m), "share must be in"),
        (lambda m: record_drift("clv-spend", 0.5, -1, metrics=m), "drifted_columns"),
        (lambda m: record_predictions("clv-spend", -3, metrics=m), "count must be at least 0"),
        (lambda m: record_flow_run(" ", "failed", metrics=m), "flow must be a non-empty"),
    ],
    ids=["share-above-1", "negative-columns", "negative-count", "blank-flow"],
)
def test_bad_values_are_rejected(metrics: MonitoringMetrics, call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(metrics)  # type: ignore[operator]
