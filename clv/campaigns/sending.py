"""Send a planned campaign exactly once: claim from the outbox, hand to providers, record.

Exactly once is two mechanisms together. In the database, a message is *claimed* before it is
handed to a provider (``pending → sending`` in one transaction; a claim expires after a lease,
so a sender killed mid-batch leaves its messages claimable again) and *marked* after
(``sent`` / ``failed``, or released to ``pending`` on a transient error); a message marked sent is
never claimed again, so a rerun sends nothing new. Across the gap between "the provider accepted
it" and "we recorded that" — a crash there is the one way a message could go twice — the
message carries its idempotency key to the provider (email ``Message-ID``, webhook
``Idempotency-Key``), and a provider or sink that de-duplicates on it delivers it once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from clv.campaigns.channels import Message, Provider
from clv.campaigns.errors import CampaignError

if TYPE_CHECKING:
    import pandas as pd

    from clv.store import Store

__all__ = ["SendReport", "preview_messages", "send_campaign"]

logger = logging.getLogger(__name__)


@dataclass
class SendReport:
    """What one ``send_campaign`` run did."""

    campaign_id: str
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    by_channel: dict[str, dict[str, int]] = field(default_factory=dict)
    stopped_because: str | None = None
    outbox: dict[str, int] = field(default_factory=dict)

    def count(self, channel: str, outcome: str) -> None:
        """Count one message's outcome on a channel."""
        row = self.by_channel.setdefault(channel, {"sent": 0, "failed": 0, "deferred": 0})
        row[outcome] += 1


def _messages(rows: pd.DataFrame) -> list[Message]:
    return [
        Message(
            idempotency_key=str(r.idempotency_key),
            channel=str(r.channel),
            recipient=str(r.recipient),
            subject=None if r.subject is None or r.subject != r.subject else str(r.subject),
            body=str(r.body),
            metadata={
                "campaign_id": str(r.campaign_id),
                "customer_id": str(r.customer_id),
                "variant": str(r.variant),
            },
        )
        for r in rows.itertuples(index=False)
    ]


def send_campaign(
    store: Store,
    campaign_id: str,
    providers: Mapping[str, Provider],
    *,
    limit: int | None = None,
    batch_size: int = 200,
    lease_seconds: float = 300.0,
    channel_kinds: Mapping[str, str] | None = None,
) -> SendReport:
    """Send a campaign's pending messages through its channels' providers.

    Parameters
    ----------
    store : Store
        The platform database holding the campaign's outbox.
    campaign_id : str
        A ``planned`` or ``sending`` campaign.
    providers : mapping
        Channel kind (``email``, ``sms``, ``in_app``) → provider.
    limit : int, optional
        Send at most this many messages in this run (a canary); the rest stay pending.
    batch_size : int
        Messages claimed and handed to a provider at a time.
    lease_seconds : float
        How long a claim holds before another run may take the message again.
    channel_kinds : mapping, optional
        Channel name → kind; a channel name is its own kind by default.

    Returns
    -------
    SendReport
        Counts of this run and the outbox's counts after it. A run stops early (and says why)
        when a whole batch failed transiently: the provider is down, the messages wait.
    """
    if batch_size < 1:
        raise CampaignError(f"batch_size must be at least 1 (got {batch_size})")
    if limit is not None and limit < 0:
        raise CampaignError(f"--limit must not be negative (got {limit})")
    info = store.campaign(campaign_id)
    if info.status == "cancelled":
        raise CampaignError(f"campaign {campaign_id} is cancelled: nothing is sent")
    if info.status == "planned":
        store.set_campaign_status(campaign_id, "sending")
    report = SendReport(campaign_id)
    kinds = dict(channel_kinds or {})
    remaining = limit
    while remaining is None or remaining > 0:
        size = batch_size if remaining is None else min(batch_size, remaining)
        rows = store.claim_messages(campaign_id, size, lease_seconds=lease_seconds)
        if rows.empty:
            break
        progressed = False
        for channel, part in rows.groupby("channel", sort=True):
            kind = kinds.get(str(channel), str(channel))
            provider = providers.get(kind)
            messages = _messages(part)
            if provider is None:
                store.mark_outcomes(
                    [
                        (m.idempotency_key, "released", f"no provider for channel {kind}", 0)
                        for m in messages
                    ]
                )
                for _ in messages:
                    report.deferred += 1
                    report.count(str(channel), "deferred")
                report.stopped_because = (
                    f"no provider configured for channel {channel!r} ({kind}); its messages wait"
                )
                continue
            results = provider.send_batch(messages)
            previous = dict(zip(part["idempotency_key"], part["attempts"], strict=True))
            outcomes: list[tuple[str, str, str | None, int]] = []
            for result in results:
                attempts = int(previous.get(result.idempotency_key, 0)) + result.attempts
                if result.status == "sent":
                    outcome = "sent"
                    report.sent += 1
                    progressed = True
                elif result.transient:
                    outcome = "released"
                    report.deferred += 1
                else:
                    outcome = "failed"
                    report.failed += 1
                    progressed = True
                report.count(str(channel), "deferred" if outcome == "released" else outcome)
                outcomes.append((result.idempotency_key, outcome, result.response, attempts))
            store.mark_outcomes(outcomes)  # one commit per batch and channel
        if remaining is not None:
            remaining -= len(rows)
        if not progressed:
            report.stopped_because = report.stopped_because or (
                "every message of the last batch failed transiently (is the provider up?); "
                "they are pending again — run `clv campaign send` again later"
            )
            break
    report.outbox = store.outbox_counts(campaign_id)
    finished = not report.outbox.get("pending") and not report.outbox.get("sending")
    if finished and store.campaign(campaign_id).status == "sending":  # not if cancelled meanwhile
        store.set_campaign_status(campaign_id, "sent")
    logger.info(
        "campaign %s: %d sent, %d failed, %d deferred",
        campaign_id,
        report.sent,
        report.failed,
        report.deferred,
    )
    return report


def preview_messages(store: Store, campaign_id: str, out: Path, *, limit: int | None = None) -> int:
    """Write the pending messages as JSON lines to ``out`` without sending (``--dry-run``).

    Parameters
    ----------
    store : Store
        The platform database.
    campaign_id : str
        The campaign.
    out : Path
        The preview file (JSON lines: key, channel, recipient, subject, body).
    limit : int, optional
        At most this many messages.

    Returns
    -------
    int
        Messages written.
    """
    pending = store.outbox(campaign_id, status="pending")
    if limit is not None:
        pending = pending.head(limit)
    columns = ["idempotency_key", "channel", "customer_id", "recipient", "subject", "body"]
    from clv.data.io import write_atomic

    def writer(path: Path) -> None:
        with path.open("w", encoding="utf-8") as handle:
            for row in pending[columns].itertuples(index=False):
                handle.write(json.dumps(dict(zip(columns, row, strict=True)), default=str) + "\n")

    write_atomic(out, writer)
    return len(pending)
