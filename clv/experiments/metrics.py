"""Per-unit experiment metrics from the transactions: revenue, orders, conversion, pre-period spend.

``analyze`` wants one row per unit. For a customer experiment that row comes from the
transactions (the contract's ``customer_id``, ``timestamp``, ``amount``): what each assigned
customer spent during the experiment window, and — the CUPED covariate — what they spent in the
same length of time (or ``pre_period_days``) before it. Customers who bought nothing have zeros,
not missing rows: leaving them out would bias every mean upwards.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from clv.experiments.errors import ExperimentInputError

__all__ = ["METRIC_COLUMNS", "unit_metrics"]

#: Columns of :func:`unit_metrics`' result, in order.
METRIC_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "variant",
    "revenue",
    "orders",
    "converted",
    "pre_spend",
    "pre_orders",
)


def _instant(value: str | dt.date | pd.Timestamp, name: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ExperimentInputError(f"{name} {value!r} is not a date or date-time") from None
    if stamp is pd.NaT:
        raise ExperimentInputError(f"{name} is missing")
    if stamp.tzinfo is not None:  # the contract's timestamps are naive UTC
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp


def _assignments(assignments: pd.Series | pd.DataFrame, variant_col: str) -> pd.Series:
    if isinstance(assignments, pd.DataFrame):
        missing = [c for c in ("customer_id", variant_col) if c not in assignments.columns]
        if missing:
            raise ExperimentInputError(
                f"assignments need columns customer_id and {variant_col!r} "
                f"(missing: {', '.join(missing)})"
            )
        series = assignments.set_index("customer_id")[variant_col]
    elif isinstance(assignments, pd.Series):
        series = assignments
    else:
        raise ExperimentInputError("assignments must be a table or a series indexed by customer")
    ids = series.index.astype(str)
    if ids.has_duplicates:
        first = ids[ids.duplicated()][0]
        raise ExperimentInputError(f"customer {first!r} is assigned more than once")
    if series.isna().any():
        first = ids[series.isna().to_numpy()][0]
        raise ExperimentInputError(f"customer {first!r} has no variant")
    return pd.Series(series.astype(str).to_numpy(), index=pd.Index(ids, name="customer_id"))


def unit_metrics(
    assignments: pd.Series | pd.DataFrame,
    transactions: pd.DataFrame,
    *,
    start: str | dt.date | pd.Timestamp,
    end: str | dt.date | pd.Timestamp,
    pre_period_days: float | None = None,
    variant_col: str = "variant",
) -> pd.DataFrame:
    """One row per assigned customer: in-experiment revenue and orders, and pre-period spend.

    Parameters
    ----------
    assignments : Series or DataFrame
        Customer id → variant (as :func:`clv.experiments.assign` returns), or a table with
        ``customer_id`` and ``variant_col``.
    transactions : DataFrame
        Contract transactions (``customer_id``, ``timestamp`` in naive UTC, ``amount``;
        ``order_id`` when present counts orders, otherwise each row is one).
    start, end : date or Timestamp
        The experiment window ``[start, end)``; a date means its midnight UTC.
    pre_period_days : float, optional
        Length of the pre-period ``[start - pre_period_days, start)`` for ``pre_spend``;
        defaults to the window's own length.
    variant_col : str
        The variant column of a table of assignments.

    Returns
    -------
    DataFrame
        Columns :data:`METRIC_COLUMNS`: ``revenue`` (net, refunds included), ``orders``,
        ``converted`` (1 if any order in the window), ``pre_spend`` and ``pre_orders``; zeros
        for customers without transactions. Transactions of unassigned customers are ignored.
    """
    begin, finish = _instant(start, "start"), _instant(end, "end")
    if finish <= begin:
        raise ExperimentInputError(f"the window is empty: end {finish} is not after start {begin}")
    window = finish - begin
    pre = window if pre_period_days is None else pd.Timedelta(days=float(pre_period_days))
    if pre <= pd.Timedelta(0):
        raise ExperimentInputError(f"pre_period_days must be positive (got {pre_period_days!r})")
    missing = [c for c in ("customer_id", "timestamp", "amount") if c not in transactions.columns]
    if missing:
        raise ExperimentInputError(f"transactions lack column(s) {', '.join(missing)}")
    assigned = _assignments(assignments, variant_col)

    ids = transactions["customer_id"].astype(str)
    stamps = pd.to_datetime(transactions["timestamp"])
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    amounts = transactions["amount"].to_numpy(dtype=float)
    order_key = (
        transactions["order_id"].astype(str)
        if "order_id" in transactions.columns
        else pd.Series(np.arange(len(transactions)).astype(str), index=transactions.index)
    )
    relevant = ids.isin(assigned.index).to_numpy()
    in_window = relevant & (stamps >= begin).to_numpy() & (stamps < finish).to_numpy()
    in_pre = relevant & (stamps >= begin - pre).to_numpy() & (stamps < begin).to_numpy()

    def per_customer(mask: np.ndarray) -> tuple[pd.Series, pd.Series]:
        part = pd.DataFrame({"customer_id": ids[mask], "amount": amounts[mask]})
        part["order"] = order_key[mask].to_numpy()
        grouped = part.groupby("customer_id", sort=False)
        spend = grouped["amount"].sum()
        # A return repeats its order's id: an order counts once, and only if its net is positive.
        net_by_order = part.groupby(["customer_id", "order"], sort=False)["amount"].sum()
        orders = (net_by_order > 0).groupby(level=0, sort=False).sum()
        return (
            spend.reindex(assigned.index, fill_value=0.0),
            orders.reindex(assigned.index, fill_value=0),
        )

    revenue, orders = per_customer(in_window)
    pre_spend, pre_orders = per_customer(in_pre)
    return pd.DataFrame(
        {
            "customer_id": assigned.index.to_numpy(),
            "variant": assigned.to_numpy(),
            "revenue": revenue.to_numpy(dtype=float),
            "orders": orders.to_numpy(dtype=np.int64),
            "converted": (orders.to_numpy() > 0).astype(np.int64),
            "pre_spend": pre_spend.to_numpy(dtype=float),
            "pre_orders": pre_orders.to_numpy(dtype=np.int64),
        },
        columns=list(METRIC_COLUMNS),
    )
