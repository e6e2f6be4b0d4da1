"""The campaign tables on PostgreSQL: the same checks as on SQLite (test_store_campaigns.py).

Every check of the unit module runs here with ``backend`` = ``postgresql``: each test gets a
throwaway database from the ``postgres_database`` fixture (PostgreSQL at 127.0.0.1:5432; under
``CI=true`` a missing server fails the tests instead of skipping them). Plans and outboxes are
bulk-loaded with COPY here, and claims lock rows with ``FOR UPDATE SKIP LOCKED``; the
``test_postgresql_*`` checks below are PostgreSQL's own.
"""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from clv.store import Store
from tests.unit.test_store_campaigns import *  # noqa: F403  (the shared checks and their fixtures)
from tests.unit.test_store_campaigns import _sending


@pytest.fixture(params=["postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Run the shared checks on PostgreSQL."""
    return str(request.param)


def test_postgresql_a_claim_skips_rows_another_transaction_holds(store: Store) -> None:
    """Rows locked by a claim still in progress are skipped at once, never waited for."""
    campaign = _sending(store)
    held = sa.text(
        "SELECT idempotency_key FROM outbox WHERE campaign_id = :c AND status = 'pending' "
        "ORDER BY idempotency_key LIMIT 3 FOR UPDATE"
    )
    result: list[set[str]] = []
    with store.engine.connect() as other, other.begin():
        locked = set(other.execute(held, {"c": campaign}).scalars())
        claimer = threading.Thread(
            target=lambda: result.append(
                set(store.claim_messages(campaign, 100)["idempotency_key"])
            )
        )
        started = time.monotonic()
        claimer.start()
        claimer.join(timeout=30)
        waited = time.monotonic() - started
        assert not claimer.is_alive(), "the claim waited for rows another transaction holds"
    assert waited < 10
    assert len(locked) == 3 and len(result[0]) == 5 and not locked & result[0]
    assert set(store.claim_messages(campaign, 100)["idempotency_key"]) == locked


def test_postgresql_the_planned_tables_are_analysed_and_the_claim_uses_the_index(
    store: Store,
) -> None:
    campaign = _sending(store)
    with store.engine.connect() as conn:
        analysed = conn.execute(
            sa.text(
                "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL "
                "AND relname IN ('outbox', 'campaign_plan')"
            )
        ).scalars()
        assert set(analysed) == {"outbox", "campaign_plan"}
        conn.exec_driver_sql("SET enable_seqscan = off")  # tiny tables: show the plan at scale
        plan = " ".join(
            str(row[0])
            for row in conn.execute(
                sa.text(
                    "EXPLAIN SELECT idempotency_key FROM outbox WHERE campaign_id = :c AND "
                    "(status = 'pending' OR (status = 'sending' AND claimed_at < now())) "
                    "LIMIT 10 FOR UPDATE SKIP LOCKED"
                ),
                {"c": campaign},
            )
        )
    assert "ix_outbox_campaign_id_status" in plan
