"""What each message says and when it goes: content fields and send-time choice per customer.

**Send time.** A customer's own habits decide: the weekday and hour at which they bought most
often (in their region's time zone), from the transactions before the campaign. With fewer than
``min_orders`` purchases their segment's habit is used, and with no segment habit the campaign's
start. The time is the first slot of that weekday and hour at or after the campaign start (and
before its end), clipped to the campaign's sending hours; it is returned in UTC.

**Content.** The fields a template may use: ``first_name`` (from the contacts, empty when
unknown), ``top_category`` (the category with the most spend), ``eco_preference``, ``segment``,
``predicted_clv``, ``predicted_next_purchase`` (the last purchase plus the customer's mean gap
between purchase days, never before the campaign start) and ``unsubscribe_url``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from clv.campaigns.errors import CampaignError

if TYPE_CHECKING:
    import dask.dataframe as dd

__all__ = ["CONTENT_FIELDS", "content_fields", "customer_habits", "purchase_summary", "send_times"]

#: The personalisation fields every message's template may use.
CONTENT_FIELDS: tuple[str, ...] = (
    "customer_id",
    "first_name",
    "top_category",
    "eco_preference",
    "segment",
    "predicted_clv",
    "predicted_next_purchase",
    "unsubscribe_url",
)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CampaignError(
            f"unknown time zone {name!r} (use an IANA name, e.g. Europe/Berlin)"
        ) from None


def _local_zones(
    customers: pd.DataFrame, region_timezones: Mapping[str, str] | None, default_tz: str
) -> pd.Series:
    ids = customers["customer_id"].astype(str)
    zones = pd.Series(default_tz, index=pd.Index(ids, name="customer_id"))
    if region_timezones and "region" in customers.columns:
        mapped = customers["region"].astype(str).map(dict(region_timezones))
        zones = pd.Series(
            np.where(mapped.notna(), mapped, default_tz), index=zones.index, dtype=object
        )
    for name in set(zones):
        _zone(str(name))
    return zones


def _is_dask(frame: object) -> bool:
    """A dask DataFrame (checked without importing Dask on the one-machine path)."""
    return type(frame).__module__.startswith("dask")


def customer_habits(
    transactions: pd.DataFrame, zones: pd.Series, before: pd.Timestamp
) -> pd.DataFrame:
    """Per customer of ``zones``: purchases before ``before``, most common local weekday and hour.

    A per-customer computation: on rows partitioned by customer, the partitions' results put
    together are the whole table's (what :mod:`clv.distributed.campaigns` does).

    Parameters
    ----------
    transactions : DataFrame
        Contract transactions (``customer_id``, ``timestamp`` in naive UTC).
    zones : Series
        IANA time zone per customer id: the customers to describe.
    before : Timestamp
        Purchases from this instant on are left out.

    Returns
    -------
    DataFrame
        ``orders``, ``weekday`` and ``hour``, indexed by ``customer_id``; customers without a
        purchase are absent.
    """
    tx = transactions.loc[transactions["timestamp"] < before, ["customer_id", "timestamp"]]
    tx = tx.assign(customer_id=tx["customer_id"].astype(str))
    tx = tx[tx["customer_id"].isin(zones.index)]
    parts = []
    for zone, ids in zones.groupby(zones, sort=True).groups.items():
        mine = tx[tx["customer_id"].isin(ids)]
        local = mine["timestamp"].dt.tz_localize("UTC").dt.tz_convert(str(zone))
        parts.append(
            pd.DataFrame(
                {
                    "customer_id": mine["customer_id"].to_numpy(),
                    "weekday": local.dt.weekday.to_numpy(),
                    "hour": local.dt.hour.to_numpy(),
                }
            )
        )
    local_tx = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["customer_id", "weekday", "hour"])
    )
    counts = local_tx.groupby("customer_id").size().rename("orders")

    def mode(column: str) -> pd.Series:
        tally = local_tx.groupby(["customer_id", column]).size().rename("n").reset_index()
        # Most frequent; ties go to the earliest weekday / hour, so the result is deterministic.
        tally = tally.sort_values(["customer_id", "n", column], ascending=[True, False, True])
        return tally.drop_duplicates("customer_id").set_index("customer_id")[column]

    return pd.concat([counts, mode("weekday"), mode("hour")], axis=1)


def _most_common(values: pd.Series) -> float:
    """The most frequent value; ties go to the smallest."""
    counts = values.value_counts().sort_index()
    return float(counts.idxmax())


def send_times(
    transactions: pd.DataFrame | dd.DataFrame,
    customers: pd.DataFrame,
    *,
    start: pd.Timestamp,
    end: pd.Timestamp,
    segments: pd.Series | None = None,
    region_timezones: Mapping[str, str] | None = None,
    default_tz: str = "UTC",
    earliest_hour: int = 8,
    latest_hour: int = 20,
    min_orders: int = 3,
) -> pd.Series:
    """The send instant (naive UTC) per customer, from their own purchase weekday and hour.

    Parameters
    ----------
    transactions : DataFrame or dask DataFrame
        Contract transactions (``customer_id``, ``timestamp`` in naive UTC); a dask DataFrame
        with every customer's rows in one partition is summarised on its cluster.
    customers : DataFrame
        ``customer_id`` and optionally ``region``.
    start, end : Timestamp
        The campaign's sending window (naive UTC); every send time lies in ``[start, end)``.
    segments : Series, optional
        Segment per customer id: the fallback habit for customers with few purchases.
    region_timezones : mapping, optional
        Region → IANA time zone; other regions use ``default_tz``.
    default_tz : str
        Time zone of customers without a mapped region.
    earliest_hour, latest_hour : int
        Local sending hours: a preferred hour outside them is moved to the nearest one.
    min_orders : int
        Purchases a customer needs for their own habit to count.

    Returns
    -------
    Series
        ``send_at`` (naive UTC) indexed by ``customer_id``.
    """
    begin, finish = pd.Timestamp(start), pd.Timestamp(end)
    if finish <= begin:
        raise CampaignError(f"the sending window is empty: end {finish} is not after {begin}")
    if not 0 <= earliest_hour <= latest_hour <= 23:
        raise CampaignError(
            f"sending hours must satisfy 0 <= earliest <= latest <= 23 "
            f"(got {earliest_hour}..{latest_hour})"
        )
    zones = _local_zones(customers, region_timezones, default_tz)
    if _is_dask(transactions):
        from clv.distributed.campaigns import customer_habits_dask

        found = customer_habits_dask(cast("dd.DataFrame", transactions), zones, begin)
    else:
        found = customer_habits(cast(pd.DataFrame, transactions), zones, begin)
    habits = found.reindex(zones.index)
    own = habits["orders"].fillna(0).to_numpy() >= min_orders
    weekday = habits["weekday"].where(own)
    hour = habits["hour"].where(own)
    if segments is not None:
        seg = segments.astype(str).reindex(zones.index)
        known = habits[own].assign(segment=seg[own].to_numpy())
        by_segment = known.groupby("segment")[["weekday", "hour"]].agg(_most_common)
        fallback = by_segment.reindex(seg.to_numpy())
        weekday = weekday.fillna(pd.Series(fallback["weekday"].to_numpy(), index=zones.index))
        hour = hour.fillna(pd.Series(fallback["hour"].to_numpy(), index=zones.index))
    out = pd.Series(pd.NaT, index=zones.index, dtype="datetime64[ns]", name="send_at")
    for zone, ids in zones.groupby(zones, sort=True).groups.items():
        tz = str(zone)
        local_start = begin.tz_localize("UTC").tz_convert(tz)
        wd = weekday.loc[ids].fillna(local_start.weekday()).to_numpy(dtype=int)
        hr = hour.loc[ids].fillna(max(local_start.hour, earliest_hour)).to_numpy(dtype=int)
        hr = np.clip(hr, earliest_hour, latest_hour)
        midnight = local_start.normalize()
        days_ahead = (wd - local_start.weekday()) % 7
        first = midnight + pd.to_timedelta(days_ahead, unit="D") + pd.to_timedelta(hr, unit="h")
        local = pd.DatetimeIndex(first)
        # That slot already passed this week: the same slot next week.
        local = local.where(local >= local_start, local + pd.Timedelta(days=7))
        utc = local.tz_convert("UTC").tz_localize(None)
        # A window too short for the slot: send at the start rather than after the end.
        utc = utc.where(utc < finish, begin)
        out.loc[ids] = utc.to_numpy()
    return out


def content_fields(
    customers: pd.DataFrame,
    transactions: pd.DataFrame | dd.DataFrame,
    *,
    scores: pd.DataFrame,
    segments: pd.Series | None = None,
    contacts: pd.DataFrame | None = None,
    start: pd.Timestamp,
    unsubscribe_base_url: str = "https://example.invalid/unsubscribe",
) -> pd.DataFrame:
    """The personalisation fields of :data:`CONTENT_FIELDS`, one row per customer of ``scores``.

    Parameters
    ----------
    customers : DataFrame
        Contract customers (``eco_preference`` used when present).
    transactions : DataFrame or dask DataFrame
        Contract transactions before the campaign (``product_category`` used when present); a
        dask DataFrame with every customer's rows in one partition is summarised on its cluster.
    scores : DataFrame
        ``customer_id`` and ``predicted_clv`` (the champion's scores).
    segments : Series, optional
        Segment name per customer id.
    contacts : DataFrame, optional
        ``customer_id`` and ``first_name``.
    start : Timestamp
        The campaign start: history after it is not used.
    unsubscribe_base_url : str
        ``unsubscribe_url`` is this plus ``?c=<customer_id>``.

    Returns
    -------
    DataFrame
        Columns :data:`CONTENT_FIELDS`, indexed like ``scores`` rows (``customer_id`` column).
    """
    ids = scores["customer_id"].astype(str)
    index = pd.Index(ids, name="customer_id")
    if _is_dask(transactions):
        from clv.distributed.campaigns import purchase_summary_dask

        summary = purchase_summary_dask(cast("dd.DataFrame", transactions), index, start)
    else:
        summary = purchase_summary(cast(pd.DataFrame, transactions), index, start)
    top = summary["top_category"]
    last = summary["last_day"]
    # Whole days from the first purchase day to the last (vectorised: no Python per customer).
    span = (last - summary["first_day"]).dt.days
    gaps = span / (summary["purchase_days"] - 1).replace(0, np.nan)
    due = last + pd.to_timedelta(gaps.fillna(30.0), unit="D")
    next_purchase = due.where(due >= start, pd.Timestamp(start))
    customer_frame = customers.assign(customer_id=customers["customer_id"].astype(str))
    customer_frame = customer_frame.drop_duplicates("customer_id").set_index("customer_id")
    eco = (
        customer_frame["eco_preference"].reindex(index)
        if "eco_preference" in customer_frame.columns
        else pd.Series(np.nan, index=index)
    )
    names = pd.Series("", index=index, dtype=object)
    if contacts is not None and "first_name" in contacts.columns:
        book = contacts.assign(customer_id=contacts["customer_id"].astype(str))
        first = book.drop_duplicates("customer_id").set_index("customer_id")["first_name"]
        names = first.reindex(index).fillna("").astype(str)
    segment = (
        segments.astype(str).reindex(index).fillna("")
        if segments is not None
        else pd.Series("", index=index)
    )
    fields = pd.DataFrame(
        {
            "customer_id": ids.to_numpy(),
            "first_name": names.to_numpy(),
            "top_category": top.reindex(index).fillna("").astype(str).to_numpy(),
            "eco_preference": eco.to_numpy(dtype=float),
            "segment": segment.to_numpy(),
            "predicted_clv": scores["predicted_clv"].to_numpy(dtype=float),
            "predicted_next_purchase": next_purchase.reindex(index)
            .fillna(pd.Timestamp(start))
            .dt.strftime("%Y-%m-%d")
            .to_numpy(),
            "unsubscribe_url": [f"{unsubscribe_base_url}?c={c}" for c in ids],
        },
        columns=list(CONTENT_FIELDS),
    )
    return fields


def purchase_summary(
    transactions: pd.DataFrame, ids: pd.Index, start: pd.Timestamp
) -> pd.DataFrame:
    """Per customer of ``ids``: top category by spend, first and last purchase day, purchase days.

    A per-customer computation, like :func:`customer_habits`.

    Parameters
    ----------
    transactions : DataFrame
        Contract transactions (``product_category`` used when present).
    ids : Index
        The customers to describe (strings).
    start : Timestamp
        History from this instant on is left out.

    Returns
    -------
    DataFrame
        ``top_category`` (missing without a category column), ``first_day``, ``last_day`` and
        ``purchase_days``, indexed by ``customer_id``; customers without history are absent.
    """
    tx = transactions.loc[transactions["timestamp"] < start]
    tx = tx.assign(customer_id=tx["customer_id"].astype(str))
    # Only the customers asked for: everything below is per customer.
    tx = tx[tx["customer_id"].isin(ids)]
    if "product_category" in tx.columns:
        totals = tx.groupby(["customer_id", "product_category"], observed=True)["amount"].sum()
        spend = totals.reset_index().sort_values(
            ["customer_id", "amount", "product_category"], ascending=[True, False, True]
        )
        top = spend.drop_duplicates("customer_id").set_index("customer_id")["product_category"]
        top = top.astype(object)
    else:
        top = pd.Series(dtype=object)
    days = tx.assign(day=tx["timestamp"].dt.normalize())[["customer_id", "day"]]
    days = days.drop_duplicates().sort_values(["customer_id", "day"])
    by_customer = days.groupby("customer_id")["day"]
    out = pd.DataFrame(
        {
            "first_day": by_customer.min(),
            "last_day": by_customer.max(),
            "purchase_days": by_customer.size().astype("int64"),
        }
    )
    out.index.name = "customer_id"
    out.insert(0, "top_category", top.reindex(out.index).astype(object))
    return out
