"""Which cut-offs train, validate and hold out, so that nothing after a cut-off leaks into it.

For an as-of date ``A`` and a horizon ``h`` (days):

- the **holdout** cut-off is ``H = A - h``: its target window ``(H, A]`` is the last fully observed
  one, and it is used only to evaluate (never to fit, tune or weight anything);
- the **validation** cut-off is ``H - h``: its target ends at ``H``; it drives early stopping,
  Optuna and the ensemble weights;
- the **fit** cut-offs are ``H - h - k * step`` for ``k = 1..n_windows - 1``.

Every target a model learns from ends on or before ``H``, so the holdout is out of time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class WindowPlan:
    """Cut-offs of one training run.

    Attributes
    ----------
    as_of : Timestamp
        The training cut-off: no transaction after it is read.
    horizon_days : int
        Prediction horizon in days.
    holdout : Timestamp
        Evaluation cut-off (``as_of - horizon``).
    validation : Timestamp
        Validation cut-off (``holdout - horizon``).
    fit : tuple of Timestamp
        Fit cut-offs, oldest first.
    """

    as_of: pd.Timestamp
    horizon_days: int
    holdout: pd.Timestamp
    validation: pd.Timestamp
    fit: tuple[pd.Timestamp, ...]

    @property
    def training_cutoffs(self) -> list[pd.Timestamp]:
        """Fit and validation cut-offs, oldest first."""
        return [*self.fit, self.validation]

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form (ISO dates)."""
        return {
            "as_of": self.as_of.isoformat(),
            "horizon_days": self.horizon_days,
            "holdout": self.holdout.isoformat(),
            "validation": self.validation.isoformat(),
            "fit": [c.isoformat() for c in self.fit],
        }


def plan_from_dict(data: dict[str, Any]) -> WindowPlan:
    """The plan that :meth:`WindowPlan.to_dict` wrote."""
    return WindowPlan(
        as_of=pd.Timestamp(data["as_of"]),
        horizon_days=int(data["horizon_days"]),
        holdout=pd.Timestamp(data["holdout"]),
        validation=pd.Timestamp(data["validation"]),
        fit=tuple(pd.Timestamp(c) for c in data["fit"]),
    )


def end_of_day(day: pd.Timestamp) -> pd.Timestamp:
    """The last microsecond of ``day``'s date: a cut-off that includes the whole day."""
    return pd.Timestamp(day).normalize() + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)


def plan_windows(
    first_timestamp: pd.Timestamp,
    *,
    as_of: pd.Timestamp,
    horizon_days: int,
    n_windows: int = 12,
    step_days: int = 30,
) -> WindowPlan:
    """Lay out fit, validation and holdout cut-offs before ``as_of``.

    Parameters
    ----------
    first_timestamp : Timestamp
        The first transaction; a fit cut-off needs at least ``step_days`` of history before it.
    as_of : Timestamp
        Training cut-off.
    horizon_days : int
        Prediction horizon in days (at least 1).
    n_windows : int
        Training cut-offs wanted (validation included); fewer are used when history is short.
    step_days : int
        Days between fit cut-offs.

    Returns
    -------
    WindowPlan
        The cut-offs.

    Raises
    ------
    ValueError
        When the history before ``as_of`` cannot hold a fit window, a validation window and a
        holdout window of ``horizon_days`` each (the message says how much is missing).
    """
    if horizon_days < 1 or n_windows < 2 or step_days < 1:
        raise ValueError(
            "horizon_days and step_days must be at least 1 and n_windows at least 2, got "
            f"{horizon_days}, {step_days} and {n_windows}"
        )
    as_of = pd.Timestamp(as_of)
    first = pd.Timestamp(first_timestamp)
    holdout = as_of - pd.Timedelta(days=horizon_days)
    validation = holdout - pd.Timedelta(days=horizon_days)
    earliest = first + pd.Timedelta(days=step_days)
    fit = [
        validation - pd.Timedelta(days=horizon_days + (k - 1) * step_days)
        for k in range(1, n_windows)
    ]
    fit = [c for c in fit if c >= earliest]
    if not fit:
        needed = 3 * horizon_days + step_days
        have = (as_of - first).days
        raise ValueError(
            f"{have} days of history before the as-of date {as_of:%Y-%m-%d}; training needs at "
            f"least {needed} (a fit, a validation and a holdout window of {horizon_days} days, "
            f"plus {step_days} days of history). Use a later --as-of or a shorter --horizon-days."
        )
    return WindowPlan(
        as_of=as_of,
        horizon_days=horizon_days,
        holdout=holdout,
        validation=validation,
        fit=tuple(sorted(fit)),
    )
