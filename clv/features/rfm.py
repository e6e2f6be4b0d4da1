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

from collections.abc import Sequence
from typing import TypeAlias

import pandas as pd
import polars as pl

#: Columns every history keeps, and its sort order.
HISTORY_KEYS: tuple[str, ...] = ("customer_id", "timestamp", "amount")

#: Optional columns a feature family reads, and those of them that hold labels.
OPTIONAL_COLUMNS: tuple[str, ...] = ("is_eco_product", "carbon_kg")
LABEL_COLUMNS: tuple[str, ...] = ("product_category", "channel")

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


class VisibleHistory:
    """The rows at or before one cut-off, filtered and sorted once for every feature family.

    :func:`clv.features.build_features` builds one and passes it to each family instead of the
    raw transactions: on 9M rows the sort costs seconds, and the families would otherwise repeat
    it (and the roll-up to purchase days) one by one. It keeps only the columns some family
    reads, with the label columns (category, channel) as categoricals, which a sort moves far
    more cheaply than strings. The rows and their order are those each family would select.

    Parameters
    ----------
    transactions : DataFrame
        Validated transactions, pandas or Polars.
    cutoff : Timestamp
        Rows after this instant are dropped.
    """

    def __init__(self, transactions: pd.DataFrame | pl.DataFrame, cutoff: pd.Timestamp) -> None:
        self.cutoff = pd.Timestamp(cutoff)
        source = _polars(transactions)
        labels = [c for c in LABEL_COLUMNS if c in source.columns]
        others = [c for c in OPTIONAL_COLUMNS if c in source.columns]
        categorical = [pl.col(c).cast(pl.Categorical) for c in labels]
        self.frame = _visible(source.select(*HISTORY_KEYS, *others, *categorical), self.cutoff)
        self._days: pl.DataFrame | None = None

    def columns(self, columns: Sequence[str] = ()) -> pl.DataFrame:
        """The visible rows in order, with the keys and whichever of ``columns`` exist."""
        present = [c for c in columns if c in self.frame.columns and c not in HISTORY_KEYS]
        return self.frame.select(*HISTORY_KEYS, *present)

    def purchase_days(self) -> pl.DataFrame:
        """:func:`purchase_days` of the history, computed once."""
        if self._days is None:
            self._days = purchase_days(self.columns())
        return self._days


#: What a feature family accepts: raw transactions, or the shared history of its cut-off.
Transactions: TypeAlias = pd.DataFrame | pl.DataFrame | VisibleHistory


def _polars(transactions: pd.DataFrame | pl.DataFrame) -> pl.DataFrame:
    return transactions if isinstance(transactions, pl.DataFrame) else pl.from_pandas(transactions)


def _visible(frame: pl.DataFrame, cutoff: pd.Timestamp) -> pl.DataFrame:
    """The rows of ``frame`` at or before ``cutoff``, sorted by :data:`HISTORY_KEYS`.

    A fixed row order makes every downstream float sum add its terms in the same order, so the
    features are bit-for-bit reproducible whatever order the input came in. The sort is eager:
    it flags ``customer_id`` as sorted, which sends the families' group-bys down the sorted path
    (a lazily collected sort drops the flag, and the hash path's sums depend on row order).
    """
    return frame.filter(pl.col("timestamp") <= pd.Timestamp(cutoff).to_pydatetime()).sort(
        *HISTORY_KEYS, maintain_order=True
    )


def _checked(shared: VisibleHistory, cutoff: pd.Timestamp) -> VisibleHistory:
    """``shared``, refused unless it was built for ``cutoff``."""
    if shared.cutoff != pd.Timestamp(cutoff):
        raise ValueError(f"the history was built for the cut-off {shared.cutoff}, not {cutoff}")
    return shared


def history(
    transactions: Transactions,
    cutoff: pd.Timestamp,
    columns: Sequence[str] = (),
) -> pl.DataFrame:
    """Rows at or before ``cutoff`` as a Polars frame (the only rows features may see).

    Parameters
    ----------
    transactions : DataFrame or VisibleHistory
        Validated transactions (see ``clv.data.contract``), pandas or Polars, or the
        :class:`VisibleHistory` of this cut-off.
    cutoff : Timestamp
        Rows after this instant are dropped.
    columns : sequence of str
        Optional columns to keep beside ``customer_id``, ``timestamp`` and ``amount``, when the
        input has them. Nothing else is copied: on 9M rows every column the sort carries costs
        memory, and each feature family needs only a few.

    Returns
    -------
    polars.DataFrame
        The visible history, sorted by customer, time and amount (input order among ties).
    """
    if isinstance(transactions, VisibleHistory):
        return _checked(transactions, cutoff).columns(columns)
    frame = _polars(transactions)
    keep = [*HISTORY_KEYS, *(c for c in columns if c in frame.columns and c not in HISTORY_KEYS)]
    return _visible(frame.select(keep), cutoff)


def visible_purchase_days(transactions: Transactions, cutoff: pd.Timestamp) -> pl.DataFrame:
    """:func:`purchase_days` of the history at ``cutoff`` (shared when given a VisibleHistory)."""
    if isinstance(transactions, VisibleHistory):
        return _checked(transactions, cutoff).purchase_days()
    return purchase_days(history(transactions, cutoff))


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


def rfm_features(transactions: Transactions, *, cutoff: pd.Timestamp) -> pd.DataFrame:
    """RFM features per customer as of ``cutoff``.

    Parameters
    ----------
    transactions : DataFrame or VisibleHistory
        Validated transactions (see ``clv.data.contract``), or the history of ``cutoff``.
    cutoff : Timestamp
        Rows after this instant are ignored.

    Returns
    -------
    DataFrame
        One row per customer with a purchase on or before ``cutoff``, indexed by ``customer_id``
        (sorted), columns :data:`RFM_COLUMNS`. Time is in days.
    """
    cutoff = pd.Timestamp(cutoff)
    days = visible_purchase_days(transactions, cutoff)
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
