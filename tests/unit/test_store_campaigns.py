"""The platform database's campaigns (clv.store): plan, outbox, exactly-once claims, results.

The checks take the ``store_url`` fixture and run on SQLite here (a file under ``tmp_path``);
``tests/integration/test_store_campaigns_postgres.py`` imports them and runs the same checks on
PostgreSQL (COPY bulk loads, ``FOR UPDATE SKIP LOCKED`` claims) by overriding ``backend``.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
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
    CampaignInfo,
    Store,
    StoreError,
    alembic_config,
    current_revision,
    head_revision,
    idempotency_key,
    metadata,
)
from tests.unit.test_store import backend, store, store_url  # noqa: F401 (the shared fixtures)

__all__ = [
    "store",
    "store_url",
    "test_a_cancelled_campaign_is_never_claimed_again",
    "test_a_database_error_mid_create_stores_nothing",
    "test_a_failed_message_is_final_and_a_released_one_is_claimed_again",
    "test_a_sent_message_is_counted_once_whoever_reports_it",
    "test_an_expired_lease_is_claimed_again_and_an_unexpired_one_is_not",
    "test_campaign_statuses_move_only_forward",
    "test_claims_return_the_rendered_messages_and_log_them",
    "test_create_refuses_plans_and_messages_it_cannot_keep_and_stores_nothing",
    "test_measured_uplift_is_the_latest_campaigns_per_cell",
    "test_planning_the_same_content_twice_is_one_campaign",
    "test_recorded_results_are_upserted_and_checked",
    "test_the_campaign_migration_upgrades_a_0001_database_keeping_its_segments",
    "test_the_next_plan_reads_the_orders_uplift_where_it_was_measured",
    "test_the_plan_and_outbox_come_back_as_stored",
    "test_two_concurrent_claimers_get_each_message_exactly_once",
    "test_two_planners_at_once_store_one_campaign",
]

JAN, FEB, MAR = (datetime(2024, month, 1, tzinfo=UTC) for month in (1, 2, 3))
CAMPAIGN_TABLES = ("campaigns", "campaign_plan", "outbox", "outbox_events", "campaign_results")
SEGMENT_TABLES = ("segment_versions", "segments", "segment_assignments", "rule_results")


def _plan(n: int = 10) -> pd.DataFrame:
    """Every fifth customer held out (c00 with the channel they would have had); the rest split
    between variants A and B, email for even numbers and SMS for odd ones."""
    ids = [f"c{i:02d}" for i in range(n)]
    held = [i % 5 == 0 for i in range(n)]
    channel = ["email" if i % 2 == 0 else "sms" for i in range(n)]
    return pd.DataFrame(
        {
            "customer_id": ids,
            "group_name": ["holdout" if h else "AB"[i % 2] for i, h in enumerate(held)],
            "channel": [
                None if h and i else c for i, (h, c) in enumerate(zip(held, channel, strict=True))
            ],
            "segment": ["Loyal" if i < n / 2 else "Lapsed" for i in range(n)],
            "send_at": [
                datetime(2024, 3, 1, 9, 0, 0, 123456 * (i % 2), tzinfo=UTC) for i in range(n)
            ],
            "expected_incremental_value": [float(i) for i in range(n)],
            "cost": [
                None if h else (0.25 if c == "email" else 2.0)
                for h, c in zip(held, channel, strict=True)
            ],
            "predicted_clv": [100.0 + i for i in range(n)],
            "net_value": 1.0,  # a planner's working column: not stored
        }
    )


def _messages(plan: pd.DataFrame) -> pd.DataFrame:
    contacted = plan[plan["group_name"] != "holdout"]
    return pd.DataFrame(
        {
            "customer_id": contacted["customer_id"].to_numpy(),
            "channel": contacted["channel"].to_numpy(),
            "recipient": [f"{c}@example.com" for c in contacted["customer_id"]],
            "subject": [f"Hello {c}" if ch == "email" else None for c, ch in
                        zip(contacted["customer_id"], contacted["channel"], strict=True)],
            "body": [f"<p>Come back, {c} & co</p>" for c in contacted["customer_id"]],
        }
    )  # fmt: skip


def _campaign(
    store: Store,
    content_hash: str = "h1",
    *,
    n: int = 10,
    campaign_id: str | None = None,
    planned_at: datetime = MAR,
    plan: pd.DataFrame | None = None,
    messages: pd.DataFrame | None = None,
) -> CampaignInfo:
    plan = _plan(n) if plan is None else plan
    return store.create_campaign(
        campaign_id or f"winback-{content_hash}",
        "Win back",
        content_hash,
        {"name": "Win back", "budget": 100, "variants": ["A", "B"], "prior": float("nan")},
        plan,
        budget=100.0,
        holdout_share=0.2,
        segment_version=None,
        scores_as_of=pd.Timestamp("2024-02-29 23:59:59"),
        summary={"excluded": {"opted_out": 3, "frequency_cap": 1}, "per_variant": {"A": 4}},
        messages=_messages(plan) if messages is None else messages,
        planned_at=planned_at,
    )


def _sending(store: Store, content_hash: str = "h1", n: int = 10) -> str:
    info = _campaign(store, content_hash, n=n)
    store.set_campaign_status(info.campaign_id, "sending")
    return info.campaign_id


def _counts(store: Store, tables: tuple[str, ...] = CAMPAIGN_TABLES) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            t: int(conn.execute(sa.select(sa.func.count()).select_from(sa.table(t))).scalar_one())
            for t in tables
        }


# --- planning -----------------------------------------------------------------------------------


def test_planning_the_same_content_twice_is_one_campaign(store: Store) -> None:
    first = _campaign(store)
    counts = _counts(store)

    again = _campaign(store)
    renamed = _campaign(store, campaign_id="another-id", planned_at=FEB)  # same content

    assert again == first and renamed == first
    assert _counts(store) == counts
    assert counts == {"campaigns": 1, "campaign_plan": 10, "outbox": 8, "outbox_events": 0,
                      "campaign_results": 0}  # fmt: skip
    assert store.campaigns() == [first]
    other = _campaign(store, "h2")
    assert [c.campaign_id for c in store.campaigns()] == ["winback-h1", "winback-h2"]
    assert other.status == "planned" and _counts(store)["outbox"] == 16


def test_two_planners_at_once_store_one_campaign(store_url: str) -> None:
    Store(store_url).close()  # the schema first: this is about the campaign, not migrations
    start = threading.Barrier(2)
    planned: list[CampaignInfo] = []
    errors: list[BaseException] = []

    def planner() -> None:
        try:
            with Store(store_url) as own:
                start.wait(timeout=30)
                planned.append(_campaign(own, n=500))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=planner) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == [] and len(planned) == 2 and planned[0] == planned[1]
    with Store(store_url) as check:
        assert _counts(check)["campaigns"] == 1 and _counts(check)["outbox"] == 400


def test_the_plan_and_outbox_come_back_as_stored(store: Store) -> None:
    plan = _plan()
    info = _campaign(store)

    assert (info.campaign_id, info.name, info.status) == ("winback-h1", "Win back", "planned")
    assert (info.n_targeted, info.n_holdout) == (8, 2)
    assert info.total_cost == pytest.approx(4 * 0.25 + 4 * 2.0)
    assert (info.budget, info.holdout_share, info.segment_version) == (100.0, 0.2, None)
    assert info.planned_at == MAR and info.created_at.tzinfo == UTC
    assert info.scores_as_of == datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)
    assert info.definition == {"name": "Win back", "budget": 100, "variants": ["A", "B"],
                               "prior": None}  # fmt: skip
    assert info.summary["excluded"] == {"opted_out": 3, "frequency_cap": 1}
    assert store.campaign("winback-h1") == info

    stored = store.campaign_plan("winback-h1")
    assert list(stored.columns) == [
        "customer_id", "group_name", "channel", "segment", "send_at",
        "expected_incremental_value", "cost", "predicted_clv",
    ]  # fmt: skip
    expected = plan.drop(columns="net_value")
    expected["send_at"] = pd.to_datetime(expected["send_at"], utc=True)
    expected["cost"] = expected["cost"].astype("float64")
    pd.testing.assert_frame_equal(stored, expected, check_dtype=False)
    assert str(stored["send_at"].dtype) == "datetime64[ns, UTC]"
    assert stored.loc[0, "channel"] == "email" and stored.loc[5, "channel"] is None
    assert pd.isna(stored.loc[0, "cost"])

    outbox = store.outbox("winback-h1")
    assert list(outbox.columns) == [c.name for c in metadata.tables["outbox"].columns]
    assert len(outbox) == 8 and set(outbox["status"]) == {"pending"}
    assert outbox["attempts"].tolist() == [0] * 8 and outbox["claimed_at"].isna().all()
    assert outbox["idempotency_key"].tolist() == [
        idempotency_key("winback-h1", c, ch)
        for c, ch in zip(outbox["customer_id"], outbox["channel"], strict=True)
    ]
    first = outbox.iloc[0]
    assert (first["customer_id"], first["channel"], first["recipient"]) == (
        "c01", "sms", "c01@example.com"
    )  # fmt: skip
    assert first["subject"] is None and first["body"] == "<p>Come back, c01 & co</p>"
    assert outbox.loc[outbox["channel"] == "email", "subject"].str.startswith("Hello").all()
    assert store.outbox_counts("winback-h1") == {
        "pending": 8, "sending": 0, "sent": 0, "failed": 0, "dry_run": 0
    }  # fmt: skip
    assert store.outbox("winback-h1", status="sent").empty
    with pytest.raises(StoreError, match="unknown outbox status 'done'"):
        store.outbox("winback-h1", status="done")
    with pytest.raises(StoreError, match=r"no campaign 'nope'; the latest are 'winback-h1'"):
        store.campaign_plan("nope")


def test_create_refuses_plans_and_messages_it_cannot_keep_and_stores_nothing(
    store: Store,
) -> None:
    plan = _plan()
    messages = _messages(plan)
    holdout_message = pd.concat(
        [messages, pd.DataFrame({"customer_id": ["c05"], "channel": ["email"], "recipient": ["x"],
                                 "subject": ["s"], "body": ["b"]})]
    )  # fmt: skip
    no_channel = plan.copy()
    no_channel.loc[1, "channel"] = None
    cases: list[tuple[dict[str, Any], str]] = [
        ({"messages": holdout_message}, r"1 \(e.g. 'c05'\) message\(s\) are for holdout"),
        ({"messages": messages.iloc[1:]}, r"'c01'\) contacted customer\(s\) have no message"),
        ({"messages": messages.assign(channel="email")}, "another channel than the plan"),
        ({"messages": pd.concat([messages, messages.iloc[:1]])}, "repeat a customer and channel"),
        ({"plan": pd.concat([plan, plan.iloc[:1]])}, r"repeats customer\(s\) 1 \(e.g. 'c00'\)"),
        ({"plan": no_channel, "messages": messages}, r"contacted customer\(s\) have no channel"),
        ({"plan": plan.drop(columns="group_name"), "messages": messages}, "plan lacks the"),
        ({"campaign_id": "a|b"}, r"contains '\|'"),
    ]
    for change, message in cases:
        with pytest.raises(StoreError, match=message):
            _campaign(store, **change)
    assert _counts(store) == dict.fromkeys(CAMPAIGN_TABLES, 0)

    _campaign(store, "h1", campaign_id="winback")
    with pytest.raises(StoreError, match="'winback' is taken by a campaign with other content"):
        _campaign(store, "h2", campaign_id="winback")
    assert len(store.campaigns()) == 1


def test_a_database_error_mid_create_stores_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two messages with one key pass the checks (patched out) and fail in the database, after
    the campaign and its plan rows were written: the transaction leaves nothing behind."""
    _campaign(store, "h1")
    counts = _counts(store)
    monkeypatch.setattr(clv.store, "idempotency_key", lambda *_args: "0" * 64)

    with pytest.raises(sa.exc.IntegrityError):
        _campaign(store, "h2")

    assert _counts(store) == counts
    monkeypatch.undo()
    assert _campaign(store, "h2").n_targeted == 8


def test_idempotency_keys_are_stable_and_unambiguous() -> None:
    key = idempotency_key("winback-1a2b3c4d", "c1", "email")

    assert key == idempotency_key("winback-1a2b3c4d", "c1", "email")
    assert len(key) == 64 and int(key, 16) >= 0
    assert len({key, idempotency_key("winback-1a2b3c4d", "c1", "sms"),
                idempotency_key("winback-1a2b3c4d", "c2", "email"),
                idempotency_key("other", "c1", "email")}) == 4  # fmt: skip
    with pytest.raises(StoreError, match=r"contains '\|'"):
        idempotency_key("a|b", "c", "email")


# --- status -------------------------------------------------------------------------------------


def test_campaign_statuses_move_only_forward(store: Store) -> None:
    campaign = _campaign(store).campaign_id

    with pytest.raises(StoreError, match="is planned, not sending"):
        store.claim_messages(campaign, 10)
    with pytest.raises(StoreError, match="is planned: it can go only to sending or cancelled"):
        store.set_campaign_status(campaign, "sent")
    with pytest.raises(StoreError, match="unknown campaign status 'done'"):
        store.set_campaign_status(campaign, "done")
    assert store.set_campaign_status(campaign, "sending").status == "sending"
    assert store.set_campaign_status(campaign, "sending").status == "sending"  # a no-op
    with pytest.raises(StoreError, match=r"without an outcome \(8 pending\)"):
        store.set_campaign_status(campaign, "sent")
    claimed = store.claim_messages(campaign, 3)
    with pytest.raises(StoreError, match=r"\(5 pending, 3 sending\)"):
        store.set_campaign_status(campaign, "sent")
    for key in claimed["idempotency_key"]:
        store.mark_sent(key, "250 OK", 1)
    for key in store.claim_messages(campaign, 100)["idempotency_key"]:
        store.mark_failed(key, "550 no such user", 1)

    assert store.set_campaign_status(campaign, "sent").status == "sent"
    with pytest.raises(StoreError, match="is sent: it can go no further, not to cancelled"):
        store.set_campaign_status(campaign, "cancelled")
    with pytest.raises(StoreError, match="no campaign 'nope'"):
        store.set_campaign_status("nope", "sending")
    assert store.campaign(campaign).status == "sent"


def test_a_cancelled_campaign_is_never_claimed_again(store: Store) -> None:
    campaign = _sending(store)
    claimed = store.claim_messages(campaign, 2)

    store.set_campaign_status(campaign, "cancelled")

    assert store.claim_messages(campaign, 100).empty
    later = datetime.now(UTC) + timedelta(days=1)  # even the expired claims stay where they are
    assert store.claim_messages(campaign, 100, now=later).empty
    assert store.mark_sent(claimed["idempotency_key"].iloc[0], "250 OK", 1)  # in flight: kept
    assert store.outbox_counts(campaign) == {
        "pending": 6, "sending": 1, "sent": 1, "failed": 0, "dry_run": 0
    }  # fmt: skip
    with pytest.raises(StoreError, match="cancelled: it can go no further"):
        store.set_campaign_status(campaign, "sending")


# --- claims -------------------------------------------------------------------------------------


def test_claims_return_the_rendered_messages_and_log_them(store: Store) -> None:
    campaign = _sending(store)
    paris = timezone(timedelta(hours=1))
    at = datetime(2024, 3, 1, 10, 0, tzinfo=paris)

    claimed = store.claim_messages(campaign, 3, now=at)

    assert list(claimed.columns) == [
        "idempotency_key", "campaign_id", "customer_id", "channel", "variant", "recipient",
        "subject", "body", "attempts", "claimed_at",
    ]  # fmt: skip
    assert len(claimed) == 3 and claimed["customer_id"].is_monotonic_increasing
    assert set(claimed["variant"]) <= {"A", "B"} and set(claimed["campaign_id"]) == {campaign}
    assert claimed["claimed_at"].eq(pd.Timestamp("2024-03-01 09:00", tz="UTC")).all()
    assert claimed["attempts"].tolist() == [0, 0, 0]
    outbox = store.outbox(campaign).set_index("idempotency_key")
    mine = outbox.loc[claimed["idempotency_key"]]
    assert set(mine["status"]) == {"sending"}
    assert mine["claimed_at"].eq(pd.Timestamp("2024-03-01 09:00", tz="UTC")).all()
    for column in ("recipient", "subject", "body"):
        assert claimed[column].tolist() == mine[column].tolist()
    events = store.outbox_events(campaign)
    assert events["event"].tolist() == ["claimed"] * 3
    assert set(events["idempotency_key"]) == set(claimed["idempotency_key"])
    assert store.claim_messages(campaign, 0).empty
    assert len(store.claim_messages(campaign, 100, now=at)) == 5
    assert store.claim_messages(campaign, 100, now=at).empty
    with pytest.raises(StoreError, match="must not be negative"):
        store.claim_messages(campaign, -1)
    with pytest.raises(StoreError, match="positive number of seconds"):
        store.claim_messages(campaign, 1, lease_seconds=0)


def test_an_expired_lease_is_claimed_again_and_an_unexpired_one_is_not(store: Store) -> None:
    campaign = _sending(store)
    crashed = store.claim_messages(campaign, 3, lease_seconds=300, now=JAN)  # then it dies
    store.claim_messages(campaign, 100, now=JAN + timedelta(seconds=200))  # a live sender's

    assert store.claim_messages(campaign, 100, now=JAN + timedelta(seconds=299)).empty
    assert store.claim_messages(campaign, 100, now=JAN + timedelta(seconds=300)).empty  # not yet
    again = store.claim_messages(campaign, 100, now=JAN + timedelta(seconds=301))

    assert again["idempotency_key"].tolist() == crashed["idempotency_key"].tolist()
    assert again["claimed_at"].eq(pd.Timestamp(JAN + timedelta(seconds=301))).all()
    retries = store.outbox_events(campaign).query("event == 'retry'")
    assert sorted(retries["idempotency_key"]) == sorted(crashed["idempotency_key"])
    assert store.claim_messages(campaign, 100, now=JAN + timedelta(seconds=302)).empty
    # the live sender's claims (at +200 s) expire at +500 s, the re-claimed ones at +601 s
    assert len(store.claim_messages(campaign, 100, now=JAN + timedelta(seconds=501))) == 5
    assert store.outbox_counts(campaign)["sending"] == 8


def test_two_concurrent_claimers_get_each_message_exactly_once(store_url: str) -> None:
    with Store(store_url) as setup:
        campaign = _sending(setup, n=250)  # 200 messages
    start = threading.Barrier(2)
    # Both claim a first batch before either goes on: on a busy machine one thread could
    # otherwise drain the outbox before the other starts, and the overlap would go untested.
    first_claims = threading.Barrier(2)
    claimed: list[list[str]] = [[], []]
    errors: list[BaseException] = []

    def sender(number: int) -> None:
        try:
            with Store(store_url) as own:  # its own engine and connections, as another process
                start.wait(timeout=30)
                rounds = 0
                while True:
                    batch = own.claim_messages(campaign, 7)
                    rounds += 1
                    if rounds == 1:
                        first_claims.wait(timeout=30)
                    if batch.empty:
                        return
                    for key in batch["idempotency_key"]:
                        claimed[number].append(key)
                        own.mark_sent(key, "250 OK", 1)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert errors == []
    with Store(store_url) as check:
        everything = set(check.outbox(campaign)["idempotency_key"])
        first, second = set(claimed[0]), set(claimed[1])
        assert len(claimed[0]) == len(first) and len(claimed[1]) == len(second)
        assert first | second == everything and not first & second
        assert first and second, "both senders should have claimed some messages"
        assert check.outbox_counts(campaign)["sent"] == 200
        events = check.outbox_events(campaign)
        assert (events["event"].value_counts().to_dict()) == {"claimed": 200, "sent": 200}


# --- outcomes -----------------------------------------------------------------------------------


def test_a_sent_message_is_counted_once_whoever_reports_it(store: Store) -> None:
    campaign = _sending(store)
    key = store.claim_messages(campaign, 1)["idempotency_key"].iloc[0]

    assert store.mark_sent(key, "250 OK queued as A1", 2) is True
    assert store.mark_sent(key, "250 OK queued as A2", 1) is False  # a second report
    assert store.mark_failed(key, "421 try later", 1) is False  # a delivery is never undone
    assert store.release(key, "timeout") is False
    assert store.mark_dry_run(key) is False

    row = store.outbox(campaign).set_index("idempotency_key").loc[key]
    assert (row["status"], row["attempts"], row["last_response"]) == (
        "sent", 2, "250 OK queued as A1"
    )  # fmt: skip
    assert pd.notna(row["sent_at"])
    assert store.outbox_counts(campaign)["sent"] == 1
    later = datetime.now(UTC) + timedelta(days=1)
    assert key not in set(store.claim_messages(campaign, 100, now=later)["idempotency_key"])
    events = store.outbox_events(campaign).query("idempotency_key == @key")
    assert events["event"].tolist() == ["claimed", "sent"]
    assert events["attempt"].tolist() == [0, 2]
    with pytest.raises(StoreError, match="no outbox message with idempotency key 'nope'"):
        store.mark_sent("nope", "250 OK", 1)
    with pytest.raises(StoreError, match="attempts must not be negative"):
        store.mark_sent(key, "250 OK", -1)


def test_a_failed_message_is_final_and_a_released_one_is_claimed_again(store: Store) -> None:
    campaign = _sending(store)
    first, second, third = store.claim_messages(campaign, 3, now=JAN)["idempotency_key"]

    assert store.mark_failed(first, "550 mailbox unavailable", 1) is True
    assert store.release(second, "421 service not available", attempts=3) is True
    assert store.mark_dry_run(third, "dry run") is True

    statuses = store.outbox(campaign).set_index("idempotency_key")
    assert statuses.loc[[first, second, third], "status"].tolist() == [
        "failed", "pending", "dry_run"
    ]  # fmt: skip
    assert statuses.loc[second, "attempts"] == 3
    again = store.claim_messages(campaign, 100, now=JAN + timedelta(seconds=1))
    assert second in set(again["idempotency_key"]) and len(again) == 6
    assert first not in set(again["idempotency_key"]) and third not in set(again["idempotency_key"])
    assert again.set_index("idempotency_key").loc[second, "attempts"] == 3
    assert store.mark_failed(first, "again", 1) is False
    # The new claimer fails it for good; then a late report of a delivery arrives (a sender
    # whose claim had expired): the delivery is what happened, so it is recorded.
    assert store.mark_failed(second, "550", 4) is True
    assert store.mark_sent(second, "250 OK after all", 2) is True  # its own, older count
    events = store.outbox_events(campaign).query("idempotency_key == @second")
    assert events["event"].tolist() == ["claimed", "released", "claimed", "failed", "sent"]
    assert events["attempt"].tolist() == [0, 3, 3, 4, 4]  # totals; never lowered


# --- measured results ---------------------------------------------------------------------------


def _results(uplift: float, **cells: Any) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "segment": ["Loyal", "Lapsed"],
            "channel": ["email", "sms"],
            "metric": ["revenue", "revenue"],
            "uplift": [uplift, uplift + 0.01],
            "standard_error": [0.02, float("nan")],
            "n_treated": [400, 300],
            "n_holdout": [100, 80],
        }
    )
    return frame.assign(**cells)


def test_recorded_results_are_upserted_and_checked(store: Store) -> None:
    campaign = _campaign(store).campaign_id

    assert store.record_results(campaign, _results(0.05), analysed_at=FEB) == 2
    assert store.record_results(campaign, _results(0.07), analysed_at=MAR) == 2  # re-analysed

    measured = store.measured_uplift()
    assert list(measured.columns) == [
        "segment", "channel", "uplift", "standard_error", "n_treated", "n_holdout",
        "campaign_id", "analysed_at",
    ]  # fmt: skip
    assert measured["uplift"].tolist() == pytest.approx([0.08, 0.07])  # Lapsed, Loyal
    assert pd.isna(measured.loc[0, "standard_error"]) and measured.loc[1, "standard_error"] == 0.02
    assert measured["analysed_at"].eq(pd.Timestamp(MAR)).all()
    assert _counts(store)["campaign_results"] == 2
    assert store.measured_uplift("conversion").empty
    with pytest.raises(StoreError, match="repeat the cell"):
        store.record_results(campaign, pd.concat([_results(0.1), _results(0.2)]))
    with pytest.raises(StoreError, match="standard_error must be a finite number ≥ 0"):
        store.record_results(campaign, _results(0.1, standard_error=-1.0))
    with pytest.raises(StoreError, match="the results lack the column"):
        store.record_results(campaign, _results(0.1).drop(columns="metric"))
    with pytest.raises(StoreError, match="no campaign 'nope'"):
        store.record_results("nope", _results(0.1))
    assert store.measured_uplift()["uplift"].tolist() == pytest.approx([0.08, 0.07])


def test_measured_uplift_is_the_latest_campaigns_per_cell(store: Store) -> None:
    old = _campaign(store, "h1", planned_at=JAN).campaign_id
    new = _campaign(store, "h2", planned_at=FEB).campaign_id
    store.record_results(old, _results(0.05), analysed_at=FEB)
    store.record_results(new, _results(0.20).iloc[:1], analysed_at=MAR)  # Loyal × email only
    # Re-analysing the older campaign later does not hide the newer campaign's estimate.
    store.record_results(old, _results(0.06), analysed_at=MAR + timedelta(days=1))
    conversion = _results(0.5, metric="conversion")
    store.record_results(new, conversion, analysed_at=MAR)

    measured = store.measured_uplift("revenue").set_index(["segment", "channel"])

    assert measured.loc[("Loyal", "email"), "campaign_id"] == new
    assert measured.loc[("Loyal", "email"), "uplift"] == pytest.approx(0.20)
    assert measured.loc[("Lapsed", "sms"), "campaign_id"] == old
    assert measured.loc[("Lapsed", "sms"), "uplift"] == pytest.approx(0.07)
    assert measured["n_treated"].dtype == "int64" and len(measured) == 2
    assert store.measured_uplift("conversion")["uplift"].tolist() == pytest.approx([0.51, 0.5])


def test_the_next_plan_reads_the_orders_uplift_where_it_was_measured(store: Store) -> None:
    from clv.campaigns.service import planning_uplift
    from clv.campaigns.targeting import measured_for_targeting

    campaign = _campaign(store).campaign_id
    assert planning_uplift(store).empty  # nothing measured yet: the configured prior
    orders = _results(0.3, metric="orders").iloc[:1]  # Loyal x email only
    revenue = _results(0.05, standard_error=0.02)
    store.record_results(campaign, pd.concat([revenue, orders]), analysed_at=FEB)

    used = measured_for_targeting(planning_uplift(store)).set_index(["segment", "channel"])

    assert used.loc[("Loyal", "email"), "uplift"] == pytest.approx(0.3)  # orders first
    assert used.loc[("Lapsed", "sms"), "uplift"] == pytest.approx(0.06)  # revenue otherwise
    assert len(used) == 2


# --- migration ----------------------------------------------------------------------------------


def test_the_campaign_migration_upgrades_a_0001_database_keeping_its_segments(
    store_url: str,
) -> None:
    config = alembic_config(store_url)
    command.upgrade(config, "0001")
    engine = clv.store.create_store_engine(store_url)
    try:
        with engine.begin() as conn:  # a segmentation stored before campaigns existed
            conn.execute(
                clv.store.segment_versions.insert().values(
                    version=1, method="rfm", status="active", created_at=JAN, source="s",
                    content_hash="h1", config="{}", n_customers=2, n_segments=1,
                    rules_passed=True, activated_at=JAN, automatic=False,
                )
            )  # fmt: skip
            conn.execute(
                clv.store.segments_table.insert().values(
                    version=1, segment_id="loyal", name="Loyal", description="", profile="{}",
                    new=False,
                )
            )  # fmt: skip
            conn.execute(
                clv.store.segment_assignments.insert(),
                [{"version": 1, "customer_id": c, "segment_id": "loyal", "predicted_clv": 1.5}
                 for c in ("c1", "c2")],
            )  # fmt: skip

        def snapshot() -> dict[str, list[tuple[Any, ...]]]:
            with engine.connect() as conn:
                return {
                    t: sorted(tuple(r) for r in conn.execute(sa.select(metadata.tables[t])))
                    for t in SEGMENT_TABLES
                }

        before = snapshot()
        with engine.connect() as conn:
            assert current_revision(conn) == "0001"
            assert not set(CAMPAIGN_TABLES) & set(sa.inspect(conn).get_table_names())

        with Store(store_url) as opened:  # the store upgrades what it finds
            assert opened.schema_revision() == head_revision() == "0004"
            assert snapshot() == before
            active = opened.active()
            assert active is not None and active.version == 1
            assert opened.assignments(1)["customer_id"].tolist() == ["c1", "c2"]
            campaign = _campaign(opened, "h1")
            assert opened.campaign(campaign.campaign_id) == campaign
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            assert compare_metadata(context, metadata) == []  # migrations and clv.store agree

        command.downgrade(config, "0001")
        with engine.connect() as conn:
            assert not set(CAMPAIGN_TABLES) & set(sa.inspect(conn).get_table_names())
        assert snapshot() == before
    finally:
        engine.dispose()


def test_a_batch_of_outcomes_is_recorded_in_one_go_by_the_same_rules_as_one_at_a_time(
    store: Store,
) -> None:
    campaign = _sending(store)
    claimed = list(store.claim_messages(campaign, 4)["idempotency_key"])
    sent, failed, released, late = claimed
    assert store.mark_sent(late, "250 OK", 1)  # already sent: a stale failure must not undo it
    changed = store.mark_outcomes(
        [
            (sent, "sent", "250 OK", 2),
            (failed, "failed", "550 no such user", 1),
            (released, "released", "451 try later", 1),
            (late, "failed", "stale", 0),
        ]
    )
    assert changed == 3
    outbox = store.outbox(campaign).set_index("idempotency_key")
    assert outbox.loc[sent, "status"] == "sent" and outbox.loc[sent, "attempts"] == 2
    assert outbox.loc[sent, "sent_at"] is not None
    assert outbox.loc[failed, "status"] == "failed"
    assert outbox.loc[released, "status"] == "pending"
    assert outbox.loc[late, "status"] == "sent"
    events = store.outbox_events(campaign)
    assert sorted(events.loc[events["event"] != "claimed", "event"]) == sorted(
        ["sent", "sent", "failed", "released"]
    )


def test_a_batch_with_an_unknown_key_records_nothing(store: Store) -> None:
    campaign = _sending(store)
    (key,) = store.claim_messages(campaign, 1)["idempotency_key"]
    with pytest.raises(StoreError, match="no outbox message with idempotency key 'nope'"):
        store.mark_outcomes([(key, "sent", "250 OK", 1), ("nope", "sent", "250 OK", 1)])
    with pytest.raises(StoreError, match="unknown outcome 'delivered'"):
        store.mark_outcomes([(key, "delivered", None, 1)])
    assert store.outbox(campaign).set_index("idempotency_key").loc[key, "status"] == "sending"
