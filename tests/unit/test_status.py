"""``clv status``: champions and their metrics, scores and the last drift check, as stored."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from clv import status, tracking
from clv.cli import app
from monitoring.metrics import MonitoringMetrics, default_textfile, record_drift, write_textfile

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def flat(text: str) -> str:
    """Output without colour codes, Rich's wrapping or table borders."""
    return " ".join(_ANSI.sub("", text).replace("│", " ").split())


@pytest.fixture
def registry(isolated_settings: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A local SQLite registry under CLV_HOME: clv-spend v1 (newest: v2 is the champion)."""
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    uri = tracking.configure()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(tracking.SPEND_MODEL)
    source = (isolated_settings / "artifact").as_uri()
    common = {"as_of": "2025-06-30T23:59:59.999999", "horizon_days": "90"}
    client.create_model_version(tracking.SPEND_MODEL, source, tags={**common, "family": "xgboost"})
    client.create_model_version(
        tracking.SPEND_MODEL,
        source,
        tags={
            **common,
            "family": "lightgbm",
            "metric.holdout_normalized_gini": "0.7123",
            "metric.holdout_bgnbd_gamma_gamma_normalized_gini": "0.6891",
            "metric.holdout_decile_mape": "nan",
        },
    )
    client.set_registered_model_alias(tracking.SPEND_MODEL, tracking.CHAMPION, "2")
    client.create_registered_model(tracking.CHURN_MODEL)
    client.create_model_version(
        tracking.CHURN_MODEL, source, tags={**common, "metric.holdout_brier": "0.1734"}
    )


def test_the_champion_is_shown_with_its_gini_and_the_btyd_reference(registry: None) -> None:
    spend = status.model_status(tracking.SPEND_MODEL)
    assert spend is not None
    assert (spend.version, spend.is_champion, spend.family) == (2, True, "lightgbm")
    assert spend.metrics == {
        status.GINI: pytest.approx(0.7123),
        status.BTYD_GINI: pytest.approx(0.6891),
    }  # the nan tag is left out, not shown as a number


def test_without_a_champion_the_newest_version_is_shown_as_such(registry: None) -> None:
    churn = status.model_status(tracking.CHURN_MODEL)
    assert churn is not None
    assert (churn.version, churn.is_champion) == (1, False)
    assert status.model_status("clv-nothing-registered") is None


def test_scores_are_counted_and_summed(tmp_path: Path) -> None:
    path = tmp_path / "scores.parquet"
    pd.DataFrame(
        {"predicted_clv": [10.0, 0.0, 32.5], "churn_probability": [0.2, 0.9, 0.1]}
    ).to_parquet(path)
    scores = status.scores_status(path)
    assert scores is not None
    assert (scores.rows, scores.total_predicted_clv) == (3, 42.5)
    assert scores.mean_churn_probability == pytest.approx(0.4)
    assert status.scores_status(tmp_path / "missing.parquet") is None
    pd.DataFrame({"amount": [1.0]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(ValueError, match=r"other\.parquet has no 'predicted_clv' column"):
        status.scores_status(tmp_path / "other.parquet")


def test_the_last_feature_drift_check_is_read_from_the_textfile(tmp_path: Path) -> None:
    textfile = tmp_path / "clv.prom"
    assert status.drift_status(textfile, tmp_path) is None  # no check yet
    metrics = MonitoringMetrics()
    # The prediction-drift share must not be taken for the feature drift share.
    record_drift("clv-spend", 0.9, 0, dataset="predictions", timestamp=1.0e9, metrics=metrics)
    record_drift("clv-spend", 0.4, 6, timestamp=1.75e9, metrics=metrics)
    write_textfile(textfile, metrics=metrics)
    old, new = tmp_path / "r" / "drift-features-a.html", tmp_path / "r" / "drift-features-b.html"
    old.parent.mkdir()
    old.write_text("old")
    new.write_text("new")
    os.utime(old, (1, 1))

    drift = status.drift_status(textfile, tmp_path)
    assert drift is not None
    assert (drift.share, drift.drifted_columns, drift.report) == (0.4, 6, new)
    assert drift.checked_at is not None and drift.checked_at.year == 2025


def test_clv_status_prints_the_headline_numbers(registry: None, tmp_path: Path) -> None:
    scores = tmp_path / "scores.parquet"
    pd.DataFrame({"predicted_clv": [1000.0, 234.5]}).to_parquet(scores)
    metrics = MonitoringMetrics()
    record_drift("clv-spend", 0.25, 3, metrics=metrics)
    write_textfile(default_textfile(), metrics=metrics)

    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["status", "--scores", str(scores)])

    assert result.exit_code == 0, result.output
    out = flat(result.output)
    assert "clv-spend v2 champion, lightgbm, as of 2025-06-30" in out
    assert "holdout Gini 0.712 vs BG/NBD + Gamma-Gamma 0.689" in out
    assert "clv-churn v1 newest (no champion yet)" in out
    assert "holdout Brier 0.1734" in out
    assert "2 customers, total predicted CLV 1,234.50" in out
    assert "25% of feature columns drifted (3 columns)" in out


def test_clv_status_on_an_empty_home_says_what_to_run(isolated_settings: Path) -> None:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["status", "--scores", str(isolated_settings / "scores.parquet")]
    )
    assert result.exit_code == 0, result.output
    out = flat(result.output)
    assert "none registered: run 'clv train'" in out
    assert "does not exist: run 'clv score'" in out
    assert "not checked yet: run 'clv monitor'" in out
    assert "no active version: 'clv segment run'" in out


def test_clv_status_shows_the_active_segment_version_and_the_pending_ones(
    isolated_settings: Path,
) -> None:
    from clv.store import Store

    store = Store()
    segments = pd.DataFrame(
        {"segment_id": ["V1"], "name": ["loyal"], "description": [""], "new": [False]}
        | {"matched_from": [None], "profile": [{}]}
    )
    assignments = pd.DataFrame({"customer_id": ["a", "b"], "segment_id": ["V1", "V1"]})
    common = dict(method="kmeans", segments=segments, assignments=assignments, rules=[])
    common |= dict(config={}, model=None, scores_as_of=None, source="s")
    store.create_version(**common, content_hash="one")  # type: ignore[arg-type]
    store.approve(1, by="ana", reason="ok")
    store.create_version(**common, content_hash="two")  # type: ignore[arg-type]
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    out = flat(result.output)
    assert "version 1 active (kmeans, 1 segments, 2 customers), approved by ana" in out
    assert "version 2: 'clv segment review'" in out
