"""Sufficient statistics and the tests computed from them.

A metric is reduced, per variant, to a frozen :class:`Moments` (count, mean, variance and, for
CUPED, the covariate's mean and variance and the cross-covariance), in one pass over the rows, as
GrowthBook's ``gbstats`` does. Every test below takes moments, never rows, so ten million units
cost one pass and the tests are exact on hand-made numbers.

The test functions are written with numpy operations only: every argument may be a scalar or an
array of the same shape, which lets a simulation evaluate thousands of experiments at once.

References
----------
- Welch (1947); Satterthwaite (1946): unequal-variance t-test and its degrees of freedom.
- Deng, Xu, Kohavi & Walker (2013), *Improving the sensitivity of online controlled experiments
  by utilizing pre-experiment data* (CUPED).
- Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas (2023), *Time-uniform central limit theory and
  asymptotic confidence sequences*, eq. 9 (the boundary) and the tuning of ρ for a sample size n*
  as GrowthBook implements it.
- Holm (1979); Benjamini & Hochberg (1995).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "CORRECTION_METHODS",
    "BayesianEffect",
    "Effect",
    "Moments",
    "adjust_p_values",
    "bayesian_effect",
    "confidence_sequence",
    "cuped_adjust",
    "cuped_theta",
    "moments_by_group",
    "pool",
    "proportion_difference",
    "ratio_moments",
    "relative_lift",
    "sample_ratio_p_value",
    "welch",
]

#: GrowthBook's default n* for the asymptotic confidence sequence: the total sample size (both
#: arms) at which the sequence is tightest. Smaller values tighten it early and loosen it late.
DEFAULT_SEQUENTIAL_TUNING = 5000
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Moments:
    """Sufficient statistics of one group's metric and, optionally, its covariate.

    Attributes
    ----------
    n : float
        Number of units.
    mean, variance : float
        The metric's mean and sample variance (``ddof=1``).
    x_mean, x_variance, xy_covariance : float or None
        The covariate's mean and sample variance and its sample covariance with the metric;
        ``None`` when there is no covariate.
    """

    n: float
    mean: float
    variance: float
    x_mean: float | None = None
    x_variance: float | None = None
    xy_covariance: float | None = None

    @property
    def variance_of_mean(self) -> float:
        """The squared standard error of the mean, ``variance / n``."""
        return self.variance / self.n


@dataclass(frozen=True)
class Effect:
    """An estimate with its standard error, interval and two-sided p-value.

    Every field may be an array when the inputs were arrays (simulations).
    """

    estimate: float
    standard_error: float
    ci_low: float
    ci_high: float
    p_value: float


@dataclass(frozen=True)
class BayesianEffect:
    """The posterior of a relative effect under a Gaussian prior.

    Attributes
    ----------
    mean, sd : float
        Posterior mean and standard deviation of the relative effect.
    ci_low, ci_high : float
        Central credible interval at level ``1 - alpha``.
    chance_to_win : float
        Posterior probability that the variant is better than the control.
    expected_loss : float
        Posterior expected relative loss of shipping the variant, ``E[max(0, -effect)]`` (for a
        metric where lower is better, ``E[max(0, effect)]``): the "risk" of GrowthBook.
    """

    mean: float
    sd: float
    ci_low: float
    ci_high: float
    chance_to_win: float
    expected_loss: float


def moments_by_group(
    codes: np.ndarray, groups: int, y: np.ndarray, x: np.ndarray | None = None
) -> list[Moments]:
    """Per-group moments of ``y`` (and ``x``) in one pass of weighted ``bincount``.

    Parameters
    ----------
    codes : ndarray of int
        Group of each row, in ``0 .. groups - 1``.
    groups : int
        Number of groups.
    y : ndarray of float
        The metric, finite.
    x : ndarray of float, optional
        The covariate, finite.

    Returns
    -------
    list of Moments
        One per group, in code order.

    Notes
    -----
    The rows are read once, in chunks of a million. Within a chunk each group's sums of squares
    and cross-products are taken around that chunk's own group mean (so large levels do not
    cancel catastrophically, whatever the row order), and chunks are merged with Chan et al.'s
    parallel update. Variances agree with two-pass ``numpy.var`` to about 1e-12 relative, and a
    group of zeros has mean and variance exactly 0.
    """
    n = np.zeros(groups)
    mean_y = np.zeros(groups)
    m2_y = np.zeros(groups)
    mean_x = np.zeros(groups)
    m2_x = np.zeros(groups)
    c_xy = np.zeros(groups)
    for begin in range(0, len(y), _CHUNK):
        chunk = slice(begin, begin + _CHUNK)
        c = codes[chunk]
        n_k = np.bincount(c, minlength=groups).astype(float)
        seen = n_k > 0
        safe = np.where(seen, n_k, 1.0)
        yk = y[chunk]
        my_k = np.bincount(c, weights=yk, minlength=groups) / safe
        yc = yk - my_k[c]
        m2y_k = np.bincount(c, weights=yc * yc, minlength=groups)
        total = n + n_k
        weight = np.where(seen, n_k / np.where(total > 0, total, 1.0), 0.0)
        dy = my_k - mean_y
        m2_y += m2y_k + dy * dy * n * weight
        mean_y = np.where(seen, mean_y + dy * weight, mean_y)
        if x is not None:
            xk = x[chunk]
            mx_k = np.bincount(c, weights=xk, minlength=groups) / safe
            xc = xk - mx_k[c]
            m2_x += np.bincount(c, weights=xc * xc, minlength=groups)
            c_xy += np.bincount(c, weights=xc * yc, minlength=groups)
            dx = mx_k - mean_x
            m2_x += dx * dx * n * weight
            c_xy += dx * dy * n * weight
            mean_x = np.where(seen, mean_x + dx * weight, mean_x)
        n = total
    with np.errstate(invalid="ignore", divide="ignore"):
        var_y = m2_y / (n - 1)
        var_x = m2_x / (n - 1)
        cov_xy = c_xy / (n - 1)
    if x is None:
        return [Moments(n=n[g], mean=mean_y[g], variance=max(var_y[g], 0.0)) for g in range(groups)]
    return [
        Moments(
            n=n[g],
            mean=mean_y[g],
            variance=max(var_y[g], 0.0),
            x_mean=mean_x[g],
            x_variance=max(var_x[g], 0.0),
            xy_covariance=cov_xy[g],
        )
        for g in range(groups)
    ]


def pool(groups: Sequence[Moments]) -> Moments:
    """Moments of the union of groups (Chan et al.'s parallel combination).

    Parameters
    ----------
    groups : sequence of Moments
        Moments of disjoint groups; all with or all without a covariate.

    Returns
    -------
    Moments
        The moments of all their units together.
    """
    n = sum(g.n for g in groups)
    mean = sum(g.n * g.mean for g in groups) / n
    m2 = sum((g.n - 1) * g.variance + g.n * (g.mean - mean) ** 2 for g in groups)
    if any(g.x_mean is None for g in groups):
        return Moments(n=n, mean=mean, variance=m2 / (n - 1))
    x_mean = sum(g.n * _value(g.x_mean) for g in groups) / n
    x_m2 = sum(
        (g.n - 1) * _value(g.x_variance) + g.n * (_value(g.x_mean) - x_mean) ** 2 for g in groups
    )
    c2 = sum(
        (g.n - 1) * _value(g.xy_covariance) + g.n * (_value(g.x_mean) - x_mean) * (g.mean - mean)
        for g in groups
    )
    return Moments(
        n=n,
        mean=mean,
        variance=m2 / (n - 1),
        x_mean=x_mean,
        x_variance=x_m2 / (n - 1),
        xy_covariance=c2 / (n - 1),
    )


def _value(number: float | None) -> float:
    if number is None:
        raise ValueError("these moments have no covariate")
    return number


def cuped_theta(everyone: Moments) -> float:
    """CUPED's θ = cov(y, x) / var(x), pooled over all units of all variants.

    Parameters
    ----------
    everyone : Moments
        Pooled moments with a covariate (see :func:`pool`).

    Returns
    -------
    float
        The regression coefficient of the metric on the covariate.
    """
    return _value(everyone.xy_covariance) / _value(everyone.x_variance)


def cuped_adjust(group: Moments, theta: float, x_bar: float) -> Moments:
    """Moments of ``y' = y - θ (x - x̄)`` within a group, from the group's own moments.

    Parameters
    ----------
    group : Moments
        A group's moments, with a covariate.
    theta : float
        From :func:`cuped_theta`.
    x_bar : float
        The covariate's mean over all units.

    Returns
    -------
    Moments
        Moments of the adjusted metric (no covariate).
    """
    x_mean = _value(group.x_mean)
    variance = group.variance + theta**2 * _value(group.x_variance)
    variance -= 2 * theta * _value(group.xy_covariance)
    mean = group.mean - theta * (x_mean - x_bar)
    return Moments(n=group.n, mean=mean, variance=np.maximum(variance, 0.0))


def ratio_moments(group: Moments) -> Moments:
    """Moments of a ratio metric ``Σ numerator / Σ denominator`` (e.g. revenue per order).

    The numerator is the metric and the denominator sits in the covariate fields (as
    :func:`moments_by_group` computes them with ``x`` = the denominator). The delta method gives
    ``Var(R̂) ≈ (var_y − 2 R cov_xy + R² var_x) / (n x̄²)``; the result carries ``R`` as its mean
    and ``n · Var(R̂)`` as its variance, so every test above applies unchanged.

    Parameters
    ----------
    group : Moments
        Moments of the numerator with the denominator as covariate; ``x_mean`` must not be 0.

    Returns
    -------
    Moments
        ``mean`` = the ratio, ``variance_of_mean`` = its delta-method variance.
    """
    x_mean = _value(group.x_mean)
    ratio = group.mean / x_mean
    variance = (
        group.variance
        - 2 * ratio * _value(group.xy_covariance)
        + ratio**2 * _value(group.x_variance)
    ) / x_mean**2
    return Moments(n=group.n, mean=ratio, variance=np.maximum(variance, 0.0))


def welch(control: Moments, treatment: Moments, alpha: float) -> Effect:
    """Welch's unequal-variance t-test of ``mean_t - mean_c``.

    The same numbers as ``scipy.stats.ttest_ind(t, c, equal_var=False)`` and its
    ``confidence_interval(1 - alpha)``: Welch–Satterthwaite degrees of freedom for both.

    Parameters
    ----------
    control, treatment : Moments
        The two groups.
    alpha : float
        Two-sided level of the interval.

    Returns
    -------
    Effect
        Difference of means, its standard error, interval and p-value.
    """
    a = treatment.variance / treatment.n
    b = control.variance / control.n
    se = np.sqrt(a + b)
    df = (a + b) ** 2 / (a**2 / (treatment.n - 1) + b**2 / (control.n - 1))
    diff = treatment.mean - control.mean
    t_stat = diff / se
    p = 2 * stats.t.sf(np.abs(t_stat), df)
    half = stats.t.ppf(1 - alpha / 2, df) * se
    return Effect(diff, se, diff - half, diff + half, p)


def proportion_difference(control: Moments, treatment: Moments, alpha: float) -> Effect:
    """Two-proportion z-test of ``p_t - p_c`` for a 0/1 metric.

    The p-value uses the pooled variance (statsmodels' ``proportions_ztest``), the interval the
    unpooled Wald variance (``confint_proportions_2indep(method="wald")``).

    Parameters
    ----------
    control, treatment : Moments
        Moments of a 0/1 metric: ``mean`` is the rate.
    alpha : float
        Two-sided level of the interval.

    Returns
    -------
    Effect
        Difference of rates; ``standard_error`` is the unpooled one.
    """
    pc, nc = control.mean, control.n
    pt, nt = treatment.mean, treatment.n
    pooled = (pc * nc + pt * nt) / (nc + nt)
    se0 = np.sqrt(pooled * (1 - pooled) * (1 / nc + 1 / nt))
    se1 = np.sqrt(pt * (1 - pt) / nt + pc * (1 - pc) / nc)
    diff = pt - pc
    p = 2 * stats.norm.sf(np.abs(diff / se0))
    half = stats.norm.ppf(1 - alpha / 2) * se1
    return Effect(diff, se1, diff - half, diff + half, p)


def relative_lift(
    control_mean: float,
    control_variance_of_mean: float,
    treatment_mean: float,
    treatment_variance_of_mean: float,
    alpha: float,
) -> Effect:
    """Relative lift ``mean_t / mean_c - 1`` with a delta-method standard error.

    ``Var ≈ Var(m_t) / m_c² + m_t² Var(m_c) / m_c⁴`` (the arms are independent); the interval
    and p-value are normal.

    Parameters
    ----------
    control_mean, treatment_mean : float
        Means (rates for a 0/1 metric); the control's must not be 0.
    control_variance_of_mean, treatment_variance_of_mean : float
        Squared standard errors of those means.
    alpha : float
        Two-sided level of the interval.

    Returns
    -------
    Effect
        The relative lift (0.1 = +10%).
    """
    lift = treatment_mean / control_mean - 1
    variance = (
        treatment_variance_of_mean / control_mean**2
        + treatment_mean**2 * control_variance_of_mean / control_mean**4
    )
    se = np.sqrt(variance)
    p = 2 * stats.norm.sf(np.abs(lift / se))
    half = stats.norm.ppf(1 - alpha / 2) * se
    return Effect(lift, se, lift - half, lift + half, p)


def _rho_squared(alpha: float, tuning: float) -> float:
    # Waudby-Smith et al.'s ρ that makes the boundary tightest at a total sample size n*.
    log_term = -2 * np.log(alpha)
    return float((log_term + np.log(log_term + 1)) / tuning)


def confidence_sequence(
    effect: Effect, n_total: float, alpha: float, tuning: float = DEFAULT_SEQUENTIAL_TUNING
) -> Effect:
    """Replace a normal interval by an asymptotic confidence sequence, valid under peeking.

    With ``V = n · se²`` (the per-unit variance of the estimator) and ``ρ²`` tuned for a total
    sample size ``n*`` (``tuning``), the half-width at ``n`` units is

    ``sqrt(V) · sqrt( 2 (n ρ² + 1) / (n² ρ²) · log( sqrt(n ρ² + 1) / α ) )``

    (Waudby-Smith et al. 2023, eq. 9; GrowthBook's ``SequentialTwoSidedTTest``). The p-value is
    the always-valid one, ``min(1, 1 / E)`` with the mixture martingale
    ``E = exp(ρ² S / (2 (n ρ² + 1))) / sqrt(n ρ² + 1)``, ``S = n · estimate² / se²``: it is
    below ``alpha`` exactly when the sequence excludes 0.

    Parameters
    ----------
    effect : Effect
        A fixed-horizon estimate and its standard error.
    n_total : float
        Units in both arms together.
    alpha : float
        Level of the sequence: the chance that it ever, at any look, misses the truth.
    tuning : float
        ``n*``.

    Returns
    -------
    Effect
        Same estimate and standard error, the sequence's interval and always-valid p-value.
    """
    rho2 = _rho_squared(alpha, tuning)
    trho = n_total * rho2 + 1
    se = effect.standard_error
    half = se * np.sqrt(2 * trho / (n_total * rho2) * np.log(np.sqrt(trho) / alpha))
    with np.errstate(divide="ignore", invalid="ignore"):
        s = n_total * (effect.estimate / se) ** 2
    log_e = rho2 * s / (2 * trho) - 0.5 * np.log(trho)
    p = np.exp(np.minimum(0.0, -log_e))
    return Effect(effect.estimate, se, effect.estimate - half, effect.estimate + half, p)


def bayesian_effect(
    estimate: float,
    standard_error: float,
    alpha: float,
    *,
    prior_mean: float = 0.0,
    prior_sd: float | None = None,
    lower_is_better: bool = False,
) -> BayesianEffect:
    """Posterior of a relative effect: normal likelihood, Gaussian (or flat) prior.

    With the flat prior (``prior_sd=None``) the posterior is ``N(estimate, se²)`` and the chance
    to win is ``Φ(estimate / se)``. A proper prior ``N(prior_mean, prior_sd²)`` shrinks the
    estimate by precision weighting.

    Parameters
    ----------
    estimate, standard_error : float
        The relative lift and its delta-method standard error.
    alpha : float
        The credible interval has level ``1 - alpha``.
    prior_mean, prior_sd : float
        The prior on the relative effect; ``prior_sd=None`` is flat.
    lower_is_better : bool
        Whether a decrease is a win (e.g. an unsubscribe rate).

    Returns
    -------
    BayesianEffect
        Posterior mean, sd, credible interval, chance to win and expected loss.
    """
    if prior_sd is None:
        mean, sd = estimate, standard_error
    else:
        precision = 1 / standard_error**2 + 1 / prior_sd**2
        mean = (estimate / standard_error**2 + prior_mean / prior_sd**2) / precision
        sd = np.sqrt(1 / precision)
    z = stats.norm.ppf(1 - alpha / 2)
    signed = -mean if lower_is_better else mean
    if np.ndim(sd) == 0 and not sd > 0:  # no uncertainty at all: the sign decides
        chance0 = 1.0 if signed > 0 else 0.0 if signed < 0 else 0.5
        return BayesianEffect(mean, 0.0, mean, mean, chance0, float(max(-signed, 0.0)))
    ratio = signed / sd
    chance = stats.norm.cdf(ratio)
    # E[max(0, -D)] for D ~ N(signed, sd²): the loss of shipping when the variant is worse.
    loss = sd * stats.norm.pdf(ratio) - signed * stats.norm.cdf(-ratio)
    return BayesianEffect(mean, sd, mean - z * sd, mean + z * sd, chance, np.maximum(loss, 0.0))


#: Corrections for several variants against one control, as statsmodels' ``multipletests`` names
#: them: family-wise error (Holm default, Bonferroni, Šidák, Holm–Šidák, Hochberg) or false
#: discovery rate (Benjamini–Hochberg, Benjamini–Yekutieli), or none.
CORRECTION_METHODS: dict[str, str] = {
    "holm": "holm",
    "bh": "fdr_bh",
    "by": "fdr_by",
    "bonferroni": "bonferroni",
    "sidak": "sidak",
    "holm-sidak": "holm-sidak",
    "hochberg": "simes-hochberg",
    "none": "",
}


def adjust_p_values(p_values: Sequence[float] | np.ndarray, method: str) -> np.ndarray:
    """Adjust p-values for several comparisons against one control.

    Parameters
    ----------
    p_values : sequence of float
        One per comparison.
    method : str
        A key of :data:`CORRECTION_METHODS`: ``"holm"`` (step-down, family-wise error),
        ``"bh"`` (Benjamini–Hochberg step-up, false discovery rate), ``"by"``
        (Benjamini–Yekutieli, FDR under any dependence), ``"bonferroni"``, ``"sidak"``,
        ``"holm-sidak"``, ``"hochberg"`` (step-up) or ``"none"``. The values equal
        statsmodels' ``multipletests`` with the names in :data:`CORRECTION_METHODS`.

    Returns
    -------
    ndarray
        Adjusted p-values, in the input order, capped at 1.
    """
    p = np.asarray(p_values, dtype=float)
    k = p.size
    if method not in CORRECTION_METHODS:
        raise ValueError(f"unknown correction {method!r}")
    if method == "none" or k <= 1:
        return np.minimum(p, 1.0)
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    remaining = k - np.arange(k)  # k, k-1, ..., 1: hypotheses left at each step
    if method == "holm":
        adjusted = np.maximum.accumulate(remaining * ranked)
    elif method == "holm-sidak":
        adjusted = np.maximum.accumulate(-np.expm1(remaining * np.log1p(-ranked)))
    elif method == "bonferroni":
        adjusted = k * ranked
    elif method == "sidak":
        adjusted = -np.expm1(k * np.log1p(-ranked))
    elif method == "hochberg":
        adjusted = np.minimum.accumulate((remaining * ranked)[::-1])[::-1]
    else:  # bh, by: step-up on k / rank
        scale = k / np.arange(1, k + 1)
        if method == "by":
            scale = scale * np.sum(1.0 / np.arange(1, k + 1))
        adjusted = np.minimum.accumulate((scale * ranked)[::-1])[::-1]
    out = np.empty(k)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def sample_ratio_p_value(counts: Sequence[float] | np.ndarray, shares: Sequence[float]) -> float:
    """Pearson χ² goodness-of-fit p-value of observed counts against planned shares.

    Parameters
    ----------
    counts : sequence of float
        Units per variant.
    shares : sequence of float
        Planned share of each variant, summing to 1.

    Returns
    -------
    float
        The p-value; a small one means the assignment did not work as planned.
    """
    observed = np.asarray(counts, dtype=float)
    expected = np.asarray(shares, dtype=float) * observed.sum()
    statistic = float(((observed - expected) ** 2 / expected).sum())
    return float(stats.chi2.sf(statistic, observed.size - 1))
