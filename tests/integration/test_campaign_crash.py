"""A sender killed with SIGKILL mid-send: the next run finishes, every message arrives once.

The sink de-duplicates on ``Message-ID`` (the idempotency key), as a provider honouring the key
does: a message handed over just before the kill, but not yet marked sent, is sent again by the
next run with the same key and dropped there. The test checks both layers: no key is missing at
the sink, and the only repeats are messages of the batch in flight when the sender died.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pandas as pd
import pytest

from clv.campaigns.channels import EmailProvider
from clv.campaigns.sending import send_campaign
from clv.store import Store
from tests.integration.test_campaign_channels import EphemeralPortController

MESSAGES = 40
BATCH = 5


class _SlowSink:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.05)  # a slow relay: the kill lands mid-batch
        with self.lock:
            self.ids.append(str(message_from_bytes(envelope.content)["Message-ID"]))
        return "250 OK"


@pytest.fixture
def sink() -> Iterator[tuple[_SlowSink, int]]:
    handler = _SlowSink()
    controller = EphemeralPortController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield handler, int(controller.port)
    finally:
        controller.stop()


def _campaign(url: str) -> str:
    store = Store(url)
    store.migrate()
    ids = [f"c{i:03d}" for i in range(MESSAGES)]
    plan = pd.DataFrame({"customer_id": ids, "group_name": "v", "channel": "email", "cost": 0.01})
    messages = pd.DataFrame(
        {
            "customer_id": ids,
            "channel": "email",
            "recipient": [f"{c}@example.org" for c in ids],
            "subject": "Hello",
            "body": "Hi",
        }
    )
    info = store.create_campaign(
        "crash-0001", "crash", "c" * 64, {"name": "crash"}, plan, budget=1.0, holdout_share=0.0,
        segment_version=None, scores_as_of=None, summary={}, messages=messages,
    )  # fmt: skip
    store.close()
    return info.campaign_id


SENDER = textwrap.dedent(
    """
    import sys
    from clv.campaigns.channels import EmailProvider
    from clv.campaigns.sending import send_campaign
    from clv.store import Store

    url, campaign, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with EmailProvider("127.0.0.1", port, sender="shop@example.org") as provider:
        send_campaign(Store(url), campaign, {"email": provider}, batch_size=5, lease_seconds=1.0)
    """
)


def test_a_sender_killed_mid_send_is_finished_by_the_next_run_exactly_once(
    sink: tuple[_SlowSink, int], tmp_path: Path
) -> None:
    handler, port = sink
    url = f"sqlite:///{tmp_path / 'clv.db'}"
    campaign = _campaign(url)
    sender = subprocess.Popen(
        [sys.executable, "-c", SENDER, url, campaign, str(port)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while len(handler.ids) < 12 and time.monotonic() < deadline and sender.poll() is None:
        time.sleep(0.01)
    os.killpg(sender.pid, signal.SIGKILL)
    sender.wait(timeout=30)
    delivered_before = len(handler.ids)
    assert 0 < delivered_before < MESSAGES, "the kill must land mid-send"

    time.sleep(1.1)  # the dead sender's lease expires
    store = Store(url)
    with EmailProvider("127.0.0.1", port, sender="shop@example.org") as provider:
        send_campaign(store, campaign, {"email": provider}, batch_size=BATCH, lease_seconds=1.0)

    unique = set(handler.ids)
    assert len(unique) == MESSAGES  # every message reached the sink
    assert len(handler.ids) - len(unique) <= BATCH  # repeats only from the batch in flight
    assert store.outbox_counts(campaign)["sent"] == MESSAGES
    assert store.campaign(campaign).status == "sent"
    store.close()
