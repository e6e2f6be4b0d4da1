"""Metrics for customer-lifetime-value and churn predictions.

Every metric is a pure function of one-dimensional array-likes that are aligned by position (a
pandas ``Series`` index is ignored). Inputs are validated here, at the boundary: they must have the
same length, be non-empty and finite, and a ``ValueError`` names the argument at fault.

Ties in the predictions
-----------------------
Wherever a metric ranks customers by prediction (normalised Gini, decile tables, top-k), customers
with equal predictions form one unordered group and the metric returns its *expected value over all
orders of each tie group*. The result is deterministic and never depends on the row order of the
input, and a constant prediction scores exactly like a random ranking (Gini 0, lift 1). For the
rank-linear metrics this amounts to using mid-ranks, or to replacing the true values of a tie group
by their mean before ranking.

Zeros and refunds
-----------------
``y_true`` may contain zeros (most customers in a CLV window spend nothing) and negative values
(net refunds). Ranking metrics handle both (see each function); ratios to a total, such as
:func:`aggregate_error` or :func:`top_k_lift`, need the total to be non-zero (positive for lift)
and return ``nan`` with an :class:`UndefinedMetricWarning` otherwise.

References
----------
.. [1] Wang, X., Liu, T. and Miao, J. (2019). "A Deep Probabilistic Model for Customer Lifetime
   Value Prediction". arXiv:1912.07753 (normalised Gini, decile charts, decile MAPE).
.. [2] Kaggle, Porto Seguro's Safe Driver Prediction (2017), evaluation: normalised Gini.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]

#: A bin's true sum counts as zero when it is at most this share of ``sum(|y_true|)``.
ZERO_SUM_RELATIVE_TOLERANCE = 1e-12

__all__ = [
    "UndefinedMetricWarning",
    "aggregate_error",
    "brier_score",
    "calibration_error",
    "calibration_table",
    "churn_report",
    "decile_mape",
    "decile_table",
    "interval_coverage",
    "mae",
    "normalized_gini",
    "regression_report",
    "rmse",
    "roc_auc",
    "spearman",
    "top_k_lift",
    "top_k_precision",
]


class UndefinedMetricWarning(RuntimeWarning):
    """A metric (or part of it) is undefined for the given data; see the message."""


# --------------------------------------------------------------------------------------------
# Validation at the boundary
# --------------------------------------------------------------------------------------------


def _as_array(values: npt.ArrayLike, name: str, *, allow_infinite: bool = False) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numeric: {err}") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: need at least one customer")
    bad = np.isnan(array) if allow_infinite else ~np.isfinite(array)
    if bad.any():
        where = np.flatnonzero(bad)
        kind = "NaN" if allow_infinite else "non-finite (NaN or infinite)"
        raise ValueError(
            f"{name} has {where.size} {kind} value(s), the first at position {where[0]}"
        )
    return array


def _check_same_length(reference: FloatArray, reference_name: str, **others: FloatArray) -> None:
    for name, array in others.items():
        if array.size != reference.size:
            raise ValueError(
                f"{name} has {array.size} values but {reference_name} has {reference.size}: "
                "they must be aligned customer by customer"
            )


def _pair(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    truth = _as_array(y_true, "y_true")
    pred = _as_array(y_pred, "y_pred")
    _check_same_length(truth, "y_true", y_pred=pred)
    return truth, pred


def _as_binary(values: npt.ArrayLike, name: str) -> FloatArray:
    array = _as_array(values, name)
    bad = (array != 0.0) & (array != 1.0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} must hold only 0 and 1 (or booleans); position {first} is {array[first]!r}"
        )
    return array


def _as_probability(values: npt.ArrayLike, name: str) -> FloatArray:
    array = _as_array(values, name)
    bad = (array < 0.0) | (array > 1.0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} must hold probabilities in [0, 1]; position {first} is {array[first]!r}"
        )
    return array


def _binary_pair(
    y_true_binary: npt.ArrayLike, prob: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    truth = _as_binary(y_true_binary, "y_true_binary")
    probability = _as_probability(prob, "prob")
    _check_same_length(truth, "y_true_binary", prob=probability)
    return truth, probability


def _check_n_bins(n_bins: int) -> None:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")


def _top_count(n: int, k: float) -> int:
    """Number of customers in the top ``k`` fraction: ``k·n`` rounded half up, at least 1."""
    if not 0.0 < k <= 1.0:
        raise ValueError(f"k must be a fraction in (0, 1], got {k!r}")
    return max(1, math.floor(k * n + 0.5))


def _undefined(message: str) -> float:
    warnings.warn(message, UndefinedMetricWarning, stacklevel=3)
    return math.nan


# --------------------------------------------------------------------------------------------
# Ranking helpers (ties as unordered groups)
# --------------------------------------------------------------------------------------------


def _centred_midranks(values: FloatArray) -> FloatArray:
    """Ascending ranks (a tie gets the mean of the ranks it spans) minus their mean (n + 1) / 2."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last_rank = np.cumsum(counts)
    midrank = last_rank - (counts - 1) / 2.0
    return np.asarray(midrank[inverse] - (values.size + 1) / 2.0, dtype=np.float64)


def _tie_group_means(values: FloatArray, keys: FloatArray) -> FloatArray:
    """``values`` with each entry replaced by the mean over the entries sharing its key."""
    _, inverse = np.unique(keys, return_inverse=True)
    sums = np.bincount(inverse, weights=values)
    counts = np.bincount(inverse)
    return np.asarray((sums / counts)[inverse], dtype=np.float64)


def _predicted_top(
    pred: FloatArray, m: int
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], int]:
    """The predicted top ``m``: who is surely in, who is tied at the edge, places left for them."""
    edge = np.sort(pred)[pred.size - m]
    surely_in = pred > edge
    tied_at_edge = pred == edge
    places_left = m - int(surely_in.sum())
    return surely_in, tied_at_edge, places_left


# --------------------------------------------------------------------------------------------
# Ranking metrics
# --------------------------------------------------------------------------------------------


def normalized_gini(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Normalised Gini: Gini of ``y_true`` ordered by ``y_pred`` over Gini of its ideal order.

    Customers are sorted by decreasing prediction and the cumulative share of true value is
    traced (the gain or Lorenz curve); the Gini coefficient is twice the area between that curve
    and the diagonal. Dividing by the Gini of the ideal order (sorted by ``y_true`` itself) gives
    1 for a perfect ranking, about 0 for a random one, 0 exactly for a constant prediction and
    -1 for the reversed ranking.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        True values, e.g. spend in the prediction window. Zeros and negatives allowed.
    y_pred : array-like of shape (n,)
        Predicted values; only their order matters.

    Returns
    -------
    float
        In [-1, 1]; ``nan`` (with an :class:`UndefinedMetricWarning`) when ``y_true`` is
        constant, since then every order is ideal.

    Raises
    ------
    ValueError
        When an input is empty, non-finite or of another length.

    Notes
    -----
    *Area.* The area under the gain curve is taken with the trapezoid rule, as the Kaggle
    normalised Gini does (its ``sum(cumsum)/total - (n + 1)/2`` is the same quantity); the
    ZILN reference code uses ``2·mean(cumulative share) - 1`` instead, which differs by an
    :math:`O(1/n)` term that does not cancel in the ratio, so that a constant prediction would
    not score exactly 0 there.

    *Ties in* ``y_pred`` are averaged over all orders of each tie group. Because the trapezoid
    Gini is linear in the cumulative sums, this is exact and closed-form: it equals the Gini
    obtained after replacing the true values of each tie group by their mean; equivalently, with
    mid-ranks :math:`r`, the metric is

    .. math:: \\frac{\\sum_i y_i\\,(r^{pred}_i - \\bar r)}{\\sum_i y_i\\,(r^{true}_i - \\bar r)},

    the ratio of the covariance of the truth with the predicted ranks to its covariance with its
    own ranks.

    *Zeros and negative values.* This form needs no division by the total, so it stays defined
    when refunds make the total zero or negative, and it is unchanged by adding a constant to
    ``y_true`` (and by any positive scaling). For a positive total it equals the Lorenz-curve
    definition exactly. Zeros are simply low values; ties among them in ``y_true`` do not matter.
    """
    truth, pred = _pair(y_true, y_pred)
    if np.ptp(truth) == 0.0:
        return _undefined("normalized_gini: y_true is constant, so every ranking is ideal")
    # Centring the truth changes nothing (the rank weights sum to zero) but limits cancellation.
    centred = truth - truth.mean()
    by_prediction = float(np.dot(centred, _centred_midranks(pred)))
    ideal = float(np.dot(centred, _centred_midranks(truth)))
    return by_prediction / ideal + 0.0  # + 0.0 turns -0.0 into 0.0


def spearman(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Spearman rank correlation between truth and prediction (``scipy.stats.spearmanr``).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        True and predicted values.

    Returns
    -------
    float
        In [-1, 1]. When either input is constant (including a single customer) the correlation
        is undefined and **0.0** is returned: a constant prediction carries no ranking
        information, and a report should not be poisoned by ``nan``.

    Raises
    ------
    ValueError
        When an input is empty, non-finite or of another length.
    """
    truth, pred = _pair(y_true, y_pred)
    if np.ptp(truth) == 0.0 or np.ptp(pred) == 0.0:
        return 0.0
    from scipy.stats import spearmanr  # lazily: keeps importing this module cheap

    return float(spearmanr(truth, pred).statistic)


def top_k_precision(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, k: float = 0.2) -> float:
    """Share of the predicted top-``k`` customers who belong to the true top ``k``.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        True and predicted values.
    k : float, default 0.2
        Fraction in (0, 1]. Both top groups hold :math:`m` customers, :math:`k·n` rounded half up
        (at least 1).

    Returns
    -------
    float
        In [0, 1]; 1 for a perfect ranking.

    Raises
    ------
    ValueError
        When an input is empty, non-finite or of another length, or ``k`` is outside (0, 1].

    Notes
    -----
    Ties are resolved by two rules, so that the result never depends on row order.

    *Ties in the prediction* at the edge of the predicted top :math:`m`: the places left are
    filled at random among the tied customers and the expected precision is returned (computed
    exactly with the hypergeometric distribution). A constant prediction thus scores like a
    random pick.

    *Ties in the truth* at the edge of the true top :math:`m` (for example when fewer than
    :math:`m` customers spent anything, so the true top group ends among the zeros): the truth
    cannot tell these customers apart, so any of them may fill the places left. A predicted
    customer tied with the :math:`m`-th best true value counts as a hit, up to the number of true
    places left at that value. Equivalently, the true top :math:`m` is ranked by ``y_true`` with
    ties broken in favour of the ranking being scored. This keeps a perfect prediction at exactly 1;
    the price is that, when many customers tie at the edge, a random ranking scores above
    :math:`k`.
    """
    truth, pred = _pair(y_true, y_pred)
    m = _top_count(truth.size, k)
    surely_in, tied, places_left = _predicted_top(pred, m)

    true_edge = np.sort(truth)[truth.size - m]
    above = truth > true_edge
    at_edge = truth == true_edge
    true_places_left = m - int(above.sum())

    hits = float(np.count_nonzero(surely_in & above))
    n_tied = int(tied.sum())
    hits += places_left * np.count_nonzero(tied & above) / n_tied
    # Customers at the true edge count up to `true_places_left`; those already in for sure plus
    # a hypergeometric number drawn among the tied predictions.
    sure_at_edge = int(np.count_nonzero(surely_in & at_edge))
    tied_at_edge = int(np.count_nonzero(tied & at_edge))
    if tied_at_edge == 0 or places_left == n_tied:  # no randomness: none or all of them drawn
        drawn = np.array([tied_at_edge if places_left == n_tied else 0])
        weights = np.ones(1)
    else:
        from scipy.stats import hypergeom  # lazily: keeps importing this module cheap

        drawn = np.arange(min(tied_at_edge, places_left) + 1)
        weights = hypergeom.pmf(drawn, n_tied, tied_at_edge, places_left)
    hits += float(np.dot(weights, np.minimum(sure_at_edge + drawn, true_places_left)))
    return float(np.clip(hits / m, 0.0, 1.0))


def top_k_lift(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, k: float = 0.2) -> float:
    """Share of the total true value held by the predicted top ``k``, divided by ``k``.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        True and predicted values.
    k : float, default 0.2
        Fraction in (0, 1]; the top group holds :math:`m = k·n` customers rounded half up
        (at least 1), and the share is divided by the realised fraction :math:`m/n`, so that a
        random or constant prediction has a lift of 1.

    Returns
    -------
    float
        1 for a random ranking, up to :math:`n/m` for a perfect one when the value is
        concentrated; ``nan`` (with an :class:`UndefinedMetricWarning`) when the true total is
        not positive, since "share of the total" then has no meaning.

    Raises
    ------
    ValueError
        When an input is empty, non-finite or of another length, or ``k`` is outside (0, 1].

    Notes
    -----
    Customers tied in prediction at the edge of the top group contribute the mean true value of
    their tie group for each place left (the expectation over tie orders).
    """
    truth, pred = _pair(y_true, y_pred)
    m = _top_count(truth.size, k)
    total = float(truth.sum())
    if total <= 0.0:
        return _undefined(f"top_k_lift: the true total is {total:g}, not positive")
    surely_in, tied, places_left = _predicted_top(pred, m)
    captured = float(truth[surely_in].sum()) + places_left * float(truth[tied].mean())
    return (captured / total) / (m / truth.size)


# --------------------------------------------------------------------------------------------
# Decile (quantile-bin) metrics
# --------------------------------------------------------------------------------------------


def _bin_sums(
    truth: FloatArray, pred: FloatArray, n_bins: int
) -> tuple[npt.NDArray[np.int64], FloatArray, FloatArray]:
    """Count, sum of predictions and (tie-averaged) sum of truth per equal-count predicted bin."""
    _check_n_bins(n_bins)
    n = truth.size
    if n < n_bins:
        raise ValueError(
            f"n_bins={n_bins} is more than the {n} customers given: every bin needs one at least"
        )
    order = np.argsort(pred, kind="stable")
    # Position i of the ascending order goes to bin floor(i·n_bins/n): sizes differ by at most 1.
    bins = (np.arange(n) * n_bins) // n
    fair_truth = _tie_group_means(truth, pred)[order]
    counts = np.bincount(bins, minlength=n_bins).astype(np.int64)
    sum_pred = np.bincount(bins, weights=pred[order], minlength=n_bins).astype(np.float64)
    sum_true = np.bincount(bins, weights=fair_truth, minlength=n_bins).astype(np.float64)
    return counts, sum_pred, sum_true


def decile_table(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, n_bins: int = 10) -> pd.DataFrame:
    """Per bin of predicted value (deciles by default): counts, means, sums, share and lift.

    Customers are sorted by increasing prediction and cut into ``n_bins`` bins of equal count
    (sizes differ by at most one when ``n`` is not a multiple of ``n_bins``). Bin 1 holds the
    lowest predictions and bin ``n_bins`` the highest, as in the decile charts of the ZILN paper.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        True and predicted values.
    n_bins : int, default 10
        Number of bins; at most ``n``.

    Returns
    -------
    DataFrame
        Indexed by ``bin`` (1..n_bins), with columns ``n``, ``mean_pred``, ``mean_true``,
        ``sum_pred``, ``sum_true``, ``share_of_true_total`` (bin's share of the true total) and
        ``lift`` (bin's mean true value over the overall mean). The last two are ``nan`` when the
        true total is not positive.

    Raises
    ------
    ValueError
        When an input is empty, non-finite or of another length, or ``n_bins`` is not a positive
        integer no larger than ``n``.

    Notes
    -----
    Customers tied in prediction across a bin edge are split by position, but their true values
    are replaced by the mean of their tie group, which is the expected bin total over all orders
    of the tie. So a model that predicts the same value for 60% of customers shows the same
    mean true value in each of the bins those customers fill, whatever the row order.
    """
    truth, pred = _pair(y_true, y_pred)
    counts, sum_pred, sum_true = _bin_sums(truth, pred, n_bins)
    total = float(truth.sum())
    overall_mean = total / truth.size
    positive = total > 0.0
    table = pd.DataFrame(
        {
            "n": counts,
            "mean_pred": sum_pred / counts,
            "mean_true": sum_true / counts,
            "sum_pred": sum_pred,
            "sum_true": sum_true,
            "share_of_true_total": sum_true / total if positive else np.nan,
            "lift": (sum_true / counts) / overall_mean if positive else np.nan,
        },
        index=pd.RangeIndex(1, n_bins + 1, name="bin"),
    )
    return table


def decile_mape(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, n_bins: int = 10) -> float:
    """Mean absolute percentage error of the per-decile totals, over bins of predicted value.

    For each bin of :func:`decile_table`, the error is
    :math:`|\\sum pred - \\sum true| / |\\sum true|`; the metric is their mean over bins. With
    equal-count bins this is the ZILN paper's decile MAPE (which compares bin means).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        True and predicted values.
    n_bins : int, default 10
        Number of equal-count bins; at most ``n``.

    Returns
    -------
    float
        0 for perfect predictions; unchanged when truth and predictions are scaled by the same
        positive factor. ``nan`` when every bin is skipped (see Notes).

    Raises
    ------
    ValueError
        When an input is empty, non-finite or of another length, or ``n_bins`` is invalid.

    Warns
    -----
    UndefinedMetricWarning
        When bins are skipped because their true sum is zero.

    Notes
    -----
    *Bins whose true sum is zero* (common in the lowest deciles, where nobody spends) have no
    percentage error: they are **skipped, with a warning** naming them, and the mean is over the
    other bins. A denominator floor was rejected because any floor sets a scale, which breaks
    scale invariance and lets one bin dominate the mean. The error of skipped bins stays visible
    in :func:`decile_table` and in :func:`aggregate_error`. "Zero" means at most
    ``ZERO_SUM_RELATIVE_TOLERANCE`` times ``sum(|y_true|)``, so that rounding in tie-group means
    does not make a huge error out of a sum that is zero in exact arithmetic.

    Negative bin sums (refunds) use their absolute value as denominator.
    """
    truth, pred = _pair(y_true, y_pred)
    _, sum_pred, sum_true = _bin_sums(truth, pred, n_bins)
    denominator = np.abs(sum_true)
    zero = denominator <= ZERO_SUM_RELATIVE_TOLERANCE * float(np.abs(truth).sum())
    if zero.all():
        return _undefined(f"decile_mape: the true sum is zero in all {n_bins} bins")
    if zero.any():
        skipped = (np.flatnonzero(zero) + 1).tolist()
        warnings.warn(
            f"decile_mape: skipped {len(skipped)} of {n_bins} bins whose true sum is zero "
            f"(bins {skipped}, 1 = lowest predictions)",
            UndefinedMetricWarning,
            stacklevel=2,
        )
    errors = np.abs(sum_pred[~zero] - sum_true[~zero]) / denominator[~zero]
    return float(errors.mean())


# --------------------------------------------------------------------------------------------
# Point-error metrics
# --------------------------------------------------------------------------------------------


def aggregate_error(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Relative error of the predicted total: ``(sum(y_pred) - sum(y_true)) / |sum(y_true)|``.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        True and predicted values.

    Returns
    -------
    float
        Signed: positive when the total is over-predicted, negative when under-predicted (the
        denominator is the absolute true total, so the sign keeps this meaning even when refunds
        make the total negative); callers take ``abs`` for a loss. ``nan`` (with an
        :class:`UndefinedMetricWarning`) when the true total is zero.

    Raises
    ------
    ValueError
        When an input is empty, non-finite or of another length.
    """
    truth, pred = _pair(y_true, y_pred)
    total_true = float(truth.sum())
    if total_true == 0.0:
        return _undefined("aggregate_error: the true total is zero")
    return (float(pred.sum()) - total_true) / abs(total_true)


def mae(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Mean absolute error.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        True and predicted values.

    Returns
    -------
    float
        ``mean(|y_pred - y_true|)``, in the unit of the values.

    Raises
    ------
    ValueError
        When an input is empty, non-finite or of another length.
    """
    truth, pred = _pair(y_true, y_pred)
    return float(np.mean(np.abs(pred - truth)))


def rmse(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Root mean squared error.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        True and predicted values.

    Returns
    -------
    float
        ``sqrt(mean((y_pred - y_true)**2))``, in the unit of the values.

    Raises
    ------
    ValueError
        When an input is empty, non-finite or of another length.
    """
    truth, pred = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean(np.square(pred - truth))))


def interval_coverage(y_true: npt.ArrayLike, lower: npt.ArrayLike, upper: npt.ArrayLike) -> float:
    """Share of customers whose true value lies in their interval, bounds included.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        True values.
    lower, upper : array-like of shape (n,)
        Interval bounds per customer, ``lower <= upper``. Infinite bounds are allowed (one-sided
        intervals); NaN is not.

    Returns
    -------
    float
        In [0, 1]: the share with ``lower <= y_true <= upper``.

    Raises
    ------
    ValueError
        When an input is empty, NaN (or, for ``y_true``, infinite) or of another length, or when
        ``lower > upper`` for some customer.
    """
    truth = _as_array(y_true, "y_true")
    low = _as_array(lower, "lower", allow_infinite=True)
    high = _as_array(upper, "upper", allow_infinite=True)
    _check_same_length(truth, "y_true", lower=low, upper=high)
    crossed = low > high
    if crossed.any():
        first = int(np.flatnonzero(crossed)[0])
        raise ValueError(
            f"lower exceeds upper for {int(crossed.sum())} customer(s), the first at position "
            f"{first} ({low[first]!r} > {high[first]!r})"
        )
    return float(np.mean((low <= truth) & (truth <= high)))


# --------------------------------------------------------------------------------------------
# Probability (churn) metrics
# --------------------------------------------------------------------------------------------


def calibration_table(
    y_true_binary: npt.ArrayLike, prob: npt.ArrayLike, n_bins: int = 10
) -> pd.DataFrame:
    """Observed event rate against mean predicted probability, in equal-width probability bins.

    Parameters
    ----------
    y_true_binary : array-like of shape (n,)
        Outcomes, 0 or 1 (or booleans).
    prob : array-like of shape (n,)
        Predicted probabilities of outcome 1, in [0, 1].
    n_bins : int, default 10
        Number of bins of width ``1 / n_bins`` on [0, 1]; the last bin includes 1.

    Returns
    -------
    DataFrame
        Indexed by ``bin`` (1..n_bins), with columns ``lower`` and ``upper`` (bin edges), ``n``,
        ``mean_prob`` and ``observed_rate`` (both ``nan`` in an empty bin).

    Raises
    ------
    ValueError
        When an input is empty, non-finite, of another length, not binary (``y_true_binary``)
        or outside [0, 1] (``prob``), or ``n_bins`` is not a positive integer.
    """
    truth, probability = _binary_pair(y_true_binary, prob)
    _check_n_bins(n_bins)
    bins = np.minimum((probability * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prob = np.bincount(bins, weights=probability, minlength=n_bins) / counts
        observed = np.bincount(bins, weights=truth, minlength=n_bins) / counts
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame(
        {
            "lower": edges[:-1],
            "upper": edges[1:],
            "n": counts.astype(np.int64),
            "mean_prob": mean_prob,
            "observed_rate": observed,
        },
        index=pd.RangeIndex(1, n_bins + 1, name="bin"),
    )


def calibration_error(y_true_binary: npt.ArrayLike, prob: npt.ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error (ECE) over equal-width probability bins.

    Parameters
    ----------
    y_true_binary : array-like of shape (n,)
        Outcomes, 0 or 1 (or booleans).
    prob : array-like of shape (n,)
        Predicted probabilities of outcome 1, in [0, 1].
    n_bins : int, default 10
        Number of equal-width bins on [0, 1] (see :func:`calibration_table`).

    Returns
    -------
    float
        :math:`\\sum_b (n_b / n)\\,|\\text{observed}_b - \\overline{prob}_b|` over non-empty bins;
        0 for perfect calibration, at most 1.

    Raises
    ------
    ValueError
        As :func:`calibration_table`.
    """
    table = calibration_table(y_true_binary, prob, n_bins)
    filled = table[table["n"] > 0]
    gaps = (filled["observed_rate"] - filled["mean_prob"]).abs()
    return float((gaps * filled["n"]).sum() / filled["n"].sum())


def brier_score(y_true_binary: npt.ArrayLike, prob: npt.ArrayLike) -> float:
    """Brier score: mean squared difference between probability and outcome.

    Parameters
    ----------
    y_true_binary : array-like of shape (n,)
        Outcomes, 0 or 1 (or booleans).
    prob : array-like of shape (n,)
        Predicted probabilities of outcome 1, in [0, 1].

    Returns
    -------
    float
        In [0, 1]; lower is better.

    Raises
    ------
    ValueError
        As :func:`calibration_table`.
    """
    truth, probability = _binary_pair(y_true_binary, prob)
    return float(np.mean(np.square(probability - truth)))


def roc_auc(y_true_binary: npt.ArrayLike, prob: npt.ArrayLike) -> float:
    """Area under the ROC curve (``sklearn.metrics.roc_auc_score``, imported lazily).

    Parameters
    ----------
    y_true_binary : array-like of shape (n,)
        Outcomes, 0 or 1 (or booleans).
    prob : array-like of shape (n,)
        Scores for outcome 1 (probabilities), in [0, 1].

    Returns
    -------
    float
        In [0, 1]; 0.5 for a random or constant score (ties count one half). ``nan`` (with an
        :class:`UndefinedMetricWarning`) when only one outcome occurs.

    Raises
    ------
    ValueError
        As :func:`calibration_table`.
    """
    truth, probability = _binary_pair(y_true_binary, prob)
    if np.ptp(truth) == 0.0:
        return _undefined(f"roc_auc: only outcome {int(truth[0])} occurs in y_true_binary")
    from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

    return float(roc_auc_score(truth, probability))


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


def regression_report(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    lower: npt.ArrayLike | None = None,
    upper: npt.ArrayLike | None = None,
) -> dict[str, float]:
    """All CLV regression metrics in one dictionary with stable keys.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        True and predicted values; at least 10 customers (for the deciles).
    lower, upper : array-like of shape (n,), optional
        Prediction-interval bounds; give both or neither.

    Returns
    -------
    dict of str to float
        Keys, in this order: ``normalized_gini``, ``decile_mape``, ``aggregate_error``,
        ``abs_aggregate_error``, ``spearman``, ``top20_precision``, ``top20_lift``, ``mae``,
        ``rmse``, and ``interval_coverage`` when bounds are given. Undefined values are ``nan``
        (see each metric).

    Raises
    ------
    ValueError
        When an input is invalid (see each metric), or only one of ``lower``/``upper`` is given.
    """
    if (lower is None) != (upper is None):
        missing = "upper" if upper is None else "lower"
        raise ValueError(f"{missing} is missing: give both interval bounds or neither")
    truth, pred = _pair(y_true, y_pred)
    aggregate = aggregate_error(truth, pred)
    report = {
        "normalized_gini": normalized_gini(truth, pred),
        "decile_mape": decile_mape(truth, pred),
        "aggregate_error": aggregate,
        "abs_aggregate_error": abs(aggregate),
        "spearman": spearman(truth, pred),
        "top20_precision": top_k_precision(truth, pred, k=0.2),
        "top20_lift": top_k_lift(truth, pred, k=0.2),
        "mae": mae(truth, pred),
        "rmse": rmse(truth, pred),
    }
    if lower is not None and upper is not None:
        report["interval_coverage"] = interval_coverage(truth, lower, upper)
    return report


def churn_report(churned: npt.ArrayLike, prob: npt.ArrayLike) -> dict[str, float]:
    """Churn-classifier metrics in one dictionary with stable keys.

    Parameters
    ----------
    churned : array-like of shape (n,)
        1 (or True) for customers who churned, else 0.
    prob : array-like of shape (n,)
        Predicted churn probabilities, in [0, 1].

    Returns
    -------
    dict of str to float
        ``auc`` (:func:`roc_auc`), ``brier`` (:func:`brier_score`), ``calibration_error``
        (:func:`calibration_error`, 10 bins) and ``base_rate`` (share who churned).

    Raises
    ------
    ValueError
        When an input is invalid; messages name ``churned`` or ``prob``.
    """
    truth = _as_binary(churned, "churned")
    probability = _as_probability(prob, "prob")
    _check_same_length(truth, "churned", prob=probability)
    return {
        "auc": roc_auc(truth, probability),
        "brier": brier_score(truth, probability),
        "calibration_error": calibration_error(truth, probability),
        "base_rate": float(truth.mean()),
    }


def metrics_table(
    metrics: Mapping[str, Mapping[str, float]], columns: Sequence[str], order: Sequence[str]
) -> list[str]:
    """Markdown table lines: one row per model in ``order``, plus interval coverage if known."""
    lines = [
        "| model | " + " | ".join(columns) + " | interval_coverage |",
        "|---|" + "---:|" * (len(columns) + 1),
    ]
    for name in order:
        m = metrics[name]
        cells = [f"{m[c]:.4f}" for c in columns]
        coverage = m.get("interval_coverage")
        cells.append("" if coverage is None else f"{coverage:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines
