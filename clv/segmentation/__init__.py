"""Customer segments: until step 6 lands, RFM segments (:mod:`clv.segmentation.rfm`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from clv.segmentation.rfm import (
    RFM_INPUT_COLUMNS,
    SEGMENT_COLUMNS,
    SegmentRules,
    load_rules,
    rfm_scores,
    segment_rfm,
)

__all__ = [
    "RFM_INPUT_COLUMNS",
    "SEGMENT_COLUMNS",
    "SegmentRules",
    "load_rules",
    "rfm_scores",
    "segment",
    "segment_rfm",
]


def _customer_ids(scores: pd.DataFrame) -> pd.Index:
    if "customer_id" in scores.columns:
        return pd.Index(scores["customer_id"].astype(str), name="customer_id")
    if scores.index.name == "customer_id":
        return pd.Index(scores.index.astype(str), name="customer_id")
    raise ValueError(
        "the scores need a 'customer_id' column (or index) to be matched with the transactions"
    )


def _cutoff_of(scores: pd.DataFrame, transactions: pd.DataFrame) -> pd.Timestamp:
    """The scores' own as-of instant when they carry one, else the end of the last day."""
    from clv.training.windows import end_of_day

    if "as_of" in scores.columns:
        stamps = pd.DatetimeIndex(pd.to_datetime(scores["as_of"]).unique())
        if len(stamps) == 1:
            return stamps[0]
        raise ValueError(
            f"the scores hold {len(stamps)} different as_of dates; segment one scoring run at a "
            "time"
        )
    return end_of_day(pd.Timestamp(transactions["timestamp"].max()))


def segment(
    scores: pd.DataFrame,
    transactions: pd.DataFrame | None = None,
    *,
    rules: SegmentRules | str | Path | Sequence[Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """One named segment per customer (RFM segments until step 6's segmentation lands).

    Parameters
    ----------
    scores : DataFrame
        One row per customer: the output of :meth:`clv.CLVPredictor.predict` (which carries the
        RFM columns), or any frame with ``customer_id`` and :data:`RFM_INPUT_COLUMNS`
        (``days_since_last_purchase``, ``purchase_days``, ``avg_purchase_day_value``).
    transactions : DataFrame, optional
        Needed when ``scores`` lacks the RFM columns: they are computed from it as of the
        scores' ``as_of`` (or the end of the last transaction's day). Validated here.
    rules : SegmentRules, path or list of rules, optional
        The segment rule table (default: ``clv/segmentation/rfm_segments.yaml``).

    Returns
    -------
    DataFrame
        ``scores`` (the RFM columns added when computed) with ``r_score``, ``f_score``,
        ``m_score``, ``rfm_score`` and ``segment``; same rows, same order.

    Raises
    ------
    ValueError
        When ``scores`` lacks the RFM columns and no transactions are given, or a scored
        customer has no purchase in the transactions.
    clv.data.validation.ContractError
        When the transactions break the contract.
    """
    if not isinstance(scores, pd.DataFrame):
        raise TypeError(f"scores must be a pandas DataFrame, got {type(scores).__name__}")
    missing = [c for c in RFM_INPUT_COLUMNS if c not in scores.columns]
    if not missing:
        return segment_rfm(scores, rules)
    if transactions is None:
        raise ValueError(
            f"the scores lack {missing}, which RFM segments are computed from; pass the "
            "transactions too: clv.segment(scores, transactions)"
        )
    from clv.features.rfm import rfm_features
    from clv.shortcuts import validated

    tx = validated(transactions)
    ids = _customer_ids(scores)
    rfm = rfm_features(tx, cutoff=_cutoff_of(scores, tx))
    rfm.index = rfm.index.astype(str)
    found = rfm.reindex(ids)[list(missing)]
    with_rfm = scores.copy()
    for column in missing:
        with_rfm[column] = found[column].to_numpy()
    return segment_rfm(with_rfm, rules)
