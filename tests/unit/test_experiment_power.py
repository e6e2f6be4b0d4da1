"""Sample size, power and MDE agree with statsmodels and reject bad input by name.

Reference values are computed here with statsmodels (``NormalIndPower`` for rates on Cohen's
h, ``TTestIndPower`` for means on Cohen's d, both ``ratio=1``, two-sided); the library itself
uses only scipy.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import proportion_effectsize

from clv.experiments.errors import ExperimentInputError
from clv.experiments.power import minimum_detectable_effect, power_of, sample_size

RATES = (0.01, 0.05, 0.3, 0.7)
RATE_MDES = (-0.3, -0.05, 0.02, 0.3)  # decreases and increases, small and large
ALPHAS = (0.01, 0.05, 0.1)
POWERS = (0.8, 0.9)
# (mean, sd): skewed spend, a tight metric, and a negative mean (mde is relative to |mean|).
MEANS = ((100.0, 300.0), (50.0, 20.0), (-20.0, 5.0))
MEAN_MDES = (-0.2, -0.01, 0.03, 0.5)


RATE_CASES = list(itertools.product(RATES, RATE_MDES, ALPHAS, POWERS))
MEAN_CASES = list(itertools.product(MEANS, MEAN_MDES, ALPHAS, POWERS))


def _statsmodels_rate_n(p1: float, mde: float, alpha: float, power: float) -> float:
    h = proportion_effectsize(p1 * (1 + mde), p1)
    return float(
        NormalIndPower().solve_power(
            effect_size=h, alpha=alpha, power=power, ratio=1, alternative="two-sided"
        )
    )


def _statsmodels_mean_n(mean: float, sd: float, mde: float, alpha: float, power: float) -> float:
    d = abs(mde) * abs(mean) / sd
    return float(
        TTestIndPower().solve_power(
            effect_size=d, alpha=alpha, power=power, ratio=1, alternative="two-sided"
        )
    )


# statsmodels solves with xtol=1e-5 units, so its ceiling could in principle differ from the
# exact one when the root lies within 1e-5 of a whole number; no case here does, so the
# comparisons are exact.


@pytest.mark.parametrize(
    ("p1", "mde", "alpha", "power"),
    RATE_CASES,
    ids=[f"p1={p1:g}-mde={m:g}-alpha={a:g}-power={w:g}" for p1, m, a, w in RATE_CASES],
)
def test_rate_sample_size_is_the_ceiling_of_statsmodels_normal_ind_power(
    p1: float, mde: float, alpha: float, power: float
) -> None:
    expected = math.ceil(_statsmodels_rate_n(p1, mde, alpha, power))
    assert sample_size(mde=mde, baseline_rate=p1, alpha=alpha, power=power) == expected


@pytest.mark.parametrize(
    ("baseline", "mde", "alpha", "power"),
    MEAN_CASES,
    ids=[
        f"mean={b[0]:g}-sd={b[1]:g}-mde={m:g}-alpha={a:g}-power={w:g}" for b, m, a, w in MEAN_CASES
    ],
)
def test_mean_sample_size_is_the_ceiling_of_statsmodels_ttest_ind_power(
    baseline: tuple[float, float], mde: float, alpha: float, power: float
) -> None:
    mean, sd = baseline
    expected = math.ceil(_statsmodels_mean_n(mean, sd, mde, alpha, power))
    got = sample_size(mde=mde, baseline_mean=mean, baseline_sd=sd, alpha=alpha, power=power)
    assert got == expected


def test_power_of_matches_statsmodels_power_at_a_given_n() -> None:
    h = proportion_effectsize(0.055, 0.05)
    expected_rate = NormalIndPower().power(effect_size=h, nobs1=20_000, alpha=0.05, ratio=1)
    assert power_of(20_000, mde=0.1, baseline_rate=0.05) == pytest.approx(expected_rate, 1e-12)
    expected_mean = TTestIndPower().power(effect_size=0.05, nobs1=300, alpha=0.05, ratio=1)
    got_mean = power_of(300, mde=0.05, baseline_mean=10.0, baseline_sd=10.0)
    assert got_mean == pytest.approx(expected_mean, 1e-12)


# Where statsmodels' t-test solver goes wrong. Its TTestIndPower.power is nan wherever scipy's
# noncentral-t cdf underflows to nan in the lower tail (at d > 0, for many n at alpha 0.001
# and for huge d at small n); its solver reads nan as +inf, i.e. "power reached", so it
# returns nan or, claiming success, an n whose power is below the target (d=0.1, alpha=0.001,
# power=0.99: statsmodels gives 5000.00002, whose power is 0.956). The power is symmetric in
# the sign of d, and at -d statsmodels' power is finite here: that is the reference.
SOLVER_FAILURES = [
    # (d, alpha, power, units per variant)
    (7.5, 0.01, 0.8, 3),  # statsmodels: nan
    (0.1, 0.001, 0.99, 6313),  # statsmodels: 5000.00002 (power 0.956)
    (0.5, 0.001, 0.98, 232),  # statsmodels: 207.94 (power 0.962)
]


@pytest.mark.parametrize(
    ("d", "alpha", "power", "expected"),
    SOLVER_FAILURES,
    ids=[f"d={d:g}-alpha={a:g}-power={w:g}" for d, a, w, _ in SOLVER_FAILURES],
)
def test_mean_sample_size_is_the_smallest_n_reaching_the_power_where_statsmodels_fails(
    d: float, alpha: float, power: float, expected: int
) -> None:
    n = sample_size(mde=d, baseline_mean=1.0, baseline_sd=1.0, alpha=alpha, power=power)
    reference = TTestIndPower()
    assert reference.power(effect_size=-d, nobs1=n, alpha=alpha, ratio=1) >= power
    assert reference.power(effect_size=-d, nobs1=n - 1, alpha=alpha, ratio=1) < power
    assert n == expected


def test_sample_size_is_never_below_two_units_per_variant() -> None:
    # 0.1 % -> 99.9 % is an effect so large that the real-valued root is below 2 units.
    assert sample_size(mde=998.0, baseline_rate=0.001) == 2
    assert power_of(2, mde=998.0, baseline_rate=0.001) > 0.8
    # Far past where scipy's noncentral t returns nan (noncentrality ~1e9): power is 1.
    assert sample_size(mde=1e20, baseline_mean=1.0, baseline_sd=1.0) == 2
    assert power_of(2, mde=1e20, baseline_mean=1.0, baseline_sd=1.0) == 1.0


ROUND_TRIP_BASELINES: dict[str, tuple[dict[str, float], tuple[int, ...]]] = {
    # A handful of units per arm cannot detect any change of a 5 % or 70 % rate (see below).
    "rate=0.05": ({"baseline_rate": 0.05}, (137, 5_000, 1_234_567)),
    "rate=0.7": ({"baseline_rate": 0.7}, (137, 5_000, 1_234_567)),
    "mean=100,sd=300": ({"baseline_mean": 100.0, "baseline_sd": 300.0}, (2, 10, 137, 1_234_567)),
    "mean=-20,sd=5": ({"baseline_mean": -20.0, "baseline_sd": 5.0}, (2, 10, 137, 1_234_567)),
}
ROUND_TRIP_CASES = [
    (name, baseline, n, alpha, power)
    for name, (baseline, sizes) in ROUND_TRIP_BASELINES.items()
    for n in sizes
    for alpha, power in ((0.05, 0.8), (0.01, 0.9))
]


@pytest.mark.parametrize(
    ("baseline", "n", "alpha", "power"),
    [case[1:] for case in ROUND_TRIP_CASES],
    ids=[f"{name}-n={n}-alpha={a:g}-power={w:g}" for name, _, n, a, w in ROUND_TRIP_CASES],
)
def test_minimum_detectable_effect_round_trips_through_power_and_sample_size(
    baseline: dict[str, float], n: int, alpha: float, power: float
) -> None:
    mde = minimum_detectable_effect(n, **baseline, alpha=alpha, power=power)
    assert mde > 0
    assert power_of(n, mde=mde, **baseline, alpha=alpha) == pytest.approx(power, abs=1e-6)
    # The solved mde can sit a hair below the exact one, in which case n just misses.
    assert sample_size(mde=mde, **baseline, alpha=alpha, power=power) in (n, n + 1)


@pytest.mark.parametrize(
    ("p1", "n"), [(0.05, 2), (0.7, 10)], ids=["rate=0.05-n=2", "rate=0.7-n=10"]
)
def test_a_rate_too_close_to_one_for_the_units_has_no_detectable_effect(p1: float, n: int) -> None:
    # Even a treated rate of 100 % gives power below 0.8 here (power_of at the limit says so).
    assert power_of(n, mde=0.999 / p1 - 1, baseline_rate=p1) < 0.8
    with pytest.raises(ExperimentInputError, match=f"n_per_variant={n} is too small"):
        minimum_detectable_effect(n, baseline_rate=p1)


def test_minimum_detectable_effect_of_a_rate_solves_statsmodels_effect_size() -> None:
    h = NormalIndPower().solve_power(nobs1=5_000, alpha=0.05, power=0.8, ratio=1)
    p2 = math.sin(math.asin(math.sqrt(0.05)) + h / 2) ** 2
    got = minimum_detectable_effect(5_000, baseline_rate=0.05)
    assert got == pytest.approx(p2 / 0.05 - 1, rel=1e-4)  # statsmodels' solver: xtol 1e-5


def test_minimum_detectable_effect_of_a_mean_solves_statsmodels_effect_size() -> None:
    d = TTestIndPower().solve_power(nobs1=400, alpha=0.05, power=0.9, ratio=1)
    got = minimum_detectable_effect(400, baseline_mean=80.0, baseline_sd=120.0, power=0.9)
    assert got == pytest.approx(d * 120.0 / 80.0, rel=1e-4)


@pytest.mark.parametrize(
    "baseline",
    [{"baseline_rate": 0.05}, {"baseline_mean": 100.0, "baseline_sd": 300.0}],
    ids=["rate", "mean"],
)
def test_three_comparisons_use_a_bonferroni_alpha_of_alpha_over_three(
    baseline: dict[str, float],
) -> None:
    split = sample_size(mde=0.1, **baseline, alpha=0.05, comparisons=3)
    assert split == sample_size(mde=0.1, **baseline, alpha=0.05 / 3)
    assert split > sample_size(mde=0.1, **baseline, alpha=0.05)
    assert power_of(10_000, mde=0.1, **baseline, comparisons=3) == power_of(
        10_000, mde=0.1, **baseline, alpha=0.05 / 3
    )
    assert minimum_detectable_effect(10_000, **baseline, comparisons=3) == pytest.approx(
        minimum_detectable_effect(10_000, **baseline, alpha=0.05 / 3), rel=1e-12
    )


def test_three_comparisons_match_statsmodels_at_alpha_over_three() -> None:
    expected = math.ceil(_statsmodels_rate_n(0.3, 0.05, 0.05 / 3, 0.8))
    assert sample_size(mde=0.05, baseline_rate=0.3, comparisons=3) == expected


def test_a_negative_mean_needs_the_same_units_as_its_mirror_image() -> None:
    negative = sample_size(mde=0.1, baseline_mean=-40.0, baseline_sd=60.0)
    assert negative == sample_size(mde=0.1, baseline_mean=40.0, baseline_sd=60.0)
    assert negative == sample_size(mde=-0.1, baseline_mean=40.0, baseline_sd=60.0)


rates = st.sampled_from(RATES)
magnitudes = st.floats(min_value=0.01, max_value=0.25)
signs = st.sampled_from((-1.0, 1.0))
alphas = st.sampled_from(ALPHAS)


@settings(max_examples=40, deadline=None)
@given(p1=rates, small=magnitudes, factor=st.floats(1.0, 3.0), sign=signs, alpha=alphas)
def test_a_larger_rate_effect_never_needs_more_units(
    p1: float, small: float, factor: float, sign: float, alpha: float
) -> None:
    large = min(small * factor, 0.4)  # keeps the treated rate of 0.7 * 1.4 below 1
    fewer = sample_size(mde=sign * large, baseline_rate=p1, alpha=alpha)
    assert fewer <= sample_size(mde=sign * small, baseline_rate=p1, alpha=alpha)


@settings(max_examples=40, deadline=None)
@given(
    small=magnitudes,
    factor=st.floats(1.0, 3.0),
    sign=signs,
    cv=st.floats(0.2, 5.0),
    alpha=alphas,
)
def test_a_larger_mean_effect_never_needs_more_units(
    small: float, factor: float, sign: float, cv: float, alpha: float
) -> None:
    large = small * factor
    baseline = {"baseline_mean": 10.0, "baseline_sd": 10.0 * cv}
    fewer = sample_size(mde=sign * large, **baseline, alpha=alpha)
    assert fewer <= sample_size(mde=sign * small, **baseline, alpha=alpha)


@settings(max_examples=40, deadline=None)
@given(
    p1=rates,
    mde=magnitudes,
    low=st.floats(0.5, 0.95),
    bump=st.floats(0.0, 0.04),
    use_mean=st.booleans(),
)
def test_more_power_never_needs_fewer_units(
    p1: float, mde: float, low: float, bump: float, use_mean: bool
) -> None:
    baseline = {"baseline_mean": 10.0, "baseline_sd": 25.0} if use_mean else {"baseline_rate": p1}
    assert sample_size(mde=mde, **baseline, power=low) <= sample_size(
        mde=mde, **baseline, power=low + bump
    )


RATE = {"baseline_rate": 0.1}
BAD_SAMPLE_SIZE_INPUTS: dict[str, tuple[dict[str, Any], str]] = {
    "alpha_zero": ({"mde": 0.1, **RATE, "alpha": 0.0}, "alpha"),
    "alpha_one": ({"mde": 0.1, **RATE, "alpha": 1.0}, "alpha"),
    "alpha_nan": ({"mde": 0.1, **RATE, "alpha": math.nan}, "alpha"),
    "alpha_text": ({"mde": 0.1, **RATE, "alpha": "0.05"}, "alpha"),
    "power_above_one": ({"mde": 0.1, **RATE, "power": 1.2}, "power"),
    "power_inf": ({"mde": 0.1, **RATE, "power": math.inf}, "power"),
    "power_not_above_alpha": ({"mde": 0.1, **RATE, "power": 0.04}, "power"),
    "rate_zero": ({"mde": 0.1, "baseline_rate": 0.0}, "baseline_rate"),
    "rate_one": ({"mde": 0.1, "baseline_rate": 1.0}, "baseline_rate"),
    "rate_nan": ({"mde": 0.1, "baseline_rate": math.nan}, "baseline_rate"),
    "sd_zero": ({"mde": 0.1, "baseline_mean": 5.0, "baseline_sd": 0.0}, "baseline_sd"),
    "sd_negative": ({"mde": 0.1, "baseline_mean": 5.0, "baseline_sd": -1.0}, "baseline_sd"),
    "sd_inf": ({"mde": 0.1, "baseline_mean": 5.0, "baseline_sd": math.inf}, "baseline_sd"),
    "mean_zero": ({"mde": 0.1, "baseline_mean": 0.0, "baseline_sd": 1.0}, "baseline_mean"),
    "mean_nan": ({"mde": 0.1, "baseline_mean": math.nan, "baseline_sd": 1.0}, "baseline_mean"),
    "mean_without_sd": ({"mde": 0.1, "baseline_mean": 5.0}, "baseline_sd"),
    "sd_without_mean": ({"mde": 0.1, "baseline_sd": 5.0}, "baseline_mean"),
    "both_baselines": (
        {"mde": 0.1, **RATE, "baseline_mean": 5.0, "baseline_sd": 1.0},
        "not both",
    ),
    "no_baseline": ({"mde": 0.1}, "no baseline given"),
    "mde_zero": ({"mde": 0.0, **RATE}, "mde"),
    "mde_nan": ({"mde": math.nan, **RATE}, "mde"),
    "mde_inf": ({"mde": -math.inf, **RATE}, "mde"),
    "mde_rate_above_one": ({"mde": 9.5, **RATE}, "mde=9.5 on baseline_rate=0.1"),
    "mde_rate_to_zero": ({"mde": -1.0, **RATE}, "mde=-1 on baseline_rate=0.1"),
    "mde_below_float_resolution": ({"mde": 1e-17, **RATE}, "mde=1e-17 .* too small to detect"),
    "mde_effect_overflows": (
        {"mde": 1e308, "baseline_mean": 1e10, "baseline_sd": 1e-10},
        "mde=1e\\+308 .* too large to compute",
    ),
    "comparisons_zero": ({"mde": 0.1, **RATE, "comparisons": 0}, "comparisons"),
    "comparisons_fraction": ({"mde": 0.1, **RATE, "comparisons": 2.5}, "comparisons"),
    "effect_too_small_rate": ({"mde": 1e-6, **RATE}, "mde=1e-06 .* more than 10\\*\\*12"),
    "effect_too_small_mean": (
        {"mde": 1e-7, "baseline_mean": 1.0, "baseline_sd": 3.0},
        "mde=1e-07 .* more than 10\\*\\*12",
    ),
}


@pytest.mark.parametrize(
    ("kwargs", "names"), BAD_SAMPLE_SIZE_INPUTS.values(), ids=BAD_SAMPLE_SIZE_INPUTS.keys()
)
def test_sample_size_rejects_bad_input_naming_the_parameter(
    kwargs: dict[str, Any], names: str
) -> None:
    with pytest.raises(ExperimentInputError, match=names):
        sample_size(**kwargs)


BAD_N_INPUTS: dict[str, tuple[Any, str]] = {
    "one": (1, "n_per_variant must be >= 2, got 1"),
    "negative": (-5, "n_per_variant must be >= 2"),
    "fraction": (10.5, "n_per_variant must be a whole number"),
    "nan": (math.nan, "n_per_variant"),
    "bool": (True, "n_per_variant"),
}


@pytest.mark.parametrize(("n", "message"), BAD_N_INPUTS.values(), ids=BAD_N_INPUTS.keys())
def test_n_per_variant_must_be_a_whole_number_of_at_least_two(n: Any, message: str) -> None:
    with pytest.raises(ExperimentInputError, match=message):
        power_of(n, mde=0.1, **RATE)
    with pytest.raises(ExperimentInputError, match=message):
        minimum_detectable_effect(n, **RATE)


def test_power_of_and_minimum_detectable_effect_validate_like_sample_size() -> None:
    with pytest.raises(ExperimentInputError, match="alpha"):
        power_of(100, mde=0.1, **RATE, alpha=1.5)
    with pytest.raises(ExperimentInputError, match="mde"):
        power_of(100, mde=0.0, **RATE)
    with pytest.raises(ExperimentInputError, match="baseline_sd"):
        minimum_detectable_effect(100, baseline_mean=5.0, baseline_sd=-2.0)
    with pytest.raises(ExperimentInputError, match="power"):
        minimum_detectable_effect(100, **RATE, power=0.0)
    with pytest.raises(ExperimentInputError, match="comparisons"):
        minimum_detectable_effect(100, **RATE, comparisons=0)


def test_an_input_error_is_a_value_error_for_callers_that_catch_those() -> None:
    with pytest.raises(ValueError, match="alpha"):
        sample_size(mde=0.1, **RATE, alpha=-0.1)
