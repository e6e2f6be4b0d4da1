"""The pieces ``import clv`` exposes at top level: generated data, the RFM summary, BTYD.

Each function takes and returns pandas frames, validates what a user hands it through the same
gate as files (:mod:`clv.data.validation`) and reuses the library's own code:
:mod:`clv.data.generator`, :func:`clv.features.rfm.rfm_features` and :mod:`clv.models.btyd`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from clv.data.contract import TableKind
from clv.data.generator import GeneratorConfig, SyntheticData

#: Columns of :func:`rfm_summary`, as lifetimes' ``summary_data_from_transaction_data`` names them.
SUMMARY_COLUMNS: tuple[str, ...] = ("frequency", "recency", "T", "monetary_value")


@dataclass(frozen=True)
class GeneratedData:
    """A generated data set as pandas frames, with the truth behind it.

    Attributes
    ----------
    customers, transactions, sustainability : DataFrame
        The observed tables; each satisfies the data contract.
    future_transactions : DataFrame
        Transactions in the ``horizon_days`` after the observation end: what a model should
        predict.
    truth : DataFrame
        One row per customer: latent parameters, whether alive at the end, expected and actual
        orders and spend over the horizon.
    config : GeneratorConfig
        What was generated.
    seed : int
        The seed used.
    """

    customers: pd.DataFrame
    transactions: pd.DataFrame
    sustainability: pd.DataFrame
    future_transactions: pd.DataFrame
    truth: pd.DataFrame
    config: GeneratorConfig
    seed: int

    @classmethod
    def of(cls, data: SyntheticData) -> GeneratedData:
        """The pandas view of the generator's pyarrow tables."""
        return cls(
            customers=data.frame("customers"),
            transactions=data.frame("transactions"),
            sustainability=data.frame("sustainability"),
            future_transactions=data.frame("future_transactions"),
            truth=data.frame("truth"),
            config=data.config,
            seed=data.seed,
        )

    def __repr__(self) -> str:
        cfg = self.config
        return (
            f"GeneratedData({len(self.customers):,} customers, "
            f"{len(self.transactions):,} transactions {cfg.start}..{cfg.end}, "
            f"truth over the next {cfg.horizon_days} days, seed={self.seed})"
        )


def generate(
    customers: int = 10_000,
    *,
    seed: int = 0,
    start: date | str | None = None,
    end: date | str | None = None,
    horizon_days: int | None = None,
    **config: Any,
) -> GeneratedData:
    """Generate retail data with known truth (see :mod:`clv.data.generator`).

    Parameters
    ----------
    customers : int, default 10,000
        Customers acquired during the observation period.
    seed : int, default 0
        Random seed: the same arguments and seed give identical frames.
    start, end : date or ISO string, optional
        Observation period (default 2023-01-01 to 2025-12-31, ``end`` inclusive).
    horizon_days : int, optional
        Days after ``end`` over which the truth is simulated (default 90).
    **config
        Any other :class:`clv.data.generator.GeneratorConfig` field (``seasonality``,
        ``growth``, ``drift``, ...).

    Returns
    -------
    GeneratedData
        ``customers``, ``transactions``, ``sustainability``, ``future_transactions`` and
        ``truth`` as pandas frames.

    Raises
    ------
    TypeError
        When a keyword is not a generator setting (the message lists them).
    ValueError
        When a setting is out of range.
    """
    from clv.data.generator import generate as generate_tables

    known = {f.name for f in fields(GeneratorConfig)} - {"n_customers"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise TypeError(
            f"clv.generate() got unknown setting(s) {unknown}; the generator accepts "
            f"customers, seed and {', '.join(sorted(known))}"
        )
    settings: dict[str, Any] = dict(config)
    for name, value in (("start", start), ("end", end)):
        if value is not None:
            settings[name] = date.fromisoformat(value) if isinstance(value, str) else value
    if horizon_days is not None:
        settings["horizon_days"] = horizon_days
    cfg = GeneratorConfig(n_customers=int(customers), **settings)
    return GeneratedData.of(generate_tables(cfg, seed=seed))


def validated(
    frame: pd.DataFrame,
    kind: TableKind = "transactions",
    *,
    columns: Mapping[str, str] | None = None,
    source: str | None = None,
) -> pd.DataFrame:
    """``frame`` through the contract's gate, its own column names mapped onto the contract's.

    Parameters
    ----------
    frame : DataFrame
        A user's table.
    kind : {"transactions", "customers", "sustainability"}
        Which table of the contract it holds.
    columns : mapping, optional
        The frame's own column names to the contract's, e.g. ``{"CustomerID": "customer_id"}``.
    source : str, optional
        Name used in messages (default ``<kind DataFrame>``).

    Returns
    -------
    DataFrame
        The typed table (columns outside the contract dropped).

    Raises
    ------
    TypeError
        When ``frame`` is not a pandas DataFrame.
    clv.data.validation.ContractError
        When the frame breaks the contract; the message names row, column and value.
    """
    from clv.data.validation import validate_frame

    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"the {kind} must be a pandas DataFrame, got {type(frame).__name__}; "
            "read a file with clv.data.io.read_table or pandas first"
        )
    if columns:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(
                f"the column mapping names {missing}, which the {kind} frame does not have; "
                f"its columns are {list(frame.columns)}"
            )
        frame = frame.rename(columns=dict(columns))
    return validate_frame(
        frame, kind, allow_extra_columns=True, source=source or f"<{kind} DataFrame>"
    )


def rfm_summary(
    transactions: pd.DataFrame,
    cutoff: pd.Timestamp | str | None = None,
    *,
    columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Frequency, recency, T and monetary value per customer, as lifetimes defines them.

    Transactions are rolled up to purchase days (days with positive gross sales), as
    ``lifetimes.utils.summary_data_from_transaction_data(freq="D")`` does; returns never create
    a purchase day.

    Parameters
    ----------
    transactions : DataFrame
        ``customer_id``, ``timestamp``, ``amount`` (and optional contract columns); validated
        here.
    cutoff : Timestamp or str, optional
        Observation end: rows after it are ignored. Default: the end of the day of the last
        transaction. A date alone means the end of that day.
    columns : mapping, optional
        The frame's own column names to the contract's (``{"CustomerID": "customer_id"}``).

    Returns
    -------
    DataFrame
        Indexed by ``customer_id`` (sorted), one row per customer with a purchase on or before
        ``cutoff``: ``frequency`` (repeat purchase days), ``recency`` (days from the first to the
        last purchase day), ``T`` (days from the first purchase day to the cut-off day) and
        ``monetary_value`` (mean gross value of the repeat purchase days; 0 without repeats).

    Raises
    ------
    clv.data.validation.ContractError
        When the transactions break the contract.
    ValueError
        When no purchase lies on or before ``cutoff``.
    """
    from clv.features.rfm import rfm_features

    tx = validated(transactions, columns=columns)
    at = _cutoff(tx, cutoff)
    summary = rfm_features(tx, cutoff=at)
    if summary.empty:
        raise ValueError(
            f"no purchase (positive amount) on or before the cut-off {at:%Y-%m-%d %H:%M}; "
            "choose a later cutoff"
        )
    return summary.loc[:, list(SUMMARY_COLUMNS)]


def _cutoff(transactions: pd.DataFrame, cutoff: pd.Timestamp | str | None) -> pd.Timestamp:
    """The cut-off instant: given, a bare date as the end of that day, or the last day's end."""
    from clv.training.windows import end_of_day

    if cutoff is None:
        return end_of_day(pd.Timestamp(transactions["timestamp"].max()))
    at = pd.Timestamp(cutoff)
    if at.tzinfo is not None:
        at = at.tz_convert("UTC").tz_localize(None)
    if at == at.normalize() and not (isinstance(cutoff, str) and "T" in cutoff):
        return end_of_day(at)
    return at


@dataclass(frozen=True)
class BTYDModel:
    """BG/NBD and Gamma-Gamma fitted on one RFM summary (time in days).

    Every method takes a summary with :data:`SUMMARY_COLUMNS` (from :func:`rfm_summary`) and
    returns a Series indexed like it.

    Attributes
    ----------
    bgnbd : clv.models.btyd.BGNBDParams
        ``r``, ``alpha`` (days), ``a``, ``b``.
    gamma_gamma : clv.models.btyd.GammaGammaParams
        ``p``, ``q``, ``v``.
    """

    bgnbd: Any
    gamma_gamma: Any

    def expected_purchases(self, summary: pd.DataFrame, days: float) -> pd.Series:
        """Expected purchases of each customer in the next ``days`` days."""
        from clv.models.btyd import bgnbd_expected_purchases

        rfm = _summary(summary)
        values = bgnbd_expected_purchases(
            self.bgnbd, rfm["frequency"], rfm["recency"], rfm["T"], days
        )
        return pd.Series(values, index=rfm.index, name=f"expected_purchases_{days:g}d")

    def probability_alive(self, summary: pd.DataFrame) -> pd.Series:
        """Probability that each customer is still active at the end of the summary."""
        from clv.models.btyd import bgnbd_probability_alive

        rfm = _summary(summary)
        values = bgnbd_probability_alive(self.bgnbd, rfm["frequency"], rfm["recency"], rfm["T"])
        return pd.Series(values, index=rfm.index, name="probability_alive")

    def probability_no_purchase(self, summary: pd.DataFrame, days: float) -> pd.Series:
        """Probability that each customer makes no purchase in the next ``days`` days."""
        from clv.models.btyd import bgnbd_probability_no_purchase

        rfm = _summary(summary)
        values = bgnbd_probability_no_purchase(
            self.bgnbd, rfm["frequency"], rfm["recency"], rfm["T"], days
        )
        return pd.Series(values, index=rfm.index, name=f"probability_no_purchase_{days:g}d")

    def expected_order_value(self, summary: pd.DataFrame) -> pd.Series:
        """Gamma-Gamma's expected value of each customer's next purchase day."""
        from clv.models.btyd import gamma_gamma_expected_spend

        rfm = _summary(summary)
        values = gamma_gamma_expected_spend(
            self.gamma_gamma, rfm["frequency"], rfm["monetary_value"].clip(lower=0.0)
        )
        return pd.Series(values, index=rfm.index, name="expected_order_value")

    def expected_spend(self, summary: pd.DataFrame, days: float) -> pd.Series:
        """Expected spend of each customer in the next ``days`` days (purchases × order value)."""
        spend = np.maximum(
            self.expected_purchases(summary, days).to_numpy()
            * self.expected_order_value(summary).to_numpy(),
            0.0,
        )
        return pd.Series(spend, index=summary.index, name=f"expected_spend_{days:g}d")

    def __repr__(self) -> str:
        bg, gg = self.bgnbd, self.gamma_gamma
        return (
            f"BTYDModel(BG/NBD r={bg.r:.3g} alpha={bg.alpha:.3g}d a={bg.a:.3g} b={bg.b:.3g}; "
            f"Gamma-Gamma p={gg.p:.3g} q={gg.q:.3g} v={gg.v:.3g})"
        )


def _summary(summary: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(summary, pd.DataFrame):
        raise TypeError(
            f"expected an RFM summary DataFrame (clv.rfm_summary), got {type(summary).__name__}"
        )
    missing = [c for c in SUMMARY_COLUMNS if c not in summary.columns]
    if missing:
        raise ValueError(
            f"the RFM summary lacks column(s) {missing}; build it with clv.rfm_summary("
            "transactions), which gives frequency, recency, T and monetary_value in days"
        )
    return summary


def fit_btyd(summary: pd.DataFrame) -> BTYDModel:
    """Fit BG/NBD on every customer and Gamma-Gamma on repeat buyers with positive spend.

    Parameters
    ----------
    summary : DataFrame
        :func:`rfm_summary` output (days): ``frequency``, ``recency``, ``T``,
        ``monetary_value``.

    Returns
    -------
    BTYDModel
        The fitted parameters, with ``expected_purchases``, ``probability_alive``,
        ``probability_no_purchase``, ``expected_order_value`` and ``expected_spend``.

    Raises
    ------
    ValueError
        When the summary lacks a column, holds an invalid value (named with its position), or
        has fewer than two repeat buyers to fit Gamma-Gamma on.
    """
    from clv.features.btyd import fit_btyd as fit_parameters

    fitted = fit_parameters(_summary(summary))
    return BTYDModel(bgnbd=fitted.bgnbd, gamma_gamma=fitted.gamma_gamma)
