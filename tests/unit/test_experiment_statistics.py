"""The experiment statistics agree with scipy / statsmodels and cover what they claim to cover.

Reference values are computed in each test from the raw rows with scipy or statsmodels, never
pasted from this implementation. The coverage and peeking simulations are seeded and vectorised:
thousands of experiments are evaluated at once through the same functions ``analyze`` calls.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from clv.experiments.statistics import (
    CORRECTION_METHODS,
    Moments,
    adjust_p_values,
    bayesian_effect,
    confidence_sequence,
    cuped_adjust,
    cuped_theta,
    moments_by_group,
    pool,
    proportion_difference,
    ratio_moments,
    relative_lift,
    sample_ratio_p_value,
    welch,
)

ALPHA = 0.05


def _skewed(rng: np.random.Generator, n: int, scale: float = 1.0, zeros: float = 0.7) -> np.ndarray:
    """Revenue-like: mostly zeros, lognormal when positive."""
    return rng.lognormal(np.log(40 * scale), 1.2, n) * (rng.random(n) > zeros)


def _moments(values: np.ndarray) -> Moments:
    return Moments(n=len(values), mean=float(values.mean()), variance=float(values.var(ddof=1)))


def _sim_moments(values: np.ndarray) -> Moments:
    """Moments of each row of a (simulations, units) array: array-valued fields."""
    n = values.shape[-1]
    return Moments(n=n, mean=values.mean(axis=-1), variance=values.var(axis=-1, ddof=1))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("n_control", "n_treatment", "lift"),
    [(1000, 1000, 0.0), (3000, 700, 0.1), (250, 4000, 0.3), (40, 55, -0.2)],
    ids=["equal-sizes-aa", "unequal-small-lift", "unequal-big-lift", "tiny-negative"],
)
def test_welch_matches_scipy_on_skewed_revenue(
    n_control: int, n_treatment: int, lift: float
) -> None:
    rng = np.random.default_rng(n_control + n_treatment)
    control = _skewed(rng, n_control)
    treatment = _skewed(rng, n_treatment, scale=1 + lift)

    ours = welch(_moments(control), _moments(treatment), ALPHA)
    reference = stats.ttest_ind(treatment, control, equal_var=False)
    interval = reference.confidence_interval(1 - ALPHA)

    assert ours.estimate == pytest.approx(treatment.mean() - control.mean(), rel=1e-12)
    assert ours.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert ours.ci_low == pytest.approx(interval.low, rel=1e-9)
    assert ours.ci_high == pytest.approx(interval.high, rel=1e-9)


@pytest.mark.parametrize(
    ("n_control", "n_treatment", "p_control", "p_treatment"),
    [
        (5000, 5000, 0.05, 0.05),
        (8000, 2000, 0.1, 0.12),
        (300, 900, 0.5, 0.42),
        (20000, 7000, 0.01, 0.013),
    ],
    ids=["aa", "unequal-lift", "near-half-drop", "rare-event"],
)
def test_two_proportion_test_matches_statsmodels(
    n_control: int, n_treatment: int, p_control: float, p_treatment: float
) -> None:
    rng = np.random.default_rng(n_control)
    control = (rng.random(n_control) < p_control).astype(float)
    treatment = (rng.random(n_treatment) < p_treatment).astype(float)
    counts = [treatment.sum(), control.sum()]
    nobs = [n_treatment, n_control]

    ours = proportion_difference(_moments(control), _moments(treatment), ALPHA)
    _, p_reference = proportions_ztest(counts, nobs)
    low, high = confint_proportions_2indep(
        counts[0], nobs[0], counts[1], nobs[1], method="wald", compare="diff", alpha=ALPHA
    )

    assert ours.estimate == pytest.approx(treatment.mean() - control.mean(), abs=1e-15)
    assert ours.p_value == pytest.approx(p_reference, rel=1e-9)
    assert ours.ci_low == pytest.approx(low, rel=1e-9, abs=1e-15)
    assert ours.ci_high == pytest.approx(high, rel=1e-9, abs=1e-15)


def test_relative_lift_uses_the_delta_method_variance() -> None:
    rng = np.random.default_rng(7)
    control, treatment = _skewed(rng, 2000), _skewed(rng, 1500, scale=1.15)
    mc, mt = control.mean(), treatment.mean()
    vc, vt = control.var(ddof=1) / len(control), treatment.var(ddof=1) / len(treatment)
    # Gradient of g(mt, mc) = mt / mc - 1 is (1 / mc, -mt / mc²); the arms are independent.
    se = math.sqrt(vt / mc**2 + vc * mt**2 / mc**4)

    ours = relative_lift(mc, vc, mt, vt, ALPHA)

    assert ours.estimate == pytest.approx(mt / mc - 1, rel=1e-12)
    assert ours.standard_error == pytest.approx(se, rel=1e-12)
    assert ours.ci_high - ours.ci_low == pytest.approx(2 * stats.norm.ppf(0.975) * se, rel=1e-12)
    assert ours.p_value == pytest.approx(2 * stats.norm.sf(abs(mt / mc - 1) / se), rel=1e-12)


@pytest.mark.parametrize("k", [2, 3, 5, 8], ids=lambda k: f"{k}-variants")
@pytest.mark.parametrize("method", [m for m in CORRECTION_METHODS if m != "none"])
def test_p_value_corrections_match_statsmodels(k: int, method: str) -> None:
    rng = np.random.default_rng(k)
    p = rng.uniform(0, 0.2, k)
    p[0] = p[-1]  # a tie
    p[1] = 0.9  # and one far from significance
    reference = multipletests(p, alpha=ALPHA, method=CORRECTION_METHODS[method])[1]

    np.testing.assert_allclose(adjust_p_values(p, method), reference, rtol=1e-12)


def test_no_correction_keeps_p_values() -> None:
    p = [0.01, 0.04, 0.3]
    np.testing.assert_array_equal(adjust_p_values(p, "none"), p)


@pytest.mark.parametrize(
    ("counts", "shares"),
    [([5000, 5000], [0.5, 0.5]), ([5100, 4900], [0.5, 0.5]), ([900, 3100, 6000], [0.1, 0.3, 0.6])],
    ids=["balanced", "slightly-off", "three-unequal"],
)
def test_sample_ratio_check_is_pearsons_chi_square(counts: list[int], shares: list[float]) -> None:
    expected = np.asarray(shares) * sum(counts)
    assert sample_ratio_p_value(counts, shares) == pytest.approx(
        stats.chisquare(counts, expected).pvalue, rel=1e-12
    )


def test_moments_are_exact_for_large_offsets() -> None:
    rng = np.random.default_rng(3)
    y = 1e9 + rng.normal(0, 1, 30_000)
    x = -5e8 + 2 * (y - 1e9) + rng.normal(0, 1, 30_000)
    codes = rng.integers(0, 3, 30_000)

    got = moments_by_group(codes, 3, y, x)

    for g, moments in enumerate(got):
        ys, xs = y[codes == g], x[codes == g]
        assert moments.n == len(ys)
        assert moments.mean == pytest.approx(ys.mean(), rel=1e-15)
        assert moments.variance == pytest.approx(ys.var(ddof=1), rel=1e-7)
        assert moments.x_variance == pytest.approx(xs.var(ddof=1), rel=1e-7)
        assert moments.xy_covariance == pytest.approx(np.cov(ys, xs)[0, 1], rel=1e-7)


def test_pooled_moments_equal_the_moments_of_all_rows() -> None:
    rng = np.random.default_rng(4)
    y, x = _skewed(rng, 9000), rng.normal(10, 3, 9000)
    codes = rng.integers(0, 4, 9000)

    everyone = pool(moments_by_group(codes, 4, y, x))

    assert everyone.mean == pytest.approx(y.mean(), rel=1e-12)
    assert everyone.variance == pytest.approx(y.var(ddof=1), rel=1e-10)
    assert everyone.x_variance == pytest.approx(x.var(ddof=1), rel=1e-10)
    assert everyone.xy_covariance == pytest.approx(np.cov(y, x)[0, 1], rel=1e-9)


def test_cuped_moments_equal_those_of_the_explicitly_adjusted_metric() -> None:
    rng = np.random.default_rng(5)
    x = _skewed(rng, 12_000)
    y = 0.7 * x + _skewed(rng, 12_000)
    codes = rng.integers(0, 3, 12_000)
    groups = moments_by_group(codes, 3, y, x)
    everyone = pool(groups)
    theta = np.cov(y, x)[0, 1] / x.var(ddof=1)
    y_adjusted = y - theta * (x - x.mean())

    assert cuped_theta(everyone) == pytest.approx(theta, rel=1e-10)
    for g, moments in enumerate(groups):
        adjusted = cuped_adjust(moments, cuped_theta(everyone), float(everyone.x_mean or 0))
        assert adjusted.mean == pytest.approx(y_adjusted[codes == g].mean(), rel=1e-10)
        assert adjusted.variance == pytest.approx(y_adjusted[codes == g].var(ddof=1), rel=1e-8)


# --------------------------------------------------------------------------- coverage

SIMULATIONS = 2000
# 95% intervals must cover the truth in 95% ± 2% of the simulated experiments.
COVERAGE_BAND = (0.93, 0.97)


def _coverage(covered: np.ndarray) -> float:
    return float(np.mean(covered))


def test_welch_intervals_cover_the_true_difference() -> None:
    rng = np.random.default_rng(11)
    n_c, n_t = 400, 250
    # Lognormal with 60% zeros: mean = 0.4 * exp(mu + s²/2).
    mu_c, mu_t, s = np.log(30), np.log(33), 1.0
    control = rng.lognormal(mu_c, s, (SIMULATIONS, n_c)) * (rng.random((SIMULATIONS, n_c)) > 0.6)
    treatment = rng.lognormal(mu_t, s, (SIMULATIONS, n_t)) * (rng.random((SIMULATIONS, n_t)) > 0.6)
    truth = 0.4 * (np.exp(mu_t + s**2 / 2) - np.exp(mu_c + s**2 / 2))

    effect = welch(_sim_moments(control), _sim_moments(treatment), ALPHA)

    covered = (effect.ci_low <= truth) & (truth <= effect.ci_high)
    assert COVERAGE_BAND[0] <= _coverage(covered) <= COVERAGE_BAND[1]


def test_proportion_intervals_cover_the_true_difference() -> None:
    rng = np.random.default_rng(12)
    n_c, n_t, p_c, p_t = 3000, 2000, 0.08, 0.1
    control = (rng.random((SIMULATIONS, n_c)) < p_c).astype(float)
    treatment = (rng.random((SIMULATIONS, n_t)) < p_t).astype(float)

    effect = proportion_difference(_sim_moments(control), _sim_moments(treatment), ALPHA)

    covered = (effect.ci_low <= p_t - p_c) & (p_t - p_c <= effect.ci_high)
    assert COVERAGE_BAND[0] <= _coverage(covered) <= COVERAGE_BAND[1]


def test_relative_lift_intervals_cover_the_true_lift() -> None:
    rng = np.random.default_rng(13)
    n_c, n_t = 1500, 1200
    mu, s = np.log(50), 1.1
    control = rng.lognormal(mu, s, (SIMULATIONS, n_c)) * (rng.random((SIMULATIONS, n_c)) > 0.5)
    treatment = rng.lognormal(mu + np.log(1.1), s, (SIMULATIONS, n_t))
    treatment *= rng.random((SIMULATIONS, n_t)) > 0.5
    c, t = _sim_moments(control), _sim_moments(treatment)

    effect = relative_lift(c.mean, c.variance_of_mean, t.mean, t.variance_of_mean, ALPHA)

    covered = (effect.ci_low <= 0.1) & (effect.ci_high >= 0.1)
    assert COVERAGE_BAND[0] <= _coverage(covered) <= COVERAGE_BAND[1]


def test_cuped_intervals_cover_the_true_difference_and_are_narrower() -> None:
    rng = np.random.default_rng(14)
    n = 600
    shape = (SIMULATIONS, 2 * n)
    pre = rng.gamma(0.8, 40, shape)
    effect_true = 3.0
    arm = np.zeros(shape, dtype=bool)
    arm[:, n:] = True
    y = 0.8 * pre + rng.gamma(0.8, 20, shape) + effect_true * arm
    x_bar = pre.mean(axis=1, keepdims=True)
    xc, yc = pre - x_bar, y - y.mean(axis=1, keepdims=True)
    theta = (xc * yc).sum(axis=1, keepdims=True) / (xc * xc).sum(axis=1, keepdims=True)
    everyone_moments = [
        Moments(
            n=n,
            mean=y[:, sl].mean(axis=1),  # type: ignore[arg-type]
            variance=y[:, sl].var(axis=1, ddof=1),  # type: ignore[arg-type]
            x_mean=pre[:, sl].mean(axis=1),  # type: ignore[arg-type]
            x_variance=pre[:, sl].var(axis=1, ddof=1),  # type: ignore[arg-type]
            xy_covariance=(
                (pre[:, sl] - pre[:, sl].mean(axis=1, keepdims=True))  # type: ignore[arg-type]
                * (y[:, sl] - y[:, sl].mean(axis=1, keepdims=True))
            ).sum(axis=1)
            / (n - 1),
        )
        for sl in (slice(0, n), slice(n, 2 * n))
    ]
    adjusted = [cuped_adjust(m, theta[:, 0], x_bar[:, 0]) for m in everyone_moments]  # type: ignore[arg-type]

    plain = welch(*[Moments(m.n, m.mean, m.variance) for m in everyone_moments], ALPHA)
    cuped = welch(adjusted[0], adjusted[1], ALPHA)

    covered = (cuped.ci_low <= effect_true) & (effect_true <= cuped.ci_high)
    assert COVERAGE_BAND[0] <= _coverage(covered) <= COVERAGE_BAND[1]
    assert np.median(cuped.standard_error / plain.standard_error) < 0.8


# --------------------------------------------------------------------------- peeking

PEEKS = 20
PER_ARM_PER_PEEK = 250
RUNS = 2000
# One-sided Monte Carlo allowance: three standard errors of a proportion near alpha.
MC_ALLOWANCE = 3 * math.sqrt(ALPHA * (1 - ALPHA) / RUNS)


def _peeked_aa(seed: int, lift: float = 0.0) -> tuple[Moments, Moments]:
    """Moments after each of ``PEEKS`` daily looks at ``RUNS`` A/A (or A/B) tests."""
    rng = np.random.default_rng(seed)
    size = (RUNS, PEEKS * PER_ARM_PER_PEEK)
    control = _skewed(rng, size[0] * size[1]).reshape(size)
    treatment = _skewed(rng, size[0] * size[1], scale=1 + lift).reshape(size)

    def cumulative(values: np.ndarray) -> Moments:
        n = PER_ARM_PER_PEEK * np.arange(1, PEEKS + 1)
        ends = n - 1
        s1 = np.cumsum(values, axis=1)[:, ends]
        s2 = np.cumsum(values**2, axis=1)[:, ends]
        mean = s1 / n
        return Moments(n=n, mean=mean, variance=(s2 - n * mean**2) / (n - 1))  # type: ignore[arg-type]

    return cumulative(control), cumulative(treatment)


def test_peeking_every_day_at_a_fixed_horizon_test_inflates_false_positives() -> None:
    control, treatment = _peeked_aa(21)

    fixed = welch(control, treatment, ALPHA)

    rejected_at_some_look = (fixed.p_value < ALPHA).any(axis=1)
    assert rejected_at_some_look.mean() > ALPHA + MC_ALLOWANCE  # the reason sequential exists
    assert (fixed.p_value[:, -1] < ALPHA).mean() <= ALPHA + MC_ALLOWANCE  # one look is fine


def test_confidence_sequences_keep_false_positives_at_alpha_under_daily_peeking() -> None:
    control, treatment = _peeked_aa(21)
    n_total = control.n + treatment.n

    sequential = confidence_sequence(welch(control, treatment, ALPHA), n_total, ALPHA)

    rejected_at_some_look = (sequential.p_value < ALPHA).any(axis=1)
    assert rejected_at_some_look.mean() <= ALPHA + MC_ALLOWANCE
    excludes_zero = (sequential.ci_low > 0) | (sequential.ci_high < 0)
    np.testing.assert_array_equal(excludes_zero, sequential.p_value < ALPHA)


def test_confidence_sequences_cover_a_real_effect_at_every_look() -> None:
    control, treatment = _peeked_aa(22, lift=0.1)
    truth = 0.3 * math.exp(math.log(40) + 1.2**2 / 2) * 0.1
    sequential = confidence_sequence(
        welch(control, treatment, ALPHA), control.n + treatment.n, ALPHA
    )

    always_covered = ((sequential.ci_low <= truth) & (truth <= sequential.ci_high)).all(axis=1)

    assert always_covered.mean() >= 1 - ALPHA - MC_ALLOWANCE


def test_a_confidence_sequence_is_wider_than_the_fixed_interval_and_tightest_near_its_tuning() -> (
    None
):
    fixed = welch(Moments(4000, 10.0, 25.0), Moments(4000, 10.3, 25.0), ALPHA)
    widths = []
    for tuning in (500, 8000, 200_000):
        seq = confidence_sequence(fixed, 8000, ALPHA, tuning)
        widths.append(seq.ci_high - seq.ci_low)
        assert seq.ci_high - seq.ci_low > fixed.ci_high - fixed.ci_low
        assert seq.estimate == fixed.estimate
    assert widths[1] < widths[0] and widths[1] < widths[2]


# --------------------------------------------------------------------------- Bayesian


def test_flat_prior_chance_to_win_is_the_normal_cdf_of_the_z_score() -> None:
    posterior = bayesian_effect(0.04, 0.025, ALPHA)

    assert posterior.chance_to_win == pytest.approx(stats.norm.cdf(0.04 / 0.025), rel=1e-12)
    assert posterior.ci_low == pytest.approx(0.04 - stats.norm.ppf(0.975) * 0.025, rel=1e-12)
    assert posterior.mean == 0.04


def test_expected_loss_is_the_posterior_mean_of_the_shortfall() -> None:
    mean, sd = 0.01, 0.03

    posterior = bayesian_effect(mean, sd, ALPHA)
    shortfall, _ = integrate.quad(lambda d: max(0.0, -d) * stats.norm.pdf(d, mean, sd), -1, 1)

    assert posterior.expected_loss == pytest.approx(shortfall, rel=1e-6)


def test_a_proper_prior_shrinks_the_estimate_by_precision_weighting() -> None:
    posterior = bayesian_effect(0.1, 0.05, ALPHA, prior_mean=0.0, prior_sd=0.05)

    assert posterior.mean == pytest.approx(0.05)  # equal precisions: half-way
    assert posterior.sd == pytest.approx(0.05 / math.sqrt(2))
    assert posterior.chance_to_win < bayesian_effect(0.1, 0.05, ALPHA).chance_to_win


def test_lower_is_better_flips_the_chance_to_win() -> None:
    higher = bayesian_effect(-0.03, 0.02, ALPHA)
    lower = bayesian_effect(-0.03, 0.02, ALPHA, lower_is_better=True)

    assert lower.chance_to_win == pytest.approx(1 - higher.chance_to_win, rel=1e-12)
    assert lower.expected_loss < higher.expected_loss


def test_ratio_moments_give_the_delta_method_variance_of_a_ratio_of_means() -> None:
    rng = np.random.default_rng(15)
    orders = rng.poisson(1.2, 5000).astype(float)
    revenue = orders * rng.gamma(2.0, 25.0, 5000)
    (group,) = moments_by_group(np.zeros(5000, dtype=np.intp), 1, revenue, orders)
    r = revenue.sum() / orders.sum()
    # Linearisation: R̂ − R ≈ mean(y − R x) / x̄.
    influence = (revenue - r * orders) / orders.mean()

    ratio = ratio_moments(group)

    assert ratio.mean == pytest.approx(r, rel=1e-12)
    assert ratio.variance_of_mean == pytest.approx(influence.var(ddof=1) / 5000, rel=1e-9)


def test_ratio_metric_intervals_cover_the_true_difference() -> None:
    rng = np.random.default_rng(16)
    n = 800
    true_aov = {"c": 50.0, "t": 55.0}
    bounds = {}
    for arm, aov in true_aov.items():
        orders = rng.poisson(1.0, (SIMULATIONS, n)).astype(float)
        revenue = rng.gamma(orders * 2.0 + 1e-12, aov / 2.0) * (orders > 0)
        y, x = revenue, orders
        xc = x - x.mean(axis=1, keepdims=True)
        yc = y - y.mean(axis=1, keepdims=True)
        bounds[arm] = ratio_moments(
            Moments(
                n=n,
                mean=y.mean(axis=1),  # type: ignore[arg-type]
                variance=y.var(axis=1, ddof=1),  # type: ignore[arg-type]
                x_mean=x.mean(axis=1),  # type: ignore[arg-type]
                x_variance=x.var(axis=1, ddof=1),  # type: ignore[arg-type]
                xy_covariance=(xc * yc).sum(axis=1) / (n - 1),  # type: ignore[arg-type]
            )
        )

    effect = welch(bounds["c"], bounds["t"], ALPHA)

    truth = true_aov["t"] - true_aov["c"]
    covered = (effect.ci_low <= truth) & (truth <= effect.ci_high)
    assert COVERAGE_BAND[0] <= _coverage(covered) <= COVERAGE_BAND[1]


def test_moments_stay_exact_when_rows_are_sorted_by_variant_at_very_different_levels() -> None:
    rng = np.random.default_rng(17)
    y = np.r_[rng.normal(0, 1, 5000), rng.normal(1e8, 1, 5000)]
    codes = np.r_[np.zeros(5000, dtype=np.intp), np.ones(5000, dtype=np.intp)]

    control, treatment = moments_by_group(codes, 2, y)

    assert control.variance == pytest.approx(y[:5000].var(ddof=1), rel=1e-9)
    assert treatment.variance == pytest.approx(y[5000:].var(ddof=1), rel=1e-9)


def test_moments_are_the_same_whatever_the_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    import clv.experiments.statistics as module

    rng = np.random.default_rng(18)
    y, x = _skewed(rng, 7001), rng.gamma(1.0, 10.0, 7001)
    codes = rng.integers(0, 3, 7001)
    whole = moments_by_group(codes, 3, y, x)
    monkeypatch.setattr(module, "_CHUNK", 1000)

    chunked = moments_by_group(codes, 3, y, x)

    for a, b in zip(whole, chunked, strict=True):
        assert b.mean == pytest.approx(a.mean, rel=1e-12)
        assert b.variance == pytest.approx(a.variance, rel=1e-10)
        assert b.xy_covariance == pytest.approx(a.xy_covariance, rel=1e-9)


def test_the_sample_ratio_check_rarely_cries_wolf_and_catches_a_small_leak() -> None:
    rng = np.random.default_rng(19)
    shares = [0.2, 0.3, 0.5]
    healthy = rng.multinomial(200_000, shares, size=SIMULATIONS)
    # 2% of the treatment's units lost on the way (a redirect that drops some visitors).
    leaky = healthy.copy()
    leaky[:, 2] = np.round(leaky[:, 2] * 0.98).astype(int)

    false_alarms = np.mean([sample_ratio_p_value(c, shares) < 0.001 for c in healthy])
    caught = np.mean([sample_ratio_p_value(c, shares) < 0.001 for c in leaky])

    # Rare events: the allowance is the binomial's 99.9% quantile, not a normal approximation.
    assert false_alarms <= stats.binom.ppf(0.999, SIMULATIONS, 0.001) / SIMULATIONS
    assert caught > 0.75  # a 1% shortfall overall is found in most runs
