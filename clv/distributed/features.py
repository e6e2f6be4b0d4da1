"""The single-machine features (:func:`clv.features.build_features`) on a Dask cluster.

The transactions come hash-partitioned on ``customer_id``
(:func:`clv.distributed.io.read_transactions`), so each partition holds every row of its
customers and almost every feature is computed by :func:`~clv.features.build_features` on the
partition alone. Three things look across customers,
and are computed in a first pass over the partitions, from small per-partition summaries gathered
on the client (never the rows):

* **BTYD**: BG/NBD and Gamma-Gamma are fitted on the sufficient statistics of the population,
  the value counts of ``(frequency, recency, T)`` and of the repeat buyers' ``(frequency,
  monetary_value)``, concatenated and fitted with the counts as weights. The fitters merge
  identical rows before optimising, so they see the same arrays as on one machine; the
  parameters are then sent to every partition for :func:`~clv.features.btyd.btyd_predict`.
* **Seasonal lift** (:mod:`clv.features.seasonal`): the base's sales in last year's window and
  the window before it, and whether the history covers a year (the first sale's date), are sums
  and a minimum over everybody; the calendar columns and each customer's own last-year spend
  depend on that too.
* **Channel shares** (:mod:`clv.features.behaviour`): one column per channel seen anywhere, so a
  partition without a channel gets its column (0 for customers with a known channel, as on one
  machine).

The BTYD parameters, and so their predictions, are bit-equal to the single machine's. The
base's seasonal sums add the same terms in another order, so the lift agrees to float rounding
(about 1e-15 relative); every other feature is computed by the same code on the same rows of
each customer, and is bit-equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import polars as pl

from clv.features import build_features
from clv.features.btyd import BTYDFit, btyd_predict
from clv.features.rfm import RFM_COLUMNS, history, rfm_features
from clv.models.btyd import fit_bgnbd, fit_gamma_gamma

if TYPE_CHECKING:
    import dask.dataframe as dd

__all__ = [
    "PopulationSummary",
    "dask_customer_features",
    "dask_features",
    "fit_btyd_from_counts",
    "persisted",
    "population_summary",
    "summarise_partition",
]

_BGNBD_KEYS = ["frequency", "recency", "T"]
_GG_KEYS = ["frequency", "monetary_value"]
_SEASONAL_POPULATION = (
    "base_seasonal_lift_last_year",
    "horizon_doy_sin",
    "horizon_doy_cos",
    "horizon_peak_days",
)
_CHANNEL_PREFIX = "channel_share_"


@dataclass
class PopulationSummary:
    """What the cross-customer features need from one partition (or, merged, from all).

    Attributes
    ----------
    bgnbd_counts : DataFrame
        Distinct ``(frequency, recency, T)`` and their ``weight`` (customers).
    gamma_gamma_counts : DataFrame
        Distinct ``(frequency, monetary_value)`` of repeat buyers with positive spend, ``weight``.
    window_sales, before_sales : float
        Gross sales in last year's horizon window and in the equally long window before it.
    first_sale : Timestamp or None
        The earliest sale on or before the cut-off.
    channels : set of str
        Channels of the sales on or before the cut-off.
    visible_rows : int
        Transactions on or before the cut-off.
    """

    bgnbd_counts: pd.DataFrame
    gamma_gamma_counts: pd.DataFrame
    window_sales: float = 0.0
    before_sales: float = 0.0
    first_sale: pd.Timestamp | None = None
    channels: set[str] = field(default_factory=set)
    visible_rows: int = 0

    @property
    def customers(self) -> int:
        """Customers with a purchase on or before the cut-off."""
        return int(self.bgnbd_counts["weight"].sum())

    @classmethod
    def merge(cls, parts: list[PopulationSummary]) -> PopulationSummary:
        """The summary of the union of the partitions."""
        firsts = [p.first_sale for p in parts if p.first_sale is not None]
        return cls(
            bgnbd_counts=_concat_counts([p.bgnbd_counts for p in parts], _BGNBD_KEYS),
            gamma_gamma_counts=_concat_counts([p.gamma_gamma_counts for p in parts], _GG_KEYS),
            window_sales=float(sum(p.window_sales for p in parts)),
            before_sales=float(sum(p.before_sales for p in parts)),
            first_sale=min(firsts) if firsts else None,
            channels=set().union(*(p.channels for p in parts)),
            visible_rows=sum(p.visible_rows for p in parts),
        )


def _concat_counts(frames: list[pd.DataFrame], keys: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({**{k: pd.Series(dtype="float64") for k in keys}, "weight": []})
    return pd.concat(frames, ignore_index=True)


def _value_counts(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    counts = frame.groupby(keys, sort=True).size().rename("weight").reset_index()
    counts["weight"] = counts["weight"].astype("float64")
    return counts


def _windows(
    cutoff: pd.Timestamp, horizon_days: int
) -> tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp]:
    """Last year's window ``(year_ago, window_end]`` and the start of the one before it."""
    year_ago = cutoff - pd.Timedelta(days=365)
    return (
        year_ago,
        year_ago + pd.Timedelta(days=horizon_days),
        year_ago - pd.Timedelta(days=horizon_days),
    )


def _sales(part: pd.DataFrame, cutoff: pd.Timestamp) -> pl.DataFrame:
    columns = ("channel",) if "channel" in part.columns else ()
    return history(part, cutoff, columns=columns).filter(pl.col("amount") > 0)


def summarise_partition(
    part: pd.DataFrame, *, cutoff: pd.Timestamp, horizon_days: int
) -> PopulationSummary:
    """The :class:`PopulationSummary` of one partition of validated transactions."""
    cutoff = pd.Timestamp(cutoff)
    empty = PopulationSummary(_concat_counts([], _BGNBD_KEYS), _concat_counts([], _GG_KEYS))
    if part.empty:
        return empty
    visible_rows = int((part["timestamp"] <= cutoff).sum())
    sales = _sales(part, cutoff)
    if sales.is_empty():
        empty.visible_rows = visible_rows
        return empty
    rfm = rfm_features(part, cutoff=cutoff)
    repeat = rfm[(rfm["frequency"] > 0) & (rfm["monetary_value"] > 0)]
    year_ago, window_end, before_start = _windows(cutoff, horizon_days)
    ts = pl.col("timestamp")
    in_window = (ts > year_ago.to_pydatetime()) & (ts <= window_end.to_pydatetime())
    in_before = (ts > before_start.to_pydatetime()) & (ts <= year_ago.to_pydatetime())
    totals = sales.select(
        pl.col("amount").filter(in_window).sum().alias("window"),
        pl.col("amount").filter(in_before).sum().alias("before"),
        ts.min().alias("first"),
    ).row(0, named=True)
    channels: set[str] = set()
    if "channel" in sales.columns:
        channels = {str(c) for c in sales["channel"].drop_nulls().unique().to_list()}
    return PopulationSummary(
        bgnbd_counts=_value_counts(rfm, _BGNBD_KEYS),
        gamma_gamma_counts=_value_counts(repeat, _GG_KEYS),
        window_sales=float(totals["window"]),
        before_sales=float(totals["before"]),
        first_sale=pd.Timestamp(totals["first"]),
        channels=channels,
        visible_rows=visible_rows,
    )


def fit_btyd_from_counts(summary: PopulationSummary) -> BTYDFit:
    """:func:`clv.features.btyd.fit_btyd` on sufficient statistics instead of one row a customer.

    Raises
    ------
    ValueError
        As :func:`~clv.features.btyd.fit_btyd`: no customer, or fewer than two repeat buyers.
    """
    bg, gg = summary.bgnbd_counts, summary.gamma_gamma_counts
    if bg.empty:
        raise ValueError("no customer has a purchase on or before the cut-off; nothing to fit")
    params = fit_bgnbd(bg["frequency"], bg["recency"], bg["T"], weights=bg["weight"])
    repeat_buyers = int(gg["weight"].sum())
    if repeat_buyers < 2:
        raise ValueError(
            "Gamma-Gamma needs at least two customers with repeat purchases before the cut-off; "
            f"found {repeat_buyers}. Use an earlier horizon or more history."
        )
    spend = fit_gamma_gamma(gg["frequency"], gg["monetary_value"], weights=gg["weight"])
    return BTYDFit(params, spend)


def population_summary(
    transactions: dd.DataFrame, *, cutoff: pd.Timestamp, horizon_days: int
) -> PopulationSummary:
    """The :class:`PopulationSummary` of all the partitions, computed now, merged on the client.

    Only the summaries travel to the client (their size grows with the distinct
    ``(frequency, recency, T)`` values, not with the customers). Uses the current Dask scheduler.
    """
    import dask
    from dask import delayed

    cutoff = pd.Timestamp(cutoff)
    summarise = delayed(summarise_partition, pure=True)
    summaries = dask.compute(
        *[summarise(p, cutoff=cutoff, horizon_days=horizon_days) for p in transactions.to_delayed()]
    )
    return PopulationSummary.merge(list(summaries))


@dataclass(frozen=True)
class _Population:
    """The cross-customer values every partition's features need."""

    has_year: bool
    lift: float
    channels: tuple[str, ...]
    fit: BTYDFit | None


def _population(
    summary: PopulationSummary, *, cutoff: pd.Timestamp, horizon_days: int, fit: BTYDFit | None
) -> _Population:
    _, _, before_start = _windows(cutoff, horizon_days)
    has_year = summary.first_sale is not None and summary.first_sale <= before_start
    lift = (
        summary.window_sales / summary.before_sales
        if has_year and summary.before_sales > 0
        else np.nan
    )
    return _Population(has_year, lift, tuple(sorted(summary.channels)), fit)


def _seasonal_fixed(
    out: pd.DataFrame,
    part: pd.DataFrame,
    *,
    cutoff: pd.Timestamp,
    horizon_days: int,
    population: _Population,
) -> None:
    """Put the population's seasonal values in place of the partition's (in place)."""
    from clv.features.seasonal import _peak_days

    year_ago, window_end, _ = _windows(cutoff, horizon_days)
    if population.has_year:
        # The partition alone may not reach a year back; its customers' own last-year spend
        # is then recomputed as clv.features.seasonal computes it.
        ts = pl.col("timestamp")
        in_window = (ts > year_ago.to_pydatetime()) & (ts <= window_end.to_pydatetime())
        own = (
            history(part, cutoff)
            .filter(pl.col("amount") > 0)
            .group_by("customer_id")
            .agg(pl.col("amount").filter(in_window).sum().alias("spend_same_window_last_year"))
            .to_pandas()
            .set_index("customer_id")["spend_same_window_last_year"]
        )
        out["spend_same_window_last_year"] = own.reindex(out.index).to_numpy()
        middle = cutoff + pd.Timedelta(days=horizon_days / 2)
        angle = 2 * np.pi * middle.dayofyear / 365.25
        out["horizon_doy_sin"] = np.sin(angle)
        out["horizon_doy_cos"] = np.cos(angle)
        out["horizon_peak_days"] = float(_peak_days(cutoff, horizon_days))
    else:
        for column in ("spend_same_window_last_year", *_SEASONAL_POPULATION[1:]):
            out[column] = np.nan
    out["base_seasonal_lift_last_year"] = population.lift


def _channels_fixed(out: pd.DataFrame, population: _Population) -> pd.DataFrame:
    """Add the channels the partition has not seen: 0 for customers with a known channel."""
    present = [c for c in out.columns if str(c).startswith(_CHANNEL_PREFIX)]
    wanted = [f"{_CHANNEL_PREFIX}{ch}" for ch in population.channels]
    missing = [c for c in wanted if c not in out.columns]
    if not missing:
        return out
    known = out[present].notna().any(axis=1) if present else pd.Series(False, index=out.index)
    fill = np.where(known.to_numpy(), 0.0, np.nan)
    added = pd.DataFrame({c: fill for c in missing}, index=out.index)
    merged = pd.concat([out, added], axis=1)
    # Channel columns sit together, sorted, where behaviour_features puts them.
    if present:
        at = list(out.columns).index(present[0])
    elif "category_entropy" in out.columns:
        at = list(out.columns).index("category_entropy") + 1
    else:
        at = list(out.columns).index("spend_trend_90d") + 1
    others = [c for c in out.columns if c not in present]
    order = [*others[:at], *wanted, *others[at:]]
    return merged[order]


def _partition_features(
    part: pd.DataFrame,
    customers: pd.DataFrame | None,
    sustainability: pd.DataFrame | None,
    *,
    cutoff: pd.Timestamp,
    horizon_days: int,
    population: _Population,
    shape: pd.DataFrame | None,
) -> pd.DataFrame:
    """:func:`build_features` of one partition, with the population's cross-customer values.

    ``shape`` is the empty output (columns and dtypes) every partition must match; ``None``
    while it is being derived.
    """
    if shape is not None and (part.empty or _sales(part, cutoff).is_empty()):
        return shape
    out = build_features(
        part,
        cutoff=cutoff,
        horizon_days=horizon_days,
        customers=customers,
        sustainability=sustainability,
        include_btyd=False,
    )
    _seasonal_fixed(out, part, cutoff=cutoff, horizon_days=horizon_days, population=population)
    out = _channels_fixed(out, population)
    if population.fit is not None:
        rfm = out[list(RFM_COLUMNS)]
        out = pd.concat([out, btyd_predict(rfm, population.fit, horizon_days=horizon_days)], axis=1)
    if shape is not None:
        out = out[list(shape.columns)].astype(shape.dtypes.to_dict())
    return out


def _example(meta: pd.DataFrame, cutoff: pd.Timestamp, channels: tuple[str, ...]) -> pd.DataFrame:
    """A tiny valid history (one customer, a sale per channel) to derive the output's shape."""
    n = max(len(channels), 1) + 1
    values: dict[str, Any] = {
        "customer_id": ["example"] * n,
        "timestamp": [cutoff - pd.Timedelta(days=1 + i) for i in range(n)],
        "amount": [1.0] * n,
        "order_id": [f"o{i}" for i in range(n)],
        "quantity": [1] * n,
        "product_category": ["example"] * n,
        "is_eco_product": [False] * n,
        # No channel at all when no sale has one, so that no channel column appears.
        "channel": [channels[i % len(channels)] if channels else None for i in range(n)],
        "carbon_kg": [0.0] * n,
    }
    frame = pd.DataFrame({c: values[c] for c in meta.columns if c in values})
    return frame.astype({c: meta.dtypes[c] for c in frame.columns})


def persisted(frame: dd.DataFrame) -> dd.DataFrame:
    """``frame`` kept in the cluster's memory when a distributed client is current, else as is.

    The feature and scoring paths read their input more than once (a pass for the population's
    summary, one for the features; for scoring without an as-of date one more for the last
    timestamp). Persisted, the files are read, validated and shuffled once; the workers hold
    the partitions and spill them to their local disk past their memory target, so memory
    stays bounded by the workers' limits, not by the data.
    """
    import dask

    if dask.config.get("scheduler", None) not in (None, "dask.distributed", "distributed"):
        return frame  # an explicit local scheduler (tests, one process): nothing to keep
    try:
        from distributed import Client

        client = Client.current(allow_global=True)
    except (ImportError, ValueError):
        return frame
    return client.persist(frame)


def _features(
    transactions: dd.DataFrame,
    *,
    cutoff: pd.Timestamp,
    horizon_days: int,
    customers: pd.DataFrame | None,
    sustainability: pd.DataFrame | None,
    include_btyd: bool,
    nobody: str | None,
    persist: bool = False,
) -> dd.DataFrame:
    from dask import delayed

    cutoff = pd.Timestamp(cutoff)
    if persist:
        transactions = persisted(transactions)
    summary = population_summary(transactions, cutoff=cutoff, horizon_days=horizon_days)
    if nobody is not None and summary.visible_rows == 0:
        raise ValueError(nobody)
    fit = fit_btyd_from_counts(summary) if include_btyd else None
    population = _population(summary, cutoff=cutoff, horizon_days=horizon_days, fit=fit)
    example = _example(transactions._meta, cutoff, population.channels)
    meta = _partition_features(
        example,
        customers,
        sustainability,
        cutoff=cutoff,
        horizon_days=horizon_days,
        population=population,
        shape=None,
    ).iloc[:0]
    # Delayed, so each table travels once to each worker rather than inside every task.
    tables = [None if t is None else delayed(t, pure=True) for t in (customers, sustainability)]
    return transactions.map_partitions(
        _partition_features,
        *tables,
        cutoff=cutoff,
        horizon_days=horizon_days,
        population=population,
        shape=meta,
        meta=meta,
        enforce_metadata=False,
        align_dataframes=False,
    )


def dask_features(
    transactions: dd.DataFrame,
    *,
    cutoff: pd.Timestamp,
    horizon_days: int,
    customers: pd.DataFrame | None = None,
    sustainability: pd.DataFrame | None = None,
    include_btyd: bool = True,
    persist: bool = True,
) -> dd.DataFrame:
    """:func:`clv.features.build_features` on a Dask cluster, partition by partition.

    Parameters
    ----------
    transactions : dask.dataframe.DataFrame
        Validated transactions with every customer's rows in one partition, as
        :func:`clv.distributed.io.read_transactions` returns them.
    cutoff : Timestamp
        Rows after this instant are ignored.
    horizon_days : int
        Horizon of the BTYD-derived and seasonal features.
    customers, sustainability : DataFrame, optional
        Validated optional tables (pandas; sent once to each worker).
    include_btyd : bool
        Fit BG/NBD and Gamma-Gamma on the population's sufficient statistics and add their
        predictions.
    persist : bool
        Keep the transactions in the cluster's memory for the two passes (see
        :func:`persisted`); False reads them twice.

    Returns
    -------
    dask.dataframe.DataFrame
        Lazy; the columns of ``build_features`` in its order, one row per customer with a
        purchase on or before ``cutoff``, indexed by ``customer_id`` (sorted within each
        partition, not across them).

    Raises
    ------
    ValueError
        As ``build_features``: when BTYD cannot be fitted (no customer, fewer than two repeat
        buyers).

    Notes
    -----
    A first pass over the partitions, computed here with the current Dask scheduler (a
    ``distributed.Client`` made default or set with ``dask.config.set(scheduler=client)``),
    gathers the small :class:`PopulationSummary` of each; the features are computed in a
    second pass when the result is. With ``persist`` both passes use the transactions read,
    validated and shuffled once.
    """
    return _features(
        transactions,
        cutoff=cutoff,
        horizon_days=horizon_days,
        customers=customers,
        sustainability=sustainability,
        include_btyd=include_btyd,
        nobody=None,
        persist=persist,
    )


def dask_customer_features(
    transactions_ddf: dd.DataFrame,
    *,
    as_of: pd.Timestamp,
    horizon_days: int,
    customers: pd.DataFrame | None = None,
    sustainability: pd.DataFrame | None = None,
    persist: bool = True,
) -> dd.DataFrame:
    """:func:`clv.training.scoring.customer_features` on Dask: every customer to score by ``as_of``.

    ``persist`` as in :func:`dask_features` (applied to the rows up to ``as_of``).

    Raises
    ------
    ValueError
        When no transaction lies on or before ``as_of``.
    """
    cutoff = pd.Timestamp(as_of)
    seen = transactions_ddf[transactions_ddf["timestamp"] <= cutoff]
    return _features(
        seen,
        cutoff=cutoff,
        horizon_days=horizon_days,
        customers=customers,
        sustainability=sustainability,
        include_btyd=True,
        nobody=f"no transaction on or before the as-of date {cutoff:%Y-%m-%d}; nobody to score",
        persist=persist,
    )
