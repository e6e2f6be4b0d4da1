"""Which features the customers to score carry outside the range the models learnt from.

A model trained on rolling windows learns each feature over the values those windows show. When
most customers to be scored lie beyond them, the model extrapolates: a tree carries its last
split's value, a network its last slope. For some features that is harmless or even intended: a
longer silence than any seen in training should score at most like the longest one, which a
monotone constraint already guarantees. For others it is a clock: on a data set whose customers
were all acquired in one quarter (CDNOW), customer age ``T`` at the as-of date is beyond every
training window's, and what the models learnt about age is in truth what they learnt about the
windows' dates (the cohort's decay, the season). :func:`extrapolated_features` names the features
beyond a share of customers outside: reported as a diagnostic by backtests and training runs, and
left out of the learnt models (``max_extrapolated_share``, by default
:data:`MAX_EXTRAPOLATED_SHARE`). The check reads features
only, never a target.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np
import pandas as pd

__all__ = [
    "MAX_EXTRAPOLATED_SHARE",
    "OUT_OF_RANGE_SHARE",
    "beyond",
    "describe_shares",
    "extrapolated_features",
    "outside_support",
]

#: A feature is reported out of range when more than this share of the customers to score lie
#: outside every value the models learnt it on (and the default of :func:`extrapolated_features`).
OUT_OF_RANGE_SHARE = 0.5

#: The learnt models leave out a feature without a monotone constraint when more than this share
#: of the customers to score lie outside its learnt range (the default of backtests, training
#: runs and the CLI; ``None`` or 1 keeps every feature). Chosen on CDNOW over three seeds: it
#: meets 7 target cells under every seed against 5 when every feature is kept, loses none, and
#: leaves nothing out on generated multi-cohort data (docs/benchmarks.md, round 3).
MAX_EXTRAPOLATED_SHARE = 0.5


def outside_support(fit: pd.DataFrame, score: pd.DataFrame) -> pd.Series:
    """Share of ``score``'s rows outside ``fit``'s range, feature by feature.

    Parameters
    ----------
    fit : DataFrame
        Features the models learn from (one row per customer and cut-off).
    score : DataFrame
        Features of the customers to score.

    Returns
    -------
    Series
        For every numeric column present in both frames with at least one finite value in each:
        the share of ``score``'s finite values below ``fit``'s minimum or above its maximum.
        Missing values count neither way (the models handle them as missing, not as a value).
        Sorted from the largest share, then by name.
    """
    shares: dict[str, float] = {}
    for column in score.columns:
        if column not in fit.columns:
            continue
        learnt = _finite(fit[column])
        scored = _finite(score[column])
        if learnt.size == 0 or scored.size == 0:
            continue
        outside = (scored < learnt.min()) | (scored > learnt.max())
        shares[str(column)] = float(outside.mean())
    result = pd.Series(shares, dtype="float64", name="share_outside")
    if result.empty:
        return result
    order = sorted(result.index, key=lambda name: (-result[name], name))
    return result.reindex(order)


def extrapolated_features(
    fit: pd.DataFrame,
    score: pd.DataFrame,
    *,
    max_share: float | None = OUT_OF_RANGE_SHARE,
    exempt: Collection[str] = (),
) -> dict[str, float]:
    """Features for which most customers to score lie outside their learnt range.

    Parameters
    ----------
    fit : DataFrame
        Features the models learn from.
    score : DataFrame
        Features of the customers the models will score (at a later cut-off than ``fit``'s).
    max_share : float or None
        Leave a feature out when the share of ``score``'s rows outside ``fit``'s range exceeds
        this (in ``(0, 1]``; 1 never leaves one out). ``None`` disables the check.
    exempt : collection of str
        Features kept whatever their share, e.g. those with a monotone constraint, whose
        direction beyond the learnt range is known (see :data:`clv.models.trees.MONOTONE`).

    Returns
    -------
    dict of str to float
        The features beyond ``max_share`` and their share outside, largest first.

    Raises
    ------
    ValueError
        When ``max_share`` is outside ``(0, 1]``.
    """
    if max_share is None:
        return {}
    return beyond(outside_support(fit, score), max_share, exempt=exempt)


def beyond(
    shares: pd.Series, max_share: float | None, *, exempt: Collection[str] = ()
) -> dict[str, float]:
    """The features of :func:`outside_support`'s ``shares`` above ``max_share``, not exempt.

    Lets a caller measure the shares once and apply several thresholds (a report and a cut).
    ``None`` selects nothing; otherwise ``max_share`` must be in ``(0, 1]``.
    """
    if max_share is None:
        return {}
    if not 0.0 < max_share <= 1.0:
        raise ValueError(f"max_share must be in (0, 1] (or None to disable), got {max_share}")
    keep_anyway = set(exempt)
    return {
        str(name): float(share)
        for name, share in shares.items()
        if share > max_share and name not in keep_anyway
    }


def describe_shares(shares: Mapping[str, float]) -> str:
    """``"T 100%, gap_mean 69%"``: features and shares for a message or a report."""
    return ", ".join(f"{name} {share:.0%}" for name, share in shares.items())


def _finite(values: pd.Series) -> np.ndarray:
    array = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return array[np.isfinite(array)]
