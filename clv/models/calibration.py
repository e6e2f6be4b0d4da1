"""Seasonal level calibration: carry last year's same-season miss into this year's prediction.

Models trained on rolling windows learn shares and shapes well, but under-fit the *level* of a
peak season: on generated data with holidays, a model that is right on average predicts only
~0.89 of the spend of last year's October–December window, in sample. The "seasonal naive"
correction is to look up the training window whose cut-off lies one year before the scoring
cut-off, measure the model's total miss on it (realised / predicted), and multiply this year's
predictions by that factor. Without such a window (less than a year of history, as on CDNOW) the
factor is 1 and nothing changes.

The factor is measured on a window the model was trained on, so it under-corrects rather than
over-corrects; it is clipped to [0.5, 2] against outliers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

FACTOR_BOUNDS = (0.5, 2.0)


@dataclass(frozen=True)
class SeasonalFactor:
    """A level correction and where it came from.

    Attributes
    ----------
    factor : float
        Multiplier for predictions at the scoring cut-off (1.0 when no window matched).
    reference_cutoff : Timestamp or None
        Training cut-off one year before the scoring cut-off that the factor was measured on.
    """

    factor: float
    reference_cutoff: pd.Timestamp | None


def seasonal_level_factor(
    predict: Callable[[pd.DataFrame], np.ndarray],
    windows: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    feature_columns: list[str],
    target: str = "future_spend",
    tolerance_days: int = 20,
) -> SeasonalFactor:
    """Realised over predicted total on the training window one year before ``as_of``.

    Parameters
    ----------
    predict : callable
        The fitted model's ``predict``.
    windows : DataFrame
        Stacked training rows with ``cutoff``, the target and the feature columns.
    as_of : Timestamp
        The scoring cut-off.
    feature_columns : list of str
        Columns to pass to ``predict``.
    target : str
        Target column.
    tolerance_days : int
        How far from exactly one year the reference cut-off may be.

    Returns
    -------
    SeasonalFactor
        The factor (1.0 when no cut-off lies within the tolerance, or its prediction is 0).
    """
    wanted = pd.Timestamp(as_of) - pd.Timedelta(days=365)
    cutoffs = pd.to_datetime(pd.Series(windows["cutoff"].unique()))
    if cutoffs.empty:
        return SeasonalFactor(1.0, None)
    distance = (cutoffs - wanted).abs()
    nearest = cutoffs.iloc[int(distance.argmin())]
    if distance.min() > pd.Timedelta(days=tolerance_days):
        return SeasonalFactor(1.0, None)
    rows = windows[windows["cutoff"] == nearest]
    predicted = float(np.sum(predict(rows[feature_columns])))
    if predicted <= 0:
        return SeasonalFactor(1.0, None)
    factor = float(np.clip(rows[target].sum() / predicted, *FACTOR_BOUNDS))
    return SeasonalFactor(factor, pd.Timestamp(nearest))
