"""Sample size, power and minimum detectable effect for a two-variant A/B test.

The test is two-sided, with equal allocation: every variant (control included) gets the
same number of units, ``n_per_variant``. Two kinds of metric are covered:

* a **rate** (conversion, churn, ...) given as ``baseline_rate``: the effect size is
  Cohen's h, ``2 asin(sqrt(p2)) - 2 asin(sqrt(p1))``, and the test a two-sample z-test on
  the arcsine-transformed proportions;
* a **mean** (spend, CLV, ...) given as ``baseline_mean`` and ``baseline_sd``: the effect
  size is Cohen's d, ``|mde| * |baseline_mean| / baseline_sd``, and the test a pooled
  two-sample t-test with ``2n - 2`` degrees of freedom.

The power equations are those of ``statsmodels.stats.power.NormalIndPower`` and
``TTestIndPower`` with ``ratio=1, alternative="two-sided"`` (the unit tests check the
answers against statsmodels); statsmodels is not needed at runtime, scipy does the work.

``mde`` is always *relative* to the baseline: ``mde=0.1`` means +10 % on the baseline
rate or mean, ``mde=-0.1`` a 10 % decrease.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

from clv.experiments.errors import ExperimentInputError

__all__ = ["minimum_detectable_effect", "power_of", "sample_size"]

# The smallest sample a two-sample t-test can use (df = 2n - 2 > 0); statsmodels' solver
# uses the same lower bound.
_MIN_N = 2
# Beyond this many units per variant the effect is, for any real experiment, undetectable;
# the solvers stop here instead of searching further.
_MAX_N = 10**12


@dataclass(frozen=True)
class _RateBaseline:
    rate: float

    def describe(self) -> str:
        return f"baseline_rate={self.rate:g}"


@dataclass(frozen=True)
class _MeanBaseline:
    mean: float
    sd: float

    def describe(self) -> str:
        return f"baseline_mean={self.mean:g}, baseline_sd={self.sd:g}"


_Baseline = _RateBaseline | _MeanBaseline


# --------------------------------------------------------------------------- validation


def _finite_real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ExperimentInputError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ExperimentInputError(f"{name} must be a finite number, got {number}")
    return number


def _open_unit_interval(name: str, value: object) -> float:
    number = _finite_real(name, value)
    if not 0.0 < number < 1.0:
        raise ExperimentInputError(f"{name} must be strictly between 0 and 1, got {number:g}")
    return number


def _whole_number(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ExperimentInputError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    number = int(value)
    if number < minimum:
        raise ExperimentInputError(f"{name} must be >= {minimum}, got {number}")
    return number


def _baseline(
    baseline_rate: float | None, baseline_mean: float | None, baseline_sd: float | None
) -> _Baseline:
    gave_rate = baseline_rate is not None
    gave_mean = baseline_mean is not None or baseline_sd is not None
    if gave_rate and gave_mean:
        raise ExperimentInputError(
            "give either baseline_rate (for a rate metric) or baseline_mean and baseline_sd "
            "(for a mean metric), not both"
        )
    if not gave_rate and not gave_mean:
        raise ExperimentInputError(
            "no baseline given: pass baseline_rate (for a rate metric) or baseline_mean and "
            "baseline_sd (for a mean metric)"
        )
    if gave_rate:
        return _RateBaseline(rate=_open_unit_interval("baseline_rate", baseline_rate))
    if baseline_mean is None:
        raise ExperimentInputError("baseline_mean is required with baseline_sd")
    if baseline_sd is None:
        raise ExperimentInputError("baseline_sd is required with baseline_mean")
    mean = _finite_real("baseline_mean", baseline_mean)
    if mean == 0.0:
        raise ExperimentInputError(
            "baseline_mean must not be 0: mde is relative to it, so a relative change of a "
            "zero mean is undefined"
        )
    sd = _finite_real("baseline_sd", baseline_sd)
    if sd <= 0.0:
        raise ExperimentInputError(f"baseline_sd must be > 0, got {sd:g}")
    return _MeanBaseline(mean=mean, sd=sd)


def _adjusted_alpha(alpha: object, comparisons: object) -> float:
    alpha_ = _open_unit_interval("alpha", alpha)
    return alpha_ / _whole_number("comparisons", comparisons, minimum=1)


def _target_power(power: object, alpha_adjusted: float) -> float:
    power_ = _open_unit_interval("power", power)
    if power_ <= alpha_adjusted:
        # With no effect at all the test already rejects with probability alpha', so any
        # n (or an effect of zero) would "reach" this power; that is never what is meant.
        raise ExperimentInputError(
            f"power must be greater than the per-comparison alpha ({alpha_adjusted:g}), "
            f"got {power_:g}"
        )
    return power_


def _effect_size(baseline: _Baseline, mde: object) -> float:
    """Absolute standardised effect size (Cohen's h or d) of a relative change ``mde``."""
    relative = _finite_real("mde", mde)
    if relative == 0.0:
        raise ExperimentInputError("mde must not be 0: no sample size detects a zero effect")
    if isinstance(baseline, _MeanBaseline):
        d = abs(relative) * abs(baseline.mean) / baseline.sd
        if not math.isfinite(d):
            raise ExperimentInputError(
                f"mde={relative:g} on {baseline.describe()} gives an effect size "
                f"|mde| * |baseline_mean| / baseline_sd too large to compute; check that "
                f"baseline_mean and baseline_sd are in the same units"
            )
        return d
    p1 = baseline.rate
    p2 = p1 * (1.0 + relative)
    if not 0.0 < p2 < 1.0:
        raise ExperimentInputError(
            f"mde={relative:g} on baseline_rate={p1:g} gives a treated rate of {p2:g}, "
            f"which is not a rate: it must be strictly between 0 and 1, so mde must be "
            f"between -1 and {1.0 / p1 - 1.0:g}"
        )
    return abs(2.0 * math.asin(math.sqrt(p2)) - 2.0 * math.asin(math.sqrt(p1)))


# ------------------------------------------------------------------------ power formulas


def _normal_power(effect: float, n: float, alpha_adjusted: float) -> float:
    """Power of the two-sided two-sample z-test: ``NormalIndPower`` with ``ratio=1``."""
    # scipy.special rather than scipy.stats.norm: the same functions without the per-call
    # overhead of the distribution objects, which dominates inside the root finders.
    z = -float(special.ndtri(alpha_adjusted / 2.0))
    shift = effect * math.sqrt(n / 2.0)
    return float(special.ndtr(shift - z) + special.ndtr(-shift - z))


def _t_power(effect: float, n: float, alpha_adjusted: float) -> float:
    """Power of the two-sided pooled two-sample t-test: ``TTestIndPower`` with ``ratio=1``."""
    df = 2.0 * n - 2.0
    noncentrality = effect * math.sqrt(n / 2.0)
    t_crit = -float(special.stdtrit(df, alpha_adjusted / 2.0))
    if noncentrality > 1e3 * t_crit:
        # Power is 1 to double precision (the miss probability is below exp(-1e6) even at
        # df=2), and scipy's nct returns nan for noncentralities beyond about 1e9.
        return 1.0
    # P(T < -t_crit; nc) is computed as P(T > t_crit; -nc) (the same number, by symmetry of
    # the noncentral t): scipy's nct.cdf returns nan where that lower tail underflows, its
    # survival function does not.
    tails = stats.nct.sf(t_crit, df, np.array([noncentrality, -noncentrality]))
    power = float(tails[0] + tails[1])
    if not math.isfinite(power):
        raise ExperimentInputError(
            f"the t-test power cannot be computed at n_per_variant={n:g} with effect size "
            f"{effect:g} and per-comparison alpha {alpha_adjusted:g}; use a less extreme alpha"
        )
    return power


def _power(baseline: _Baseline, effect: float, n: float, alpha_adjusted: float) -> float:
    if isinstance(baseline, _RateBaseline):
        return _normal_power(effect, n, alpha_adjusted)
    return _t_power(effect, n, alpha_adjusted)


# ------------------------------------------------------------------------------ public


def sample_size(
    *,
    mde: float,
    baseline_rate: float | None = None,
    baseline_mean: float | None = None,
    baseline_sd: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    comparisons: int = 1,
) -> int:
    """Units needed in each variant to detect a relative change ``mde`` with ``power``.

    Give exactly one baseline: ``baseline_rate`` for a rate metric, or ``baseline_mean``
    and ``baseline_sd`` for a mean metric.

    Parameters
    ----------
    mde : float
        Minimum detectable effect, relative to the baseline: ``0.1`` is +10 %, ``-0.1``
        a 10 % decrease. Must be finite and non-zero; for a rate the treated rate
        ``baseline_rate * (1 + mde)`` must lie strictly between 0 and 1.
    baseline_rate : float, optional
        Control rate, strictly between 0 and 1.
    baseline_mean : float, optional
        Control mean, non-zero (any sign).
    baseline_sd : float, optional
        Standard deviation of the metric per unit, > 0 (assumed equal in both variants).
    alpha : float, default 0.05
        Family-wise significance level of the two-sided test, in (0, 1).
    power : float, default 0.8
        Required probability of a significant result when the effect is ``mde``, in
        (0, 1) and above ``alpha / comparisons``.
    comparisons : int, default 1
        Number of variant-vs-control comparisons sharing ``alpha``; each is tested at
        ``alpha / comparisons`` (Bonferroni).

    Returns
    -------
    int
        The smallest whole number of units per variant, at least 2, whose power is at
        least ``power``. Total units are this times the number of variants.

    Raises
    ------
    ExperimentInputError
        If an argument is out of range, both or neither kind of baseline is given, or the
        effect is so small that more than 10**12 units per variant would be needed.

    Notes
    -----
    For a rate the answer equals ``ceil(NormalIndPower().solve_power(effect_size=h,
    alpha=alpha, power=power, ratio=1))`` with ``h = proportion_effectsize(p2, p1)``; for a
    mean, ``ceil(TTestIndPower().solve_power(effect_size=d, ...))`` with
    ``d = |mde| * |baseline_mean| / baseline_sd``. They differ in two ways. The answer is
    never below 2 units (the smallest a t-test can use). And for means the answer here is
    right where statsmodels' is not: its t-test power is ``nan`` wherever scipy's
    noncentral-t cdf underflows in the lower tail (huge effects at small n, and many n at
    alpha 0.001), and its solver takes ``nan`` for "power reached", returning ``nan`` or an
    n whose power is below the target. Here that tail is computed through the survival
    function, which does not underflow to ``nan``.

    Bonferroni is conservative for Holm's step-down procedure (Holm tests the first
    hypothesis at ``alpha / comparisons`` and the later ones at larger levels), so a sample
    sized here is enough under Holm too.

    Examples
    --------
    >>> sample_size(mde=0.1, baseline_rate=0.05)
    31218
    """
    baseline = _baseline(baseline_rate, baseline_mean, baseline_sd)
    alpha_adjusted = _adjusted_alpha(alpha, comparisons)
    target = _target_power(power, alpha_adjusted)
    effect = _effect_size(baseline, mde)

    too_small = ExperimentInputError(
        f"mde={float(mde):g} on {baseline.describe()} is too small to detect: it would "
        f"need more than 10**12 units per variant for power {target:g} at alpha "
        f"{alpha_adjusted:g} (per comparison); use a larger mde"
    )
    if effect == 0.0:  # the treated rate rounds to the baseline rate
        raise too_small

    def shortfall(n: float) -> float:
        return _power(baseline, effect, n, alpha_adjusted) - target

    # Bracket the root around the textbook normal approximation (one tail only), which the
    # exact answer is close to, so brentq needs a few steps; widen to [2, 10**12] if not.
    z_alpha = -float(special.ndtri(alpha_adjusted / 2.0))
    z_power = float(special.ndtri(target))
    units_per_effect = (z_alpha + z_power) / effect
    guess = 2.0 * units_per_effect * units_per_effect  # inf, not OverflowError, if huge
    low = min(max(_MIN_N, guess / 2.0), _MAX_N)
    high = min(max(_MIN_N, 2.0 * guess + 10.0), _MAX_N)
    if shortfall(low) >= 0.0:
        if low == _MIN_N or shortfall(_MIN_N) >= 0.0:
            return _MIN_N
        low = _MIN_N
    if shortfall(high) < 0.0:
        if high == _MAX_N or shortfall(_MAX_N) < 0.0:
            raise too_small
        high = _MAX_N
    root = float(optimize.brentq(shortfall, low, high, xtol=1e-9))
    n = max(_MIN_N, math.ceil(root))
    # The root is exact to ~1e-9 units; these two checks make the answer the smallest whole
    # n that reaches the power even when the root lies within rounding of an integer.
    if n > _MIN_N and shortfall(n - 1) >= 0.0:
        n -= 1
    elif shortfall(n) < 0.0:
        n += 1
    return n


def power_of(
    n_per_variant: int,
    *,
    mde: float,
    baseline_rate: float | None = None,
    baseline_mean: float | None = None,
    baseline_sd: float | None = None,
    alpha: float = 0.05,
    comparisons: int = 1,
) -> float:
    """Probability that the test is significant when the true relative change is ``mde``.

    Parameters
    ----------
    n_per_variant : int
        Units in each variant, >= 2.
    mde : float
        True effect, relative to the baseline (``0.1`` is +10 %); finite and non-zero.
    baseline_rate, baseline_mean, baseline_sd : float, optional
        The baseline, as in :func:`sample_size`: a rate, or a mean and its standard
        deviation.
    alpha : float, default 0.05
        Family-wise significance level, in (0, 1).
    comparisons : int, default 1
        Number of comparisons sharing ``alpha`` (Bonferroni: each at
        ``alpha / comparisons``).

    Returns
    -------
    float
        The power, in (``alpha / comparisons``, 1].

    Raises
    ------
    ExperimentInputError
        If an argument is out of range or both or neither kind of baseline is given.

    Examples
    --------
    >>> round(power_of(31218, mde=0.1, baseline_rate=0.05), 4)
    0.8
    """
    n = _whole_number("n_per_variant", n_per_variant, minimum=_MIN_N)
    baseline = _baseline(baseline_rate, baseline_mean, baseline_sd)
    alpha_adjusted = _adjusted_alpha(alpha, comparisons)
    effect = _effect_size(baseline, mde)
    return _power(baseline, effect, n, alpha_adjusted)


def minimum_detectable_effect(
    n_per_variant: int,
    *,
    baseline_rate: float | None = None,
    baseline_mean: float | None = None,
    baseline_sd: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    comparisons: int = 1,
) -> float:
    """Smallest relative increase that ``n_per_variant`` units per variant detect.

    Parameters
    ----------
    n_per_variant : int
        Units in each variant, >= 2.
    baseline_rate, baseline_mean, baseline_sd : float, optional
        The baseline, as in :func:`sample_size`: a rate, or a mean and its standard
        deviation.
    alpha : float, default 0.05
        Family-wise significance level, in (0, 1).
    power : float, default 0.8
        Required power, in (0, 1) and above ``alpha / comparisons``.
    comparisons : int, default 1
        Number of comparisons sharing ``alpha`` (Bonferroni: each at
        ``alpha / comparisons``).

    Returns
    -------
    float
        The relative effect ``mde > 0`` at which the power equals ``power``:
        ``power_of(n_per_variant, mde=result, ...) == power`` (to solver precision). For a
        mean, the change is in the direction away from zero (``|mean| * (1 + mde)``); a
        decrease of the same size is detected equally well. For a rate it is an increase;
        a decrease of the same relative size is not equally detectable (Cohen's h is not
        linear in the rate), so use :func:`power_of` for decreases.

    Raises
    ------
    ExperimentInputError
        If an argument is out of range, both or neither kind of baseline is given, or (for
        a rate) even a treated rate of 1 would not reach ``power``.

    Notes
    -----
    The effect size is solved with ``scipy.optimize.brentq``; for a rate the treated rate
    is ``p2 = sin(asin(sqrt(p1)) + h / 2) ** 2`` and the result ``p2 / p1 - 1``, for a mean
    ``d * baseline_sd / |baseline_mean|``.

    Examples
    --------
    >>> round(minimum_detectable_effect(31218, baseline_rate=0.05), 4)
    0.1
    """
    n = _whole_number("n_per_variant", n_per_variant, minimum=_MIN_N)
    baseline = _baseline(baseline_rate, baseline_mean, baseline_sd)
    alpha_adjusted = _adjusted_alpha(alpha, comparisons)
    target = _target_power(power, alpha_adjusted)

    def shortfall(effect: float) -> float:
        return _power(baseline, effect, n, alpha_adjusted) - target

    if isinstance(baseline, _RateBaseline):
        angle = math.asin(math.sqrt(baseline.rate))
        largest_h = math.pi - 2.0 * angle  # the h of a treated rate of exactly 1
        if shortfall(largest_h) < 0.0:
            raise ExperimentInputError(
                f"n_per_variant={n} is too small for {baseline.describe()}: even a treated "
                f"rate of 1 would not reach power {target:g} at alpha {alpha_adjusted:g} "
                f"(per comparison); use more units (see sample_size)"
            )
        h = float(optimize.brentq(shortfall, 0.0, largest_h, xtol=1e-14))
        treated_rate = math.sin(angle + h / 2.0) ** 2
        return treated_rate / baseline.rate - 1.0

    # The power of the t-test rises to 1 as d grows; double until the bracket holds the root.
    upper = 1.0
    while shortfall(upper) < 0.0:
        upper *= 2.0
    d = float(optimize.brentq(shortfall, 0.0, upper, xtol=1e-14))
    return d * baseline.sd / abs(baseline.mean)
