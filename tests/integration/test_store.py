"""The platform database keeps segment versions, history and scores, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from clv.store import ACTIVE, PENDING, REJECTED, SUPERSEDED, Store, StoreError


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'clv.db'}"
    else:
        name = request.getfixturevalue("postgres_database")
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    store = Store(url)
    yield store
    store.engine.dispose()


def _segments(names: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "segment_id": [f"V{i + 1}" for i in range(len(names))],
            "name": names,
            "description": ["" for _ in names],
            "new": [False for _ in names],
            "matched_from": [None for _ in names],
            "profile": [{"customers": 2, "share": 0.5} for _ in names],
        }
    )


def _create(store: Store, labels: dict[str, str], tag: str = "a", **extra):  # type: ignore[no-untyped-def]
    names = sorted(set(labels.values()))
    segments = _segments(names)
    ids = dict(zip(names, segments["segment_id"], strict=True))
    assignments = pd.DataFrame(
        {
            "customer_id": list(labels),
            "segment_id": [ids[n] for n in labels.values()],
            "predicted_clv": np.arange(len(labels), dtype=float),
            "churn_probability": [0.5] * len(labels),
            "r_score": [3] * len(labels),
            "rfm_segment": ["Loyal"] * len(labels),
        }
    )
    rules = [
        {"segment": n, "rule": "min_size", "passed": True, "value": 2.0, "threshold": 1.0}
        | {"message": f"{n} ok"}
        for n in names
    ]
    arguments = (
        dict(
            method="kmeans",
            segments=segments,
            assignments=assignments,
            rules=rules,
            config={"k_min": 2},
            model=None,
            scores_as_of=pd.Timestamp("2025-06-30 23:59:59"),
            source="scores.parquet",
            content_hash=f"hash-{tag}",
        )
        | extra
    )
    return store.create_version(**arguments)


T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_a_new_version_is_pending_and_not_served_until_approved(store: Store) -> None:
    info = _create(store, {"c1": "loyal", "c2": "at risk"})
    assert info.version == 1 and info.status == PENDING and info.n_customers == 2
    assert store.active() is None
    assert store.segment_of("c1") is None
    done = store.approve(1, by="ana", reason="looks right", at=T0)
    assert done.status == ACTIVE and done.decided_by == "ana" and done.activated_at == T0
    assert store.segment_of("c1", on=T0 + dt.timedelta(days=1))["name"] == "loyal"  # type: ignore[index]
    assigned = store.assignments(1)
    assert assigned["customer_id"].tolist() == ["c1", "c2"]
    assert assigned["rfm_segment"].tolist() == ["Loyal", "Loyal"]
    assert store.segments(1)["profile"].iloc[0] == {"customers": 2, "share": 0.5}
    assert store.rule_results(1)["passed"].all()


def test_history_answers_which_segment_a_customer_was_in_on_any_date(store: Store) -> None:
    t1, t2 = T0 + dt.timedelta(days=30), T0 + dt.timedelta(days=60)
    _create(store, {"c1": "loyal", "c2": "loyal"}, "a")
    store.approve(1, by="ana", reason="first", at=T0)
    _create(store, {"c1": "at risk", "c2": "loyal"}, "b")
    store.approve(2, by="ana", reason="second", at=t1)
    _create(store, {"c1": "lost", "c2": "loyal"}, "c")
    store.approve(3, by="ana", reason="third", at=t2)
    assert store.version(1).status == SUPERSEDED and store.version(1).deactivated_at == t1
    day = dt.timedelta(days=1)
    assert store.segment_of("c1", on=T0 - day) is None
    assert store.segment_of("c1", on=T0 + day)["name"] == "loyal"  # type: ignore[index]
    assert store.segment_of("c1", on=t1 + day)["name"] == "at risk"  # type: ignore[index]
    now = store.segment_of("c1", on=t2 + day)
    assert now is not None and now["name"] == "lost" and now["valid_to"] is None
    history = store.history("c1")
    assert history["name"].tolist() == ["loyal", "at risk", "lost"]
    assert history["valid_to"].iloc[0] == pd.Timestamp(t1)


def test_only_a_pending_version_can_be_approved_or_rejected(store: Store) -> None:
    _create(store, {"c1": "loyal"}, "a")
    _create(store, {"c1": "lost"}, "b")
    store.reject(2, by="ana", reason="too small")
    assert store.version(2).status == REJECTED
    with pytest.raises(StoreError, match="version 2 is rejected; only a pending version"):
        store.approve(2, by="ana", reason="changed my mind")
    store.approve(1, by="ana", reason="ok")
    with pytest.raises(StoreError, match="version 1 is active"):
        store.approve(1, by="ana", reason="again")
    with pytest.raises(StoreError, match=r"no segment version 7: the versions are 1–2"):
        store.version(7)


def test_the_same_run_twice_is_one_version(store: Store) -> None:
    first = _create(store, {"c1": "loyal"}, "same")
    again = _create(store, {"c1": "loyal"}, "same")
    assert first.version == again.version == 1
    assert len(store.versions()) == 1


def test_a_failed_write_leaves_no_version_and_the_active_one_intact(store: Store) -> None:
    _create(store, {"c1": "loyal", "c2": "lost"}, "a")
    store.approve(1, by="ana", reason="ok")
    with pytest.raises(StoreError, match="assigned more than once"):
        bad = pd.DataFrame({"customer_id": ["c1", "c1"], "segment_id": ["V1", "V1"]})
        _create(store, {"c1": "loyal"}, "b", assignments=bad)
    # A failure inside the transaction (a segment id longer than the column allows on
    # PostgreSQL; a NULL name on both) rolls back everything written before it.
    broken = _segments(["loyal"])
    broken["name"] = [None]
    with pytest.raises(sa.exc.IntegrityError):
        _create(
            store,
            {"c1": "loyal"},
            "c",
            segments=broken,
            assignments=pd.DataFrame({"customer_id": ["c1"], "segment_id": ["V1"]}),
        )
    assert [v.version for v in store.versions()] == [1]
    active = store.active()
    assert active is not None and active.version == 1
    assert store.segment_of("c2")["name"] == "lost"  # type: ignore[index]


def test_scores_are_stored_once_and_the_latest_run_is_read_back(store: Store) -> None:
    scores = pd.DataFrame(
        {
            "customer_id": ["b", "a"],
            "predicted_clv": [2.0, 1.0],
            "churn_probability": [0.1, np.nan],
            "days_since_last_purchase": [3, 4],
            "as_of": pd.Timestamp("2025-06-30 23:59:59"),
            "horizon_days": 90,
        }
    )
    first = store.write_scores(
        scores, source="s.parquet", model_name="clv-spend", model_version="3"
    )
    again = store.write_scores(
        scores, source="s.parquet", model_name="clv-spend", model_version="3"
    )
    assert first == again
    other = store.write_scores(
        scores.assign(predicted_clv=[5.0, 6.0]),
        source="t",
        model_name="clv-spend",
        model_version="3",
    )
    assert other != first
    latest = store.latest_scores()
    assert latest is not None
    assert latest["customer_id"].tolist() == ["a", "b"]
    assert latest["predicted_clv"].tolist() == [6.0, 5.0]
    assert latest["as_of"].iloc[0] == pd.Timestamp("2025-06-30 23:59:59")
    assert int(latest["horizon_days"].iloc[0]) == 90


def test_the_schema_is_migrated_once_and_reopening_changes_nothing(store: Store) -> None:
    assert store.schema_revision() == "0001"
    _create(store, {"c1": "loyal"})
    reopened = Store(store.url)
    assert reopened.schema_revision() == "0001"
    assert [v.version for v in reopened.versions()] == [1]
    reopened.engine.dispose()


def test_the_default_database_is_sqlite_under_clv_home(isolated_settings) -> None:  # type: ignore[no-untyped-def]
    store = Store()
    assert store.url.startswith("sqlite:///") and store.url.endswith("clv.db")
    assert (isolated_settings / "clv.db").exists()
    store.engine.dispose()
