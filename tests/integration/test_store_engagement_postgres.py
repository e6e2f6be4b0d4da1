"""Campaign engagement events on PostgreSQL: the checks of test_campaign_engagement, again.

Every store check of the unit module (its ``__all__``) runs here with ``backend`` =
``postgresql``: each test gets a throwaway database from the ``postgres_database`` fixture
(PostgreSQL at 127.0.0.1:5432; under ``CI=true`` a missing server fails the tests instead of
skipping them). Events are bulk-loaded with COPY here, under the events table's write lock; the
``test_postgresql_*`` check below is PostgreSQL's own.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from clv.store import Store
from tests.unit.test_campaign_engagement import *  # noqa: F403  (the shared checks and their fixtures)
from tests.unit.test_campaign_engagement import _events
from tests.unit.test_store_campaigns import _campaign


@pytest.fixture(params=["postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Run the shared checks on PostgreSQL."""
    return str(request.param)


def test_postgresql_two_ingesters_at_once_record_each_event_once(
    store_url: str, tmp_path: Path
) -> None:
    """The events table's lock serialises ingesters: no primary-key clash, an exact count."""
    with Store(store_url) as setup:
        _campaign(setup)
    events = _events(tmp_path)
    start = threading.Barrier(2)
    recorded: list[int] = []
    errors: list[BaseException] = []

    def ingester() -> None:
        try:
            with Store(store_url) as own:
                start.wait(timeout=30)
                recorded.append(own.record_events(events))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=ingester) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == [] and sorted(recorded) == [0, len(events)]
    with Store(store_url) as check:
        assert len(check.campaign_events("winback-h1")) == len(events)
