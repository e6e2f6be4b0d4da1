"""Send times from each customer's own habits, in their time zone; content fields for templates."""

from __future__ import annotations

import pandas as pd
import pytest

from clv.campaigns.errors import CampaignError
from clv.campaigns.personalisation import CONTENT_FIELDS, content_fields, send_times

START = pd.Timestamp("2026-03-02 00:00")  # a Monday
END = pd.Timestamp("2026-03-16 00:00")


def _tx(rows: list[tuple[str, str, float, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount", "product_category"])
    return frame.assign(timestamp=pd.to_datetime(frame["timestamp"]))


def test_a_customer_is_messaged_on_their_usual_weekday_and_hour_in_their_time_zone() -> None:
    # Thursdays at 19:00 UTC = 20:00 in Berlin (winter time).
    thursdays = [("a", f"2026-02-{d:02d} 19:10", 10.0, "home") for d in (5, 12, 19, 26)]
    customers = pd.DataFrame({"customer_id": ["a"], "region": ["central"]})

    at = send_times(
        _tx(thursdays),
        customers,
        start=START,
        end=END,
        region_timezones={"central": "Europe/Berlin"},
    )

    assert at["a"] == pd.Timestamp("2026-03-05 19:00")  # Thursday 20:00 Berlin, in UTC


def test_hours_outside_the_sending_window_are_moved_into_it() -> None:
    nights = [("a", f"2026-02-{d:02d} 02:30", 10.0, "home") for d in (3, 10, 17, 24)]  # Tuesdays

    at = send_times(_tx(nights), pd.DataFrame({"customer_id": ["a"]}), start=START, end=END)

    assert at["a"] == pd.Timestamp("2026-03-03 08:00")


def test_a_customer_with_few_purchases_follows_their_segment() -> None:
    habitual = [(c, f"2026-02-{d:02d} 12:00", 5.0, "home") for c in "ab" for d in (6, 13, 20)]
    rare = [("c", "2026-02-03 09:00", 5.0, "home")]
    customers = pd.DataFrame({"customer_id": ["a", "b", "c"]})
    segments = pd.Series({"a": "loyal", "b": "loyal", "c": "loyal"})

    at = send_times(_tx(habitual + rare), customers, start=START, end=END, segments=segments)

    assert at["c"] == at["a"] == pd.Timestamp("2026-03-06 12:00")  # Fridays at noon


def test_every_send_time_lies_in_the_window() -> None:
    tx = _tx([("a", "2026-02-01 15:00", 1.0, "x")] * 3)  # Sundays

    at = send_times(
        tx,
        pd.DataFrame({"customer_id": ["a", "new"]}),
        start=START,
        end=START + pd.Timedelta(days=2),
    )

    assert ((at >= START) & (at < START + pd.Timedelta(days=2))).all()


def test_bad_windows_and_zones_are_refused() -> None:
    customers = pd.DataFrame({"customer_id": ["a"], "region": ["x"]})
    with pytest.raises(CampaignError, match="window is empty"):
        send_times(_tx([]), customers, start=END, end=START)
    with pytest.raises(CampaignError, match="unknown time zone 'Mars/Olympus'"):
        send_times(_tx([]), customers, start=START, end=END, region_timezones={"x": "Mars/Olympus"})


def test_content_fields_come_from_history_scores_and_contacts() -> None:
    tx = _tx(
        [
            ("a", "2026-01-01", 10.0, "home"),
            ("a", "2026-01-11", 50.0, "outdoor"),
            ("a", "2026-01-21", 5.0, "home"),
            ("a", "2026-04-01", 999.0, "beauty"),  # after the start: not used
        ]
    )
    scores = pd.DataFrame({"customer_id": ["a", "b"], "predicted_clv": [120.0, 0.0]})

    fields = content_fields(
        pd.DataFrame({"customer_id": ["a", "b"], "eco_preference": [0.8, 0.1]}),
        tx,
        scores=scores,
        segments=pd.Series({"a": "eco loyalists"}),
        contacts=pd.DataFrame({"customer_id": ["a"], "first_name": ["Ada"]}),
        start=START,
    ).set_index("customer_id")

    assert list(fields.reset_index().columns) == list(CONTENT_FIELDS)
    assert fields.loc["a", "first_name"] == "Ada" and fields.loc["b", "first_name"] == ""
    assert fields.loc["a", "top_category"] == "outdoor"
    assert fields.loc["a", "segment"] == "eco loyalists"
    # Last purchase 2026-01-21, a 10-day rhythm: due 2026-01-31, so "now" (the start).
    assert fields.loc["a", "predicted_next_purchase"] == "2026-03-02"
    assert fields.loc["b", "unsubscribe_url"].endswith("?c=b")
