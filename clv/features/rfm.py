"""Recency, frequency, monetary value and tenure as of a cut-off, as lifetimes defines them.

Transactions are first rolled up to *purchase days* per customer (a day with positive gross
sales), as ``lifetimes.utils.summary_data_from_transaction_data(freq="D")`` does:

* ``frequency``: purchase days after the first one (repeat purchases);
* ``recency``: days between the first and the last purchase day (0 without repeats);
* ``T``: days between the first purchase day and the cut-off day (the customer's age);
* ``monetary_value``: mean gross sales of the repeat purchase days (0 without repeats).

Variants used by the models sit beside them (days since last purchase, totals, returns). Returns
(negative amounts) never create purchase days; they lower ``net_total`` and raise ``return_rate``.

Heavy group-bys run in Polars; pandas is used at the edges only.
"""

from __future__ import annotations

import pandas as pd
import polars as pl

#: Columns produced by :func:`rfm_features`, in order.
RFM_COLUMNS: tuple[str, ...] = (
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "days_since_last_purchase",
    "purchase_days",
    "gross_total",
    "net_total",
    "return_total",
    "return_rate",
    "avg_purchase_day_value",
)


def history(transactions: pd.DataFrame | pl.DataFrame, cutoff: pd.Timestamp) -> pl.DataFrame:
    """Rows at or before ``cutoff`` as a Polars frame (the only rows features may see).

    Parameters
    ----------
    transactions : DataFrame
        Validated transactions (see ``clv.data.contract``), pandas or Polars.
    cutoff : Timestamp
        Rows after this instant are dropped.

    Returns
    -------
    polars.DataFrame
        The visible history.
    """
    frame = transactions if isinstance(transactions, pl.DataFrame) else pl.from_pandas(transactions)
    # A fixed row order makes every downstream float sum add its terms in the same order, so the
    # features are bit-for-bit reproducible whatever order the input came in.
    return frame.filter(pl.col("timestamp") <= pd.Timestamp(cutoff).to_pydatetime()).sort(
        "customer_id", "timestamp", "amount", maintain_order=True
    )


def purchase_days(hist: pl.DataFrame) -> pl.DataFrame:
    """Roll history up to one row per customer and calendar day with gross and returned value.

    ``hist`` comes sorted from :func:`history`; groups keep that order, so every float sum adds
    its terms in the same order on every run (hash group-bys and joins would otherwise shuffle
    the order and change the last bits).
    """
    return (
        hist.with_columns(pl.col("timestamp").dt.date().alias("day"))
        .group_by("customer_id", "day", maintain_order=True)
        .agg(
            pl.col("amount").clip(lower_bound=0).sum().alias("gross"),
            pl.col("amount").clip(upper_bound=0).sum().abs().alias("returned"),
        )
    )


def rfm_features(
    transactions: pd.DataFrame | pl.DataFrame, *, cutoff: pd.Timestamp
) -> pd.DataFrame:
    """RFM features per customer as of ``cutoff``.

    Parameters
    ----------
    transactions : DataFrame
        Validated transactions (see ``clv.data.contract``).
    cutoff : Timestamp
        Rows after this instant are ignored.

    Returns
    -------
    DataFrame
        One row per customer with a purchase on or before ``cutoff``, indexed by ``customer_id``
        (sorted), columns :data:`RFM_COLUMNS`. Time is in days.
    """
    cutoff = pd.Timestamp(cutoff)
    days = purchase_days(history(transactions, cutoff))
    cutoff_day = pl.lit(cutoff.date())
    buying = days.filter(pl.col("gross") > 0)
    first = buying.group_by("customer_id").agg(
        pl.col("day").min().alias("first_day"),
        pl.col("day").max().alias("last_day"),
        pl.len().alias("purchase_days"),
    )
    with_first = buying.join(
        first.select("customer_id", "first_day"), on="customer_id", maintain_order="left"
    )
    repeat_value = (
        with_first.filter(pl.col("day") > pl.col("first_day"))
        .group_by("customer_id")
        .agg(pl.col("gross").mean().alias("monetary_value"))
    )
    totals = days.group_by("customer_id").agg(
        pl.col("gross").sum().alias("gross_total"),
        pl.col("returned").sum().alias("return_total"),
    )
    out = (
        first.join(repeat_value, on="customer_id", how="left")
        .join(totals, on="customer_id", how="left")
        .with_columns(
            (pl.col("purchase_days") - 1).alias("frequency"),
            (pl.col("last_day") - pl.col("first_day")).dt.total_days().alias("recency"),
            (cutoff_day - pl.col("first_day")).dt.total_days().alias("T"),
            (cutoff_day - pl.col("last_day")).dt.total_days().alias("days_since_last_purchase"),
            pl.col("monetary_value").fill_null(0.0),
            (pl.col("gross_total") - pl.col("return_total")).alias("net_total"),
            (pl.col("return_total") / pl.col("gross_total")).alias("return_rate"),
            (pl.col("gross_total") / pl.col("purchase_days")).alias("avg_purchase_day_value"),
        )
        .sort("customer_id")
    )
    frame = out.select("customer_id", *RFM_COLUMNS).to_pandas().set_index("customer_id")
    int_cols = ["frequency", "recency", "T", "days_since_last_purchase", "purchase_days"]
    frame[int_cols] = frame[int_cols].astype("float64")
    return frame
