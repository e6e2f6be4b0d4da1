"""Point-in-time features: pure functions of (transactions, optional tables, cut-off).

No function here reads the clock. Each sees only rows at or before its ``cutoff``; targets come only
from the window ``(cutoff, cutoff + horizon]``. ``tests/unit/test_features.py`` proves it with
property tests.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import polars as pl

from clv.features.behaviour import behaviour_features
from clv.features.btyd import btyd_predict, fit_btyd
from clv.features.rfm import VisibleHistory, rfm_features
from clv.features.seasonal import seasonal_features
from clv.features.sustainability import sustainability_features

__all__ = ["build_features", "future_targets", "rolling_cutoffs", "training_set"]


def build_features(
    transactions: pd.DataFrame | pl.DataFrame,
    *,
    cutoff: pd.Timestamp,
    horizon_days: int,
    customers: pd.DataFrame | None = None,
    sustainability: pd.DataFrame | None = None,
    include_btyd: bool = True,
) -> pd.DataFrame:
    """All feature families per customer as of ``cutoff``.

    Parameters
    ----------
    transactions : DataFrame
        Validated transactions, pandas or Polars (Polars avoids a conversion on large inputs).
    cutoff : Timestamp
        Rows after this instant are ignored.
    horizon_days : int
        Horizon of the BTYD-derived and seasonal features.
    customers, sustainability : DataFrame, optional
        Validated optional tables.
    include_btyd : bool
        Fit BG/NBD and Gamma-Gamma on the window and add their predictions.

    Returns
    -------
    DataFrame
        One row per customer with a purchase on or before ``cutoff``, indexed by ``customer_id``.
    """
    cutoff = pd.Timestamp(cutoff)
    frame = VisibleHistory(transactions, cutoff)  # filtered, sorted and rolled up once for all
    rfm = rfm_features(frame, cutoff=cutoff)
    parts = [
        rfm,
        behaviour_features(frame, cutoff=cutoff),
        sustainability_features(
            frame, cutoff=cutoff, customers=customers, sustainability=sustainability
        ),
        seasonal_features(frame, cutoff=cutoff, horizon_days=horizon_days),
    ]
    if include_btyd:
        parts.append(btyd_predict(rfm, fit_btyd(rfm), horizon_days=horizon_days))
    return pd.concat(parts, axis=1).loc[rfm.index]


def future_targets(
    transactions: pd.DataFrame, *, cutoff: pd.Timestamp, horizon_days: int
) -> pd.DataFrame:
    """What happened in ``(cutoff, cutoff + horizon_days]``, per customer seen in that window.

    Returns
    -------
    DataFrame
        ``future_spend`` (net of returns in the window, floored at 0: what the customer spent)
        and ``future_purchases`` (rows with a positive amount), indexed by ``customer_id``.
        Customers absent from the window are absent here; callers fill them with 0.
    """
    cutoff = pd.Timestamp(cutoff)
    end = cutoff + pd.Timedelta(days=horizon_days)
    window = transactions[(transactions["timestamp"] > cutoff) & (transactions["timestamp"] <= end)]
    grouped = window.groupby("customer_id")
    return pd.DataFrame(
        {
            "future_spend": grouped["amount"].sum().clip(lower=0.0),
            "future_purchases": grouped["amount"].agg(lambda a: float((a > 0).sum())),
        }
    )


def rolling_cutoffs(
    last_timestamp: pd.Timestamp, *, horizon_days: int, n_windows: int, step_days: int
) -> list[pd.Timestamp]:
    """Cut-offs whose whole horizon is observed, latest first, ``step_days`` apart.

    The latest cut-off is ``last_timestamp - horizon_days`` (end of that day), so its target window
    ends inside the data.
    """
    if n_windows < 1 or step_days < 1 or horizon_days < 1:
        raise ValueError("n_windows, step_days and horizon_days must all be at least 1")
    latest = (pd.Timestamp(last_timestamp) - pd.Timedelta(days=horizon_days)).normalize()
    latest = latest + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return [latest - pd.Timedelta(days=step_days * i) for i in range(n_windows)]


def training_set(
    transactions: pd.DataFrame,
    *,
    cutoffs: list[pd.Timestamp],
    horizon_days: int,
    customers: pd.DataFrame | None = None,
    sustainability: pd.DataFrame | None = None,
    include_btyd: bool = True,
    data_end: pd.Timestamp | None = None,
    target_days: Mapping[pd.Timestamp, int] | None = None,
) -> pd.DataFrame:
    """Features at several cut-offs stacked, with the targets of each cut-off's horizon.

    ``data_end`` is the instant up to which the data are known to be complete (default: the last
    transaction); a quiet spell with no purchases just before it is then not mistaken for
    missing data. ``target_days`` gives some cut-offs a shorter target window than the horizon
    (the features still look ``horizon_days`` ahead), e.g. a short history's holdout.

    Raises
    ------
    ValueError
        When a cut-off's horizon reaches past the end of the data (its target would be cut short).
    """
    last = transactions["timestamp"].max() if data_end is None else pd.Timestamp(data_end)
    frames = []
    windows = {pd.Timestamp(c): int(d) for c, d in (target_days or {}).items()}
    from clv.progress import report

    ordered = sorted(pd.Timestamp(c) for c in cutoffs)
    for number, cutoff in enumerate(ordered, start=1):
        report(f"features at cut-off {number} of {len(ordered)} ({cutoff:%Y-%m-%d})")
        days = windows.get(cutoff, horizon_days)
        if cutoff + pd.Timedelta(days=days) > last + pd.Timedelta(days=1):
            raise ValueError(
                f"cut-off {cutoff} plus {days} days reaches past the last transaction "
                f"({last}); its target would be incomplete. Use an earlier cut-off."
            )
        features = build_features(
            transactions,
            cutoff=cutoff,
            horizon_days=horizon_days,
            customers=customers,
            sustainability=sustainability,
            include_btyd=include_btyd,
        )
        targets = future_targets(transactions, cutoff=cutoff, horizon_days=days)
        part = features.join(targets, how="left")
        part[["future_spend", "future_purchases"]] = part[
            ["future_spend", "future_purchases"]
        ].fillna(0.0)
        part.insert(0, "cutoff", cutoff)
        frames.append(part.reset_index())
    return pd.concat(frames, ignore_index=True)
