"""Behaviour of the BG/NBD and Gamma-Gamma models in ``clv.models.btyd``.

Golden numbers come from the papers (Fader, Hardie & Lee 2005) on the CDNOW sample; recovery tests
fit data simulated from known parameters; property tests check invariants of the formulas.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import astuple

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clv.models.btyd import (
    BGNBDParams,
    GammaGammaParams,
    bgnbd_expected_purchases,
    bgnbd_expected_purchases_new,
    bgnbd_log_likelihood,
    bgnbd_probability_alive,
    bgnbd_probability_no_purchase,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_expected_spend,
)

try:  # tests/unit is a package
    from ._cdnow import CdnowUnavailableError, load_cdnow
except ImportError:  # pytest's default "prepend" import mode puts tests/unit on sys.path
    from _cdnow import CdnowUnavailableError, load_cdnow  # type: ignore[no-redef]

# Fader, Hardie & Lee (2005a), "Counting your customers the easy way", section 5: BG/NBD fitted
# to the CDNOW sample (2,357 customers, 39 weeks), with its maximised log-likelihood.
CDNOW_BGNBD = BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
CDNOW_BGNBD_LOG_LIKELIHOOD = -9582.4
# Fader & Hardie, "The Gamma-Gamma model of monetary value" (2013), on the 946 CDNOW customers
# with repeat purchases; the same values appear in the lifetimes documentation.
CDNOW_GAMMA_GAMMA = GammaGammaParams(p=6.25, q=3.74, v=15.44)


def cdnow() -> pd.DataFrame:
    """The CDNOW sample; a failure to download it fails the test (CI has PyPI access)."""
    try:
        return load_cdnow()
    except CdnowUnavailableError as error:
        pytest.fail(str(error), pytrace=False)


def published(value: float) -> object:
    """Equal to a published, rounded value: within 1% relative or 0.01 absolute."""
    return pytest.approx(value, rel=0.01, abs=0.01)


def simulate_bgnbd(
    params: BGNBDParams, ages: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw (frequency, recency) for customers of the given ages (``T``) from the BG/NBD process.

    Each customer has a purchase rate ``lam ~ Gamma(r, rate alpha)`` and a dropout probability
    ``p ~ Beta(a, b)``, and drops out right after the ``N``-th repeat purchase,
    ``N ~ Geometric(p)``. With ``K ~ Poisson(lam T)`` purchase opportunities in ``(0, T]``, the
    customer makes ``x = min(N, K)`` of them; given ``K``, the opportunities are uniform on
    ``(0, T]``, so the ``x``-th of them, the recency, is ``T * Beta(x, K - x + 1)``.
    """
    lam = rng.gamma(params.r, 1.0 / params.alpha, ages.size)
    p = rng.beta(params.a, params.b, ages.size)
    purchases_until_dropout = rng.geometric(p)
    opportunities = rng.poisson(lam * ages)
    x = np.minimum(purchases_until_dropout, opportunities)
    recency = np.zeros(ages.size)
    bought = x > 0
    recency[bought] = ages[bought] * rng.beta(x[bought], opportunities[bought] - x[bought] + 1)
    return x, recency


def simulate_gamma_gamma(
    params: GammaGammaParams, frequency: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Draw each customer's mean spend over ``frequency`` transactions from the Gamma-Gamma model.

    A customer's scale is ``nu ~ Gamma(q, rate v)`` and each transaction ``~ Gamma(p, rate nu)``,
    so the sum of ``x`` of them is ``Gamma(p x, rate nu)``.
    """
    nu = rng.gamma(params.q, 1.0 / params.v, frequency.size)
    return rng.gamma(params.p * frequency, 1.0 / (frequency * nu))


# --------------------------------------------------------------------------------------------------
# Golden values on CDNOW
# --------------------------------------------------------------------------------------------------


def test_bgnbd_recovers_cdnow_published_parameters() -> None:
    data = cdnow()

    fitted = fit_bgnbd(data["frequency"], data["recency"], data["T"])

    assert len(data) == 2357
    assert fitted.r == published(CDNOW_BGNBD.r)
    assert fitted.alpha == published(CDNOW_BGNBD.alpha)
    assert fitted.a == published(CDNOW_BGNBD.a)
    assert fitted.b == published(CDNOW_BGNBD.b)
    log_likelihood = bgnbd_log_likelihood(fitted, data["frequency"], data["recency"], data["T"])
    assert log_likelihood.sum() == pytest.approx(CDNOW_BGNBD_LOG_LIKELIHOOD, abs=0.5)


def test_gamma_gamma_recovers_cdnow_published_parameters() -> None:
    data = cdnow()
    returning = data[data["frequency"] > 0]

    fitted = fit_gamma_gamma(data["frequency"], data["monetary_value"])
    fitted_on_returning = fit_gamma_gamma(returning["frequency"], returning["monetary_value"])

    assert len(returning) == 946
    assert fitted.p == published(CDNOW_GAMMA_GAMMA.p)
    assert fitted.q == published(CDNOW_GAMMA_GAMMA.q)
    assert fitted.v == published(CDNOW_GAMMA_GAMMA.v)
    # Customers without repeat purchases carry no spend information and are left out.
    assert astuple(fitted_on_returning) == pytest.approx(astuple(fitted), rel=1e-12)


def test_gamma_gamma_expected_spend_matches_lifetimes_on_cdnow() -> None:
    data = cdnow()
    fitted = fit_gamma_gamma(data["frequency"], data["monetary_value"])

    expected = gamma_gamma_expected_spend(
        fitted, data["frequency"].iloc[:3], data["monetary_value"].iloc[:3]
    )

    # lifetimes 0.11.3 (GammaGammaFitter.conditional_expected_average_profit on the same fit),
    # computed once: customers 1 and 2 have 2 and 1 repeat purchases averaging 22.35 and 11.77;
    # customer 3 has none and gets the population mean p v / (q - 1).
    assert expected == pytest.approx([24.658616, 18.911480, 35.171002], rel=1e-4)


def test_bgnbd_expected_purchases_matches_published_example() -> None:
    # Fader, Hardie & Lee (2005a), section 5: with the CDNOW estimates, a customer with 2 repeat
    # purchases, the last at 30.43 weeks, observed for 38.86 weeks, is expected to make 1.226
    # purchases in the next 39 weeks.
    expected = bgnbd_expected_purchases(CDNOW_BGNBD, [2], [30.43], [38.86], 39.0)

    assert expected[0] == pytest.approx(1.226, abs=5e-4)


@pytest.mark.parametrize(
    ("frequency", "recency", "age", "t"),
    [
        (0, 0.0, 38.86, 39.0),
        (2, 30.43, 38.86, 39.0),
        (1, 2.0, 38.86, 52.0),
        (7, 35.0, 38.86, 10.0),
    ],
    ids=["no-repeat", "paper-example", "long-silent", "frequent-short-horizon"],
)
def test_bgnbd_expected_purchases_agrees_with_monte_carlo(
    frequency: int, recency: float, age: float, t: float
) -> None:
    # Integrate the model's definition instead of the hypergeometric closed form: draw
    # (lam, p) from the prior, weight each draw by the likelihood of the history split into
    # "still alive at T" and "dropped out after the last purchase", and average what an alive
    # customer buys in t, (1 - exp(-lam p t)) / p, over the alive share.
    rng = np.random.default_rng(20050101)
    draws = 1_000_000
    lam = rng.gamma(CDNOW_BGNBD.r, 1.0 / CDNOW_BGNBD.alpha, draws)
    p = rng.beta(CDNOW_BGNBD.a, CDNOW_BGNBD.b, draws)
    alive = (1 - p) ** frequency * lam**frequency * np.exp(-lam * age)
    dropped = (
        p * (1 - p) ** (frequency - 1) * lam**frequency * np.exp(-lam * recency)
        if frequency > 0
        else np.zeros(draws)
    )
    future = alive * -np.expm1(-lam * p * t) / p
    weight = alive + dropped
    estimate = future.sum() / weight.sum()
    standard_error = np.sqrt(((future - estimate * weight) ** 2).sum()) / weight.sum()

    closed_form = bgnbd_expected_purchases(CDNOW_BGNBD, [frequency], [recency], [age], t)[0]

    assert abs(closed_form - estimate) < 4 * standard_error


def test_bgnbd_expected_purchases_new_matches_simulated_customers() -> None:
    rng = np.random.default_rng(7)
    customers = 200_000
    for horizon in (5.0, 39.0, 150.0):
        frequency, _ = simulate_bgnbd(CDNOW_BGNBD, np.full(customers, horizon), rng)
        standard_error = frequency.std() / np.sqrt(customers)

        expected = bgnbd_expected_purchases_new(CDNOW_BGNBD, horizon)

        assert isinstance(expected, float)
        assert abs(expected - frequency.mean()) < 4 * standard_error


# --------------------------------------------------------------------------------------------------
# Recovery of known parameters
# --------------------------------------------------------------------------------------------------


def test_bgnbd_recovers_simulated_parameters() -> None:
    truth = BGNBDParams(r=0.5, alpha=10.0, a=0.8, b=2.5)
    rng = np.random.default_rng(2024)
    T = rng.uniform(30.0, 90.0, 20_000)
    frequency, recency = simulate_bgnbd(truth, T, rng)

    fitted = fit_bgnbd(frequency, recency, T)

    # Sampling SDs of the estimates at 20,000 customers, measured once over 30 seeds:
    # r 1.5%, alpha 2.2%, a 4.7%, b 5.5% (a and b are strongly correlated; the mean dropout
    # probability a / (a + b) is known to 1.6%, the mean rate r / alpha to 1.3%). Tolerances are
    # 4 SDs: a correct fit misses them about once in 15,000 seeds, a wrong likelihood by far more.
    assert fitted.r == pytest.approx(truth.r, rel=0.06)
    assert fitted.alpha == pytest.approx(truth.alpha, rel=0.09)
    assert fitted.a == pytest.approx(truth.a, rel=0.19)
    assert fitted.b == pytest.approx(truth.b, rel=0.22)
    assert fitted.r / fitted.alpha == pytest.approx(truth.r / truth.alpha, rel=0.053)
    mean_dropout = fitted.a / (fitted.a + fitted.b)
    assert mean_dropout == pytest.approx(truth.a / (truth.a + truth.b), rel=0.065)


def test_gamma_gamma_recovers_simulated_parameters() -> None:
    truth = GammaGammaParams(p=6.0, q=4.0, v=15.0)
    rng = np.random.default_rng(2025)
    frequency = 1 + rng.poisson(2.0, 20_000)
    monetary_value = simulate_gamma_gamma(truth, frequency, rng)

    fitted = fit_gamma_gamma(frequency, monetary_value)

    # Sampling SDs at 20,000 customers, measured once over 30 seeds: p 4.8%, q 1.4%, v 6.0%,
    # population mean spend p v / (q - 1) 0.5%. Tolerances are 4 SDs, as above.
    assert fitted.p == pytest.approx(truth.p, rel=0.19)
    assert fitted.q == pytest.approx(truth.q, rel=0.06)
    assert fitted.v == pytest.approx(truth.v, rel=0.24)
    population_mean = fitted.p * fitted.v / (fitted.q - 1)
    assert population_mean == pytest.approx(truth.p * truth.v / (truth.q - 1), rel=0.02)


# --------------------------------------------------------------------------------------------------
# Invariants
# --------------------------------------------------------------------------------------------------


def test_probability_alive_is_one_without_repeat_purchases() -> None:
    # In the BG/NBD model a customer can only drop out right after a repeat purchase, so one
    # with none is alive for sure (Fader, Hardie & Lee 2008, note 021); with purchases it is
    # 1 / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x)).
    params = CDNOW_BGNBD
    frequency = np.array([0, 0, 1, 2, 5])
    recency = np.array([0.0, 0.0, 3.0, 30.43, 38.0])
    T = np.array([0.0, 38.86, 38.86, 38.86, 38.86])

    alive = bgnbd_probability_alive(params, frequency, recency, T)

    assert alive[:2].tolist() == [1.0, 1.0]
    x, t_x, age = frequency[2:], recency[2:], T[2:]
    ratio = (params.alpha + age) / (params.alpha + t_x)
    odds_dead = params.a / (params.b + x - 1) * ratio ** (params.r + x)
    assert alive[2:] == pytest.approx(1 / (1 + odds_dead), rel=1e-12)


positive = st.floats(min_value=0.05, max_value=20.0)


@st.composite
def bgnbd_params(draw: st.DrawFn) -> BGNBDParams:
    # Hypothesis favours simple values such as whole numbers, which hit the closed form's special
    # points (a = 1 and a + b = 1, where it is 0/0; r - a an integer, where SciPy's hyp2f1 fails).
    return BGNBDParams(
        r=draw(positive), alpha=draw(st.floats(0.1, 500.0)), a=draw(positive), b=draw(positive)
    )


@st.composite
def histories(draw: st.DrawFn) -> tuple[int, float, float]:
    frequency = draw(st.integers(0, 500))
    T = draw(st.floats(0.0, 200.0))
    recency = draw(st.floats(0.0, 1.0)) * T if frequency > 0 else 0.0
    return frequency, recency, T


@settings(max_examples=300, deadline=None)
@given(
    params=bgnbd_params(),
    history=histories(),
    horizon=st.floats(0.0, 1_000.0),
    extra=st.floats(0.0, 1_000.0),
)
def test_predictions_are_valid_for_any_history(
    params: BGNBDParams, history: tuple[int, float, float], horizon: float, extra: float
) -> None:
    frequency, recency, T = ([value] for value in history)

    alive = bgnbd_probability_alive(params, frequency, recency, T)[0]
    sooner = bgnbd_expected_purchases(params, frequency, recency, T, horizon)[0]
    later = bgnbd_expected_purchases(params, frequency, recency, T, horizon + extra)[0]

    assert 0.0 <= alive <= 1.0
    assert np.isfinite(sooner)
    assert np.isfinite(later)
    assert sooner >= 0.0
    assert later >= sooner - 1e-9 * max(1.0, later)
    assert np.isfinite(bgnbd_log_likelihood(params, frequency, recency, T)[0])


@settings(max_examples=200, deadline=None)
@given(
    params=bgnbd_params(),
    frequency=st.integers(1, 200),
    age=st.floats(1.0, 200.0),
    last_purchase=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=2, unique=True).map(sorted),
)
def test_more_recent_buyer_is_more_likely_alive_and_buys_more(
    params: BGNBDParams, frequency: int, age: float, last_purchase: list[float]
) -> None:
    # Two customers alike but for when they last bought (as a share of their age).
    recency = np.array(last_purchase) * age
    same, ages = np.full(2, frequency), np.full(2, age)

    alive = bgnbd_probability_alive(params, same, recency, ages)
    expected = bgnbd_expected_purchases(params, same, recency, ages, 52.0)

    assert alive[1] >= alive[0]
    assert expected[1] >= expected[0] * (1 - 1e-12)


def test_large_frequencies_do_not_overflow() -> None:
    params = BGNBDParams(r=0.5, alpha=2.0, a=0.8, b=2.5)
    frequency = np.array([1_000, 10_000, 100_000])
    recency = np.array([99.0, 99.9, 99.99])
    T = np.full(3, 100.0)

    log_likelihood = bgnbd_log_likelihood(params, frequency, recency, T)
    alive = bgnbd_probability_alive(params, frequency, recency, T)
    expected = bgnbd_expected_purchases(params, frequency, recency, T, 10.0)

    assert np.isfinite(log_likelihood).all()
    assert ((alive > 0) & (alive <= 1)).all()
    # A customer who bought x times in 100 weeks and is surely alive keeps buying at about that
    # rate, less the dropouts: between 0 and the naive x / 10 for 10 more weeks.
    assert np.isfinite(expected).all()
    assert ((expected > 0) & (expected <= frequency / 10)).all()


def test_expected_purchases_are_exact_when_almost_nobody_drops_out() -> None:
    # The fit of a year of a grocery panel (dunnhumby's Complete Journey, days): a / (a + b) is
    # 1.3e-4, with a and b so large that Euler's form is 0 * inf. References: mpmath, 50 digits.
    params = BGNBDParams(
        r=1.5333382168074632, alpha=9.666369468640616, a=578938.5034415511, b=4456692465.136482
    )
    expected = bgnbd_expected_purchases(params, [0, 300], [0, 330], [10, 330], [60, 60])
    np.testing.assert_allclose(expected, [4.675704678550245, 53.072707382349878], rtol=1e-9)


def test_weights_give_the_same_fit_as_repeated_rows() -> None:
    rng = np.random.default_rng(11)
    T = rng.integers(10, 40, 3_000).astype(float)
    frequency, recency = simulate_bgnbd(BGNBDParams(0.5, 4.0, 0.8, 2.5), T, rng)
    rows = pd.DataFrame({"frequency": frequency, "recency": np.ceil(recency), "T": T})
    compressed = rows.groupby(["frequency", "recency", "T"]).size().rename("count").reset_index()
    assert len(compressed) < len(rows) / 2

    full = fit_bgnbd(rows["frequency"], rows["recency"], rows["T"])
    weighted = fit_bgnbd(
        compressed["frequency"],
        compressed["recency"],
        compressed["T"],
        weights=compressed["count"],
    )
    doubled = fit_bgnbd(
        compressed["frequency"],
        compressed["recency"],
        compressed["T"],
        weights=2 * compressed["count"],
    )

    assert astuple(weighted) == pytest.approx(astuple(full), rel=1e-9)
    assert astuple(doubled) == pytest.approx(astuple(full), rel=1e-9)


def test_gamma_gamma_weights_give_the_same_fit_as_repeated_rows() -> None:
    rng = np.random.default_rng(12)
    frequency = 1 + rng.poisson(2.0, 2_000)
    spend = np.round(simulate_gamma_gamma(GammaGammaParams(6.0, 4.0, 15.0), frequency, rng))
    rows = pd.DataFrame({"frequency": frequency, "monetary_value": spend})
    compressed = rows.groupby(["frequency", "monetary_value"]).size().rename("count").reset_index()

    full = fit_gamma_gamma(rows["frequency"], rows["monetary_value"])
    weighted = fit_gamma_gamma(
        compressed["frequency"], compressed["monetary_value"], weights=compressed["count"]
    )

    assert astuple(weighted) == pytest.approx(astuple(full), rel=1e-9)


def test_fit_does_not_depend_on_the_time_unit() -> None:
    data = cdnow()

    in_weeks = fit_bgnbd(data["frequency"], data["recency"], data["T"])
    in_days = fit_bgnbd(data["frequency"], 7 * data["recency"], 7 * data["T"])

    assert in_days.alpha == pytest.approx(7 * in_weeks.alpha, rel=1e-6)
    assert (in_days.r, in_days.a, in_days.b) == pytest.approx(
        (in_weeks.r, in_weeks.a, in_weeks.b), rel=1e-6
    )


def test_fit_does_not_depend_on_the_starting_point() -> None:
    data = cdnow()

    default = fit_bgnbd(data["frequency"], data["recency"], data["T"])
    elsewhere = fit_bgnbd(
        data["frequency"],
        data["recency"],
        data["T"],
        initial=BGNBDParams(r=3.0, alpha=100.0, a=0.1, b=10.0),
    )

    assert astuple(elsewhere) == pytest.approx(astuple(default), rel=1e-5)


def test_penalizer_shrinks_parameters() -> None:
    data = cdnow()
    scale = data["T"].max()

    plain = fit_bgnbd(data["frequency"], data["recency"], data["T"])
    penalised = fit_bgnbd(data["frequency"], data["recency"], data["T"], penalizer=0.1)

    def size(params: BGNBDParams) -> float:
        # The penalty is on alpha in time scaled so that the oldest customer has age 1.
        return params.r**2 + (params.alpha / scale) ** 2 + params.a**2 + params.b**2

    assert size(penalised) < size(plain)


def test_gamma_gamma_expected_spend_shrinks_own_mean_toward_population_mean() -> None:
    params = GammaGammaParams(p=6.0, q=4.0, v=15.0)
    population_mean = params.p * params.v / (params.q - 1)
    frequency = np.array([0, 1, 5, 50, 1, 5, 50])
    own_mean = np.array([0.0, 100.0, 100.0, 100.0, 5.0, 5.0, 5.0])

    expected = gamma_gamma_expected_spend(params, frequency, own_mean)

    assert expected[0] == pytest.approx(population_mean)
    high, low = expected[1:4], expected[4:]
    assert ((population_mean < high) & (high < 100.0)).all()
    assert ((low > 5.0) & (low < population_mean)).all()
    # More purchases, more weight on the customer's own mean.
    assert (np.diff(high) > 0).all()
    assert (np.diff(low) < 0).all()


def test_gamma_gamma_ignores_customers_without_repeat_spend() -> None:
    rng = np.random.default_rng(13)
    frequency = 1 + rng.poisson(2.0, 500)
    spend = simulate_gamma_gamma(GammaGammaParams(6.0, 4.0, 15.0), frequency, rng)

    alone = fit_gamma_gamma(frequency, spend)
    padded = fit_gamma_gamma(
        np.concatenate([frequency, [0, 0, 3]]), np.concatenate([spend, [0.0, 40.0, 0.0]])
    )

    assert astuple(padded) == pytest.approx(astuple(alone), rel=1e-12)


# --------------------------------------------------------------------------------------------------
# Validation at the boundary
# --------------------------------------------------------------------------------------------------

F, R, T = [0, 2, 1], [0.0, 5.0, 3.0], [10.0, 10.0, 10.0]

BAD_INPUTS: list[tuple[str, Callable[[], object], str]] = [
    ("negative-frequency", lambda: fit_bgnbd([0, -1, 1], R, T), r"frequency at position 1"),
    ("fractional-frequency", lambda: fit_bgnbd([0, 2.5, 1], R, T), r"frequency at position 1"),
    ("recency-after-T", lambda: fit_bgnbd(F, [0.0, 11.0, 3.0], T), r"recency at position 1.*T"),
    ("negative-recency", lambda: fit_bgnbd(F, [0.0, -5.0, 3.0], T), r"recency at position 1"),
    (
        "recency-without-purchase",
        lambda: fit_bgnbd(F, [2.0, 5.0, 3.0], T),
        r"recency at position 0.*frequency is 0",
    ),
    ("nan-T", lambda: fit_bgnbd(F, R, [10.0, np.nan, 10.0]), r"T at position 1.*not finite"),
    ("inf-recency", lambda: fit_bgnbd(F, [0.0, np.inf, 3.0], T), r"recency at position 1"),
    ("short-T", lambda: fit_bgnbd(F, R, [10.0, 10.0]), r"T has 2 values but frequency has 3"),
    ("text-frequency", lambda: fit_bgnbd(["0", "x", "1"], R, T), r"frequency must contain"),
    ("two-dimensional", lambda: fit_bgnbd([F], [R], [T]), r"frequency must be one-dimensional"),
    ("empty", lambda: fit_bgnbd([], [], []), r"frequency is empty"),
    ("negative-weight", lambda: fit_bgnbd(F, R, T, weights=[1, -1, 1]), r"weights at position 1"),
    ("zero-weights", lambda: fit_bgnbd(F, R, T, weights=[0, 0, 0]), r"weights sum to 0"),
    ("wrong-weights-length", lambda: fit_bgnbd(F, R, T, weights=[1, 1]), r"weights has 2 values"),
    ("negative-penalizer", lambda: fit_bgnbd(F, R, T, penalizer=-1.0), r"penalizer"),
    (
        "negative-horizon",
        lambda: bgnbd_expected_purchases(CDNOW_BGNBD, F, R, T, -1.0),
        r"t at position 0",
    ),
    (
        "horizon-length",
        lambda: bgnbd_expected_purchases(CDNOW_BGNBD, F, R, T, [1.0, 2.0]),
        r"t must be a scalar or have one value per customer",
    ),
    (
        "alive-recency-after-T",
        lambda: bgnbd_probability_alive(CDNOW_BGNBD, F, [0.0, 5.0, 30.0], T),
        r"recency at position 2",
    ),
    ("negative-new-horizon", lambda: bgnbd_expected_purchases_new(CDNOW_BGNBD, -2.0), r"^t at"),
    (
        "negative-spend",
        lambda: fit_gamma_gamma([1, 2], [10.0, -3.0]),
        r"monetary_value at position 1",
    ),
    ("no-repeat-spend", lambda: fit_gamma_gamma([0, 0], [0.0, 0.0]), r"no customer has"),
    (
        "spend-length",
        lambda: gamma_gamma_expected_spend(CDNOW_GAMMA_GAMMA, [1, 2], [10.0]),
        r"monetary_value has 1 values but frequency has 2",
    ),
    ("negative-param", lambda: BGNBDParams(r=-1.0, alpha=1.0, a=1.0, b=1.0), r"BGNBDParams\.r"),
    ("nan-param", lambda: GammaGammaParams(p=1.0, q=np.nan, v=1.0), r"GammaGammaParams\.q"),
]


@pytest.mark.parametrize(
    ("call", "message"),
    [(call, message) for _, call, message in BAD_INPUTS],
    ids=[name for name, _, _ in BAD_INPUTS],
)
def test_bad_inputs_raise_value_error_naming_the_argument(
    call: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_errors_name_the_pandas_index_label() -> None:
    frequency = pd.Series([0, 1, 2], index=["ann", "bob", "cy"])
    recency = pd.Series([0.0, 12.0, 3.0], index=frequency.index)
    T = pd.Series([10.0, 10.0, 10.0], index=frequency.index)

    with pytest.raises(ValueError, match=r"recency at position 1 \(index label 'bob'\)"):
        fit_bgnbd(frequency, recency, T)


def test_probability_of_no_purchase_in_the_horizon_is_consistent() -> None:
    params = CDNOW_BGNBD
    frequency = np.array([0.0, 2.0, 2.0, 7.0])
    recency = np.array([0.0, 30.43, 5.0, 35.0])
    age = np.array([38.86, 38.86, 38.86, 38.86])
    alive = bgnbd_probability_alive(params, frequency, recency, age)
    # a zero-length horizon: nobody buys in it
    np.testing.assert_allclose(
        bgnbd_probability_no_purchase(params, frequency, recency, age, 1e-12), 1.0
    )
    # longer horizons: more chance to buy, but never below the chance of having dropped out
    short = bgnbd_probability_no_purchase(params, frequency, recency, age, 10.0)
    long = bgnbd_probability_no_purchase(params, frequency, recency, age, 100.0)
    assert (long < short).all()
    assert (long >= 1 - alive - 1e-12).all()
    # without repeat purchases the customer is alive: only the gamma-Poisson silence remains,
    # ((alpha + T) / (alpha + T + t)) ** r
    expected = ((params.alpha + 38.86) / (params.alpha + 38.86 + 10.0)) ** params.r
    assert short[0] == pytest.approx(expected)


def test_probability_of_no_purchase_agrees_with_simulation() -> None:
    # Simulate the posterior: the silent-and-alive part is E[exp(-lambda t)] with lambda drawn
    # from its Gamma(r + x, alpha + T) posterior.
    params, x, t_x, age, t = CDNOW_BGNBD, 3.0, 20.0, 38.0, 25.0
    rng = np.random.default_rng(0)
    lam = rng.gamma(params.r + x, 1 / (params.alpha + age), 400_000)
    alive = bgnbd_probability_alive(params, [x], [t_x], [age])[0]
    simulated = 1 - alive + alive * np.exp(-lam * t).mean()
    value = bgnbd_probability_no_purchase(params, [x], [t_x], [age], t)[0]
    assert value == pytest.approx(simulated, abs=2e-3)


def test_a_fit_that_stops_on_the_no_dropout_ridge_says_so() -> None:
    from clv.models.btyd import _explain_bgnbd

    panel = np.log([1.53, 9.67, 578938.5, 4456692465.1])  # r, alpha, a, b of a grocery panel
    assert "Almost nobody drops out" in _explain_bgnbd(panel)
    assert "1.3e-04" in _explain_bgnbd(panel)
    cdnow = np.log([0.243, 4.414, 0.793, 2.426])  # Fader, Hardie & Lee's CDNOW estimates
    assert _explain_bgnbd(cdnow) == ""
