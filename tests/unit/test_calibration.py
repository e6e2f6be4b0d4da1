"""The seasonal level factor is last year's realised/predicted ratio, or 1 without last year."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clv.models.calibration import seasonal_level_factor

AS_OF = pd.Timestamp("2025-09-30 23:59:59")


def _windows(cutoffs: list[str], spend: list[float]) -> pd.DataFrame:
    rows = []
    for cutoff, y in zip(cutoffs, spend, strict=True):
        rows += [{"cutoff": pd.Timestamp(cutoff), "x": 1.0, "future_spend": y}] * 4
    return pd.DataFrame(rows)


def _one_each(X: pd.DataFrame) -> np.ndarray:
    return np.ones(len(X))


def test_factor_is_realised_over_predicted_on_the_window_a_year_earlier() -> None:
    windows = _windows(["2024-08-01", "2024-10-05", "2025-07-01"], [1.0, 1.25, 0.9])
    found = seasonal_level_factor(_one_each, windows, as_of=AS_OF, feature_columns=["x"])
    # the 2024-10-05 window is 360 days before the as-of: 4 rows, realised 4 x 1.25, predicted 4
    assert found.factor == pytest.approx(1.25)
    assert found.reference_cutoff == pd.Timestamp("2024-10-05")


def test_no_window_a_year_earlier_means_no_correction() -> None:
    windows = _windows(["2025-03-01", "2025-07-01"], [2.0, 2.0])
    found = seasonal_level_factor(_one_each, windows, as_of=AS_OF, feature_columns=["x"])
    assert (found.factor, found.reference_cutoff) == (1.0, None)


def test_factor_is_clipped_against_outliers() -> None:
    windows = _windows(["2024-09-30"], [50.0])
    found = seasonal_level_factor(_one_each, windows, as_of=AS_OF, feature_columns=["x"])
    assert found.factor == 2.0
