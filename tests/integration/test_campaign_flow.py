"""The campaign flows under Prefect: plan → send exactly once, and the analysis when it is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from clv.campaigns.service import analysis_due_at, campaigns_due_for_analysis
from clv.store import Store
from flows.campaigns import campaign_analysis_flow, campaign_flow
from tests.integration.test_cli_campaign import _Sink, inputs, smtp  # noqa: F401 (fixtures)


def _run(paths: dict[str, Path], out: Path, **extra: object) -> dict[str, object]:
    return campaign_flow(
        definition=str(paths["campaign"]),
        transactions=str(paths["transactions"]),
        customers=str(paths["customers"]),
        scores=str(paths["scores"]),
        contacts=str(paths["contacts"]),
        out=str(out),
        **extra,  # type: ignore[arg-type]
    )


def test_the_flow_plans_and_sends_once_and_the_safety_net_analyses_when_the_window_closes(
    prefect_harness: None,
    inputs: dict[str, Path],  # noqa: F811
    smtp: _Sink,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = tmp_path / "plan"
    dry = _run(inputs, out, dry_run=True)
    assert dry["preview"] > 0 and smtp.recipients == []
    first = _run(inputs, out)
    plan = pd.read_parquet(out / "plan.parquet")
    again = _run(inputs, out)  # the same inputs: the same campaign, its plan unchanged
    campaign_id = first["campaign_id"]
    replanned = pd.read_parquet(out / "plan.parquet")
    pd.testing.assert_frame_equal(
        plan[["customer_id", "group", "channel"]].sort_values("customer_id", ignore_index=True),
        replanned[["customer_id", "group", "channel"]].sort_values(
            "customer_id", ignore_index=True
        ),
    )
    contacted = plan.loc[plan["group"] != "holdout", "customer_id"]
    assert again["campaign_id"] == campaign_id
    assert first["send"]["sent"] == len(contacted) and again["send"]["sent"] == 0  # type: ignore[index]
    assert sorted(smtp.recipients) == sorted(f"{c}@example.org" for c in contacted)
    assert first["analysis"] is None  # not from a deployment: nothing to schedule

    store = Store()
    due = analysis_due_at(store, campaign_id)  # type: ignore[arg-type]
    assert due is not None
    before, after = due - timedelta(hours=1), due + timedelta(hours=1)
    assert campaigns_due_for_analysis(store, now=before) == []
    assert campaigns_due_for_analysis(store, now=after) == [campaign_id]

    early = campaign_analysis_flow(transactions=str(inputs["transactions"]), now=before)
    assert early["analysed"] == []
    ran = campaign_analysis_flow(
        transactions=str(inputs["transactions"]), now=after, report_dir=str(tmp_path / "r")
    )
    (outcome,) = ran["analysed"]
    assert outcome["campaign_id"] == campaign_id
    assert Path(outcome["report"]).is_file()
    inc = outcome["incremental_revenue"]
    assert inc["ci_low"] <= inc["estimate"] <= inc["ci_high"]
    # Analysed since the window closed: the next safety-net run has nothing to do; the
    # measured uplift is there for the next campaign's targeting.
    assert campaigns_due_for_analysis(store, now=after) == []
    assert set(store.measured_uplift()["campaign_id"]) == {campaign_id}
    on_demand = campaign_analysis_flow(
        transactions=str(inputs["transactions"]), campaign_id=campaign_id, now=before
    )
    assert on_demand["analysed"][0]["campaign_id"] == campaign_id


def test_an_smtp_server_that_is_down_fails_the_run_and_marks_nothing_sent(
    prefect_harness: None,
    inputs: dict[str, Path],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from clv.settings import get_settings
    from tests.conftest import _free_port

    monkeypatch.setenv("CLV_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CLV_SMTP_PORT", str(_free_port()))  # nothing listens there
    monkeypatch.setenv("CLV_SMTP_FROM", "shop@example.org")
    get_settings.cache_clear()
    result = _run(inputs, tmp_path / "plan")
    store = Store()
    counts = store.outbox_counts(result["campaign_id"])  # type: ignore[arg-type]
    assert counts.get("sent", 0) == 0
    assert result["send"]["sent"] == 0  # type: ignore[index]
    assert result["send"]["stopped_because"] or result["send"]["deferred"]  # type: ignore[index]
    assert campaigns_due_for_analysis(store, now=datetime.now(UTC) + timedelta(days=400)) == []
