"""`clv segment`: run → review → approve → show / export, as a marketer would, on generated data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import clv
from clv.cli import app
from tests.unit.test_segment_values import segment_inputs_of

AS_OF = pd.Timestamp("2025-06-30 23:59:59.999999")


@pytest.fixture(scope="module")
def scores_frame() -> pd.DataFrame:
    data = clv.generate(customers=2000, seed=11)
    inputs = segment_inputs_of(data)
    columns = [
        "predicted_clv",
        "churn_probability",
        "days_since_last_purchase",
        "purchase_days",
        "avg_purchase_day_value",
        "eco_spend_share",
        "eco_engagement_score",
    ]
    frame = inputs[columns].rename_axis("customer_id").reset_index()
    frame["as_of"] = AS_OF
    return frame


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _ok(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return str(result.output)


def test_a_run_is_reviewed_approved_then_served_and_a_rerun_keeps_the_names(
    runner: CliRunner, scores_frame: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "scores.parquet"
    scores_frame.to_parquet(path)
    out = _ok(runner.invoke(app, ["segment", "run", "--scores", str(path)]))
    assert "segment version 1 (both, pending)" in out
    listed = json.loads(_ok(runner.invoke(app, ["segment", "list", "--json"])))
    assert [(v["version"], v["status"]) for v in listed] == [(1, "pending")]

    # Not served before approval.
    customer = str(scores_frame["customer_id"].iloc[0])
    shown = runner.invoke(app, ["segment", "show", customer])
    assert shown.exit_code == 1 and "in no active segment version now" in shown.output

    review = _ok(runner.invoke(app, ["segment", "review", "1", "--out", str(tmp_path / "r")]))
    assert "report:" in review and (tmp_path / "r" / "report.html").exists()
    assert (tmp_path / "r" / "profiles.csv").exists()
    refused = runner.invoke(app, ["segment", "approve", "1"], input="n\n")
    assert refused.exit_code != 0
    args = ["segment", "approve", "1", "--yes", "--reason", "reviewed", "--override-rules"]
    _ok(runner.invoke(app, [*args, "--reviewer", "ana"]))
    listed = json.loads(_ok(runner.invoke(app, ["segment", "list", "--json"])))
    assert listed[0]["status"] == "active" and listed[0]["decided_by"] == "ana"

    shown_now = _ok(runner.invoke(app, ["segment", "show", customer]))
    assert "version 1" in shown_now and "(current)" in shown_now
    before = runner.invoke(app, ["segment", "show", customer, "--on", "2001-01-01"])
    assert before.exit_code == 1

    exported = tmp_path / "segments.csv"
    _ok(runner.invoke(app, ["segment", "export", "--out", str(exported)]))
    table = pd.read_csv(exported, dtype={"customer_id": str})
    assert table.columns[:4].tolist() == ["customer_id", "segment", "segment_id", "version"]
    assert len(table) == len(scores_frame) and table["customer_id"].is_unique
    assert {"predicted_clv", "churn_probability", "rfm_segment"} <= set(table.columns)

    # 1% of customers change: a new pending version with every name kept and little migration.
    changed = scores_frame.copy()
    rng = np.random.default_rng(0)
    picked = rng.choice(len(changed), size=len(changed) // 100, replace=False)
    changed.loc[picked, "predicted_clv"] *= 3.0
    changed.to_parquet(path)
    rerun = _ok(runner.invoke(app, ["segment", "run", "--scores", str(path)]))
    assert "segment version 2 (both, pending) against active version 1" in rerun
    assert "every segment matched" in rerun
    first = pd.read_csv(exported)
    names_before = set(first["segment"])
    review2 = _ok(runner.invoke(app, ["segment", "review", "--out", str(tmp_path / "r2")]))
    assert "customers from version 1 (rows) to 2" in review2
    assert "changed segment" in review2
    _ok(
        runner.invoke(
            app, ["segment", "approve", "2", "--yes", "--reason", "r", "--override-rules"]
        )
    )
    second = tmp_path / "v2.parquet"
    _ok(runner.invoke(app, ["segment", "export", "2", "--out", str(second)]))
    assert set(pd.read_parquet(second)["segment"]) == names_before

    # The same scores again store nothing new.
    again = _ok(runner.invoke(app, ["segment", "run", "--scores", str(path)]))
    assert "version 2 is active (same content as before)" in again
    listed = json.loads(_ok(runner.invoke(app, ["segment", "list", "--json"])))
    assert [v["status"] for v in listed] == ["superseded", "active"]


def test_failing_business_rules_block_approval_unless_overridden(
    runner: CliRunner, scores_frame: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "scores.csv"
    scores_frame.to_csv(path, index=False)
    # Huge minimum sizes make every segment fail min_size.
    config = tmp_path / "seg.yaml"
    config.write_text("min_segment_customers: 100000\n", encoding="utf-8")
    out = _ok(
        runner.invoke(app, ["segment", "run", "--scores", str(path), "--config", str(config)])
    )
    assert "business rules:" in out and "failed" in out
    refused = runner.invoke(app, ["segment", "approve", "1", "--yes", "--reason", "x"])
    assert refused.exit_code == 1 and "business rule(s) failed" in refused.output
    assert "--override-rules" in refused.output
    _ok(
        runner.invoke(
            app, ["segment", "approve", "1", "--yes", "--reason", "x", "--override-rules"]
        )
    )
    listed = json.loads(_ok(runner.invoke(app, ["segment", "list", "--json"])))
    assert "business rules overridden" in listed[0]["reason"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="churn_probability"), "missing column(s) churn_probability"),
        (lambda f: f.assign(predicted_clv=-1.0), "column predicted_clv must be finite"),
        (lambda f: f.assign(churn_probability=1.5), "churn_probability must be finite and between"),
        (lambda f: pd.concat([f, f.iloc[:2]]), "column customer_id repeats customers"),
        (lambda f: f.iloc[:0], "the scores hold no rows"),
    ],
    ids=["no-churn", "negative-clv", "churn-above-1", "duplicate-ids", "empty"],
)
def test_bad_scores_are_refused_by_name_and_nothing_is_stored(  # type: ignore[no-untyped-def]
    runner: CliRunner, scores_frame: pd.DataFrame, tmp_path: Path, change, message: str
) -> None:
    path = tmp_path / "bad.csv"
    change(scores_frame).to_csv(path, index=False)
    result = runner.invoke(app, ["segment", "run", "--scores", str(path)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "bad.csv" in result.output and message in " ".join(result.output.split())
    listed = json.loads(_ok(runner.invoke(app, ["segment", "list", "--json"])))
    assert listed == []


def test_k_larger_than_the_customers_is_refused_with_the_numbers(
    runner: CliRunner, scores_frame: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "few.parquet"
    scores_frame.iloc[:4].to_parquet(path)
    result = runner.invoke(
        app, ["segment", "run", "--scores", str(path), "--k-min", "5", "--k-max", "6"]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "k_min=5 needs at least 5 customers" in result.output


def test_unknown_versions_and_missing_scores_say_what_to_do(runner: CliRunner) -> None:
    result = runner.invoke(app, ["segment", "approve", "7", "--yes", "--reason", "x"])
    assert result.exit_code == 1 and "no segment version 7" in result.output
    latest = runner.invoke(app, ["segment", "run", "--latest"])
    assert latest.exit_code == 1 and "run `clv score` first" in latest.output
    review = runner.invoke(app, ["segment", "review"])
    assert review.exit_code == 1 and "no segment versions yet" in review.output
