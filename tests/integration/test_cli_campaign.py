"""``clv campaign plan → send → analyze`` on generated data, with a real local SMTP sink."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clv.cli import app
from clv.data.generator import GeneratorConfig, generate
from clv.settings import get_settings
from tests.integration.test_campaign_channels import EphemeralPortController
from tests.unit.test_cli_segment import scores_frame  # noqa: F401 (the shared fixture)

CAMPAIGN = """
name: email-winback
audience:
  rule: predicted_clv > 50
budget: 20
channels:
  email: {kind: email, cost_per_message: 0.01}
variants:
  - name: classic
    templates:
      email:
        subject: "{{ first_name }}, we miss you"
        body: "<p>Hi {{ first_name }}, new {{ top_category }} is in.</p>"
  - name: bold
    templates:
      email:
        subject: "Come back, {{ first_name }}"
        body: "<p>{{ top_category }}: free delivery this week.</p>"
holdout_share: 0.2
uplift_prior: {rate: 0.05, sd: 0.02}
start: 2025-03-01T08:00:00Z
end: 2025-03-08T20:00:00Z
attribution_window_days: 14
"""


class _Sink:
    def __init__(self) -> None:
        self.recipients: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.recipients.extend(envelope.rcpt_tos)
        return "250 OK"


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Sink]:
    handler = _Sink()
    controller = EphemeralPortController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    monkeypatch.setenv("CLV_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CLV_SMTP_PORT", str(controller.port))
    monkeypatch.setenv("CLV_SMTP_FROM", "shop@example.org")
    get_settings.cache_clear()
    try:
        yield handler
    finally:
        controller.stop()
        get_settings.cache_clear()


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    data = generate(
        GeneratorConfig(n_customers=1500, start=date(2023, 1, 1), end=date(2025, 3, 31)), seed=8
    )
    paths = {}
    for kind in ("transactions", "customers"):
        paths[kind] = tmp_path / f"{kind}.parquet"
        frame = data.frame(kind)
        if kind == "customers":
            frame = frame.assign(marketing_opt_in=True)
        frame.to_parquet(paths[kind])
    ids = data.frame("customers")["customer_id"]
    rng = np.random.default_rng(0)
    paths["scores"] = tmp_path / "scores.parquet"
    pd.DataFrame({"customer_id": ids, "predicted_clv": rng.gamma(2, 60, len(ids))}).to_parquet(
        paths["scores"]
    )
    paths["contacts"] = tmp_path / "contacts.csv"
    pd.DataFrame(
        {"customer_id": ids, "email": [f"{c}@example.org" for c in ids], "first_name": "Sam"}
    ).to_csv(paths["contacts"], index=False)
    paths["campaign"] = tmp_path / "campaign.yaml"
    paths["campaign"].write_text(CAMPAIGN)
    return paths


def test_plan_send_analyze_sends_every_message_once(
    inputs: dict[str, Path], smtp: _Sink, tmp_path: Path
) -> None:
    runner = CliRunner()
    out = tmp_path / "plan"
    plan_args = [
        "campaign", "plan", str(inputs["campaign"]),
        "--transactions", str(inputs["transactions"]),
        "--customers", str(inputs["customers"]),
        "--scores", str(inputs["scores"]),
        "--contacts", str(inputs["contacts"]),
        "--out", str(out),
    ]  # fmt: skip

    planned = runner.invoke(app, plan_args)
    assert planned.exit_code == 0, planned.output
    campaign_id = json.loads((out / "summary.json").read_text())["campaign_id"]
    plan = pd.read_parquet(out / "plan.parquet")
    contacted = plan[plan["group"] != "holdout"]
    again = runner.invoke(app, plan_args)  # the same plan twice is one campaign
    assert again.exit_code == 0 and campaign_id in again.output

    dry = runner.invoke(app, ["campaign", "send", str(out), "--dry-run"])
    sent = runner.invoke(app, ["campaign", "send", str(out)])
    rerun = runner.invoke(app, ["campaign", "send", str(out)])

    assert dry.exit_code == 0 and (out / "preview.jsonl").is_file()
    assert sent.exit_code == 0, sent.output
    assert rerun.exit_code == 0 and "0 sent" in rerun.output
    assert sorted(smtp.recipients) == sorted(f"{c}@example.org" for c in contacted["customer_id"])
    assert contacted["cost"].sum() <= 20 + 1e-9

    analysed = runner.invoke(
        app,
        [
            "campaign",
            "analyze",
            campaign_id,
            "--transactions",
            str(inputs["transactions"]),
            "--json",
        ],
    )
    assert analysed.exit_code == 0, analysed.output
    payload = json.loads(analysed.stdout)
    assert payload["campaign_id"] == campaign_id
    assert {"estimate", "ci_low", "ci_high"} <= set(payload["incremental_revenue"])
    assert {"estimate", "ci_low", "ci_high"} <= set(payload["roi"])
    assert {m["metric"] for m in payload["metrics"]} == {
        "revenue", "conversion", "retention", "eco_adoption"
    }  # fmt: skip
    assert payload["engagement"] is None  # no events ingested yet

    # Opens from the provider, then the analysis reports them and writes the report.
    events = tmp_path / "events.csv"
    opened = contacted["customer_id"].iloc[:10]
    pd.DataFrame(
        {"campaign_id": campaign_id, "customer_id": opened, "channel": "email",
         "event": "open", "timestamp": "2025-03-09T10:00:00Z"}
    ).to_csv(events, index=False)  # fmt: skip
    ingested = runner.invoke(app, ["campaign", "events", str(events)])
    assert ingested.exit_code == 0, ingested.output
    reported = runner.invoke(
        app,
        ["campaign", "analyze", campaign_id, "--transactions", str(inputs["transactions"]),
         "--report", str(tmp_path / "report")],
    )  # fmt: skip
    assert reported.exit_code == 0, reported.output
    assert "engagement of" in reported.output and "report:" in reported.output
    assert (tmp_path / "report" / "report.html").is_file()
    again_json = runner.invoke(
        app,
        ["campaign", "analyze", campaign_id, "--transactions", str(inputs["transactions"]),
         "--json"],
    )  # fmt: skip
    engagement = json.loads(again_json.stdout)["engagement"]
    assert engagement["total"]["unique_customers"]["open"] == 10
    assert engagement["total"]["sent"] == len(contacted)
    listed = runner.invoke(app, ["campaign", "list"])
    assert campaign_id[:12] in listed.output


def test_a_campaign_file_with_an_error_names_the_line(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(CAMPAIGN.replace("budget: 20", "budget: -5"))

    result = CliRunner().invoke(
        app,
        [
            "campaign",
            "plan",
            str(broken),
            "--transactions",
            str(inputs["transactions"]),
            "--customers",
            str(inputs["customers"]),
            "--scores",
            str(inputs["scores"]),
            "--out",
            str(tmp_path / "x"),
        ],
    )

    assert result.exit_code == 2
    assert "line 5" in result.output and "budget" in result.output
    assert "Traceback" not in result.output


def test_a_campaign_to_an_active_segment_plans_only_its_customers(
    tmp_path: Path,
    scores_frame: pd.DataFrame,  # noqa: F811
) -> None:
    import clv
    from clv.store import Store

    runner = CliRunner()
    data = clv.generate(customers=2000, seed=11)  # the customers scores_frame scored
    paths = {}
    for kind in ("transactions", "customers"):
        paths[kind] = tmp_path / f"{kind}.parquet"
        frame = getattr(data, kind)
        if kind == "customers":
            frame = frame.assign(marketing_opt_in=True)
        frame.to_parquet(paths[kind])
    scores = tmp_path / "scores.parquet"
    scores_frame.to_parquet(scores)
    assert runner.invoke(app, ["segment", "run", "--scores", str(scores)]).exit_code == 0
    approved = runner.invoke(
        app, ["segment", "approve", "1", "--yes", "--reason", "r", "--override-rules"]
    )
    assert approved.exit_code == 0, approved.output
    store = Store()
    names = store.segments(1)["name"].tolist()
    chosen = names[0]
    contacts = tmp_path / "contacts.csv"
    ids = data.customers["customer_id"]
    pd.DataFrame({"customer_id": ids, "email": [f"{c}@example.org" for c in ids]}).to_csv(
        contacts, index=False
    )
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(
        CAMPAIGN.replace("  rule: predicted_clv > 50", f"  segments: [{chosen!r}]").replace(
            "{{ first_name }}", "there"
        )
    )
    out = tmp_path / "plan"
    planned = runner.invoke(
        app,
        ["campaign", "plan", str(campaign), "--transactions", str(paths["transactions"]),
         "--customers", str(paths["customers"]), "--scores", str(scores),
         "--contacts", str(contacts), "--out", str(out)],
    )  # fmt: skip
    assert planned.exit_code == 0, planned.output
    plan = pd.read_parquet(out / "plan.parquet")
    assigned = store.assignments(1)
    members = set(assigned.loc[assigned["name"] == chosen, "customer_id"])
    assert len(plan) and set(plan["customer_id"]) <= members
    assert set(plan["segment"]) == {chosen}
