"""Seasonal context of a cut-off: what the calendar and last year say about the coming horizon.

Customer behaviour features describe the past; spend in the horizon also depends on *when* the
horizon falls (a December horizon outsells a February one). These features carry that:

* calendar position of the horizon (day of year of its middle, as sine and cosine) and the number
  of its days inside the November-December peak; both depend on the cut-off date only, and are
  missing until the history covers a year before the horizon (no season seen yet);
* last year's seasonal lift for the whole base: gross sales in the same window one year earlier
  divided by sales in the equally long window just before it (missing without a year of history);
* each customer's own gross sales in the same window one year earlier.

Only rows at or before the cut-off are read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl

from clv.features.rfm import Transactions, history


def _peak_days(start: pd.Timestamp, days: int) -> int:
    dates = pd.date_range(start.normalize() + pd.Timedelta(days=1), periods=days, freq="D")
    return int(((dates.month == 11) & (dates.day >= 15) | (dates.month == 12)).sum())


def seasonal_features(
    transactions: Transactions, *, cutoff: pd.Timestamp, horizon_days: int
) -> pd.DataFrame:
    """Seasonal features per customer as of ``cutoff`` for a horizon of ``horizon_days``.

    Parameters
    ----------
    transactions : DataFrame
        Validated transactions.
    cutoff : Timestamp
        Rows after this instant are ignored.
    horizon_days : int
        Length of the coming window the features describe.

    Returns
    -------
    DataFrame
        Indexed by ``customer_id`` (customers with sales on or before ``cutoff``).
    """
    cutoff = pd.Timestamp(cutoff)
    sales = history(transactions, cutoff).filter(pl.col("amount") > 0)
    year_ago = cutoff - pd.Timedelta(days=365)
    window_end = year_ago + pd.Timedelta(days=horizon_days)
    before_start = year_ago - pd.Timedelta(days=horizon_days)
    ts = pl.col("timestamp")
    in_window = (ts > year_ago.to_pydatetime()) & (ts <= window_end.to_pydatetime())
    in_before = (ts > before_start.to_pydatetime()) & (ts <= year_ago.to_pydatetime())
    per_customer = sales.group_by("customer_id").agg(
        pl.col("amount").filter(in_window).sum().alias("spend_same_window_last_year")
    )
    totals = sales.select(
        pl.col("amount").filter(in_window).sum().alias("window"),
        pl.col("amount").filter(in_before).sum().alias("before"),
        ts.min().alias("first"),
    ).row(0, named=True)
    has_year = totals["first"] is not None and pd.Timestamp(totals["first"]) <= before_start
    lift = totals["window"] / totals["before"] if has_year and totals["before"] > 0 else np.nan
    middle = cutoff + pd.Timedelta(days=horizon_days / 2)
    angle = 2 * np.pi * middle.dayofyear / 365.25
    out = per_customer.sort("customer_id").to_pandas().set_index("customer_id")
    if not has_year:
        out["spend_same_window_last_year"] = np.nan
    out["base_seasonal_lift_last_year"] = lift
    # Without a year of history no season has been seen: calendar position would then only tell
    # the training windows apart, and trees would use it as a window id that does not carry
    # over to the horizon being scored. Leave it missing until a year of history exists.
    out["horizon_doy_sin"] = np.sin(angle) if has_year else np.nan
    out["horizon_doy_cos"] = np.cos(angle) if has_year else np.nan
    out["horizon_peak_days"] = float(_peak_days(cutoff, horizon_days)) if has_year else np.nan
    return out
