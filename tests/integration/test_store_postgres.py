"""The platform database on PostgreSQL: the same checks as on SQLite (tests/unit/test_store.py).

Every check of the unit module runs here with ``backend`` = ``postgresql``: each test gets a
throwaway database from the ``postgres_database`` fixture (PostgreSQL at 127.0.0.1:5432; under
``CI=true`` a missing server fails the tests instead of skipping them). Bulk inserts take the
COPY path here, so atomicity and round trips are checked for it too.
"""

from __future__ import annotations

import pytest

from tests.unit.test_store import *  # noqa: F403  (the shared checks and their fixtures)


@pytest.fixture(params=["postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Run the shared checks on PostgreSQL."""
    return str(request.param)
