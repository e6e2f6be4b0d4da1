"""Campaign report: the cumulative lift on hand-built cases, and the files the report writes.

The report's inputs are a small simulated campaign (1,500 customers, seeded) in which the ``eco``
variant adds a known mean revenue and ``classic`` adds nothing, measured once per module by
:func:`analyze_campaign`; text-escaping cases edit its ``to_dict()`` payload.
"""

from __future__ import annotations

import base64
import copy
import html
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clv.campaigns.definition import HOLDOUT, load_campaign
from clv.campaigns.measurement import CampaignAnalysis, analyze_campaign, attributed_metrics
from clv.campaigns.report import CUMULATIVE_LIFT_COLUMNS, POOLED, cumulative_lift, write_report
from clv.experiments.assignment import assign

EXAMPLE = Path(__file__).parents[2] / "examples" / "campaign.yaml"
SEND = pd.Timestamp("2026-03-02 10:00")
WINDOW = 14
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_URI = "data:image/png;base64,"
FILES = {
    "markdown": "report.md",
    "html": "report.html",
    "incremental_revenue_plot": "incremental_revenue.png",
    "cumulative_lift_plot": "cumulative_lift.png",
}


# --------------------------------------------------------------------------- fixtures


def _world(n: int, lift: dict[str, float], seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A plan and transactions in which each treated variant adds a known mean revenue."""
    rng = np.random.default_rng(seed)
    ids = [f"c{i}" for i in range(n)]
    groups = assign(ids, f"report-{seed}", variants={"classic": 1, "eco": 1}, holdout_share=0.2)
    plan = pd.DataFrame(
        {
            "customer_id": ids,
            "group": groups.to_numpy(),
            "segment": rng.choice(["loyal", "at risk"], n),
            "channel": "email",
            "send_at": SEND,
            "expected_incremental_value": 1.0,
            "cost": np.where(groups.to_numpy() == HOLDOUT, 0.0, 0.05),
        }
    )
    habit = rng.gamma(0.8, 40, n)
    rows = []
    for i, (customer, group) in enumerate(zip(ids, plan["group"], strict=True)):
        for _ in range(rng.poisson(1.0)):  # the pre-period, CUPED's covariate
            rows.append((customer, SEND - pd.Timedelta(days=rng.uniform(0.1, 13.9)), habit[i]))
        extra = lift.get(group, 0.0)
        spend = habit[i] + (rng.exponential(extra) if extra else 0.0)
        for _ in range(rng.poisson(1.0)):
            rows.append((customer, SEND + pd.Timedelta(days=rng.uniform(0, 13.9)), spend))
    tx = pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])
    tx["order_id"] = [f"o{i}" for i in range(len(tx))]
    return plan, tx


@pytest.fixture(scope="module")
def campaign() -> tuple[CampaignAnalysis, pd.DataFrame, pd.DataFrame]:
    plan, tx = _world(1500, {"eco": 25.0}, seed=3)
    definition = load_campaign(EXAMPLE).model_copy(update={"holdout_share": 0.2})
    assert definition.attribution_window_days == WINDOW
    return analyze_campaign("spring-eco", definition, plan, tx), plan, tx


@pytest.fixture(scope="module")
def report(
    campaign: tuple[CampaignAnalysis, pd.DataFrame, pd.DataFrame],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Path]:
    analysis, plan, tx = campaign
    return write_report(analysis, plan, tx, tmp_path_factory.mktemp("report"), window_days=WINDOW)


def _write(
    campaign: tuple[CampaignAnalysis, pd.DataFrame, pd.DataFrame],
    out_dir: Path,
    payload: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Path]:
    analysis, plan, tx = campaign
    return write_report(
        analysis if payload is None else payload,
        plan,
        tx,
        out_dir,
        window_days=options.pop("window_days", WINDOW),
        **options,
    )


def _payload(campaign: tuple[CampaignAnalysis, pd.DataFrame, pd.DataFrame]) -> dict[str, Any]:
    return copy.deepcopy(campaign[0].to_dict())


def _plan(groups: dict[str, str], send_at: dict[str, str] | None = None) -> pd.DataFrame:
    ids = list(groups)
    return pd.DataFrame(
        {
            "customer_id": ids,
            "group": [groups[c] for c in ids],
            "segment": "s",
            "channel": "email",
            "send_at": [pd.Timestamp((send_at or {}).get(c, "2026-03-02")) for c in ids],
            "expected_incremental_value": 0.0,
            "cost": 0.0,
        }
    )


def _tx(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "timestamp": pd.to_datetime([r[1] for r in rows], format="ISO8601"),
            "amount": [r[2] for r in rows],
        }
    )


def _series(lift: pd.DataFrame, group: str, column: str) -> list[float]:
    return lift.loc[lift["group"] == group, column].round(9).tolist()


# --------------------------------------------------------------------------- cumulative lift


def test_cumulative_lift_jumps_on_the_day_the_treated_buy_more() -> None:
    plan = _plan({"t1": "eco", "t2": "eco", "h1": HOLDOUT, "h2": HOLDOUT})
    # Both arms buy 5 each half a day after the send; the treated buy 10 more 2.5 days after it,
    # so from day 3 on ([send, send + 3 days) holds it) they are 10 per customer ahead.
    tx = _tx(
        [
            ("t1", "2026-03-02 12:00", 5.0),
            ("t2", "2026-03-02 12:00", 5.0),
            ("h1", "2026-03-02 12:00", 5.0),
            ("h2", "2026-03-02 12:00", 5.0),
            ("t1", "2026-03-04 12:00", 10.0),
            ("t2", "2026-03-04 12:00", 10.0),
        ]
    )

    lift = cumulative_lift(plan, tx, window_days=5)

    assert list(lift.columns) == list(CUMULATIVE_LIFT_COLUMNS)
    assert _series(lift, "eco", "day") == [0, 1, 2, 3, 4, 5]
    assert _series(lift, "eco", "treated_per_customer") == [0, 5, 5, 15, 15, 15]
    assert _series(lift, "eco", "holdout_per_customer") == [0, 5, 5, 5, 5, 5]
    assert _series(lift, "eco", "lift_per_customer") == [0, 0, 0, 10, 10, 10]
    assert _series(lift, "eco", "cumulative_incremental_revenue") == [0, 0, 0, 20, 20, 20]


def test_holdout_only_revenue_gives_a_negative_lift() -> None:
    plan = _plan({"t1": "eco", "h1": HOLDOUT, "h2": HOLDOUT})
    tx = _tx([("h1", "2026-03-03", 30.0)])

    lift = cumulative_lift(plan, tx, window_days=3)

    assert _series(lift, "eco", "lift_per_customer") == [0, 0, -15, -15]
    assert _series(lift, "eco", "cumulative_incremental_revenue") == [0, 0, -15, -15]


def test_cumulative_lift_ignores_revenue_outside_the_window() -> None:
    plan = _plan({"t1": "eco", "h1": HOLDOUT})
    tx = _tx(
        [
            ("t1", "2026-03-01 23:59", 100.0),  # before the send
            ("t1", "2026-03-09 00:00", 200.0),  # exactly send + 7 days: outside [send, +7 days)
            ("t1", "2026-03-20", 400.0),  # long after
            ("stranger", "2026-03-03", 800.0),  # not in the plan
            ("t1", "2026-03-08 23:59", 7.0),  # the last minute inside
        ]
    )

    lift = cumulative_lift(plan, tx, window_days=7)

    assert _series(lift, "eco", "lift_per_customer") == [0, 0, 0, 0, 0, 0, 0, 7]


def test_each_customer_is_followed_from_their_own_send_time() -> None:
    plan = _plan(
        {"t1": "eco", "h1": HOLDOUT},
        send_at={"t1": "2026-03-02", "h1": "2026-03-10"},
    )
    # Both buy one day after their own send; the holdout's purchase is before t1's window ends.
    tx = _tx([("t1", "2026-03-03 06:00", 10.0), ("h1", "2026-03-11 06:00", 10.0)])

    lift = cumulative_lift(plan, tx, window_days=3)

    assert _series(lift, "eco", "lift_per_customer") == [0, 0, 0, 0]
    assert _series(lift, "eco", "treated_per_customer") == [0, 0, 10, 10]


def test_aware_send_times_and_timestamps_are_read_as_utc() -> None:
    plan = _plan({"t1": "eco", "h1": HOLDOUT})
    plan["send_at"] = pd.to_datetime(["2026-03-02 11:00", "2026-03-02 11:00"]).tz_localize(
        "Europe/Berlin"
    )  # 10:00 UTC
    tx = _tx([("t1", "2026-03-02 10:30", 4.0), ("t1", "2026-03-02 09:30", 100.0)])

    lift = cumulative_lift(plan, tx, window_days=1)

    assert _series(lift, "eco", "lift_per_customer") == [0, 4]


def test_all_treated_together_weights_each_variant_by_its_customers() -> None:
    plan = _plan({"a1": "classic", "e1": "eco", "e2": "eco", "e3": "eco", "h1": HOLDOUT})
    tx = _tx([("a1", "2026-03-02 01:00", 40.0), ("e1", "2026-03-02 01:00", 8.0)])

    lift = cumulative_lift(plan, tx, window_days=1)

    assert list(dict.fromkeys(lift["group"])) == ["classic", "eco", POOLED]
    assert _series(lift, "classic", "lift_per_customer") == [0, 40]
    assert _series(lift, "eco", "cumulative_incremental_revenue") == [0, 8]
    assert _series(lift, POOLED, "treated_per_customer") == [0, 12]  # (40 + 8) / 4
    assert _series(lift, POOLED, "cumulative_incremental_revenue") == [0, 48]


def test_the_last_day_is_the_attribution_window_of_the_measurement() -> None:
    plan, tx = _world(400, {"eco": 10.0}, seed=5)
    units = attributed_metrics(plan, tx, window_days=WINDOW)
    means = units.groupby("group")["revenue"].mean()

    lift = cumulative_lift(plan, tx, WINDOW)
    last = lift[lift["day"] == WINDOW].set_index("group")

    for variant in ("classic", "eco"):
        assert last.loc[variant, "lift_per_customer"] == pytest.approx(
            means[variant] - means[HOLDOUT]
        )
    treated = units[units["group"] != HOLDOUT]
    assert last.loc[POOLED, "cumulative_incremental_revenue"] == pytest.approx(
        treated["revenue"].sum() - len(treated) * means[HOLDOUT]
    )


@settings(max_examples=30, deadline=None)
@given(
    offsets=st.lists(st.one_of(st.floats(-30, -0.001), st.floats(7, 60)), min_size=1, max_size=8),
    amounts=st.lists(st.floats(-500, 500), min_size=8, max_size=8),
)
def test_transactions_outside_the_window_never_change_the_lift(
    offsets: list[float], amounts: list[float]
) -> None:
    plan = _plan({"t1": "eco", "t2": "classic", "h1": HOLDOUT})
    base = _tx([("t1", "2026-03-03", 10.0), ("h1", "2026-03-05", 3.0)])
    customers = ["t1", "t2", "h1"]
    outside = pd.DataFrame(
        {
            "customer_id": [customers[i % 3] for i in range(len(offsets))],
            "timestamp": [pd.Timestamp("2026-03-02") + pd.Timedelta(days=d) for d in offsets],
            "amount": amounts[: len(offsets)],
        }
    )

    before = cumulative_lift(plan, base, window_days=7)
    after = cumulative_lift(plan, pd.concat([base, outside], ignore_index=True), window_days=7)

    pd.testing.assert_frame_equal(before, after)


@pytest.mark.parametrize(
    ("plan", "window_days", "message"),
    [
        (_plan({"t1": "eco", "t2": "eco"}), 7, "no 'holdout'"),
        (_plan({"h1": HOLDOUT}), 7, "no treated"),
        (pd.concat([_plan({"t1": "eco"}), _plan({"t1": HOLDOUT})]), 7, "repeated customer"),
        (_plan({"t1": "eco", "h1": HOLDOUT}), 0, "at least 1"),
        (_plan({"t1": "eco", "h1": HOLDOUT}).drop(columns="send_at"), 7, "'send_at'"),
    ],
    ids=["no-holdout", "no-treated", "duplicate-customer", "empty-window", "no-send-time"],
)
def test_cumulative_lift_says_what_is_wrong_with_its_inputs(
    plan: pd.DataFrame, window_days: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        cumulative_lift(plan, _tx([]), window_days)


# --------------------------------------------------------------------------- the report files


def test_report_writes_its_four_files_and_returns_their_paths(report: dict[str, Path]) -> None:
    assert {key: path.name for key, path in report.items()} == FILES
    folder = report["html"].parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES.values())  # no temporaries


@pytest.mark.parametrize("key", ["incremental_revenue_plot", "cumulative_lift_plot"])
def test_plots_are_valid_pngs(report: dict[str, Path], key: str) -> None:
    data = report[key].read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert data.rstrip().endswith(b"IEND\xaeB`\x82")
    assert len(data) > 10_000  # axes, labels and points, not an empty canvas


def test_report_names_the_winner_and_the_roi_interval(
    campaign: tuple[CampaignAnalysis, pd.DataFrame, pd.DataFrame], report: dict[str, Path]
) -> None:
    analysis = campaign[0]
    assert analysis.winner == "eco"
    low, high = analysis.roi["ci_low"], analysis.roi["ci_high"]
    assert low is not None and high is not None
    roi_interval = f"(95% CI {low:+,.1%} to {high:+,.1%})"
    markdown = report["markdown"].read_text(encoding="utf-8")
    page = report["html"].read_text(encoding="utf-8")

    for text in (markdown, page):
        assert "Winner: eco" in text
        assert roi_interval in text
    reason_in_markdown = analysis.reason.replace("<", "\\<")  # "p = ... < 0.05", not a tag
    assert f"**Winner: eco**. {reason_in_markdown}" in markdown
    assert f"<strong>Winner: eco</strong>. {html.escape(analysis.reason)}" in page
    assert "| **eco** (winner) |" in markdown


def test_markdown_states_the_headline_numbers(
    campaign: tuple[CampaignAnalysis, pd.DataFrame, pd.DataFrame], report: dict[str, Path]
) -> None:
    analysis = campaign[0]
    markdown = report["markdown"].read_text(encoding="utf-8")
    revenue = analysis.incremental_revenue

    assert markdown.startswith("# Campaign spring-eco: measured against the holdout\n")
    assert "- **Primary metric**: revenue" in markdown
    assert f"- **Cost**: {analysis.cost:,.2f}" in markdown
    assert (
        f"- **Incremental revenue**: {revenue['estimate']:,.2f} "
        f"(95% CI {revenue['ci_low']:,.2f} to {revenue['ci_high']:,.2f})"
    ) in markdown
    assert "- **Sample ratio check**: passed (p = " in markdown
    assert "- **CUPED**: used on pre\\_spend" in markdown
    assert f"- **Attribution window**: {WINDOW} days" in markdown


def test_markdown_has_a_row_per_variant_and_per_segment(
    campaign: tuple[CampaignAnalysis, pd.DataFrame, pd.DataFrame], report: dict[str, Path]
) -> None:
    analysis, plan, _ = campaign
    markdown = report["markdown"].read_text(encoding="utf-8")
    rows = {
        match.group(1): line
        for line in markdown.splitlines()
        if (match := re.match(r"\| (?:\*\*)?([^|*]+?)(?:\*\* \(winner\))? \|", line))
    }
    n_holdout = int((plan["group"] == HOLDOUT).sum())

    for variant in analysis.variants:
        name = variant["variant"]
        row = rows[name]
        assert f" {int((plan['group'] == name).sum()):,} | {n_holdout:,} |" in row
        assert f"{variant['incremental_revenue']['estimate']:,.2f} (95% CI" in row
        assert f"{variant['roi']['estimate']:+,.1%} (95% CI" in row
    assert POOLED in rows
    for segment in analysis.segments:
        row = rows[segment["segment"]]
        assert f" {segment['n_treated']:,} | {segment['n_holdout']:,} |" in row
        assert f"{segment['incremental_revenue']['ci_low']:,.2f} to" in row


def test_markdown_links_the_plots_beside_it(report: dict[str, Path]) -> None:
    markdown = report["markdown"].read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)

    assert links == ["incremental_revenue.png", "cumulative_lift.png"]
    assert all((report["markdown"].parent / link).is_file() for link in links)


def test_html_report_stands_alone_with_embedded_images(report: dict[str, Path]) -> None:
    page = report["html"].read_text(encoding="utf-8")

    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)  # nothing fetched from outside
    embedded = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert [base64.b64decode(data) for data in embedded] == [
        report["incremental_revenue_plot"].read_bytes(),
        report["cumulative_lift_plot"].read_bytes(),
    ]
    assert "<h2>Variants</h2>" in page and "<h2>Segments" in page
    assert '<tr class="winner">' in page


def test_text_from_the_campaign_is_escaped_in_html(
    campaign: tuple[CampaignAnalysis, pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    payload = _payload(campaign)
    payload["campaign_id"] = "<script>alert(1)</script>"
    payload["segments"][0]["segment"] = "<b>VIP & co</b> | top"
    payload["reason"] = "eco beats <i>classic</i> & more"

    paths = _write(campaign, tmp_path, payload, title='Spring "<eco>" & co')
    page = paths["html"].read_text(encoding="utf-8")
    markdown = paths["markdown"].read_text(encoding="utf-8")

    assert "<script>" not in page and "<b>VIP" not in page and "<i>classic" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;VIP &amp; co&lt;/b&gt; | top" in page
    assert "eco beats &lt;i&gt;classic&lt;/i&gt; &amp; more" in page
    assert "<title>Spring &quot;&lt;eco&gt;&quot; &amp; co</title>" in page
    # In markdown the same text shows as written and cannot break a table row.
    assert "| \\<b\\>VIP & co\\</b\\> \\| top |" in markdown
    assert markdown.startswith('# Spring "\\<eco\\>" & co\n')


def test_the_json_payload_gives_the_same_report(
    campaign: tuple[CampaignAnalysis, pd.DataFrame, pd.DataFrame],
    report: dict[str, Path],
    tmp_path: Path,
) -> None:
    paths = _write(campaign, tmp_path, _payload(campaign))

    for key, path in paths.items():
        assert path.read_bytes() == report[key].read_bytes(), key


def test_a_campaign_without_winner_and_with_a_sample_ratio_mismatch_says_so(
    campaign: tuple[CampaignAnalysis, pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    payload = _payload(campaign)
    payload.update(winner=None, reason="sample ratio mismatch (p = 1e-09 < 0.001)")
    payload["srm"]["mismatch"] = True
    payload["cuped"] = None

    paths = _write(campaign, tmp_path, payload)
    markdown = paths["markdown"].read_text(encoding="utf-8")
    page = paths["html"].read_text(encoding="utf-8")

    assert "**No winner**. sample ratio mismatch" in markdown
    assert "- **Sample ratio check**: mismatch (p = " in markdown
    assert "> **Warning**: Sample ratio mismatch" in markdown
    assert "- **CUPED**: not used" in markdown
    assert "(winner)" not in markdown
    assert '<div class="verdict bad">' in page


def test_roi_without_cost_is_shown_as_not_available(
    campaign: tuple[CampaignAnalysis, pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    payload = _payload(campaign)
    payload["cost"] = 0.0
    payload["roi"] = {"estimate": None, "ci_low": None, "ci_high": None}

    markdown = _write(campaign, tmp_path, payload)["markdown"].read_text(encoding="utf-8")

    assert "- **ROI**: n/a (no cost)" in markdown


def test_a_campaign_without_measurable_segments_still_reports(
    campaign: tuple[CampaignAnalysis, pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    payload = _payload(campaign)
    payload["segments"] = []

    paths = _write(campaign, tmp_path, payload)

    assert "No segment had enough" in paths["markdown"].read_text(encoding="utf-8")
    assert paths["incremental_revenue_plot"].read_bytes().startswith(PNG_MAGIC)


def test_the_same_inputs_give_the_same_bytes(
    campaign: tuple[CampaignAnalysis, pd.DataFrame, pd.DataFrame],
    report: dict[str, Path],
    tmp_path: Path,
) -> None:
    paths = _write(campaign, tmp_path)

    for key, path in paths.items():
        assert path.read_bytes() == report[key].read_bytes(), key


def test_a_report_replaces_an_earlier_one_in_the_same_folder(
    campaign: tuple[CampaignAnalysis, pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    _write(campaign, tmp_path, title="First")
    paths = _write(campaign, tmp_path, title="Second")

    assert paths["markdown"].read_text(encoding="utf-8").startswith("# Second\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES.values())


def test_bad_input_writes_nothing(
    campaign: tuple[CampaignAnalysis, pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    analysis, plan, tx = campaign
    out = tmp_path / "report"

    with pytest.raises(ValueError, match="no 'holdout'"):
        write_report(analysis, plan[plan["group"] != HOLDOUT], tx, out, window_days=WINDOW)

    assert not out.exists()


def test_importing_the_report_loads_no_plotting_library() -> None:
    code = "import sys, clv.campaigns.report; print('matplotlib' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "False"
