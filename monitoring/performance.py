"""Realised performance: how an old scoring run did, once its horizon is over.

A scores file made ``as_of`` a date predicts spend over ``(as_of, as_of + horizon_days]``. Once the
transactions reach the end of that window, the actual spend of every scored customer is known and
the predictions can be graded with the same metrics as the holdout
(:func:`clv.evaluation.metrics.regression_report`).
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from clv.evaluation.metrics import regression_report
from clv.features import future_targets

__all__ = ["horizon_end", "pending_reason", "realised_performance"]

logger = logging.getLogger(__name__)

_SCORE_COLUMNS = ("customer_id", "predicted_clv", "as_of", "horizon_days")
_TRANSACTION_COLUMNS = ("customer_id", "timestamp", "amount")


def _single_value(scores: pd.DataFrame, column: str) -> Any:
    values = scores[column].dropna().unique()
    if len(values) != 1:
        raise ValueError(
            f"the scores hold {len(values)} distinct {column!r} values; grade one scoring run "
            "(one as-of date and horizon) at a time"
        )
    return values[0]


def horizon_end(scores: pd.DataFrame) -> tuple[pd.Timestamp, int, pd.Timestamp]:
    """The as-of instant, horizon and end of the prediction window of one scoring run.

    Parameters
    ----------
    scores : DataFrame
        A scores file: ``customer_id``, ``predicted_clv``, ``as_of``, ``horizon_days``, and
        optionally ``predicted_clv_lower`` / ``predicted_clv_upper``.

    Returns
    -------
    tuple
        ``(as_of, horizon_days, as_of + horizon_days)``.

    Raises
    ------
    ValueError
        When a column is missing, the scores are empty, or they mix several runs.
    """
    missing = [c for c in _SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise ValueError(f"the scores lack column(s) {', '.join(missing)}")
    if scores.empty:
        raise ValueError("the scores are empty: no customer to grade")
    as_of = pd.Timestamp(_single_value(scores, "as_of"))
    horizon_days = int(_single_value(scores, "horizon_days"))
    return as_of, horizon_days, as_of + pd.Timedelta(days=horizon_days)


def pending_reason(
    scores: pd.DataFrame,
    transactions: pd.DataFrame,
    *,
    data_end: pd.Timestamp | None = None,
) -> str | None:
    """Why the scores cannot be graded yet, or ``None`` when their horizon has passed.

    Parameters
    ----------
    scores : DataFrame
        One scoring run (see :func:`horizon_end`).
    transactions : DataFrame
        Validated transactions.
    data_end : Timestamp, optional
        Instant up to which the transactions are complete (default: the last transaction).

    Returns
    -------
    str or None
        A sentence naming the window's end and how far the data reach.
    """
    as_of, horizon_days, end = horizon_end(scores)
    if transactions.empty:
        return "there are no transactions yet"
    last = pd.Timestamp(transactions["timestamp"].max()) if data_end is None else data_end
    if last < end:
        return (
            f"the {horizon_days}-day horizon of the scores made as of {as_of:%Y-%m-%d} ends "
            f"{end:%Y-%m-%d %H:%M}, but the transactions only reach {last:%Y-%m-%d %H:%M} "
            f"({(end - last).days} day(s) to go)"
        )
    return None


def realised_performance(
    scores: pd.DataFrame,
    transactions: pd.DataFrame,
    *,
    data_end: pd.Timestamp | None = None,
) -> dict[str, Any] | None:
    """Grade a past scoring run against what its customers actually spent.

    Actual spend per scored customer is their net spend in ``(as_of, as_of + horizon_days]``,
    floored at 0 (:func:`clv.features.future_targets`); customers who bought nothing count 0.

    Parameters
    ----------
    scores : DataFrame
        One scoring run: ``customer_id``, ``predicted_clv``, ``as_of``, ``horizon_days`` and,
        optionally, both ``predicted_clv_lower`` and ``predicted_clv_upper``. At least 10
        customers (the decile metrics need them).
    transactions : DataFrame
        Validated transactions (``customer_id``, ``timestamp``, ``amount``).
    data_end : Timestamp, optional
        Instant up to which the transactions are complete (default: the last transaction).

    Returns
    -------
    dict or None
        :func:`clv.evaluation.metrics.regression_report` (with ``interval_coverage`` when the
        bounds are present) plus ``as_of`` (ISO string), ``horizon_days`` and ``customers``;
        ``None`` while the horizon has not passed (:func:`pending_reason` says why; the reason is
        also logged).

    Raises
    ------
    ValueError
        When a column is missing, the scores mix several runs, or the metrics reject the data.
    """
    missing = [c for c in _TRANSACTION_COLUMNS if c not in transactions.columns]
    if missing:
        raise ValueError(f"the transactions lack column(s) {', '.join(missing)}")
    reason = pending_reason(scores, transactions, data_end=data_end)
    if reason is not None:
        logger.info("realised performance not available yet: %s", reason)
        return None
    as_of, horizon_days, _ = horizon_end(scores)
    customer_ids = scores["customer_id"].astype(str)
    if customer_ids.duplicated().any():
        first = customer_ids[customer_ids.duplicated()].iloc[0]
        raise ValueError(f"customer {first!r} is scored more than once")
    targets = future_targets(
        transactions.assign(customer_id=transactions["customer_id"].astype(str)),
        cutoff=as_of,
        horizon_days=horizon_days,
    )
    actual = targets["future_spend"].reindex(customer_ids.to_numpy()).fillna(0.0)
    has_bounds = {"predicted_clv_lower", "predicted_clv_upper"} <= set(scores.columns)
    report: dict[str, Any] = dict(
        regression_report(
            actual.to_numpy(),
            scores["predicted_clv"].to_numpy(),
            scores["predicted_clv_lower"].to_numpy() if has_bounds else None,
            scores["predicted_clv_upper"].to_numpy() if has_bounds else None,
        )
    )
    report.update(
        {"as_of": as_of.isoformat(), "horizon_days": horizon_days, "customers": len(scores)}
    )
    return report
