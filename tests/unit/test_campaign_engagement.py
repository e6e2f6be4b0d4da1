"""Campaign engagement: clv.campaigns.engagement, Store.record_events, `clv campaign events`.

The store checks (listed in ``__all__``) take the ``store`` / ``store_url`` fixtures and run on
SQLite here; ``tests/integration/test_store_engagement_postgres.py`` imports them and runs them on
PostgreSQL. The campaign is test_store_campaigns' ten-customer plan: c00 and c05 held out, variant
A by email to c02, c04, c06, c08 and variant B by SMS to c01, c03, c07, c09.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import clv.store
from clv.campaigns.engagement import (
    EVENT_COLUMNS,
    EVENT_KINDS,
    default_event_id,
    engagement_summary,
    events_from_callbacks,
    read_callbacks,
    read_events,
)
from clv.campaigns.errors import CampaignError
from clv.store import (
    CAMPAIGN_EVENT_KINDS,
    VERSION_TABLE,
    Store,
    StoreError,
    alembic_config,
    head_revision,
    idempotency_key,
    metadata,
)
from tests.unit.test_store import backend, store, store_url  # noqa: F401 (the shared fixtures)
from tests.unit.test_store_campaigns import _campaign, _plan

__all__ = [
    "store",
    "store_url",
    "test_callback_resolves_the_idempotency_key_to_the_customer",
    "test_event_for_a_customer_not_messaged_is_refused_and_nothing_is_written",
    "test_events_come_back_in_time_order_with_their_values",
    "test_ingesting_the_same_events_twice_records_them_once",
    "test_record_events_refuses_frames_it_cannot_keep",
    "test_the_events_migration_brings_a_0002_database_up_keeping_its_campaigns",
    "test_unknown_callback_keys_are_reported_not_dropped",
]

CAMPAIGN = "winback-h1"
HEADER = "customer_id,channel,event,timestamp,value\n"
# Two opens and a click by c02 (A, email), an open and a conversion by c03 (B, SMS), a bounce
# of c04: the file a provider might export.
EVENTS_CSV = HEADER + (
    "c02,email,open,2024-03-02T10:00:00Z,\n"
    "c02,email,open,2024-03-02T11:00:00+01:00,\n"  # the same instant as the first: one event
    "c02,email,Click,2024-03-02 10:05:00,\n"
    "c03,sms,open,2024-03-02T12:00:00Z,\n"
    "c03,sms,conversion,2024-03-03T09:00:00Z,49.90\n"
    "c04,email,bounce,2024-03-02T09:01:00Z,\n"
)


def _file(tmp_path: Path, text: str, name: str = "events.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _events(tmp_path: Path, text: str = EVENTS_CSV, name: str = "events.csv") -> pd.DataFrame:
    return read_events(_file(tmp_path, text, name), campaign_id=CAMPAIGN)


def _sent(store: Store, campaign_id: str = CAMPAIGN) -> pd.DataFrame:
    """Send every message of the campaign (claim and mark sent)."""
    store.set_campaign_status(campaign_id, "sending")
    for key in store.claim_messages(campaign_id, 100)["idempotency_key"]:
        store.mark_sent(key, "250 OK", 1)
    return store.outbox(campaign_id, status="sent")


def _event_count(store: Store) -> int:
    with store.engine.connect() as conn:
        table = sa.table("campaign_events")
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


# --- reading files ------------------------------------------------------------------------------


def test_events_are_read_with_default_ids_and_utc_times(tmp_path: Path) -> None:
    events = _events(tmp_path)

    assert list(events.columns) == list(EVENT_COLUMNS)
    assert len(events) == 5  # the 11:00+01:00 open is the 10:00Z one
    assert str(events["occurred_at"].dtype) == "datetime64[ns, UTC]"
    assert events["occurred_at"].iloc[1] == pd.Timestamp("2024-03-02 10:05", tz="UTC")  # naive
    assert events["event"].tolist() == ["open", "click", "open", "conversion", "bounce"]
    assert set(events["campaign_id"]) == {CAMPAIGN}
    assert events["value"].iloc[3] == pytest.approx(49.90) and events["value"].isna().sum() == 4
    assert events["event_id"].iloc[0] == default_event_id(
        CAMPAIGN, "c02", "email", "open", pd.Timestamp("2024-03-02 10:00", tz="UTC")
    )
    assert events["event_id"].is_unique


def test_mixed_offsets_and_naive_times_in_one_file_are_each_read_as_given(tmp_path: Path) -> None:
    """pandas alone gives naive values the first offset it saw; naive means UTC here."""
    text = HEADER + "c02,email,open,2024-03-02T10:00:00+01:00,\nc03,sms,open,2024-03-02 09:00,\n"

    events = _events(tmp_path, text)

    assert events["occurred_at"].tolist() == [pd.Timestamp("2024-03-02 09:00", tz="UTC")] * 2


def test_the_default_event_id_is_the_same_in_any_time_zone() -> None:
    utc = pd.Timestamp("2024-03-02 10:00", tz="UTC")
    paris = pd.Timestamp("2024-03-02 11:00", tz="Europe/Paris")

    assert default_event_id("c", "u", "email", "open", utc) == default_event_id(
        "c", "u", "email", "open", paris
    )
    assert default_event_id("c", "u", "email", "open", utc.tz_localize(None)) == (
        default_event_id("c", "u", "email", "open", utc)
    )
    assert default_event_id("c", "u", "email", "click", utc) != (
        default_event_id("c", "u", "email", "open", utc)
    )


def test_parquet_and_json_lines_give_the_same_events_as_csv(tmp_path: Path) -> None:
    from_csv = _events(tmp_path)
    raw = pd.read_csv(tmp_path / "events.csv", dtype=str)
    raw.to_parquet(tmp_path / "events.parquet")
    lines = "\n".join(
        json.dumps({k: v for k, v in row.items() if pd.notna(v)}) for row in raw.to_dict("records")
    )
    _file(tmp_path, lines + "\n\n", "events.jsonl")

    for name in ("events.parquet", "events.jsonl"):
        pd.testing.assert_frame_equal(read_events(tmp_path / name, campaign_id=CAMPAIGN), from_csv)


def test_event_ids_in_the_file_are_kept_and_campaign_ids_read_per_row(tmp_path: Path) -> None:
    text = "campaign_id,customer_id,channel,event,timestamp,event_id\n" + (
        "winback-h1,c02,email,open,2024-03-02T10:00:00Z,sg-1\n"
        "other-campaign,c02,email,open,2024-03-02T10:00:00Z,\n"
    )

    events = read_events(_file(tmp_path, text))

    assert events["campaign_id"].tolist() == ["winback-h1", "other-campaign"]
    assert events["event_id"].iloc[0] == "sg-1" and len(events["event_id"].iloc[1]) == 64


@pytest.mark.parametrize(
    ("name", "writer", "place"),
    [
        ("events.csv", lambda f, p: f.to_csv(p, index=False), "events.csv line 3"),
        ("events.parquet", lambda f, p: f.to_parquet(p), "events.parquet row 2"),
        (
            "events.jsonl",
            lambda f, p: Path(p).write_text("\n".join(json.dumps(r) for r in f.to_dict("records"))),
            "events.jsonl line 2",
        ),
    ],
    ids=["csv-line", "parquet-row", "jsonl-line"],
)
def test_bad_event_kind_names_the_row_and_column(
    tmp_path: Path, name: str, writer: Any, place: str
) -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["c02", "c03"],
            "channel": ["email", "sms"],
            "event": ["open", "opened"],
            "timestamp": ["2024-03-02T10:00:00Z"] * 2,
        }
    )
    writer(frame, tmp_path / name)

    with pytest.raises(CampaignError) as caught:
        read_events(tmp_path / name, campaign_id=CAMPAIGN)

    assert str(caught.value).startswith(
        f"{place}, column 'event': 'opened' is not an event kind; use one of delivered, open, "
    )


@pytest.mark.parametrize(
    ("text", "campaign", "message"),
    [
        ("", CAMPAIGN, r"^events.csv: the file is empty; expected events with the columns"),
        (HEADER, CAMPAIGN, r"^events.csv: the file has no events"),
        (
            "customer_id,event,timestamp\nc02,open,2024-03-02\n",
            CAMPAIGN,
            r"^events.csv: missing column\(s\) 'channel'; it has 'customer_id', 'event'",
        ),
        (
            HEADER + "c02,email,open,2024-03-02T10:00:00Z,\n",
            None,
            r"missing column\(s\) 'campaign_id'.*or pass the campaign \(--campaign\)",
        ),
        (
            HEADER + "c02,email,open,2024-03-02T10:00:00Z,\nc03,sms,open,yesterday,\n",
            CAMPAIGN,
            r"^events.csv line 3, column 'timestamp': 'yesterday' is not an ISO 8601 time",
        ),
        (
            HEADER + "c02,email,open,2024-02-30T10:00:00Z,\n",
            CAMPAIGN,
            r"^events.csv line 2, column 'timestamp': '2024-02-30T10:00:00Z' is not an ISO",
        ),
        (
            HEADER + "c02,email,conversion,2024-03-02T10:00:00Z,12 EUR\n",
            CAMPAIGN,
            r"^events.csv line 2, column 'value': '12 EUR' is not a finite number",
        ),
        (
            HEADER + "c02,,open,2024-03-02T10:00:00Z,\nc03,,open,2024-03-02T10:00:00Z,\n",
            CAMPAIGN,
            r"^events.csv line 2, column 'channel': empty \(and 1 more row\(s\)\)",
        ),
        (
            "campaign_id,customer_id,channel,event,timestamp\n"
            "winback-h1,c02,email,open,2024-03-02\nother,c03,sms,open,2024-03-02\n",
            CAMPAIGN,
            r"^events.csv line 3, column 'campaign_id': 'other' is not the campaign given",
        ),
        (
            "customer_id,channel,event,timestamp,event_id\n"
            "c02,email,open,2024-03-02,e1\nc03,sms,click,2024-03-02,e1\n",
            CAMPAIGN,
            r"^events.csv line 3, column 'event_id': 'e1' is the id of another event \(line 2\)",
        ),
    ],
    ids=[
        "empty-file",
        "header-only",
        "missing-column",
        "no-campaign",
        "unparseable-time",
        "impossible-date",
        "value-not-a-number",
        "empty-cells",
        "another-campaign",
        "id-of-another-event",
    ],
)
def test_each_kind_of_bad_events_file_is_refused_with_its_reason(
    tmp_path: Path, text: str, campaign: str | None, message: str
) -> None:
    with pytest.raises(CampaignError, match=message):
        read_events(_file(tmp_path, text), campaign_id=campaign)


def test_unreadable_inputs_are_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(CampaignError, match=r"^no such file: .*missing.csv"):
        read_events(tmp_path / "missing.csv", campaign_id=CAMPAIGN)
    with pytest.raises(CampaignError, match=r"events.xlsx: events must be a .csv, .parquet"):
        read_events(_file(tmp_path, "x", "events.xlsx"), campaign_id=CAMPAIGN)
    with pytest.raises(CampaignError, match=r"^events.jsonl line 2: not JSON"):
        read_events(_file(tmp_path, '{"a": 1}\n{oops\n', "events.jsonl"), campaign_id=CAMPAIGN)
    with pytest.raises(CampaignError, match=r"^events.jsonl line 1: a list, not a JSON object"):
        read_events(_file(tmp_path, "[1, 2]\n", "events.jsonl"), campaign_id=CAMPAIGN)


def test_exact_repeats_in_a_file_are_one_event(tmp_path: Path) -> None:
    line = "c02,email,open,2024-03-02T10:00:00Z,\n"

    assert len(_events(tmp_path, HEADER + line * 3)) == 1


def test_the_event_kinds_are_the_stores() -> None:
    assert EVENT_KINDS == CAMPAIGN_EVENT_KINDS == (
        "delivered", "open", "click", "conversion", "bounce", "unsubscribe", "complaint"
    )  # fmt: skip


# --- summary ------------------------------------------------------------------------------------


def _sent_frame() -> pd.DataFrame:
    plan = _plan()
    contacted = plan[plan["group_name"] != "holdout"]
    return pd.DataFrame(
        {
            "customer_id": contacted["customer_id"],
            "channel": contacted["channel"],
            "status": "sent",
        }
    )


def _summary(tmp_path: Path, text: str = EVENTS_CSV, **changes: Any) -> dict[str, Any]:
    sent = changes.get("sent", _sent_frame())
    return engagement_summary(_events(tmp_path, text), _plan(), sent)


def test_open_rate_is_unique_opens_over_messages_sent(tmp_path: Path) -> None:
    # c02 opens twice (at two instants): one unique opener of A's four messages.
    text = EVENTS_CSV + "c02,email,open,2024-03-04T10:00:00Z,\n"

    summary = _summary(tmp_path, text)

    a, b = summary["variants"]["A"], summary["variants"]["B"]
    assert (a["sent"], a["unique_customers"]["open"], a["events"]) == (4, 1, 4)
    assert a["open_rate"] == pytest.approx(1 / 4)
    assert a["click_rate"] == pytest.approx(1 / 4) and a["click_to_open"] == pytest.approx(1.0)
    assert a["bounce_rate"] == pytest.approx(1 / 4) and a["conversion_rate"] == 0.0
    assert b["open_rate"] == pytest.approx(1 / 4) and b["conversion_rate"] == pytest.approx(1 / 4)
    assert b["click_to_open"] == 0.0 and b["conversion_value"] == pytest.approx(49.90)
    assert summary["total"]["sent"] == 8 and summary["total"]["open_rate"] == pytest.approx(2 / 8)
    assert summary["channels"]["email"]["open_rate"] == pytest.approx(1 / 4)
    assert summary["cells"]["B"]["sms"]["conversions"] == 1
    assert summary["anomalies"] == {"holdout_events": 0, "unsent_events": 0, "unplanned_events": 0}
    json.dumps(summary, allow_nan=False)  # plain values, ready for JSON


def test_holdout_events_are_an_anomaly_not_a_rate_and_never_crash(tmp_path: Path) -> None:
    text = EVENTS_CSV + (
        "c00,email,open,2024-03-02T10:00:00Z,\n"  # held out: never contacted
        "c05,email,conversion,2024-03-02T10:00:00Z,10\n"
        "c99,email,open,2024-03-02T10:00:00Z,\n"  # not in the plan
        "c02,sms,open,2024-03-02T10:00:00Z,\n"  # c02 was sent an email, not an SMS
    )

    summary = _summary(tmp_path, text)

    assert summary["anomalies"] == {"holdout_events": 2, "unsent_events": 1, "unplanned_events": 1}
    assert "holdout" not in summary["variants"]
    assert summary["total"]["unique_customers"]["open"] == 2
    assert summary["total"]["conversion_value"] == pytest.approx(49.90)


def test_rates_without_messages_sent_are_none_and_unsent_messages_do_not_count(
    tmp_path: Path,
) -> None:
    failed = _sent_frame().assign(status="failed")
    failed.loc[failed["customer_id"] == "c02", "status"] = "sent"

    summary = _summary(tmp_path, sent=failed)

    assert summary["variants"]["A"]["sent"] == 1 and "B" not in summary["variants"]
    assert summary["variants"]["A"]["open_rate"] == 1.0
    assert summary["anomalies"]["unsent_events"] == 3  # c03's two and c04's bounce
    empty = engagement_summary(_events(tmp_path), _plan(), failed.iloc[:0])
    assert empty["total"]["sent"] == 0 and empty["total"]["open_rate"] is None
    assert empty["variants"] == {} and empty["total"]["click_to_open"] is None


def test_the_plan_may_name_its_groups_group(tmp_path: Path) -> None:
    plan = _plan().rename(columns={"group_name": "group"})

    summary = engagement_summary(_events(tmp_path), plan, _sent_frame())

    assert sorted(summary["variants"]) == ["A", "B"]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([f"c{i:02d}" for i in range(12)]), st.sampled_from(EVENT_KINDS)),
        max_size=60,
    )
)
def test_unique_counts_never_exceed_the_messages_sent(draws: list[tuple[str, str]]) -> None:
    plan = _plan()
    channel = dict(zip(plan["customer_id"], plan["channel"].fillna("email"), strict=True))
    events = pd.DataFrame(
        {
            "customer_id": [c for c, _ in draws],
            "channel": [channel.get(c, "email") for c, _ in draws],
            "event": [e for _, e in draws],
            "value": 1.0,
        }
    )

    summary = engagement_summary(events, plan, _sent_frame())

    for metrics in [summary["total"], *summary["variants"].values()]:
        assert all(n <= metrics["sent"] for n in metrics["unique_customers"].values())
        rates = [v for k, v in metrics.items() if k.endswith("_rate")]
        assert all(r is None or 0 <= r <= 1 for r in rates)
    counted = sum(m["events"] for m in summary["variants"].values())
    assert counted + sum(summary["anomalies"].values()) == len(events)


# --- the store ----------------------------------------------------------------------------------


def test_ingesting_the_same_events_twice_records_them_once(store: Store, tmp_path: Path) -> None:
    _campaign(store)
    events = _events(tmp_path)

    assert store.record_events(events) == 5
    assert store.record_events(events) == 0
    assert store.record_events(read_events(tmp_path / "events.csv", campaign_id=CAMPAIGN)) == 0
    more = HEADER + "c02,email,open,2024-03-02T10:00:00+00:00,\nc07,sms,delivered,2024-03-02,\n"
    assert store.record_events(_events(tmp_path, more, "more.csv")) == 1  # only c07's is new

    stored = store.campaign_events(CAMPAIGN)
    assert len(stored) == 6 and stored["event_id"].is_unique
    assert _event_count(store) == 6


def test_events_come_back_in_time_order_with_their_values(store: Store, tmp_path: Path) -> None:
    _campaign(store)
    events = _events(tmp_path)
    store.record_events(events)

    stored = store.campaign_events(CAMPAIGN)

    assert list(stored.columns) == [*EVENT_COLUMNS, "ingested_at"]
    assert stored["occurred_at"].is_monotonic_increasing
    assert str(stored["occurred_at"].dtype) == "datetime64[ns, UTC]"
    assert str(stored["value"].dtype) == "float64"
    expected = events.sort_values(["occurred_at", "event_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(stored[list(EVENT_COLUMNS)], expected)
    assert stored["ingested_at"].notna().all()
    assert store.campaign_events(_campaign(store, "h2").campaign_id).empty
    with pytest.raises(StoreError, match="no campaign 'nope'"):
        store.campaign_events("nope")


def test_event_for_a_customer_not_messaged_is_refused_and_nothing_is_written(
    store: Store, tmp_path: Path
) -> None:
    _campaign(store)
    good = EVENTS_CSV
    cases = [
        ("c00,email,open,2024-03-02T10:00:00Z,\n", r"'c00' is in the holdout, which is never"),
        ("c99,email,open,2024-03-02T10:00:00Z,\n", r"'c99' is not in the campaign's plan"),
        ("c02,sms,open,2024-03-02T10:00:00Z,\n", r"no sms message for customer 'c02' \(planned"),
    ]
    for line, reason in cases:
        events = _events(tmp_path, good + line)
        with pytest.raises(StoreError) as caught:
            store.record_events(events)
        message = str(caught.value)
        assert "the 'open' event of customer" in message and "2024-03-02 10:00:00 UTC" in message
        assert re.search(reason, message), message
        assert message.endswith("nothing was recorded")
        assert _event_count(store) == 0

    other = read_events(_file(tmp_path, good), campaign_id="nope")
    with pytest.raises(StoreError, match=r"unknown campaign: no campaign 'nope'; the latest are"):
        store.record_events(other)
    assert _event_count(store) == 0


def test_record_events_refuses_frames_it_cannot_keep(store: Store, tmp_path: Path) -> None:
    _campaign(store)
    events = _events(tmp_path)
    clash = pd.concat([events, events.iloc[:1].assign(event="click")])
    cases: list[tuple[pd.DataFrame, str]] = [
        (events.drop(columns="event_id"), r"the events lack the column\(s\) event_id"),
        (events.assign(event="opened"), r"unknown event kind 'opened'"),
        (events.assign(customer_id=None), r"the events miss the customer_id in 5 row\(s\)"),
        (clash, r"is given to two different events"),
        (events.assign(value=float("inf")), "value must be a finite number"),
    ]
    for frame, message in cases:
        with pytest.raises(StoreError, match=message):
            store.record_events(frame)
    assert _event_count(store) == 0
    renamed = events.rename(columns={"occurred_at": "timestamp"})
    assert store.record_events(pd.concat([renamed, renamed])) == 5  # exact repeats: once
    assert store.record_events(events.iloc[:0]) == 0


# --- callbacks ----------------------------------------------------------------------------------


def test_callback_resolves_the_idempotency_key_to_the_customer(
    store: Store, tmp_path: Path
) -> None:
    _campaign(store)
    key = idempotency_key(CAMPAIGN, "c02", "email")
    payloads = [
        {"idempotency_key": key, "event": "open", "timestamp": "2024-03-02T10:00:00Z"},
        {"idempotency_key": key, "event": "conversion", "timestamp": "2024-03-03T10:00:00Z",
         "value": 12.5, "provider": "extra fields are ignored"},
    ]  # fmt: skip

    events = events_from_callbacks(store, payloads)

    assert events[["campaign_id", "customer_id", "channel"]].drop_duplicates().values.tolist() == [
        [CAMPAIGN, "c02", "email"]
    ]
    assert events["event"].tolist() == ["open", "conversion"]
    assert events["value"].iloc[1] == 12.5
    # The same open from a provider's export file is the same event.
    exported = _events(tmp_path, HEADER + "c02,email,open,2024-03-02T11:00:00+01:00,\n")
    assert exported["event_id"].iloc[0] == events["event_id"].iloc[0]
    assert store.record_events(events) == 2 and store.record_events(exported) == 0
    lines = "\n".join(json.dumps(p) for p in payloads)
    from_file = read_callbacks(store, _file(tmp_path, lines + "\n", "callbacks.jsonl"))
    pd.testing.assert_frame_equal(from_file, events)


def test_unknown_callback_keys_are_reported_not_dropped(store: Store, tmp_path: Path) -> None:
    _campaign(store)
    known = idempotency_key(CAMPAIGN, "c02", "email")
    held_out = idempotency_key(CAMPAIGN, "c00", "email")  # never queued: no outbox row
    payloads = [
        {"idempotency_key": known, "event": "open", "timestamp": "2024-03-02T10:00:00Z"},
        {"idempotency_key": held_out, "event": "open", "timestamp": "2024-03-02T10:00:00Z"},
        {"idempotency_key": "f" * 64, "event": "click", "timestamp": "2024-03-02T10:00:00Z"},
    ]

    with pytest.raises(CampaignError, match=r"^2 callback\(s\) carry an idempotency key") as err:
        events_from_callbacks(store, payloads)
    assert f"callback 2 ('{held_out[:20]}')" in str(err.value) and "callback 3" in str(err.value)

    text = json.dumps(payloads[0]) + "\n\n" + json.dumps(payloads[2]) + "\n"
    with pytest.raises(CampaignError, match=r"1 callback\(s\).*: callbacks.jsonl line 3 \('fff"):
        read_callbacks(store, _file(tmp_path, text, "callbacks.jsonl"))
    bad = [{**payloads[0], "event": "opened"}]
    with pytest.raises(CampaignError, match=r"^callback 1, column 'event': 'opened' is not"):
        events_from_callbacks(store, bad)
    with pytest.raises(CampaignError, match=r"^callback 1: no 'timestamp' field"):
        events_from_callbacks(store, [{"idempotency_key": known, "event": "open"}])
    with pytest.raises(CampaignError, match=r"^callback 1, field 'timestamp': 1709373600 is not"):
        events_from_callbacks(store, [{**payloads[0], "timestamp": 1709373600}])
    with pytest.raises(CampaignError, match=r"^callback 1: a str, not a JSON object"):
        events_from_callbacks(store, ["open"])  # type: ignore[list-item]
    assert _event_count(store) == 0


# --- migration ----------------------------------------------------------------------------------


def test_the_events_migration_brings_a_0002_database_up_keeping_its_campaigns(
    store_url: str, tmp_path: Path
) -> None:
    with Store(store_url) as opened:
        info = _campaign(opened)
        opened.record_events(_events(tmp_path))
    config = alembic_config(store_url)
    command.downgrade(config, "0002")  # a database from before engagement events
    engine = clv.store.create_store_engine(store_url)
    try:
        with engine.connect() as conn:
            assert "campaign_events" not in sa.inspect(conn).get_table_names()

        with Store(store_url) as reopened:  # the store upgrades what it finds
            assert reopened.schema_revision() == head_revision()
            assert reopened.campaign(CAMPAIGN) == info
            assert reopened.campaign_events(CAMPAIGN).empty
            assert reopened.record_events(_events(tmp_path)) == 5
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            assert compare_metadata(context, metadata) == []  # migrations and clv.store agree
    finally:
        engine.dispose()


# --- the command line ---------------------------------------------------------------------------


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"COLUMNS": "240", "TERMINAL_WIDTH": "240"})


def _no_traceback(output: str) -> None:
    assert "Traceback" not in output and 'File "' not in output


def test_cli_ingests_once_and_prints_the_rates_per_variant(
    runner: CliRunner, tmp_path: Path
) -> None:
    from clv.cli import app

    with Store() as store:  # the CLI's own database, under the isolated CLV_HOME
        _campaign(store)
        _sent(store)
    path = str(_file(tmp_path, EVENTS_CSV))

    first = runner.invoke(app, ["campaign", "events", path, "--campaign", CAMPAIGN])
    again = runner.invoke(app, ["campaign", "events", path, "--campaign", CAMPAIGN])

    assert first.exit_code == 0, first.output
    assert "5 new events, 0 already recorded" in first.output
    assert "engagement per variant" in first.output
    a_row = next(line for line in first.output.splitlines() if line.strip("│ ").startswith("A "))
    assert "25.0%" in a_row and "100.0%" in a_row  # open rate 1/4, click-to-open 1/1
    assert again.exit_code == 0 and "0 new events, 5 already recorded" in again.output

    key = idempotency_key(CAMPAIGN, "c07", "sms")
    callback = {"idempotency_key": key, "event": "click", "timestamp": "2024-03-02T10:00:00Z"}
    callbacks = str(_file(tmp_path, json.dumps(callback) + "\n", "callbacks.jsonl"))
    result = runner.invoke(app, ["campaign", "events", callbacks, "--callbacks"])
    assert result.exit_code == 0, result.output
    assert "1 new events, 0 already recorded" in result.output


def test_cli_bad_input_exits_with_a_message_and_no_traceback(
    runner: CliRunner, tmp_path: Path
) -> None:
    from clv.cli import app

    with Store() as store:
        _campaign(store)
    bad_kind = _file(tmp_path, HEADER + "c02,email,opened,2024-03-02T10:00:00Z,\n")
    holdout = _file(tmp_path, HEADER + "c00,email,open,2024-03-02T10:00:00Z,\n", "holdout.csv")
    unknown = json.dumps({"idempotency_key": "f" * 64, "event": "open", "timestamp": "2024-03-02"})
    callbacks = _file(tmp_path, unknown + "\n", "callbacks.jsonl")
    cases = [
        ([str(bad_kind), "--campaign", CAMPAIGN], 2, "events.csv line 2, column 'event'"),
        ([str(bad_kind)], 2, "missing column(s) 'campaign_id'"),
        ([str(tmp_path / "nope.csv"), "--campaign", CAMPAIGN], 2, "no such file"),
        ([str(holdout), "--campaign", CAMPAIGN], 1, "is in the holdout"),
        ([str(callbacks), "--callbacks"], 2, "carry an idempotency key that no message"),
    ]
    for arguments, code, message in cases:
        result = runner.invoke(app, ["campaign", "events", *arguments])
        assert result.exit_code == code, result.output
        assert message in " ".join(result.output.split()), result.output
        _no_traceback(result.output)
    with Store() as store:
        assert store.campaign_events(CAMPAIGN).empty
