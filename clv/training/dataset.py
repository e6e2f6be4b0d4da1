"""Training rows for a window plan, cached on disk by the hash of the inputs.

Building features at a dozen cut-offs is the slowest step before any model trains; a retry, a
resumed run or a second training on the same data reads them back instead. The cache key covers
the content hash of every input table, the window plan and the feature code's version, so a change
to any of them builds afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from clv.data.io import write_table
from clv.features import training_set
from clv.features.support import (
    MAX_EXTRAPOLATED_SHARE,
    OUT_OF_RANGE_SHARE,
    beyond,
    outside_support,
)
from clv.training.windows import WindowPlan

logger = logging.getLogger(__name__)

#: Bump when feature code changes in a way that changes values: old cache entries then miss.
FEATURE_VERSION = "3"
TARGET = "future_spend"
PURCHASES = "future_purchases"
NON_FEATURES = ("cutoff", "customer_id", TARGET, PURCHASES)


@dataclass
class TrainingFrames:
    """Stacked rows of one window plan, split by role.

    Attributes
    ----------
    rows : DataFrame
        Every window (fit, validation, holdout): ``cutoff``, ``customer_id``, features, targets.
    plan : WindowPlan
        The cut-offs.
    cache_key : str
        Hash naming the cached file (inputs, plan, feature version).
    max_extrapolated_share : float or None
        The learnt models leave out an unconstrained feature when more than this share of the
        holdout's customers lie outside its values in the fit windows (see :attr:`extrapolated`).
        Default :data:`clv.features.support.MAX_EXTRAPOLATED_SHARE`; ``None`` or 1 keeps every
        feature.
    """

    rows: pd.DataFrame
    plan: WindowPlan
    cache_key: str
    max_extrapolated_share: float | None = MAX_EXTRAPOLATED_SHARE

    @property
    def feature_columns(self) -> list[str]:
        """Feature column names, in a stable order (everything a bundle may read)."""
        return [c for c in self.rows.columns if c not in NON_FEATURES]

    @cached_property
    def _shares_outside(self) -> pd.Series:
        columns = self.feature_columns
        if not self.plan.fit:  # no learnt model (a short history): nothing to extrapolate
            return pd.Series(0.0, index=columns)
        return outside_support(self.fit[columns], self.holdout[columns])

    @cached_property
    def out_of_range(self) -> dict[str, float]:
        """Features for which more than half of the holdout's customers lie outside the fit
        windows' values, with that share (a diagnostic; monotone features included)."""
        return beyond(self._shares_outside, OUT_OF_RANGE_SHARE)

    @cached_property
    def extrapolated(self) -> dict[str, float]:
        """Features the learnt models leave out, with the holdout's share outside their range.

        The holdout's features are known at its cut-off, the latest of the plan, so they stand
        for the customers the registered model will score; no target is read. Features with a
        monotone constraint are kept (:data:`clv.models.trees.MONOTONE`): their direction beyond
        the learnt range is known. See :func:`clv.features.support.extrapolated_features`.
        """
        from clv.models.trees import MONOTONE

        return beyond(self._shares_outside, self.max_extrapolated_share, exempt=MONOTONE)

    @property
    def learnt_columns(self) -> list[str]:
        """The feature columns the learnt models (spend families, churn) are fitted on."""
        left_out = self.extrapolated
        return [c for c in self.feature_columns if c not in left_out]

    def _part(self, cutoffs: list[pd.Timestamp]) -> pd.DataFrame:
        return self.rows[self.rows["cutoff"].isin(cutoffs)]

    @property
    def fit(self) -> pd.DataFrame:
        """Rows of the fit windows."""
        return self._part(list(self.plan.fit))

    @property
    def validation(self) -> pd.DataFrame:
        """Rows of the validation window."""
        return self._part([self.plan.validation])

    @property
    def training(self) -> pd.DataFrame:
        """Fit and validation rows (everything a model may learn from)."""
        return self._part(self.plan.training_cutoffs)

    @property
    def holdout(self) -> pd.DataFrame:
        """Rows of the holdout window (evaluation only)."""
        return self._part([self.plan.holdout])

    @property
    def final_fit(self) -> pd.DataFrame:
        """Rows of the final model's fit windows (targets ending by the as-of date)."""
        return self._part(list(self.plan.final_fit))

    @property
    def final_training(self) -> pd.DataFrame:
        """Rows the final model learns from: its fit windows and the holdout that validates it."""
        return self._part(self.plan.final_cutoffs)

    def y(self, part: pd.DataFrame) -> pd.Series:
        """Spend target of ``part`` over the horizon: a shortened window's spend is scaled up.

        Validation and holdout windows shorter than the horizon (a short history; see
        :func:`clv.training.windows.plan_windows`) are multiplied by
        :attr:`~clv.training.windows.WindowPlan.target_scale`, so that they compare with
        predictions of ``horizon_days`` of spend.
        """
        plan = self.plan
        if plan.evaluation_days == plan.horizon_days:
            return part[TARGET]
        short = part["cutoff"].isin(list(plan.short_windows)).to_numpy()
        return part[TARGET] * np.where(short, plan.target_scale, 1.0)

    def X(self, part: pd.DataFrame) -> pd.DataFrame:
        """Feature matrix of ``part`` (every feature: models pick their own columns)."""
        return part[self.feature_columns]

    def learnt_X(self, part: pd.DataFrame) -> pd.DataFrame:
        """Feature matrix of ``part`` to fit a learnt model on (:attr:`learnt_columns`)."""
        return part[self.learnt_columns]


def cache_key(input_hashes: dict[str, str], plan: WindowPlan) -> str:
    """Hash of the input tables' contents, the window plan, the feature version and the code.

    The code is :func:`clv._code.code_identity` (version and source hash): frames that an older
    (perhaps buggy) feature implementation built are never read back by a newer one.
    """
    from clv._code import code_identity

    payload = json.dumps(
        {
            "inputs": input_hashes,
            "plan": plan.to_dict(),
            "features": FEATURE_VERSION,
            "code": code_identity(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def cache_path(cache_dir: Path, key: str) -> Path:
    """Where :func:`build_training_frames` caches the frames of ``key``."""
    return Path(cache_dir) / f"training-{key}.parquet"


def read_training_frames(
    path: Path,
    *,
    plan: WindowPlan,
    key: str,
    max_extrapolated_share: float | None = MAX_EXTRAPOLATED_SHARE,
) -> TrainingFrames:
    """Read frames that :func:`build_training_frames` cached at ``path``."""
    rows = pd.read_parquet(path)
    rows["cutoff"] = pd.to_datetime(rows["cutoff"])
    return TrainingFrames(
        rows=rows, plan=plan, cache_key=key, max_extrapolated_share=max_extrapolated_share
    )


def build_training_frames(
    transactions: pd.DataFrame,
    *,
    plan: WindowPlan,
    input_hashes: dict[str, str],
    cache_dir: Path | None,
    customers: pd.DataFrame | None = None,
    sustainability: pd.DataFrame | None = None,
    max_extrapolated_share: float | None = MAX_EXTRAPOLATED_SHARE,
) -> TrainingFrames:
    """Features and targets at every cut-off of ``plan`` (read from the cache when present).

    Parameters
    ----------
    transactions : DataFrame
        Validated transactions; only rows up to ``plan.as_of`` are used.
    plan : WindowPlan
        Fit, validation and holdout cut-offs.
    input_hashes : dict of str to str
        Content hash of each input table (``transactions`` and any optional one).
    cache_dir : Path, optional
        Folder of cached frames; ``None`` disables the cache.
    customers, sustainability : DataFrame, optional
        Validated optional tables.
    max_extrapolated_share : float or None
        See :attr:`TrainingFrames.extrapolated`.

    Returns
    -------
    TrainingFrames
        The stacked rows.
    """
    key = cache_key(input_hashes, plan)
    path = None if cache_dir is None else cache_path(cache_dir, key)
    if path is not None and path.exists():
        logger.info("training features: cache hit %s", path)
        return read_training_frames(
            path, plan=plan, key=key, max_extrapolated_share=max_extrapolated_share
        )
    # Targets of the holdout end at as_of: nothing later is needed, so nothing later is read.
    seen = transactions[transactions["timestamp"] <= plan.as_of]
    rows = training_set(
        seen,
        cutoffs=plan.all_cutoffs,
        horizon_days=plan.horizon_days,
        target_days={c: plan.evaluation_days for c in plan.short_windows},
        customers=customers,
        sustainability=sustainability,
        # The caller vouches that the data run to as_of (make_plan checks it): quiet last days
        # are real silence, not missing data.
        data_end=plan.as_of - pd.Timedelta(days=1),
    )
    rows["customer_id"] = rows["customer_id"].astype(str)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_table(rows, path)
        logger.info("training features: cached %s", path)
    return TrainingFrames(
        rows=rows, plan=plan, cache_key=key, max_extrapolated_share=max_extrapolated_share
    )
