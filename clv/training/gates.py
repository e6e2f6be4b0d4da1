"""The promotion gate as a pure function: a challenger against the champion and the references.

A challenger earns the ``champion`` alias only when, on its own holdout and on the primary metric,
it is at least as good as every one of:

- the current champion, scored on that same holdout (never the champion's own, older holdout);
- BG/NBD + Gamma-Gamma and the run rate for spend models, BG/NBD's probability of no purchase
  for churn models, fitted and scored in the challenger's training run on that holdout.

A comparison that cannot be made (a score is missing) fails the gate: the challenger has not shown
it is not worse. Ties pass. Nothing here reads the registry: :mod:`clv.tracking` gathers the
numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

#: The champion's key among a gate's opponents.
CHAMPION = "champion"

#: References of each model family, as (key in the training report, label for people).
#: The keys are the ``report.metrics`` / ``report.churn_metrics`` keys of the training pipeline.
SPEND_REFERENCES: tuple[tuple[str, str], ...] = (
    ("bgnbd_gamma_gamma", "BG/NBD + Gamma-Gamma"),
    ("run_rate", "run rate"),
)
CHURN_REFERENCES: tuple[tuple[str, str], ...] = (
    ("bgnbd_p_no_purchase_in_horizon", "BG/NBD P(no purchase)"),
)


def _number(value: float | None) -> float | None:
    """``value`` as a float, ``None`` when missing or not a number (NaN, inf)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Check:
    """The challenger against one opponent on the primary metric.

    Attributes
    ----------
    opponent : str
        Who is compared with, e.g. ``"champion v3"`` or ``"BG/NBD + Gamma-Gamma"``.
    challenger, opponent_value : float or None
        The two scores on the challenger's holdout (``None``: not available).
    higher_is_better : bool
        Direction of the metric.
    missing_reason : str
        Why ``opponent_value`` is missing, when it is (shown to the reviewer).
    """

    opponent: str
    challenger: float | None
    opponent_value: float | None
    higher_is_better: bool
    missing_reason: str = ""

    @property
    def margin(self) -> float | None:
        """How much better the challenger is (positive) or worse (negative); None if unknown."""
        if self.challenger is None or self.opponent_value is None:
            return None
        difference = self.challenger - self.opponent_value
        return difference if self.higher_is_better else -difference

    @property
    def passed(self) -> bool:
        """True when both scores exist and the challenger is not worse."""
        margin = self.margin
        return margin is not None and margin >= 0

    def explain(self, metric: str) -> str:
        """One sentence for a failed check: who it lost to, on what, and by how much."""
        if self.challenger is None:
            return f"the challenger has no {metric} score to compare with {self.opponent}"
        if self.opponent_value is None:
            why = f" ({self.missing_reason})" if self.missing_reason else ""
            return f"{self.opponent} has no {metric} score on the challenger's holdout{why}"
        shortfall = abs(self.challenger - self.opponent_value)
        return (
            f"loses to {self.opponent} on {metric}: {self.challenger:.4f} vs "
            f"{self.opponent_value:.4f} (worse by {shortfall:.4f})"
        )


@dataclass(frozen=True)
class Verdict:
    """Outcome of :func:`judge`: every check, and whether the challenger passed all of them."""

    metric: str
    higher_is_better: bool
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        """True when every check passed (also when there is nothing to compare with)."""
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        """The checks that failed, in the order given."""
        return tuple(check for check in self.checks if not check.passed)

    def message(self) -> str:
        """Why the gate refused ("" when it passed)."""
        if self.passed:
            return ""
        direction = "higher" if self.higher_is_better else "lower"
        reasons = "; ".join(check.explain(self.metric) for check in self.failures)
        return f"{reasons} ({direction} is better)"


def judge(
    metric: str,
    *,
    higher_is_better: bool,
    challenger: float | None,
    opponents: Mapping[str, float | None],
    missing_reasons: Mapping[str, str] | None = None,
) -> Verdict:
    """Compare a challenger's score with each opponent's on the same holdout.

    Parameters
    ----------
    metric : str
        The primary metric's name (for messages), e.g. ``"holdout_normalized_gini"``.
    higher_is_better : bool
        Direction of ``metric``.
    challenger : float or None
        The challenger's score; ``None`` or NaN fails every check.
    opponents : mapping of str to float or None
        Label → score on the challenger's holdout, in the order the checks are wanted (champion
        first, then the references). ``None`` or NaN fails that check: a comparison that cannot
        be made is not a pass. Leave the champion out when there is none.
    missing_reasons : mapping of str to str, optional
        Label → why its score is missing, repeated in the message.

    Returns
    -------
    Verdict
        ``passed`` is True when the challenger is at least as good as every opponent.
    """
    reasons = dict(missing_reasons or {})
    own = _number(challenger)
    checks = tuple(
        Check(
            opponent=label,
            challenger=own,
            opponent_value=_number(value),
            higher_is_better=higher_is_better,
            missing_reason=reasons.get(label, ""),
        )
        for label, value in opponents.items()
    )
    return Verdict(metric=metric, higher_is_better=higher_is_better, checks=checks)
