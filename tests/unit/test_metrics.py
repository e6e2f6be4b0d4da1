"""Evaluation metrics and plots: hand-computed values, invariants, tie rules and input validation.

Where a metric averages over the orders of tied predictions, a brute-force reference enumerates
every such order on tiny inputs and the metric must match the average exactly.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from clv.evaluation.metrics import (
    UndefinedMetricWarning,
    aggregate_error,
    brier_score,
    calibration_error,
    calibration_table,
    churn_report,
    decile_mape,
    decile_table,
    interval_coverage,
    mae,
    normalized_gini,
    regression_report,
    rmse,
    roc_auc,
    spearman,
    top_k_lift,
    top_k_precision,
)
from clv.evaluation.plots import calibration_plot, decile_sum_plot, lift_plot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FAST = settings(max_examples=60, deadline=None)


# ---------------------------------------------------------------------------------------------
# Brute-force references: every order of the customers consistent with the predictions
# ---------------------------------------------------------------------------------------------


def _orders_by_prediction(pred: npt.NDArray[Any], descending: bool = True) -> Iterator[list[int]]:
    """Each order of the customers by prediction, every tie group permuted in every way."""
    levels = sorted(set(pred.tolist()), reverse=descending)
    groups = [np.flatnonzero(pred == level).tolist() for level in levels]
    for perms in itertools.product(*(itertools.permutations(group) for group in groups)):
        yield [i for perm in perms for i in perm]


def _kaggle_gini(truth: npt.NDArray[Any], order: list[int]) -> float:
    """Kaggle (Porto Seguro) Gini of ``truth`` visited in ``order`` (needs a positive total)."""
    visited = truth[order]
    n = visited.size
    return float((np.cumsum(visited).sum() / visited.sum() - (n + 1) / 2) / n)


def _brute_gini(truth: npt.NDArray[Any], pred: npt.NDArray[Any]) -> float:
    ideal = _kaggle_gini(truth, list(np.argsort(-truth, kind="stable")))
    ginis = [_kaggle_gini(truth, order) for order in _orders_by_prediction(pred)]
    return float(np.mean(ginis)) / ideal


def _brute_top_k(truth: npt.NDArray[Any], pred: npt.NDArray[Any], m: int) -> tuple[float, float]:
    """Mean precision (truth ties in the model's favour) and mean captured share, over orders."""
    edge = np.sort(truth)[truth.size - m]
    above, at_edge = set(np.flatnonzero(truth > edge)), set(np.flatnonzero(truth == edge))
    places = m - len(above)
    precisions, shares = [], []
    for order in _orders_by_prediction(pred):
        picked = set(order[:m])
        precisions.append((len(picked & above) + min(len(picked & at_edge), places)) / m)
        if truth.sum() > 0:
            shares.append(truth[order[:m]].sum() / truth.sum())
    return float(np.mean(precisions)), float(np.mean(shares)) if shares else math.nan


def _brute_bin_true_sums(
    truth: npt.NDArray[Any], pred: npt.NDArray[Any], n_bins: int
) -> npt.NDArray[Any]:
    n = truth.size
    bins = (np.arange(n) * n_bins) // n
    sums = [
        np.bincount(bins, weights=truth[order], minlength=n_bins)
        for order in _orders_by_prediction(pred, descending=False)
    ]
    return np.mean(sums, axis=0)


small_cases = st.lists(
    st.tuples(st.integers(-1, 4), st.integers(0, 2)), min_size=2, max_size=6
).map(lambda rows: (np.array([10.0 * t for t, _ in rows]), np.array([float(p) for _, p in rows])))


# ---------------------------------------------------------------------------------------------
# Normalised Gini
# ---------------------------------------------------------------------------------------------


def test_gini_hand_computed_example() -> None:
    # Predicted order (0.9, 0.4, 0.3, 0.1) visits truth 60, 10, 30, 0; total 100.
    # Cumulative shares .6 .7 1 1 -> Kaggle Gini 3.3/4 - 5/8 = 0.200.
    # Ideal order 60, 30, 10, 0 -> shares .6 .9 1 1 -> 3.5/4 - 5/8 = 0.250.  0.200/0.250 = 0.8.
    assert normalized_gini([0, 10, 30, 60], [0.1, 0.4, 0.3, 0.9]) == pytest.approx(0.8)


def test_gini_averages_over_the_order_of_tied_predictions() -> None:
    # Customers 1 and 3 tie at 0.9. Rank weights (n+1)/2 - rank = 1.5, .5, -.5, -1.5.
    # Order 60,10,30,0: 90 + 5 - 15 = 80; order 10,60,30,0: 15 + 30 - 15 = 30; mean 55.
    # Ideal 60,30,10,0: 90 + 15 - 5 = 100.  55 / 100 = 0.55 (both orders count equally).
    assert normalized_gini([0, 10, 30, 60], [0.1, 0.9, 0.3, 0.9]) == pytest.approx(0.55)


def test_gini_accepts_refunds_and_matches_lorenz_form() -> None:
    # Truth -10, 0, 40 (total 30). Predicted order 40, -10, 0 -> shares 4/3, 1, 1:
    # 10/9 - 4/6 = 4/9. Ideal order 40, 0, -10 -> shares 4/3, 4/3, 1: 11/9 - 4/6 = 5/9.  Ratio 0.8.
    assert normalized_gini([-10, 0, 40], [0.5, 0.1, 0.9]) == pytest.approx(0.8)


def test_gini_is_one_for_perfect_minus_one_for_reversed_zero_for_constant() -> None:
    truth = np.array([0.0, 0.0, 3.0, 1.0, 50.0, 7.0, 0.0, 12.0])
    assert normalized_gini(truth, truth) == 1.0
    assert normalized_gini(truth, 2 * truth + 1) == 1.0
    distinct = np.array([5.0, 1.0, 9.0, 3.0, 20.0])
    assert normalized_gini(distinct, -distinct) == -1.0
    assert normalized_gini(truth, np.full(truth.size, 4.2)) == 0.0


def test_gini_of_constant_truth_is_nan_with_warning() -> None:
    with pytest.warns(UndefinedMetricWarning, match="constant"):
        assert math.isnan(normalized_gini([0, 0, 0], [1, 2, 3]))


@FAST
@given(case=small_cases)
def test_gini_equals_mean_kaggle_gini_over_all_tie_orders(
    case: tuple[npt.NDArray[Any], npt.NDArray[Any]],
) -> None:
    truth, pred = case
    assume(truth.sum() > 0 and np.ptp(truth) > 0)
    assert normalized_gini(truth, pred) == pytest.approx(_brute_gini(truth, pred), abs=1e-12)


rank_cases = st.lists(
    st.tuples(st.integers(-50, 500), st.integers(-30, 30)), min_size=2, max_size=40
).map(lambda rows: (np.array([t for t, _ in rows], float), np.array([p for _, p in rows], float)))
MONOTONE: dict[str, Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]] = {
    "affine": lambda p: 3 * p - 7,
    "cube": lambda p: p**3,
    "exp": lambda p: np.exp(p / 10),
    "arctan": np.arctan,
}


@FAST
@given(case=rank_cases, transform=st.sampled_from(sorted(MONOTONE)))
def test_gini_is_invariant_to_monotone_transforms_of_predictions(
    case: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]], transform: str
) -> None:
    truth, pred = case
    assume(np.ptp(truth) > 0)
    transformed = MONOTONE[transform](pred)
    assert normalized_gini(truth, transformed) == pytest.approx(normalized_gini(truth, pred))


@FAST
@given(case=rank_cases, shift=st.integers(-1000, 1000), scale=st.sampled_from([0.5, 2.0, 7.0]))
def test_gini_is_invariant_to_shift_and_scale_of_truth_and_bounded(
    case: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]], shift: int, scale: float
) -> None:
    truth, pred = case
    assume(np.ptp(truth) > 0)
    gini = normalized_gini(truth, pred)
    assert -1.0 - 1e-12 <= gini <= 1.0 + 1e-12
    assert normalized_gini(scale * truth + shift, pred) == pytest.approx(gini, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# Deciles
# ---------------------------------------------------------------------------------------------


def test_decile_mape_hand_computed_example() -> None:
    # Predictions 1..6 in 3 bins of 2: pred sums 3, 7, 11; true sums 2+0=2, 5+3=8, 10+20=30.
    # Errors |3-2|/2 = .5, |7-8|/8 = .125, |11-30|/30 = 19/30; mean = (.5+.125+.6333)/3 = 0.41944.
    assert decile_mape([2, 0, 5, 3, 10, 20], [1, 2, 3, 4, 5, 6], n_bins=3) == pytest.approx(
        (0.5 + 0.125 + 19 / 30) / 3
    )


def test_decile_mape_skips_zero_sum_bins_with_a_warning() -> None:
    # As above with truth 0, 0 in bin 1: that bin has no percentage error and is skipped;
    # mean over bins 2 and 3 = (.125 + 19/30) / 2 = 0.37917.
    with pytest.warns(UndefinedMetricWarning, match=r"skipped 1 of 3 bins.*\[1\]"):
        value = decile_mape([0, 0, 5, 3, 10, 20], [1, 2, 3, 4, 5, 6], n_bins=3)
    assert value == pytest.approx((0.125 + 19 / 30) / 2)


def test_decile_mape_is_nan_when_every_bin_sums_to_zero() -> None:
    with pytest.warns(UndefinedMetricWarning, match="all 2 bins"):
        assert math.isnan(decile_mape([0, 0, 0, 0], [1, 2, 3, 4], n_bins=2))


def test_decile_mape_is_zero_for_perfect_predictions() -> None:
    truth = np.arange(1.0, 41.0) ** 1.5
    assert decile_mape(truth, truth) == 0.0


def test_decile_table_hand_computed_example() -> None:
    # Same data as the MAPE example; overall mean = 40/6. Bin 3: share 30/40 = .75,
    # lift = mean 15 / (40/6) = 2.25.
    table = decile_table([2, 0, 5, 3, 10, 20], [1, 2, 3, 4, 5, 6], n_bins=3)
    assert list(table.columns) == [
        "n",
        "mean_pred",
        "mean_true",
        "sum_pred",
        "sum_true",
        "share_of_true_total",
        "lift",
    ]
    assert table.index.name == "bin"
    assert table.index.tolist() == [1, 2, 3]
    assert table["n"].tolist() == [2, 2, 2]
    assert table["sum_pred"].tolist() == pytest.approx([3, 7, 11])
    assert table["sum_true"].tolist() == pytest.approx([2, 8, 30])
    assert table["mean_true"].tolist() == pytest.approx([1, 4, 15])
    assert table["share_of_true_total"].tolist() == pytest.approx([0.05, 0.2, 0.75])
    assert table["lift"].tolist() == pytest.approx([0.15, 0.6, 2.25])


def test_decile_table_spreads_a_remainder_over_bins() -> None:
    # 7 customers in 3 bins: position i goes to floor(3i/7) -> 0,0,0,1,1,2,2.
    assert decile_table(np.arange(7.0), np.arange(7.0), n_bins=3)["n"].tolist() == [3, 2, 2]


def test_decile_table_averages_truth_over_prediction_ties_whatever_the_row_order() -> None:
    # Three customers tie at prediction 1 (truth 0, 6, 0; mean 2) and fill bin 1 and half of
    # bin 2: bin 1 true sum = 2 + 2 = 4, bin 2 = 2 + 12 = 14, in every row order.
    truth, pred = np.array([0.0, 6.0, 0.0, 12.0]), np.array([1.0, 1.0, 1.0, 5.0])
    for perm in itertools.permutations(range(4)):
        rows = list(perm)
        table = decile_table(truth[rows], pred[rows], n_bins=2)
        assert table["sum_true"].tolist() == pytest.approx([4, 14])
        assert table["sum_pred"].tolist() == pytest.approx([2, 6])


@FAST
@given(case=small_cases, n_bins=st.integers(1, 2))
def test_decile_true_sums_equal_mean_over_all_tie_orders(
    case: tuple[npt.NDArray[Any], npt.NDArray[Any]], n_bins: int
) -> None:
    truth, pred = case
    table = decile_table(truth, pred, n_bins=n_bins)
    expected = _brute_bin_true_sums(truth, pred, n_bins)
    assert table["sum_true"].to_numpy() == pytest.approx(expected, abs=1e-9)


decile_cases = st.lists(
    st.tuples(st.integers(0, 1000), st.integers(0, 1000)), min_size=10, max_size=60
).map(lambda rows: (np.array([t for t, _ in rows], float), np.array([p for _, p in rows], float)))


@FAST
@given(case=decile_cases, scale=st.sampled_from([0.5, 2.0, 3.0, 1000.0]))
def test_decile_mape_and_aggregate_error_are_scale_invariant(
    case: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]], scale: float
) -> None:
    truth, pred = case
    assume(truth.sum() > 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        original, scaled = decile_mape(truth, pred), decile_mape(scale * truth, scale * pred)
    assert scaled == pytest.approx(original, rel=1e-9, nan_ok=True)
    assert aggregate_error(scale * truth, scale * pred) == pytest.approx(
        aggregate_error(truth, pred), rel=1e-9, abs=1e-12
    )


# ---------------------------------------------------------------------------------------------
# Aggregate, point errors, Spearman
# ---------------------------------------------------------------------------------------------


def test_aggregate_error_hand_computed_examples() -> None:
    # Totals: truth 100, prediction 90 -> (90 - 100) / 100 = -0.1 (under-predicted).
    assert aggregate_error([10, 20, 30, 40], [15, 15, 30, 30]) == pytest.approx(-0.1)
    # Refunds make the true total -40; prediction -20 is above it: (-20 + 40) / |-40| = +0.5.
    assert aggregate_error([-50, 10], [-30, 10]) == pytest.approx(0.5)
    assert aggregate_error([1, 2, 3], [1, 2, 3]) == 0.0


def test_aggregate_error_of_zero_total_is_nan_with_warning() -> None:
    with pytest.warns(UndefinedMetricWarning, match="zero"):
        assert math.isnan(aggregate_error([0, 0], [1, 1]))


def test_mae_and_rmse_hand_computed_example() -> None:
    # Errors 1, 0, 2: MAE = 3/3 = 1; RMSE = sqrt((1 + 0 + 4) / 3) = sqrt(5/3) = 1.29099.
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    assert rmse([1, 2, 3], [2, 2, 5]) == pytest.approx(math.sqrt(5 / 3))


def test_spearman_hand_computed_example_and_constant_input() -> None:
    # Rank differences 0, 1, 1, 0: rho = 1 - 6·2 / (4·(16 - 1)) = 1 - 12/60 = 0.8.
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a constant input is documented as 0.0, silently
        assert spearman([1, 2, 3, 4], [5, 5, 5, 5]) == 0.0
        assert spearman([0, 0, 0], [1, 2, 3]) == 0.0


# ---------------------------------------------------------------------------------------------
# Top-k precision and lift
# ---------------------------------------------------------------------------------------------

TOP_TRUTH = [0, 0, 0, 0, 0, 0, 5, 10, 20, 40]
TOP_PRED = [1, 1, 1, 1, 1, 1, 9, 3, 4, 10]


def test_top_k_precision_hand_computed_example() -> None:
    # k = 0.2 of 10 -> 2 customers. Predicted top: #9 (40) and #6 (5); true top: #9 and #8 (20).
    # One of two in common -> 0.5.
    assert top_k_precision(TOP_TRUTH, TOP_PRED, k=0.2) == pytest.approx(0.5)


def test_top_k_lift_hand_computed_example() -> None:
    # Predicted top 2 hold 40 + 5 = 45 of 75 = 0.6 of the total, over k = 0.2 -> lift 3.
    assert top_k_lift(TOP_TRUTH, TOP_PRED, k=0.2) == pytest.approx(3.0)


def test_top_k_precision_averages_over_tied_predictions() -> None:
    # Truth 20, 10, 10, 0, 0; constant prediction; top 2 (k = 0.4). #0 is surely in the true
    # top; one place is left for #1 or #2. Over the 10 equally likely pairs: pairs with #0 and
    # #1 or #2 score 2 (2 pairs), #0 with #3 or #4 score 1 (2), {#1, #2} scores 1 (only one
    # place at 10), #1 or #2 with #3 or #4 score 1 (4), {#3, #4} scores 0: 11 hits / 10 pairs
    # / 2 places = 0.55.
    assert top_k_precision([20, 10, 10, 0, 0], [1, 1, 1, 1, 1], k=0.4) == pytest.approx(0.55)


def test_top_k_precision_gives_ties_in_truth_to_the_model() -> None:
    # True top 2 of (10, 10, 10, 0, 0) is any two of the 10s: a perfect prediction scores 1,
    # a constant one the chance that a random pick is a 10, 3/5.
    assert top_k_precision([10, 10, 10, 0, 0], [10, 10, 10, 0, 0], k=0.4) == 1.0
    assert top_k_precision([10, 10, 10, 0, 0], [7, 7, 7, 7, 7], k=0.4) == pytest.approx(0.6)


def test_top_k_lift_is_one_for_a_constant_prediction() -> None:
    assert top_k_lift([1, 2, 3, 4, 50], [3, 3, 3, 3, 3], k=0.4) == pytest.approx(1.0)


def test_top_k_lift_of_non_positive_total_is_nan_with_warning() -> None:
    with pytest.warns(UndefinedMetricWarning, match="not positive"):
        assert math.isnan(top_k_lift([-5, 0, 5, -1], [1, 2, 3, 4]))


@FAST
@given(case=small_cases, k=st.sampled_from([0.2, 0.34, 0.5, 0.8, 1.0]))
def test_top_k_equals_mean_over_all_tie_orders(
    case: tuple[npt.NDArray[Any], npt.NDArray[Any]], k: float
) -> None:
    truth, pred = case
    m = max(1, math.floor(k * truth.size + 0.5))
    precision, share = _brute_top_k(truth, pred, m)
    assert top_k_precision(truth, pred, k=k) == pytest.approx(precision, abs=1e-12)
    if truth.sum() > 0:
        assert top_k_lift(truth, pred, k=k) == pytest.approx(share / (m / truth.size))


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@FAST
@given(
    rows=st.lists(st.tuples(finite, finite), min_size=1, max_size=50),
    k=st.floats(0.01, 1.0),
)
def test_top_k_precision_is_a_share(rows: list[tuple[float, float]], k: float) -> None:
    truth, pred = zip(*rows, strict=True)
    assert 0.0 <= top_k_precision(truth, pred, k=k) <= 1.0


# ---------------------------------------------------------------------------------------------
# Intervals and probabilities
# ---------------------------------------------------------------------------------------------


def test_interval_coverage_hand_computed_example() -> None:
    # 1 in [0, 2] yes; 2 in [2.5, 3] no; 3 in [3, 3] yes (bounds included); 4 in [5, 6] no: 2/4.
    lower, upper = [0, 2.5, 3, 5], [2, 3, 3, 6]
    assert interval_coverage([1, 2, 3, 4], lower, upper) == pytest.approx(0.5)
    assert interval_coverage([1, 2], [-np.inf, 3], [1, np.inf]) == 0.5  # one-sided bounds


@FAST
@given(
    rows=st.lists(
        st.tuples(finite, finite, st.floats(0, 1e6, allow_nan=False)), min_size=1, max_size=50
    )
)
def test_interval_coverage_is_a_share(rows: list[tuple[float, float, float]]) -> None:
    truth = np.array([t for t, _, _ in rows])
    lower = np.array([low for _, low, _ in rows])
    upper = lower + np.array([width for _, _, width in rows])
    assert 0.0 <= interval_coverage(truth, lower, upper) <= 1.0


def test_calibration_error_hand_computed_example() -> None:
    # 2 bins. [0, .5): probs .1 .1 .2 (mean 2/15), outcomes 0 0 1 (1/3): gap 1/5.
    # [.5, 1]: probs .8 .9 .7 (mean .8), outcomes 1 1 0 (2/3): gap 2/15.
    # ECE = 3/6 · 1/5 + 3/6 · 2/15 = 1/10 + 1/15 = 1/6.
    outcomes, probs = [0, 0, 1, 1, 1, 0], [0.1, 0.1, 0.2, 0.8, 0.9, 0.7]
    assert calibration_error(outcomes, probs, n_bins=2) == pytest.approx(1 / 6)
    table = calibration_table(outcomes, probs, n_bins=2)
    assert table["n"].tolist() == [3, 3]
    assert table["observed_rate"].tolist() == pytest.approx([1 / 3, 2 / 3])


def test_calibration_error_is_zero_when_rates_match_probabilities() -> None:
    # Bin [.2, .3) holds 5 customers at .2 with 1 event; bin [.8, .9) 5 at .8 with 4 events.
    outcomes = [1, 0, 0, 0, 0, 1, 1, 1, 1, 0]
    probs = [0.2] * 5 + [0.8] * 5
    assert calibration_error(outcomes, probs) == pytest.approx(0.0)


def test_brier_and_auc_hand_computed_examples() -> None:
    # Brier: ((.2 - 0)^2 + (.6 - 1)^2) / 2 = (.04 + .16) / 2 = 0.1.
    assert brier_score([0, 1], [0.2, 0.6]) == pytest.approx(0.1)
    # AUC: positive scores .35, .8 against negative .1, .4: pairs won .35>.1, .8>.1, .8>.4,
    # lost .35<.4 -> 3/4.
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert roc_auc([True, False], [0.5, 0.5]) == pytest.approx(0.5)


def test_roc_auc_with_one_outcome_is_nan_with_warning() -> None:
    with pytest.warns(UndefinedMetricWarning, match="only outcome 1"):
        assert math.isnan(roc_auc([1, 1, 1], [0.2, 0.5, 0.9]))


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------

REGRESSION_KEYS = [
    "normalized_gini",
    "decile_mape",
    "aggregate_error",
    "abs_aggregate_error",
    "spearman",
    "top20_precision",
    "top20_lift",
    "mae",
    "rmse",
]


def test_regression_report_of_perfect_predictions() -> None:
    truth = np.linspace(1.0, 100.0, 50) ** 2
    report = regression_report(truth, truth)
    assert list(report) == REGRESSION_KEYS
    assert report["normalized_gini"] == 1.0
    assert report["decile_mape"] == 0.0
    assert report["aggregate_error"] == report["abs_aggregate_error"] == 0.0
    assert report["spearman"] == pytest.approx(1.0)
    assert report["top20_precision"] == 1.0
    assert report["top20_lift"] == pytest.approx(truth[-10:].sum() / truth.sum() / 0.2)
    assert report["mae"] == report["rmse"] == 0.0


def test_regression_report_adds_coverage_when_bounds_are_given() -> None:
    rng = np.random.default_rng(3)
    truth = rng.gamma(0.6, 80.0, size=200) * (rng.random(200) < 0.4)
    pred = truth * rng.lognormal(0.0, 0.3, size=200) + 1.0
    # Nobody spends in the lowest predicted deciles: decile MAPE skips them and says so.
    with pytest.warns(UndefinedMetricWarning, match="decile_mape: skipped"):
        report = regression_report(truth, pred, lower=pred - 50, upper=pred + 50)
    assert list(report) == [*REGRESSION_KEYS, "interval_coverage"]
    assert report["abs_aggregate_error"] == abs(report["aggregate_error"])
    assert all(isinstance(value, float) for value in report.values())


def test_churn_report_hand_computed_example() -> None:
    # AUC 3/4 (as above). Brier (.01 + .16 + .4225 + .04)/4 = 0.158125. Each probability sits
    # alone in its 10%-bin: gaps .1, .4, .65, .2 -> ECE 1.35/4 = 0.3375. Base rate 2/4.
    report = churn_report([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert list(report) == ["auc", "brier", "calibration_error", "base_rate"]
    assert report == pytest.approx(
        {"auc": 0.75, "brier": 0.158125, "calibration_error": 0.3375, "base_rate": 0.5}
    )


# ---------------------------------------------------------------------------------------------
# Validation: the message names the argument at fault
# ---------------------------------------------------------------------------------------------

PAIR_METRICS: dict[str, Callable[[Any, Any], Any]] = {
    "normalized_gini": normalized_gini,
    "decile_mape": decile_mape,
    "decile_table": decile_table,
    "aggregate_error": aggregate_error,
    "spearman": spearman,
    "top_k_precision": top_k_precision,
    "top_k_lift": top_k_lift,
    "mae": mae,
    "rmse": rmse,
    "regression_report": regression_report,
}
BAD_PAIRS = {
    "length mismatch": ([1.0, 2.0, 3.0], [1.0, 2.0], "y_pred"),
    "NaN in truth": ([1.0, math.nan, 3.0], [1.0, 2.0, 3.0], "y_true"),
    "infinity in prediction": ([1.0, 2.0, 3.0], [1.0, math.inf, 3.0], "y_pred"),
    "empty": ([], [], "y_true"),
    "two-dimensional": ([[1.0, 2.0]], [1.0, 2.0], "y_true"),
    "not numeric": (["a", "b"], [1.0, 2.0], "y_true"),
}


@pytest.mark.parametrize("metric", list(PAIR_METRICS.values()), ids=list(PAIR_METRICS))
@pytest.mark.parametrize(
    ("y_true", "y_pred", "named"), list(BAD_PAIRS.values()), ids=list(BAD_PAIRS)
)
def test_bad_regression_inputs_raise_naming_the_argument(
    metric: Callable[[Any, Any], Any], y_true: Any, y_pred: Any, named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        metric(y_true, y_pred)


PROBABILITY_METRICS: dict[str, Callable[[Any, Any], Any]] = {
    "calibration_error": calibration_error,
    "calibration_table": calibration_table,
    "brier_score": brier_score,
    "roc_auc": roc_auc,
}
BAD_PROBABILITIES = {
    "length mismatch": ([0, 1, 1], [0.2, 0.4], "prob"),
    "NaN probability": ([0, 1], [0.2, math.nan], "prob"),
    "not binary": ([0, 2], [0.2, 0.4], "y_true_binary"),
    "probability above one": ([0, 1], [0.2, 1.5], "prob"),
    "empty": ([], [], "y_true_binary"),
}


@pytest.mark.parametrize(
    "metric", list(PROBABILITY_METRICS.values()), ids=list(PROBABILITY_METRICS)
)
@pytest.mark.parametrize(
    ("y_true_binary", "prob", "named"),
    list(BAD_PROBABILITIES.values()),
    ids=list(BAD_PROBABILITIES),
)
def test_bad_probability_inputs_raise_naming_the_argument(
    metric: Callable[[Any, Any], Any], y_true_binary: Any, prob: Any, named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        metric(y_true_binary, prob)


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda: churn_report([0, 2], [0.1, 0.2]), "churned"),
        (lambda: churn_report([0, 1], [0.1]), "prob"),
        (lambda: interval_coverage([1, 2], [0, 3], [2, 2.5]), "lower exceeds upper"),
        (lambda: interval_coverage([1, 2], [0, math.nan], [2, 3]), "lower"),
        (lambda: interval_coverage([1, 2], [0, 1], [2]), "upper"),
        (lambda: top_k_precision([1, 2], [1, 2], k=0), "k must"),
        (lambda: top_k_lift([1, 2], [1, 2], k=1.5), "k must"),
        (lambda: top_k_precision([1, 2], [1, 2], k=math.nan), "k must"),
        (lambda: decile_mape([1, 2], [1, 2], n_bins=0), "n_bins"),
        (lambda: decile_table([1, 2], [1, 2], n_bins=2.5), "n_bins"),  # type: ignore[arg-type]
        (lambda: decile_mape([1, 2, 3], [1, 2, 3]), "n_bins=10"),
        (lambda: calibration_error([0, 1], [0.1, 0.2], n_bins=True), "n_bins"),
        (lambda: regression_report(np.arange(10), np.arange(10), lower=np.arange(10)), "upper"),
    ],
    ids=[
        "churned not binary",
        "prob too short",
        "crossed interval",
        "NaN bound",
        "upper too short",
        "k zero",
        "k above one",
        "k NaN",
        "n_bins zero",
        "n_bins fractional",
        "fewer customers than bins",
        "n_bins boolean",
        "one bound only",
    ],
)
def test_other_bad_arguments_raise_naming_them(call: Callable[[], Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        call()


# ---------------------------------------------------------------------------------------------
# Import cost and plots
# ---------------------------------------------------------------------------------------------


def test_importing_metrics_and_plots_loads_no_heavy_library() -> None:
    code = (
        "import sys, clv.evaluation.metrics, clv.evaluation.plots\n"
        "print(sorted(m for m in ('matplotlib', 'sklearn', 'tensorflow') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def scored_customers() -> dict[str, npt.NDArray[np.float64]]:
    rng = np.random.default_rng(11)
    truth = rng.gamma(0.5, 120.0, size=300) * (rng.random(300) < 0.35)
    churned = (rng.random(300) < 0.3).astype(float)
    return {
        "truth": truth,
        "good": truth * rng.lognormal(0.0, 0.4, size=300) + 5.0,
        "weak": rng.permutation(truth) + 5.0,
        "churned": churned,
        "prob_good": np.clip(0.3 + 0.4 * (churned - 0.3) + rng.normal(0, 0.1, 300), 0, 1),
        "prob_flat": np.full(300, 0.3),
    }


def _assert_single_png(folder: Path, name: str) -> None:
    assert sorted(p.name for p in folder.iterdir()) == [name]  # no temporary file left behind
    content = (folder / name).read_bytes()
    assert content.startswith(PNG_MAGIC)
    assert len(content) > 1000


def test_lift_plot_writes_a_png(
    tmp_path: Path, scored_customers: dict[str, npt.NDArray[np.float64]]
) -> None:
    data = scored_customers
    path = lift_plot(
        data["truth"], {"good": data["good"], "weak": data["weak"]}, tmp_path / "lift.png"
    )
    assert path == tmp_path / "lift.png"
    _assert_single_png(tmp_path, "lift.png")


def test_calibration_plot_writes_a_png(
    tmp_path: Path, scored_customers: dict[str, npt.NDArray[np.float64]]
) -> None:
    data = scored_customers
    probs = {"good": data["prob_good"], "flat": data["prob_flat"]}
    path = calibration_plot(data["churned"], probs, tmp_path / "calibration.png", n_bins=5)
    assert path == tmp_path / "calibration.png"
    _assert_single_png(tmp_path, "calibration.png")


def test_decile_sum_plot_replaces_an_existing_file(
    tmp_path: Path, scored_customers: dict[str, npt.NDArray[np.float64]]
) -> None:
    target = tmp_path / "deciles.png"
    target.write_bytes(b"old")
    path = decile_sum_plot(scored_customers["truth"], scored_customers["good"], str(target))
    assert path == target
    _assert_single_png(tmp_path, "deciles.png")


def test_plots_reject_bad_input_and_write_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="preds is empty"):
        lift_plot([1.0, 2.0], {}, tmp_path / "a.png", n_bins=2)
    with pytest.raises(ValueError, match=r"preds\['nan'\].*y_pred"):
        lift_plot([1.0, 2.0], {"nan": [1.0, math.nan]}, tmp_path / "a.png", n_bins=2)
    with pytest.raises(ValueError, match=r"probs\['wide'\].*prob"):
        calibration_plot([0, 1], {"wide": [0.5, 2.0]}, tmp_path / "b.png")
    assert list(tmp_path.iterdir()) == []
