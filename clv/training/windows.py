"""Which cut-offs train, validate and hold out, so that nothing after a cut-off leaks into it.

For an as-of date ``A``, a horizon ``h`` and an evaluation window ``v`` (days; ``v = h`` unless the
history is short):

- the **holdout** cut-off is ``H = A - v``: its target window ``(H, A]`` is the last fully observed
  one, and it is used only to evaluate (never to fit, tune or weight anything);
- the **validation** cut-off is ``V = H - v``: its target ends at ``H``; it drives early stopping,
  Optuna and the ensemble weights;
- the **fit** cut-offs are ``V - k * step`` for ``k = 1..n_windows - 1`` (targets of ``h`` days,
  which may overlap the validation window, as in every backtest since step 2, but end on or
  before ``H``).

Every target a model learns from ends on or before ``H``, so the holdout is out of time. Once the
holdout has measured the recipe, the **final** model that is registered is fitted with every window
one evaluation window later: the holdout window validates (early stopping, ensemble weights,
intervals) and the fit cut-offs are ``H - k * step``, so the registered model has learnt from
everything up to ``A``, as a backtest's model has learnt from everything up to its own as-of.

When the history is too short for ``v = h``, :func:`plan_windows` shortens the validation and
holdout windows (down to :func:`min_evaluation_days`); their spend is scaled by ``h / v`` wherever
it is compared with an ``h``-day prediction (:attr:`WindowPlan.target_scale`). Fewer fit windows
are used when fewer fit. The plan says what it reduced (:attr:`WindowPlan.reductions`).
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
    final_fit : tuple of Timestamp
        Fit cut-offs of the final (registered) model, oldest first: targets ending by ``as_of``.
    evaluation_days : int
        Length of the validation and holdout target windows (the horizon unless shortened).
    reductions : tuple of str
        What was reduced for a short history, in words (empty when nothing was).
    """

    as_of: pd.Timestamp
    horizon_days: int
    holdout: pd.Timestamp
    validation: pd.Timestamp
    fit: tuple[pd.Timestamp, ...]
    final_fit: tuple[pd.Timestamp, ...] = ()
    evaluation_days: int = 0
    reductions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.evaluation_days == 0:
            object.__setattr__(self, "evaluation_days", self.horizon_days)

    @property
    def training_cutoffs(self) -> list[pd.Timestamp]:
        """Fit and validation cut-offs, oldest first."""
        return [*self.fit, self.validation]

    @property
    def final_cutoffs(self) -> list[pd.Timestamp]:
        """Fit and validation cut-offs of the final model (it validates on the holdout)."""
        return [*self.final_fit, self.holdout]

    @property
    def all_cutoffs(self) -> list[pd.Timestamp]:
        """Every cut-off whose rows the plan needs, oldest first."""
        return sorted({*self.fit, *self.final_fit, self.validation, self.holdout})

    @property
    def short_windows(self) -> tuple[pd.Timestamp, ...]:
        """Cut-offs whose targets span :attr:`evaluation_days` instead of the horizon."""
        return (self.validation, self.holdout)

    @property
    def target_scale(self) -> float:
        """``horizon / evaluation window``: what a shortened window's spend is multiplied by."""
        return self.horizon_days / self.evaluation_days

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form (ISO dates)."""
        return {
            "as_of": self.as_of.isoformat(),
            "horizon_days": self.horizon_days,
            "holdout": self.holdout.isoformat(),
            "validation": self.validation.isoformat(),
            "fit": [c.isoformat() for c in self.fit],
            "final_fit": [c.isoformat() for c in self.final_fit],
            "evaluation_days": self.evaluation_days,
            "reductions": list(self.reductions),
        }


def plan_from_dict(data: dict[str, Any]) -> WindowPlan:
    """The plan that :meth:`WindowPlan.to_dict` wrote."""
    return WindowPlan(
        as_of=pd.Timestamp(data["as_of"]),
        horizon_days=int(data["horizon_days"]),
        holdout=pd.Timestamp(data["holdout"]),
        validation=pd.Timestamp(data["validation"]),
        fit=tuple(pd.Timestamp(c) for c in data["fit"]),
        final_fit=tuple(pd.Timestamp(c) for c in data.get("final_fit", ())),
        evaluation_days=int(data.get("evaluation_days", 0)),
        reductions=tuple(data.get("reductions", ())),
    )


def end_of_day(day: pd.Timestamp) -> pd.Timestamp:
    """The last microsecond of ``day``'s date: a cut-off that includes the whole day."""
    return pd.Timestamp(day).normalize() + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)


def min_evaluation_days(horizon_days: int) -> int:
    """The shortest validation / holdout window a plan may use: a quarter of the horizon, >= 7."""
    return max(7, -(-horizon_days // 4))


class HistoryTooShortError(ValueError):
    """Not even shortened validation and holdout windows and one fit window fit the history."""


def _fit_cutoffs(
    latest: pd.Timestamp, earliest: pd.Timestamp, *, n: int, step_days: int
) -> tuple[pd.Timestamp, ...]:
    cutoffs = [latest - pd.Timedelta(days=k * step_days) for k in range(n)]
    return tuple(sorted(c for c in cutoffs if c >= earliest))


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
        The cut-offs. With a history shorter than two horizons plus two ``step_days``, the
        validation and holdout windows are shortened to the longest that fits (at least
        :func:`min_evaluation_days`); :attr:`WindowPlan.reductions` says so, and says when fewer
        fit windows than asked for fit.

    Raises
    ------
    HistoryTooShortError
        When not even the shortest validation and holdout windows and one fit window of
        ``horizon_days`` fit (the message says how many days are needed and available).
    """
    if horizon_days < 1 or n_windows < 2 or step_days < 1:
        raise ValueError(
            "horizon_days and step_days must be at least 1 and n_windows at least 2, got "
            f"{horizon_days}, {step_days} and {n_windows}"
        )
    as_of = pd.Timestamp(as_of)
    first = pd.Timestamp(first_timestamp)
    earliest = first + pd.Timedelta(days=step_days)
    have = (as_of - first).days
    # The longest evaluation window v for which a fit cut-off fits: the latest fit cut-off,
    # min(as_of - 2v - step, as_of - v - h), must lie at or after the earliest.
    room = min(
        (as_of - pd.Timedelta(days=step_days) - earliest).days // 2,
        (as_of - pd.Timedelta(days=horizon_days) - earliest).days,
    )
    evaluation_days = min(horizon_days, room)
    shortest = min_evaluation_days(horizon_days)
    if evaluation_days < min(shortest, horizon_days):
        window = min(shortest, horizon_days)
        needed = max(2 * window + 2 * step_days, window + horizon_days + step_days)
        raise HistoryTooShortError(
            f"{have} days of history before the as-of date {as_of:%Y-%m-%d}; a learnt model "
            f"needs at least {needed} (validation and holdout windows of "
            f"{min(shortest, horizon_days)} days, a fit cut-off {step_days} days before the "
            f"validation's, and {step_days} days of history before it). Use a later --as-of "
            "or a shorter --horizon-days."
        )
    holdout = as_of - pd.Timedelta(days=evaluation_days)
    validation = holdout - pd.Timedelta(days=evaluation_days)
    n_fit = n_windows - 1
    step, horizon = pd.Timedelta(days=step_days), pd.Timedelta(days=horizon_days)
    # A fit target may overlap the validation window but must end by the holdout's cut-off
    # (the final model's: by the as-of date).
    latest_fit = min(validation - step, holdout - horizon)
    fit = _fit_cutoffs(latest_fit, earliest, n=n_fit, step_days=step_days)
    final_fit = _fit_cutoffs(
        min(holdout - step, as_of - horizon), earliest, n=n_fit, step_days=step_days
    )
    reductions: list[str] = []
    if evaluation_days < horizon_days:
        reductions.append(
            f"validation and holdout windows shortened to {evaluation_days} days (the horizon is "
            f"{horizon_days}; {have} days of history, {2 * horizon_days + 2 * step_days} needed "
            f"for full windows); their spend is scaled by {horizon_days}/{evaluation_days}"
        )
    if len(fit) < n_fit:
        reductions.append(
            f"{len(fit)} fit window(s) instead of {n_fit}: the history holds no more "
            f"{step_days} days apart"
        )
    return WindowPlan(
        as_of=as_of,
        horizon_days=horizon_days,
        holdout=holdout,
        validation=validation,
        fit=fit,
        final_fit=final_fit,
        evaluation_days=evaluation_days,
        reductions=tuple(reductions),
    )
