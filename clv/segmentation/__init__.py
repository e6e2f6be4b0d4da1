"""Customer segments: named RFM segments and value segments on CLV × churn × eco share × RFM.

:func:`segment` is the one-call entry point for a notebook. The pieces: :mod:`.rfm` (scores 1–5
and the rule table), :mod:`.values` (k-means value segments with marketer names and stable
labels), :mod:`.profiles` (profiles, migration, business rules), :mod:`.runs` (a run as a
reviewable version), :mod:`.report` (the review report) and :mod:`.inputs` (scores files).
"""

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
    method: str = "both",
    rules: SegmentRules | str | Path | Sequence[Mapping[str, Any]] | None = None,
    config: Any = None,
) -> pd.DataFrame:
    """One named segment per customer: value segments (default) or RFM segments.

    Parameters
    ----------
    scores : DataFrame
        One row per customer: the output of :meth:`clv.CLVPredictor.predict` (which carries the
        RFM columns), or any frame with ``customer_id`` and :data:`RFM_INPUT_COLUMNS`
        (``days_since_last_purchase``, ``purchase_days``, ``avg_purchase_day_value``).
    transactions : DataFrame, optional
        Needed when ``scores`` lacks the RFM columns: they are computed from it as of the
        scores' ``as_of`` (or the end of the last transaction's day). Validated here.
    method : {"both", "kmeans", "rfm"}
        ``rfm``: ``segment`` is the RFM segment. ``both`` / ``kmeans``: ``segment`` is the value
        segment (k-means on predicted CLV, churn probability, eco share of spend and the RFM
        scores, named from its centroid, e.g. "high-value eco loyalists") with ``segment_id``;
        ``both`` also keeps the RFM segment as ``rfm_segment``. Value segments need
        ``churn_probability`` in the scores.
    rules : SegmentRules, path or list of rules, optional
        The RFM segment rule table (default: ``clv/segmentation/rfm_segments.yaml``).
    config : clv.config.SegmentationConfig, optional
        k range, sample size, seed and rule thresholds of the value segments.

    Returns
    -------
    DataFrame
        ``scores`` (the RFM columns added when computed) with ``r_score``, ``f_score``,
        ``m_score``, ``rfm_score`` and ``segment`` (plus ``segment_id`` and ``rfm_segment`` for
        value segments); same rows, same order.

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
    if method not in ("both", "kmeans", "rfm"):
        raise ValueError(f"method must be 'both', 'kmeans' or 'rfm', got {method!r}")
    named = _rfm_segmented(scores, transactions, rules)
    if method == "rfm":
        return named
    return _value_segmented(named, method, config)


def _value_segmented(named: pd.DataFrame, method: str, config: Any) -> pd.DataFrame:
    from clv.config import SegmentationConfig
    from clv.segmentation.inputs import segment_inputs
    from clv.segmentation.runs import build_segmentation

    if "churn_probability" not in named.columns:
        raise ValueError(
            "value segments need churn_probability in the scores (a CLVPredictor fitted with "
            "its churn model writes it); or use method='rfm'"
        )
    chosen = (config or SegmentationConfig()).model_copy(update={"method": method})
    frame = named.copy()
    frame["customer_id"] = _customer_ids(named).to_numpy()
    inputs = segment_inputs(frame.drop(columns=["segment"]), source="scores")
    result = build_segmentation(inputs, config=chosen)
    ids = _customer_ids(named)
    out = named.copy()
    if method == "both":
        out["rfm_segment"] = named["segment"].to_numpy()
    out["segment"] = result.labels.reindex(ids).to_numpy()
    out["segment_id"] = result.segment_ids.reindex(ids).to_numpy()
    return out


def _rfm_segmented(
    scores: pd.DataFrame,
    transactions: pd.DataFrame | None,
    rules: SegmentRules | str | Path | Sequence[Mapping[str, Any]] | None,
) -> pd.DataFrame:
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
