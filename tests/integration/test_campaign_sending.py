"""Sending exactly once: a real SMTP sink, the outbox in the platform database, reruns, crashes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pandas as pd
import pytest

from clv.campaigns.channels import EmailProvider
from clv.campaigns.sending import preview_messages, send_campaign
from clv.store import Store
from tests.integration.test_campaign_channels import EphemeralPortController


class _Sink:
    """Collects every message the SMTP server accepts."""

    def __init__(self) -> None:
        self.messages: list[dict[str, str]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        parsed = message_from_bytes(envelope.content)
        with self.lock:
            self.messages.append(
                {"to": envelope.rcpt_tos[0], "message_id": str(parsed["Message-ID"])}
            )
        return "250 OK"


@pytest.fixture
def sink() -> Iterator[tuple[_Sink, int]]:
    handler = _Sink()
    controller = EphemeralPortController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield handler, int(controller.port)
    finally:
        controller.stop()


def _campaign(store: Store, n: int = 30) -> str:
    ids = [f"c{i:03d}" for i in range(n)]
    groups = ["holdout" if i % 10 == 0 else "classic" for i in range(n)]
    plan = pd.DataFrame(
        {
            "customer_id": ids,
            "group_name": groups,
            "channel": "email",
            "segment": "s",
            "cost": [0.0 if g == "holdout" else 0.01 for g in groups],
        }
    )
    contacted = plan[plan["group_name"] != "holdout"]
    messages = pd.DataFrame(
        {
            "customer_id": contacted["customer_id"],
            "channel": "email",
            "recipient": [f"{c}@example.org" for c in contacted["customer_id"]],
            "subject": "Hello",
            "body": "Hi there",
        }
    )
    info = store.create_campaign(
        "demo-0001",
        "demo",
        "f" * 64,
        {"name": "demo"},
        plan,
        budget=10.0,
        holdout_share=0.1,
        segment_version=None,
        scores_as_of=None,
        summary={},
        messages=messages,
    )
    return info.campaign_id


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    database = Store(f"sqlite:///{tmp_path / 'clv.db'}")
    database.migrate()
    yield database
    database.close()


def test_every_message_arrives_once_and_a_rerun_sends_nothing(store: Store, sink) -> None:  # type: ignore[no-untyped-def]
    handler, port = sink
    campaign = _campaign(store)

    with EmailProvider("127.0.0.1", port, sender="shop@example.org") as provider:
        first = send_campaign(store, campaign, {"email": provider}, batch_size=7)
        again = send_campaign(store, campaign, {"email": provider})

    assert first.sent == 27 and again.sent == 0
    assert len(handler.messages) == 27
    assert len({m["message_id"] for m in handler.messages}) == 27
    assert store.campaign(campaign).status == "sent"
    assert store.outbox_counts(campaign)["sent"] == 27


def test_a_canary_sends_only_its_limit(store: Store, sink) -> None:  # type: ignore[no-untyped-def]
    handler, port = sink
    campaign = _campaign(store)

    with EmailProvider("127.0.0.1", port, sender="shop@example.org") as provider:
        report = send_campaign(store, campaign, {"email": provider}, limit=5)

    assert report.sent == 5 and len(handler.messages) == 5
    assert store.outbox_counts(campaign)["pending"] == 22
    assert store.campaign(campaign).status == "sending"


def test_a_down_server_leaves_every_message_pending_and_says_so(store: Store) -> None:
    campaign = _campaign(store)

    with EmailProvider(
        "127.0.0.1", 9, sender="shop@example.org", max_attempts=2, sleep=lambda s: None
    ) as provider:
        report = send_campaign(store, campaign, {"email": provider})

    assert report.sent == 0 and report.stopped_because is not None
    assert store.outbox_counts(campaign)["pending"] == 27
    assert store.campaign(campaign).status == "sending"


def test_a_crashed_sender_s_claims_are_sent_after_the_lease_and_not_twice(
    store: Store, sink
) -> None:  # type: ignore[no-untyped-def]
    handler, port = sink
    campaign = _campaign(store)
    store.set_campaign_status(campaign, "sending")
    # A sender claims ten messages and dies before handing them over.
    store.claim_messages(campaign, 10, lease_seconds=0.001)

    with EmailProvider("127.0.0.1", port, sender="shop@example.org") as provider:
        report = send_campaign(store, campaign, {"email": provider}, lease_seconds=0.001)

    assert report.sent == 27
    assert len(handler.messages) == len({m["message_id"] for m in handler.messages}) == 27


def test_a_dry_run_writes_the_messages_and_sends_nothing(store: Store, tmp_path: Path) -> None:
    campaign = _campaign(store)

    written = preview_messages(store, campaign, tmp_path / "preview.jsonl", limit=4)

    assert written == 4
    assert len((tmp_path / "preview.jsonl").read_text().splitlines()) == 4
    assert store.outbox_counts(campaign)["pending"] == 27
