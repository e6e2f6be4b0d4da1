"""Binned ratio intervals cover what they promise, stay ordered and non-negative, and round-trip."""

from __future__ import annotations

import numpy as np
import pytest

from clv.models.intervals import BinnedRatioInterval


def lognormal_sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Predictions spread over three orders of magnitude; spend = prediction * lognormal noise."""
    rng = np.random.default_rng(seed)
    predicted = np.exp(rng.uniform(np.log(5.0), np.log(5000.0), size=n))
    spend = predicted * rng.lognormal(mean=0.0, sigma=0.8, size=n)
    return spend, predicted


def test_intervals_fitted_on_one_half_cover_about_80_percent_of_the_other() -> None:
    spend, predicted = lognormal_sample(8000, seed=11)
    interval = BinnedRatioInterval.fit(spend[:4000], predicted[:4000], coverage=0.8)
    lower, upper = interval.apply(predicted[4000:])
    inside = (spend[4000:] >= lower) & (spend[4000:] <= upper)
    assert 0.75 <= inside.mean() <= 0.85


def test_zero_inflated_spend_is_covered_at_the_nominal_rate_not_more() -> None:
    # Most customers of a horizon spend nothing: with 60% zeros a central 10%-90% interval would
    # start at 0 and hold 90% of the rows. Fitted on one half, it must hold about 80% of the other.
    rng = np.random.default_rng(3)
    predicted = np.exp(rng.uniform(np.log(5.0), np.log(500.0), size=20_000))
    buys = rng.random(20_000) < 0.4
    spend = np.where(buys, predicted / 0.4 * rng.lognormal(-0.3, 0.8, size=20_000), 0.0)
    interval = BinnedRatioInterval.fit(spend[:10_000], predicted[:10_000], coverage=0.8)
    lower, upper = interval.apply(predicted[10_000:])
    inside = (spend[10_000:] >= lower) & (spend[10_000:] <= upper)
    assert 0.77 <= inside.mean() <= 0.83


def test_ratio_bounds_are_the_hand_computed_quantiles_times_the_prediction() -> None:
    # One bin, ratios 0, 1, 2, 3, 4: the 25% and 75% quantiles (coverage 0.5) are 1 and 3,
    # so a prediction of 20 gets [20, 60] and 0.5 gets [0.5, 1.5].
    interval = BinnedRatioInterval.fit(
        [0.0, 10.0, 20.0, 30.0, 40.0], [10.0] * 5, coverage=0.5, n_bins=1
    )
    assert (interval.lower, interval.upper) == ([1.0], [3.0])
    lower, upper = interval.apply([20.0, 0.5])
    np.testing.assert_allclose(lower, [20.0, 0.5])
    np.testing.assert_allclose(upper, [60.0, 1.5])


def test_rows_predicted_zero_get_the_absolute_quantiles_of_their_spend() -> None:
    # Spend of the ten rows predicted 0: eight zeros, 10 and 20. The 10% quantile (position 0.9)
    # is 0, so the interval starts at 0 and ends at the 80% quantile (position 7.2):
    # 0 + 0.2 * (10 - 0) = 2; it holds 8 of the 10 rows.
    zero_spend = [0.0] * 8 + [10.0, 20.0]
    spend = np.array([*zero_spend, 50.0, 70.0, 90.0])
    predicted = np.array([0.0] * 10 + [60.0, 70.0, 80.0])
    interval = BinnedRatioInterval.fit(spend, predicted, coverage=0.8)
    assert interval.zero_lower == pytest.approx(0.0)
    assert interval.zero_upper == pytest.approx(2.0)
    lower, upper = interval.apply([0.0, 0.0])
    np.testing.assert_allclose(lower, [0.0, 0.0])
    np.testing.assert_allclose(upper, [2.0, 2.0])


def test_bounds_are_never_negative_and_lower_never_exceeds_upper() -> None:
    spend, predicted = lognormal_sample(3000, seed=5)
    spend[::7] = 0.0  # many customers spend nothing
    predicted[::11] = 0.0  # and some are predicted at zero
    interval = BinnedRatioInterval.fit(spend, predicted, coverage=0.9, n_bins=8)
    probe = np.concatenate([[0.0, 1e-12, 1e-3], np.geomspace(0.01, 1e6, 500)])
    lower, upper = interval.apply(probe)
    assert (lower >= 0).all()
    assert (lower <= upper).all()
    assert len(lower) == len(upper) == len(probe)


def test_json_round_trip_gives_identical_bounds() -> None:
    spend, predicted = lognormal_sample(2000, seed=3)
    predicted[:50] = 0.0
    interval = BinnedRatioInterval.fit(spend, predicted, coverage=0.8)
    restored = BinnedRatioInterval.from_json(interval.to_json())
    assert restored == interval
    probe = np.concatenate([[0.0], predicted[:300]])
    for original, read_back in zip(interval.apply(probe), restored.apply(probe), strict=True):
        np.testing.assert_array_equal(original, read_back)


@pytest.mark.parametrize(
    ("spend", "predicted", "coverage", "message"),
    [
        ([1.0, 2.0], [1.0, 2.0], 0.0, "coverage must be strictly between 0 and 1"),
        ([1.0, 2.0], [1.0, 2.0], 1.0, "coverage must be strictly between 0 and 1"),
        ([1.0, 2.0], [1.0, 2.0], 1.5, "coverage must be strictly between 0 and 1"),
        ([1.0, 2.0, 3.0], [1.0, 2.0], 0.8, "same length|one non-zero length"),
        ([], [], 0.8, "one non-zero length"),
        ([1.0, np.nan], [1.0, 2.0], 0.8, "must be finite"),
        ([1.0, 2.0], [1.0, np.inf], 0.8, "must be finite"),
    ],
    ids=[
        "coverage-zero",
        "coverage-one",
        "coverage-above-one",
        "different-lengths",
        "no-rows",
        "nan-spend",
        "infinite-prediction",
    ],
)
def test_bad_inputs_are_rejected_with_a_message(
    spend: list[float], predicted: list[float], coverage: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        BinnedRatioInterval.fit(spend, predicted, coverage=coverage)
