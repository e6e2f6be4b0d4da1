"""Prediction intervals for any spend model, calibrated on a validation window.

Split-conformal in spirit: on held-out rows, the realised-to-predicted ratio ``y / ŷ`` is collected
per bin of predicted value, and its equal-tailed quantiles become each bin's multipliers. A new
prediction ``ŷ`` in bin ``b`` gets ``[ŷ · lo_b, ŷ · hi_b]``: about ``coverage`` of customers like
those in the validation window fall inside, and the width follows the model's own scale. Rows
predicted at (near) zero get the bin's absolute quantiles instead of ratios.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt

#: Predictions below this are treated as zero (a ratio to them is meaningless).
ZERO = 1e-9


@dataclass
class BinnedRatioInterval:
    """Per-bin ratio quantiles learnt on validation rows.

    Attributes
    ----------
    coverage : float
        Nominal coverage.
    edges : list of float
        Interior bin edges on the predicted value (ascending).
    lower, upper : list of float
        Ratio quantiles per bin (``len(edges) + 1`` each).
    zero_lower, zero_upper : float
        Absolute spend quantiles of rows predicted at zero.
    """

    coverage: float
    edges: list[float]
    lower: list[float]
    upper: list[float]
    zero_lower: float = 0.0
    zero_upper: float = 0.0

    @classmethod
    def fit(
        cls,
        y_true: npt.ArrayLike,
        y_pred: npt.ArrayLike,
        *,
        coverage: float = 0.8,
        n_bins: int = 10,
    ) -> Self:
        """Learn the multipliers from realised and predicted spend on held-out rows.

        Parameters
        ----------
        y_true, y_pred : array-like
            Realised and predicted spend (same length, finite, non-negative predictions).
        coverage : float
            Nominal coverage, strictly between 0 and 1.
        n_bins : int
            Bins of predicted value (fewer when there are few distinct predictions).

        Returns
        -------
        BinnedRatioInterval
            The fitted interval.

        Raises
        ------
        ValueError
            On a bad coverage, different lengths, non-finite values or no rows.
        """
        if not 0.0 < coverage < 1.0:
            raise ValueError(f"coverage must be strictly between 0 and 1, got {coverage!r}")
        y = np.asarray(y_true, dtype="float64")
        p = np.asarray(y_pred, dtype="float64")
        if y.shape != p.shape or y.ndim != 1 or len(y) == 0:
            raise ValueError(
                f"y_true and y_pred must be 1-d of one non-zero length: {y.shape}, {p.shape}"
            )
        if not (np.isfinite(y).all() and np.isfinite(p).all()):
            raise ValueError("y_true and y_pred must be finite")
        zero = p < ZERO
        zero_lower, zero_upper = _bounds(y[zero], coverage) if zero.any() else (0.0, 0.0)
        yp, pp = y[~zero], p[~zero]
        if len(pp) == 0:
            return cls(coverage, [], [0.0], [0.0], zero_lower, zero_upper)
        edges = np.unique(np.quantile(pp, np.linspace(0, 1, n_bins + 1)[1:-1]))
        bins = np.searchsorted(edges, pp, side="right")
        ratio = yp / pp
        lower, upper = [], []
        for b in range(len(edges) + 1):
            r = ratio[bins == b]
            if len(r) == 0:  # an empty bin borrows the overall ratios
                r = ratio
            lo, hi = _bounds(r, coverage)
            lower.append(lo)
            upper.append(hi)
        return cls(coverage, edges.tolist(), lower, upper, zero_lower, zero_upper)

    def apply(self, y_pred: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` bounds for predictions ``y_pred`` (never negative)."""
        p = np.asarray(y_pred, dtype="float64")
        bins = np.searchsorted(np.asarray(self.edges), p, side="right")
        lower = p * np.asarray(self.lower)[bins]
        upper = p * np.asarray(self.upper)[bins]
        zero = p < ZERO
        lower[zero], upper[zero] = self.zero_lower, self.zero_upper
        return np.maximum(lower, 0.0), np.maximum(upper, 0.0)

    def to_json(self) -> str:
        """JSON text (saved beside the model; nothing pickled)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Self:
        """Read what :meth:`to_json` wrote."""
        data: dict[str, Any] = json.loads(text)
        return cls(**data)


def _bounds(values: np.ndarray, coverage: float) -> tuple[float, float]:
    """Central ``coverage`` quantiles of ``values``, or ``[0, q(coverage)]`` when the lower tail
    is all zeros.

    Spend has a point mass at zero: when at least ``(1 - coverage) / 2`` of the values are 0, the
    central interval's lower end is 0 and it holds every zero, so ``[0, q((1 + coverage) / 2)]``
    would hold ``(1 + coverage) / 2`` of the values (0.9 for an 80% interval), not ``coverage``.
    Its upper end is then the ``coverage`` quantile, which holds exactly ``coverage``.
    """
    q_lo, q_hi = (1.0 - coverage) / 2.0, (1.0 + coverage) / 2.0
    lower = float(np.quantile(values, q_lo))
    if lower <= 0.0:
        return 0.0, float(np.quantile(values, coverage))
    return lower, float(np.quantile(values, q_hi))
