"""The platform database (clv.store): versions, approval, history, scores and migrations.

The checks take the ``store_url`` fixture and run on SQLite here (a file under ``tmp_path``);
``tests/integration/test_store_postgres.py`` imports them and runs the same checks on
PostgreSQL by overriding the ``backend`` fixture. Only ``test_sqlite_*`` tests are SQLite's own.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import clv.store
from clv.store import (
    VERSION_TABLE,
    Store,
    StoreError,
    alembic_config,
    current_revision,
    head_revision,
    metadata,
    segment_of_query,
)

__all__ = [
    "store",
    "store_url",
    "test_a_crash_during_approval_keeps_the_previous_version_active",
    "test_a_customer_in_two_score_parts_stores_nothing",
    "test_a_database_error_mid_insert_stores_nothing",
    "test_a_failure_after_the_segments_insert_stores_nothing_and_keeps_the_active_version",
    "test_a_fresh_database_is_upgraded_to_head_and_matches_the_tables",
    "test_a_new_version_is_pending_and_not_served",
    "test_a_rejected_version_is_kept_but_never_served",
    "test_activation_times_only_move_forward",
    "test_an_unknown_schema_revision_is_refused_with_advice",
    "test_an_unknown_version_is_refused_naming_the_versions_there_are",
    "test_approval_activates_and_supersedes_the_previous_version",
    "test_history_of_a_customer_over_three_activations",
    "test_latest_scores_come_back_as_written",
    "test_migrations_run_from_a_url_downgrade_and_render_offline",
    "test_only_pending_versions_can_be_decided",
    "test_reopening_an_existing_database_runs_no_migration",
    "test_repeated_customers_store_nothing_and_keep_the_active_version",
    "test_score_parts_of_another_run_are_refused_naming_the_part",
    "test_scores_stored_in_parts_are_the_run_stored_whole",
    "test_segment_of_is_one_query_on_the_customer_index",
    "test_segments_rules_and_assignment_features_come_back_as_stored",
    "test_the_same_content_hash_twice_is_one_version",
    "test_the_same_scores_twice_are_one_run",
    "test_times_are_stored_as_utc_and_returned_aware",
    "test_two_stores_starting_at_once_find_one_schema_at_head",
]

REPO = Path(__file__).resolve().parents[2]
JAN, FEB, MAR = (datetime(2024, month, 1, tzinfo=UTC) for month in (1, 2, 3))
TABLES = {
    "segment_versions",
    "segments",
    "segment_assignments",
    "rule_results",
    "scoring_runs",
    "scores",
}


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """The database the shared checks run on (the PostgreSQL tests override it)."""
    return str(request.param)


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty database on ``backend``."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'clv.db'}"
    name = request.getfixturevalue("postgres_database")
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A store on a fresh database."""
    with Store(store_url) as opened:
        yield opened


def _segments(*names: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "segment_id": [n.lower() for n in names],
            "name": list(names),
            "description": [f"{n} customers" for n in names],
            "profile": [{"customers": 1, "share": 0.5, "mean_clv": float("nan")} for _ in names],
            "new": [False] * len(names),
            "matched_from": [None] * len(names),
        }
    )


def _create(store: Store, content_hash: str, segment_of: dict[str, str]) -> clv.store.VersionInfo:
    """A version assigning each customer to the named segment (names are capitalised ids)."""
    names = sorted(set(segment_of.values()))
    return store.create_version(
        method="rfm",
        segments=_segments(*names),
        assignments=pd.DataFrame(
            {
                "customer_id": list(segment_of),
                "segment_id": [segment_of[c].lower() for c in segment_of],
            }
        ),
        rules=[
            {
                "segment": names[0],
                "rule": "min_size",
                "passed": True,
                "value": 1.0,
                "threshold": 1.0,
                "message": "big enough",
            }
        ],
        config={"method": "rfm"},
        model=None,
        scores_as_of=pd.Timestamp("2023-12-31 23:59:59"),
        source="scores.parquet",
        content_hash=content_hash,
    )


def _scores(n: int = 3, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "predicted_clv": [10.0 * i + shift for i in range(n)],
            "predicted_clv_lower": [5.0 * i for i in range(n)],
            "predicted_clv_upper": [20.0 * i for i in range(n)],
            "churn_probability": [0.1] * (n - 1) + [float("nan")],
            "as_of": pd.Timestamp("2024-06-30 23:59:59"),
            "horizon_days": 90,
            "days_since_last_purchase": [3.0] * n,
            "purchase_days": [2.0] * n,
            "avg_purchase_day_value": [25.0] * n,
            "model_version": "7",
        }
    )


def _counts(store: Store) -> dict[str, int]:
    with store._engine.connect() as conn:
        return {
            t: int(conn.execute(sa.select(sa.func.count()).select_from(sa.table(t))).scalar_one())
            for t in sorted(TABLES)
        }


# --- versions and approval ----------------------------------------------------------------------


def test_a_new_version_is_pending_and_not_served(store: Store) -> None:
    info = _create(store, "h1", {"c1": "Loyal", "c2": "Lapsed"})

    assert (info.version, info.status, info.n_customers, info.n_segments) == (1, "pending", 2, 2)
    assert info.rules_passed and info.activated_at is None and info.content_hash == "h1"
    assert store.active() is None
    assert store.segment_of("c1") is None
    assert store.history("c1").empty
    assert [v.version for v in store.versions()] == [1]


def test_approval_activates_and_supersedes_the_previous_version(store: Store) -> None:
    _create(store, "h1", {"c1": "Loyal", "c2": "Lapsed"})
    store.approve(1, by="ana", reason="first segmentation", at=JAN)
    _create(store, "h2", {"c1": "Champions", "c2": "Lapsed"})

    second = store.approve(2, by="ben", reason="looks right", at=FEB)

    first = store.version(1)
    assert (second.status, second.activated_at, second.decided_by) == ("active", FEB, "ben")
    assert second.reason == "looks right" and not second.automatic
    assert (first.status, first.activated_at, first.deactivated_at) == ("superseded", JAN, FEB)
    assert store.active() == second
    before = store.segment_of("c1", on=FEB - timedelta(seconds=1))
    after = store.segment_of("c1", on=FEB)
    assert before is not None and after is not None
    assert (before["version"], before["name"], before["valid_to"]) == (1, "Loyal", FEB)
    assert (after["version"], after["segment_id"], after["valid_from"]) == (2, "champions", FEB)
    assert after["valid_to"] is None
    assert store.segment_of("c1", on=JAN - timedelta(microseconds=1)) is None
    now = store.segment_of("c1")
    assert now is not None and now["version"] == 2


def test_a_rejected_version_is_kept_but_never_served(store: Store) -> None:
    _create(store, "h1", {"c1": "Loyal"})
    store.approve(1, by="ana", reason="ok", at=JAN)
    _create(store, "h2", {"c1": "Lapsed"})

    rejected = store.reject(2, by="ben", reason="segments too small")

    assert (rejected.status, rejected.decided_by, rejected.reason) == (
        "rejected",
        "ben",
        "segments too small",
    )
    assert rejected.activated_at is None and rejected.decided_at is not None
    active = store.active()
    assert active is not None and active.version == 1
    assert list(store.history("c1")["version"]) == [1]
    assert len(store.assignments(2)) == 1  # kept for the record


@pytest.mark.parametrize("status", ["active", "rejected", "superseded"])
def test_only_pending_versions_can_be_decided(store: Store, status: str) -> None:
    _create(store, "h1", {"c1": "Loyal"})
    if status == "rejected":
        store.reject(1, by="ana", reason="no")
    else:
        store.approve(1, by="ana", reason="yes", at=JAN)
    if status == "superseded":
        _create(store, "h2", {"c1": "Lapsed"})
        store.approve(2, by="ana", reason="yes", at=FEB)
    before = store.version(1)

    refused = f"version 1 is {status}; only a pending version can be"
    with pytest.raises(StoreError, match=f"{refused} approved"):
        store.approve(1, by="ben", reason="again")
    with pytest.raises(StoreError, match=f"{refused} rejected"):
        store.reject(1, by="ben", reason="again")
    assert store.version(1) == before


def test_an_unknown_version_is_refused_naming_the_versions_there_are(store: Store) -> None:
    with pytest.raises(StoreError, match="no segment version 7: there are no segment"):
        store.version(7)
    for content in ("h1", "h2", "h3"):
        _create(store, content, {"c1": "Loyal"})

    with pytest.raises(StoreError, match="no segment version 7: the versions are 1–3"):
        store.approve(7, by="ana", reason="ok")
    with pytest.raises(StoreError, match="no segment version 0"):
        store.assignments(0)
    with pytest.raises(StoreError, match="say why"):
        store.approve(1, by="ana", reason="  ")


def test_the_same_content_hash_twice_is_one_version(store: Store) -> None:
    first = _create(store, "same", {"c1": "Loyal"})
    again = _create(store, "same", {"c1": "Loyal"})
    assert again == first and len(store.versions()) == 1

    store.approve(1, by="ana", reason="ok", at=JAN)
    assert _create(store, "same", {"c1": "Loyal"}).status == "active"
    assert len(store.versions()) == 1

    _create(store, "other", {"c1": "Lapsed"})
    store.approve(2, by="ana", reason="ok", at=FEB)
    rerun = _create(store, "same", {"c1": "Loyal"})  # version 1 is superseded: a new version
    assert (rerun.version, rerun.status) == (3, "pending")


# --- atomicity ----------------------------------------------------------------------------------


def test_repeated_customers_store_nothing_and_keep_the_active_version(store: Store) -> None:
    _create(store, "h1", {"c1": "Loyal"})
    store.approve(1, by="ana", reason="ok", at=JAN)
    counts = _counts(store)

    with pytest.raises(
        StoreError, match=r"1 customer\(s\) are assigned more than once \(e.g. 'c1'\)"
    ):
        store.create_version(
            method="rfm",
            segments=_segments("Loyal"),
            assignments=pd.DataFrame({"customer_id": ["c1", "c1"], "segment_id": ["loyal"] * 2}),
            rules=[],
            config={},
            model=None,
            scores_as_of=None,
            source="x",
            content_hash="h2",
        )

    assert _counts(store) == counts
    active = store.active()
    assert active is not None and active.version == 1


def test_a_database_error_mid_insert_stores_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the up-front check, the repeated customer fails in the database itself."""
    _create(store, "h1", {"c1": "Loyal"})
    store.approve(1, by="ana", reason="ok", at=JAN)
    counts = _counts(store)
    monkeypatch.setattr(clv.store, "_check_assignments", lambda *_args: [])

    with pytest.raises(sa.exc.IntegrityError):
        store.create_version(
            method="rfm",
            segments=_segments("Loyal"),
            assignments=pd.DataFrame({"customer_id": ["c2", "c2"], "segment_id": ["loyal"] * 2}),
            rules=[],
            config={},
            model=None,
            scores_as_of=None,
            source="x",
            content_hash="h2",
        )

    assert _counts(store) == counts
    assert [v.version for v in store.versions()] == [1]


@pytest.mark.parametrize("step", ["_insert_assignments", "_insert_rules"])
def test_a_failure_after_the_segments_insert_stores_nothing_and_keeps_the_active_version(
    store: Store, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    _create(store, "h1", {"c1": "Loyal"})
    store.approve(1, by="ana", reason="ok", at=JAN)
    counts = _counts(store)
    original = getattr(Store, step)

    def fail(self: Store, conn: sa.Connection, *args: Any) -> None:
        original(self, conn, *args)  # the rows are written, then the run fails
        raise RuntimeError("disk full")

    monkeypatch.setattr(Store, step, fail)
    with pytest.raises(RuntimeError, match="disk full"):
        _create(store, "h2", {"c1": "Lapsed", "c2": "Loyal"})

    assert _counts(store) == counts
    assert [v.version for v in store.versions()] == [1]
    found = store.segment_of("c1")
    assert found is not None and found["name"] == "Loyal"
    monkeypatch.undo()
    assert _create(store, "h2", {"c1": "Lapsed"}).version == 2  # the number was not used


CRASH_DURING_APPROVAL = """
import os, sys
from clv.store import Store

def crash(*args, **kwargs):
    os._exit(17)  # the process dies between superseding the old version and activating the new

Store._activate = crash
Store(sys.argv[1]).approve(int(sys.argv[2]), by="crash", reason="simulated crash")
"""


def test_a_crash_during_approval_keeps_the_previous_version_active(
    store: Store, store_url: str
) -> None:
    _create(store, "h1", {"c1": "Loyal"})
    store.approve(1, by="ana", reason="ok", at=JAN)
    _create(store, "h2", {"c1": "Lapsed"})
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }

    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_DURING_APPROVAL, store_url, "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert crashed.returncode == 17, crashed.stderr
    assert [(v.version, v.status) for v in store.versions()] == [(1, "active"), (2, "pending")]
    assert store.version(1).deactivated_at is None
    assert store.approve(2, by="ana", reason="after the crash").status == "active"


# --- history ------------------------------------------------------------------------------------


def test_history_of_a_customer_over_three_activations(store: Store) -> None:
    _create(store, "h1", {"c1": "Loyal", "c2": "Loyal"})
    store.approve(1, by="ana", reason="first", at=JAN)
    _create(store, "h2", {"c1": "Champions", "c3": "Lapsed"})  # c2 is not in version 2
    store.approve(2, by="ana", reason="second", at=FEB)
    _create(store, "h3", {"c1": "Lapsed"})
    store.reject(3, by="ana", reason="never served")
    _create(store, "h4", {"c1": "Loyal", "c2": "Champions"})
    store.approve(4, by="ana", reason="third", at=MAR)

    history = store.history("c1")

    assert list(history.columns) == ["version", "segment_id", "name", "valid_from", "valid_to"]
    assert list(history["version"]) == [1, 2, 4]
    assert list(history["name"]) == ["Loyal", "Champions", "Loyal"]
    assert list(history["valid_from"]) == [pd.Timestamp(t) for t in (JAN, FEB, MAR)]
    assert list(history["valid_to"][:2]) == [pd.Timestamp(FEB), pd.Timestamp(MAR)]
    assert pd.isna(history["valid_to"].iloc[2])
    assert str(history["valid_from"].dtype) == "datetime64[ns, UTC]"
    assert list(store.history("c2")["version"]) == [1, 4]
    on = {
        JAN + timedelta(days=3): "Loyal",
        FEB + timedelta(days=3): None,
        MAR + timedelta(days=3): "Champions",
    }
    for when, name in on.items():
        found = store.segment_of("c2", on=when)
        assert (found and found["name"]) == name, when
    assert store.history("nobody").empty


def test_activation_times_only_move_forward(store: Store) -> None:
    _create(store, "h1", {"c1": "Loyal"})
    store.approve(1, by="ana", reason="ok", at=FEB)
    _create(store, "h2", {"c1": "Lapsed"})

    with pytest.raises(StoreError, match="the active version 1 was activated later"):
        store.approve(2, by="ana", reason="backdated", at=JAN)
    with pytest.raises(StoreError, match="in the future"):
        store.approve(2, by="ana", reason="later", at=datetime.now(UTC) + timedelta(days=1))
    assert store.version(2).status == "pending"


def test_segment_of_is_one_query_on_the_customer_index(
    store: Store, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create(store, "h1", {"c1": "Loyal", "c2": "Lapsed"})
    store.approve(1, by="ana", reason="ok", at=JAN)
    statements: list[str] = []
    sa.event.listen(
        store._engine, "before_cursor_execute", lambda *a: statements.append(a[2]), named=False
    )

    assert store.segment_of("c1", on=FEB) is not None

    queries = [s for s in statements if not s.lstrip().upper().startswith(("BEGIN", "SET"))]
    assert len(queries) == 1
    sql = str(
        segment_of_query("c1", datetime(2024, 2, 1)).compile(
            dialect=store._engine.dialect, compile_kwargs={"literal_binds": True}
        )
    )
    with store._engine.connect() as conn:
        if backend == "sqlite":
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
        else:  # the tables are tiny: make the planner show the index it would use at scale
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = " ".join(str(r[0]) for r in conn.exec_driver_sql(f"EXPLAIN {sql}"))
    assert "ix_segment_assignments_customer_id_version" in plan


# --- what is stored -----------------------------------------------------------------------------


def test_segments_rules_and_assignment_features_come_back_as_stored(store: Store) -> None:
    segments = _segments("Loyal", "Lapsed")
    segments["new"] = [False, True]
    segments["matched_from"] = ["loyal", None]
    segments.loc[1, "profile"] = '{"customers": 2, "share": 0.5}'  # JSON text is accepted too
    assignments = pd.DataFrame(
        {
            "customer_id": ["b", "a", "c"],
            "segment_id": ["loyal", "lapsed", "loyal"],
            "predicted_clv": [120.5, 3.0, float("nan")],
            "churn_probability": [0.1, 0.9, 0.5],
            "r_score": [5, 1, 3],
            "rfm_segment": ["Champions", "Lost", "Loyal"],
        }
    )
    rules = [
        {"segment": "Loyal", "rule": "min_size", "passed": True, "value": 2, "threshold": 1,
         "message": "Loyal: 2 customers"},
        {"segment": "lapsed", "rule": "min_size", "passed": False, "value": 1, "threshold": 2,
         "message": "Lapsed: 1 customer, fewer than 2"},
        {"segment": None, "rule": "assigned_once", "passed": True, "value": 0, "threshold": 0,
         "message": "every customer once"},
    ]  # fmt: skip
    info = store.create_version(
        method="kmeans",
        segments=segments,
        assignments=assignments,
        rules=rules,
        config={"k_min": 3, "seed": 0, "share": float("nan"), "path": Path("x.yaml")},
        model='{"k": 2}',
        scores_as_of="2024-06-30T23:59:59",
        source="scores.parquet",
        content_hash="h1",
    )

    assert not info.rules_passed and info.model == '{"k": 2}'
    assert info.config == {"k_min": 3, "seed": 0, "share": None, "path": "x.yaml"}
    stored = store.segments(1)  # sorted by id
    assert list(stored["segment_id"]) == ["lapsed", "loyal"]
    assert stored["profile"].iloc[1] == {"customers": 1, "share": 0.5, "mean_clv": None}
    assert stored["profile"].iloc[0] == {"customers": 2, "share": 0.5}
    assert list(stored["new"]) == [True, False]
    assert list(stored["matched_from"]) == [None, "loyal"]
    assigned = store.assignments(1)
    assert list(assigned.columns) == [
        "customer_id", "segment_id", "name", "predicted_clv", "churn_probability", "r_score",
        "rfm_segment",
    ]  # fmt: skip
    assert list(assigned["customer_id"]) == ["a", "b", "c"]
    assert list(assigned["name"]) == ["Lapsed", "Loyal", "Loyal"]
    assert assigned["predicted_clv"].iloc[1] == 120.5 and pd.isna(assigned["predicted_clv"].iloc[2])
    assert list(assigned["r_score"]) == [1, 5, 3]
    results = store.rule_results(1)
    assert list(results.columns) == ["segment", "rule", "passed", "value", "threshold", "message"]
    assert list(results["segment"]) == ["Loyal", "Lapsed", None]  # an id becomes the name
    assert list(results["passed"]) == [True, False, True]
    assert results["value"].tolist() == [2.0, 1.0, 0.0]
    with pytest.raises(StoreError, match="does not keep: unknown_column"):
        store.create_version(
            method="rfm",
            segments=_segments("Loyal"),
            assignments=pd.DataFrame(
                {"customer_id": ["a"], "segment_id": ["loyal"], "unknown_column": [1]}
            ),
            rules=[],
            config={},
            model=None,
            scores_as_of=None,
            source="x",
            content_hash="h2",
        )


def test_times_are_stored_as_utc_and_returned_aware(store: Store) -> None:
    _create(store, "h1", {"c1": "Loyal"})
    paris = timezone(timedelta(hours=1))

    info = store.approve(1, by="ana", reason="ok", at=datetime(2024, 1, 1, 1, 0, tzinfo=paris))

    assert info.activated_at == JAN and info.activated_at.tzinfo == UTC
    assert info.created_at.tzinfo == UTC and info.scores_as_of == datetime(
        2023, 12, 31, 23, 59, 59, tzinfo=UTC
    )
    naive = store.segment_of("c1", on=datetime(2024, 1, 1, 0, 0))  # naive means UTC
    assert naive is not None and naive["valid_from"] == JAN
    assert store.segment_of("c1", on=datetime(2024, 1, 1, 0, 30, tzinfo=paris)) is None


# --- scores -------------------------------------------------------------------------------------


def test_the_same_scores_twice_are_one_run(store: Store) -> None:
    first = store.write_scores(
        _scores(), source="2024-06-30-90d.parquet", model_name="clv-spend", model_version="7"
    )
    again = store.write_scores(
        _scores().sample(frac=1.0, random_state=1),  # the same scores in another order
        source="latest.parquet",
        model_name="clv-spend",
        model_version="7",
    )
    other = store.write_scores(
        _scores(shift=1.0), source="x.parquet", model_name="clv-spend", model_version="7"
    )

    assert again == first and other != first
    with store._engine.connect() as conn:
        runs = conn.execute(sa.select(sa.func.count()).select_from(sa.table("scoring_runs")))
        assert runs.scalar_one() == 2
    with pytest.raises(StoreError, match="repeat customer 'c0'"):
        store.write_scores(
            pd.concat([_scores(), _scores()]), source="x", model_name=None, model_version=None
        )


def test_scores_stored_in_parts_are_the_run_stored_whole(store: Store) -> None:
    whole = _scores(6)
    reads: list[int] = []

    def parts() -> Iterator[pd.DataFrame]:
        reads.append(1)
        yield whole.iloc[4:]
        yield whole.iloc[:0]  # an empty partition
        yield whole.iloc[:4].sample(frac=1.0, random_state=2)

    options = {"source": "parts", "model_name": "clv-spend", "model_version": "7"}
    run = store.write_scores_parts(parts, **options)

    assert len(reads) == 2  # checked and hashed, then inserted
    assert store.write_scores(whole, **options) == run  # the same content: the same run
    latest = store.latest_scores()
    assert latest is not None
    assert latest["customer_id"].tolist() == whole["customer_id"].tolist()
    assert latest["predicted_clv"].tolist() == whole["predicted_clv"].tolist()
    assert _counts(store)["scores"] == 6


def test_a_customer_in_two_score_parts_stores_nothing(store: Store) -> None:
    whole = _scores(5)

    with pytest.raises(StoreError, match="appears twice"):
        store.write_scores_parts(
            lambda: iter([whole.iloc[:3], whole.iloc[2:]]),
            source="parts",
            model_name=None,
            model_version=None,
        )

    assert _counts(store)["scoring_runs"] == 0 and _counts(store)["scores"] == 0


def test_score_parts_of_another_run_are_refused_naming_the_part(store: Store) -> None:
    whole = _scores(4)
    later = whole.iloc[2:].assign(as_of=pd.Timestamp("2024-07-31 23:59:59"))

    with pytest.raises(StoreError, match="scores part 2 is of another run"):
        store.write_scores_parts(
            lambda: iter([whole.iloc[:2], later]),
            source="parts",
            model_name=None,
            model_version=None,
        )
    with pytest.raises(StoreError, match="scores part 1: scores lack the column"):
        store.write_scores_parts(
            lambda: iter([whole.drop(columns="predicted_clv")]),
            source="parts",
            model_name=None,
            model_version=None,
        )
    with pytest.raises(StoreError, match="hold no rows"):
        store.write_scores_parts(
            lambda: iter([whole.iloc[:0]]), source="parts", model_name=None, model_version=None
        )
    assert _counts(store)["scoring_runs"] == 0


def test_latest_scores_come_back_as_written(store: Store) -> None:
    assert store.latest_scores() is None
    written = _scores(4)
    run = store.write_scores(
        written, source="s.parquet", model_name="clv-spend", model_version=None
    )

    latest = store.latest_scores()

    assert latest is not None
    assert latest["model_version"].unique().tolist() == ["7"]  # from the frame's column
    assert latest["horizon_days"].unique().tolist() == [90]
    assert latest["as_of"].iloc[0] == pd.Timestamp("2024-06-30 23:59:59")  # naive UTC, as written
    assert (
        store.write_scores(written, source="again", model_name="clv-spend", model_version=None)
        == run
    )
    for column in ("customer_id", "predicted_clv", "churn_probability", "purchase_days"):
        pd.testing.assert_series_equal(
            latest[column], written[column], check_names=False, check_dtype=False
        )
    assert "eco_spend_share" not in latest.columns  # not in these scores


# --- migrations ---------------------------------------------------------------------------------


def test_a_fresh_database_is_upgraded_to_head_and_matches_the_tables(store: Store) -> None:
    with store._engine.connect() as conn:
        assert current_revision(conn) == head_revision() == "0004"
        inspector = sa.inspect(conn)
        assert TABLES | {VERSION_TABLE} <= set(inspector.get_table_names())
        assert "segment_history" in inspector.get_view_names()
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, metadata) == []  # migrations and clv.store agree
        assert "alembic_version" not in inspector.get_table_names()


def test_reopening_an_existing_database_runs_no_migration(
    store: Store, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create(store, "h1", {"c1": "Loyal"})
    store.write_scores(_scores(), source="s", model_name=None, model_version=None)
    root = logging.getLogger()
    before = (root.level, list(root.handlers), logging.getLogger("alembic").level)

    def no_upgrade(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the schema is at head: nothing to migrate")

    monkeypatch.setattr(command, "upgrade", no_upgrade)
    with Store(store_url) as reopened:
        assert [v.version for v in reopened.versions()] == [1]
        assert reopened.latest_scores() is not None
        with reopened._engine.connect() as conn:
            assert current_revision(conn) == head_revision()
            rows = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
            assert [r[0] for r in rows] == [head_revision()]
    assert (root.level, list(root.handlers), logging.getLogger("alembic").level) == before


def test_two_stores_starting_at_once_find_one_schema_at_head(store_url: str) -> None:
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            start.wait(timeout=30)
            Store(store_url).close()
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=open_store) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    with Store(store_url) as opened, opened._engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        assert opened.versions() == []


def test_an_unknown_schema_revision_is_refused_with_advice(store: Store, store_url: str) -> None:
    with store._engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))

    with pytest.raises(StoreError, match=r"at schema revision '9999'.*upgrade clv"):
        Store(store_url)


def test_migrations_run_from_a_url_downgrade_and_render_offline(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = alembic_config(store_url)

    command.upgrade(config, "head")  # env.py's own connection, not the store's
    with Store(store_url) as opened:
        _create(opened, "h1", {"c1": "Loyal"})
    command.downgrade(config, "base")
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            assert not TABLES & set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()
    command.upgrade(config, "head", sql=True)  # offline: print the SQL

    printed = capsys.readouterr().out
    assert "CREATE TABLE segment_assignments" in printed
    assert "CREATE VIEW segment_history" in printed


# --- SQLite only ----------------------------------------------------------------------------------


def test_sqlite_the_default_database_is_under_clv_home(isolated_settings: Path) -> None:
    with Store() as opened:
        _create(opened, "h1", {"c1": "Loyal"})
        with opened._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
    assert (isolated_settings / "clv.db").is_file()
