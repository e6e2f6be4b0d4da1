"""``clv campaign events``: ingest a provider's engagement events and show the rates per variant.

The events (a CSV, Parquet or JSON-lines export, or a JSON-lines file of webhook callbacks that
carry the messages' idempotency keys) are validated (:mod:`clv.campaigns.engagement`) and stored
once per event id (:meth:`clv.store.Store.record_events`): ingesting a file again records nothing
new. Then each campaign the events belong to gets a table of its engagement per variant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from clv.cli_campaign import _cli, _fail, _refused, campaign_app

if TYPE_CHECKING:
    import pandas as pd


def _percent(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.1%}"


def _variant_table(campaign_id: str, summary: dict[str, Any]) -> Table:
    """Per variant: messages sent, then unique customers with each event (and their rate)."""
    table = Table(title=f"campaign {campaign_id}: engagement per variant (unique customers)")
    columns = ("variant", "sent", "opened", "clicked", "click-to-open", "converted", "value",
               "bounced", "unsubscribed")  # fmt: skip
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for variant, m in [*summary["variants"].items(), ("all", summary["total"])]:
        unique = m["unique_customers"]

        def cell(kind: str, rate: str, m: dict[str, Any] = m, unique: Any = unique) -> str:
            return f"{unique[kind]:,} ({_percent(m[rate])})"

        table.add_row(
            variant,
            f"{m['sent']:,}",
            cell("open", "open_rate"),
            cell("click", "click_rate"),
            _percent(m["click_to_open"]),
            cell("conversion", "conversion_rate"),
            f"{m['conversion_value']:,.2f}",
            cell("bounce", "bounce_rate"),
            cell("unsubscribe", "unsubscribe_rate"),
        )
    return table


@campaign_app.command("events")
def events_command(
    file: Annotated[
        str,
        typer.Argument(
            help="Events: CSV, Parquet or JSON lines (customer_id, channel, event, timestamp; "
            "campaign_id, event_id, value optional).",
            show_default=False,
        ),
    ],
    campaign: Annotated[
        str | None,
        typer.Option(help="The campaign of events without a campaign_id (checked for the rest)."),
    ] = None,
    callbacks: Annotated[
        bool,
        typer.Option(
            "--callbacks",
            help="FILE is JSON lines of provider callbacks: idempotency_key, event, timestamp.",
        ),
    ] = False,
) -> None:
    """Ingest opens, clicks, conversions, ... (once each) and show the rates per variant."""
    from clv.campaigns.engagement import engagement_summary, read_callbacks, read_events
    from clv.campaigns.errors import CampaignError
    from clv.store import Store, StoreError

    store = Store()
    try:
        if callbacks:
            events = read_callbacks(store, file)
            if campaign is not None:
                _only(events, campaign)
        else:
            events = read_events(file, campaign_id=campaign)
        new = store.record_events(events)
        campaigns = sorted(set(events["campaign_id"]))
        summaries = {
            c: engagement_summary(
                store.campaign_events(c), store.campaign_plan(c), store.outbox(c, status="sent")
            )
            for c in campaigns
        }
    except CampaignError as err:
        raise _refused(str(err)) from None
    except StoreError as err:
        raise _fail(str(err)) from None
    console = _cli().console
    console.print(f"{new:,} new events, {len(events) - new:,} already recorded")
    for campaign_id, summary in summaries.items():
        console.print(_variant_table(campaign_id, summary))
        anomalies = {k: n for k, n in summary["anomalies"].items() if n}
        if anomalies:
            shown = ", ".join(f"{k.replace('_', ' ')}: {n:,}" for k, n in anomalies.items())
            console.print(f"anomalies (left out of the rates) — {shown}", style="yellow")


def _only(events: pd.DataFrame, campaign: str) -> None:
    """Refuse callbacks of another campaign than the one given."""
    from clv.campaigns.errors import CampaignError

    other = sorted(set(events["campaign_id"]) - {campaign})
    if other:
        raise CampaignError(
            f"the callbacks include messages of campaign(s) {', '.join(map(repr, other))}, not "
            f"only of {campaign!r} (--campaign); drop --campaign to ingest them all"
        )
