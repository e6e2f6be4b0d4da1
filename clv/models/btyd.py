"""BG/NBD and Gamma-Gamma models fitted by maximum likelihood ("buy 'til you die", BTYD).

The conventions are those of ``lifetimes`` and of the papers it implements:

- ``frequency`` (:math:`x`) is the number of *repeat* purchases;
- ``recency`` (:math:`t_x`) is the customer's age at the last repeat purchase (0 if there is none);
- ``T`` is the customer's age at the end of the calibration period;
- ``monetary_value`` (:math:`\\bar m`) is the mean value of the repeat purchases;

all ages in one time unit of the caller's choice, in which the fitted ``alpha`` is then expressed.

Every function is vectorised over customers (no Python loop per customer), works in log space
(``gammaln``, ``betaln``, ``logaddexp``) so that large frequencies cannot overflow, and validates
its inputs once, naming the offending argument and position.

References
----------
.. [1] Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). "Counting your customers the easy way:
   an alternative to the Pareto/NBD model". *Marketing Science* 24(2), 275-284.
.. [2] Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). "RFM and CLV: using iso-value curves
   for customer base analysis". *Journal of Marketing Research* 42(4), 415-430.
.. [3] Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2008). "Computing P(alive) using the BG/NBD
   model". http://brucehardie.com/notes/021/
.. [4] Fader, P. S. and Hardie, B. G. S. (2013). "The Gamma-Gamma model of monetary value".
   http://brucehardie.com/notes/025/
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import OptimizeResult, minimize
from scipy.special import betaln, expit, gammaln, hyp2f1, psi

__all__ = [
    "BGNBDParams",
    "GammaGammaParams",
    "bgnbd_expected_purchases",
    "bgnbd_expected_purchases_new",
    "bgnbd_log_likelihood",
    "bgnbd_probability_alive",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "gamma_gamma_expected_spend",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
_Objective = Callable[[FloatArray], tuple[float, FloatArray]]

# Optimisation runs on log-parameters; these bounds (e^-25 .. e^25) only keep exp() finite during
# line searches. A fit that ends on one of them is degenerate (e.g. every customer has the same
# dropout probability, a and b -> infinity) and is reported with a warning.
_LOG_PARAM_BOUND = 25.0
# On the mean log-likelihood per customer, in log-parameters: far below sampling error.
_GRADIENT_TOLERANCE = 1e-7
# See _scaled_hyp_term: how close to an integer r - a must be to avoid SciPy's hyp2f1 there, and
# the step in r used instead.
_NEAR_INTEGER = 1e-7
_R_STEP = 1e-6
# See _explain_bgnbd: a mean dropout probability below this, with a and b both above the scale,
# is the no-dropout ridge of the BG/NBD likelihood.
_NO_DROPOUT = 1e-3
_NO_DROPOUT_SCALE = 1e2
# See _expected_purchases_if_alive: the step in a used near the closed form's removable
# singularities.
_A_STEP = 1e-5


@dataclass(frozen=True)
class BGNBDParams:
    """Parameters of the BG/NBD model.

    Attributes
    ----------
    r, alpha : float
        Shape and rate of the gamma distribution of purchase rates :math:`\\lambda`; ``alpha`` is in
        the caller's time unit (the mean rate is ``r / alpha`` purchases per unit).
    a, b : float
        Shapes of the beta distribution of the dropout probability :math:`p` after each purchase.
    """

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        _check_params(self)


@dataclass(frozen=True)
class GammaGammaParams:
    """Parameters of the Gamma-Gamma model of spend per transaction.

    Attributes
    ----------
    p : float
        Shape of the gamma distribution of one customer's transaction values (whose rate is the
        customer's :math:`\\nu`, so that their mean is ``p / nu``).
    q, v : float
        Shape and rate of the gamma distribution of the customers' scale parameter :math:`\\nu`;
        ``v`` is in the caller's currency unit. The population mean spend per transaction is
        ``p * v / (q - 1)`` (infinite when ``q <= 1``).
    """

    p: float
    q: float
    v: float

    def __post_init__(self) -> None:
        _check_params(self)


def _check_params(params: BGNBDParams | GammaGammaParams) -> None:
    for field in fields(params):
        value = getattr(params, field.name)
        if not (isinstance(value, int | float | np.floating | np.integer) and np.isfinite(value)):
            raise ValueError(
                f"{type(params).__name__}.{field.name} must be a finite number, got {value!r}"
            )
        if value <= 0:
            raise ValueError(f"{type(params).__name__}.{field.name} must be > 0, got {value!r}")


# --------------------------------------------------------------------------------------------------
# Validation at the boundary
# --------------------------------------------------------------------------------------------------


def _position(values: object, i: int) -> str:
    """Describe position ``i`` of ``values`` for a person: the index label too, for pandas."""
    index = getattr(values, "index", None)
    if index is not None and not callable(index):
        try:
            label = index[i]
        except (IndexError, KeyError, TypeError):
            return f"position {i}"
        if label != i:
            return f"position {i} (index label {label!r})"
    return f"position {i}"


def _as_float_vector(name: str, values: npt.ArrayLike) -> FloatArray:
    """Convert ``values`` to a finite 1-D float array, or raise ``ValueError`` naming ``name``."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must contain only numbers: {error}") from error
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    _raise_first(name, values, array, ~np.isfinite(array), "is not finite")
    return array


def _raise_first(
    name: str, original: object, array: FloatArray, bad: npt.NDArray[np.bool_], problem: str
) -> None:
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        count = int(bad.sum())
        more = f" ({count - 1} more like it)" if count > 1 else ""
        raise ValueError(f"{name} at {_position(original, i)} = {array[i]!r} {problem}{more}")


def _check_same_length(reference: tuple[str, FloatArray], *others: tuple[str, FloatArray]) -> None:
    ref_name, ref = reference
    for name, array in others:
        if array.shape != ref.shape:
            raise ValueError(
                f"{name} has {array.size} values but {ref_name} has {ref.size}; "
                "they must describe the same customers"
            )


def _validate_frequency(frequency: npt.ArrayLike) -> FloatArray:
    x = _as_float_vector("frequency", frequency)
    _raise_first("frequency", frequency, x, x < 0, "is negative; it counts repeat purchases")
    _raise_first(
        "frequency", frequency, x, x != np.round(x), "is not a whole number of repeat purchases"
    )
    return x


def _validate_rfm(
    frequency: npt.ArrayLike, recency: npt.ArrayLike, age_at_end: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    x = _validate_frequency(frequency)
    t_x = _as_float_vector("recency", recency)
    age = _as_float_vector("T", age_at_end)
    _check_same_length(("frequency", x), ("recency", t_x), ("T", age))
    _raise_first("recency", recency, t_x, t_x < 0, "is negative")
    _raise_first("recency", recency, t_x, t_x > age, "is larger than T (the customer's age)")
    _raise_first(
        "recency",
        recency,
        t_x,
        (x == 0) & (t_x != 0),
        "is not 0 although frequency is 0 (no repeat purchase, so recency must be 0)",
    )
    return x, t_x, age


def _validate_weights(weights: npt.ArrayLike | None, n: int) -> FloatArray:
    if weights is None:
        return np.ones(n)
    w = _as_float_vector("weights", weights)
    if w.size != n:
        raise ValueError(f"weights has {w.size} values but frequency has {n}")
    _raise_first("weights", weights, w, w < 0, "is negative; weights count identical customers")
    if w.sum() <= 0:
        raise ValueError("weights sum to 0: there is no customer to fit")
    return w


def _validate_horizon(t: npt.ArrayLike, n: int) -> FloatArray:
    horizon = _as_float_vector("t", t)
    if horizon.size not in (1, n):
        raise ValueError(
            f"t must be a scalar or have one value per customer ({n}), got {horizon.size} values"
        )
    _raise_first("t", t, horizon, horizon < 0, "is negative; it is a length of time")
    return horizon


def _validate_penalizer(penalizer: float) -> float:
    try:
        value = float(penalizer)
    except (TypeError, ValueError):
        value = np.nan
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"penalizer must be a finite number >= 0, got {penalizer!r}")
    return value


# --------------------------------------------------------------------------------------------------
# Optimisation
# --------------------------------------------------------------------------------------------------


@functools.cache
def _blas_controller() -> Any:
    """threadpoolctl's controller (installed with scikit-learn), built on first use, or ``None``.

    Building it inspects the loaded libraries (~1 ms), so it is done once, not per fit.
    """
    try:
        threadpoolctl = importlib.import_module("threadpoolctl")
    except ImportError:  # pragma: no cover - the library then just runs slower
        return None
    return threadpoolctl.ThreadpoolController()


def _single_threaded_blas() -> contextlib.AbstractContextManager[object]:
    """Limit BLAS to one thread for the duration of a fit.

    L-BFGS-B makes many tiny BLAS calls; OpenBLAS hands them to its thread pool and waking it
    dominated the fit (2-10x slower on a busy 2-core machine). The limit is process-wide while the
    fit runs (about as long as a few likelihood evaluations) and is restored afterwards.
    """
    controller = _blas_controller()
    if controller is None:  # pragma: no cover
        return contextlib.nullcontext()
    limit: contextlib.AbstractContextManager[object] = controller.limit(limits=1, user_api="blas")
    return limit


def _minimize(
    objective: _Objective,
    x0: FloatArray,
    model: str,
    explain: Callable[[FloatArray], str] | None = None,
) -> FloatArray:
    """Minimise ``objective`` (value and gradient) with L-BFGS-B, falling back to Nelder-Mead.

    ``explain`` turns the best log-parameters into a sentence for the warning when the fit does
    not converge (empty when it has nothing to say).
    """
    bounds = [(-_LOG_PARAM_BOUND, _LOG_PARAM_BOUND)] * x0.size
    with np.errstate(all="ignore"), _single_threaded_blas():
        result: OptimizeResult = minimize(
            objective,
            x0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 2_000, "ftol": 1e-12, "gtol": 1e-8},
        )
        best_x = np.asarray(result.x, dtype=np.float64)
        best_f = float(result.fun)
        # L-BFGS-B also stops when a line search can no longer improve the objective within
        # floating-point precision; that is convergence if the gradient is already small.
        converged = np.isfinite(best_f) and (
            bool(result.success) or float(np.max(np.abs(result.jac))) <= _GRADIENT_TOLERANCE
        )
        if not converged:
            # Otherwise (a flat or badly scaled surface), a derivative-free polish from its best
            # point, or from the start if that is better, settles it.
            start = best_x if np.isfinite(best_f) and best_f <= objective(x0)[0] else x0
            fallback: OptimizeResult = minimize(
                lambda z: objective(z)[0],
                start,
                method="Nelder-Mead",
                bounds=bounds,
                options={"maxfev": 4_000, "xatol": 1e-8, "fatol": 1e-12},
            )
            if np.isfinite(fallback.fun) and (not np.isfinite(best_f) or fallback.fun <= best_f):
                best_x = np.asarray(fallback.x, dtype=np.float64)
                best_f = float(fallback.fun)
            converged = bool(fallback.success) and np.isfinite(best_f)
    if not np.isfinite(best_f):
        raise RuntimeError(f"{model} fit failed: the log-likelihood is not finite anywhere tried")
    if not converged:
        reason = explain(best_x) if explain is not None else ""
        warnings.warn(
            f"{model} fit did not converge ({result.message}); returning the best point found"
            + (f". {reason}" if reason else ""),
            RuntimeWarning,
            stacklevel=3,
        )
    if np.any(np.abs(best_x) >= _LOG_PARAM_BOUND - 1e-6):
        warnings.warn(
            f"{model} fit ended at a parameter bound (log-parameters {np.round(best_x, 3)}): "
            "the data do not identify the model well",
            RuntimeWarning,
            stacklevel=3,
        )
    return best_x


def _compress(columns: tuple[FloatArray, ...], weights: FloatArray) -> tuple[FloatArray, ...]:
    """Merge identical rows, summing their weights, and drop rows of weight 0.

    A dataset and its compressed form (distinct rows with counts as weights) thus reach the
    optimiser as the same arrays.
    """
    keep = weights > 0
    kept = [column[keep] for column in columns]
    order = np.lexsort(kept[::-1])
    ordered = [column[order] for column in kept]
    starts_group = np.zeros(order.size, dtype=bool)
    starts_group[0] = True
    for column in ordered:
        starts_group[1:] |= column[1:] != column[:-1]
    starts = np.flatnonzero(starts_group)
    counts: FloatArray = np.add.reduceat(weights[keep][order], starts)
    return (*(column[starts] for column in ordered), counts)


def _wsum(weights: FloatArray, values: FloatArray | float) -> float:
    """Weighted sum, deliberately without BLAS.

    ``weights @ values`` calls OpenBLAS, which spreads vectors longer than ~10,000 over threads;
    waking them on every likelihood evaluation made fits several times slower on a busy 2-core
    machine.
    """
    return float(np.sum(weights * values))


@dataclass(frozen=True)
class _FrequencyLevels:
    """Distinct frequencies, so that special functions of ``x`` run once per level, not per row.

    Attributes
    ----------
    values : ndarray
        The distinct frequencies, sorted.
    row_level : ndarray of int
        For each row, the position of its frequency in ``values``.
    weight : ndarray
        Total weight of the rows at each level.
    """

    values: FloatArray
    row_level: IntArray
    weight: FloatArray

    @classmethod
    def of(cls, x: FloatArray, weights: FloatArray) -> _FrequencyLevels:
        values, row_level = np.unique(x, return_inverse=True)
        weight = np.bincount(row_level, weights=weights, minlength=values.size)
        return cls(values, row_level.astype(np.intp), weight.astype(np.float64, copy=False))


# --------------------------------------------------------------------------------------------------
# BG/NBD
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _BGNBDTerms:
    """Pieces of the BG/NBD log-likelihood (eq. 6 of [1]_) shared by its value and gradient."""

    level_ll: FloatArray  # the part that depends on x only, per frequency level
    mix_ll: FloatArray  # log[(alpha+T)^-(r+x) + 1{x>0} a/(b+x-1) (alpha+t_x)^-(r+x)], per row
    w_dead: FloatArray  # posterior weight of "dropped out after the last purchase", per row
    log_alpha_age: FloatArray  # log(alpha + T), per row
    log_alpha_tx: FloatArray  # log(alpha + t_x), per row

    def per_customer(self, levels: _FrequencyLevels) -> FloatArray:
        return self.level_ll[levels.row_level] + self.mix_ll


def _bgnbd_terms(
    r: float,
    alpha: float,
    a: float,
    b: float,
    x: FloatArray,
    t_x: FloatArray,
    age: FloatArray,
    levels: _FrequencyLevels,
) -> _BGNBDTerms:
    level_x = levels.values
    level_ll = (
        gammaln(r + level_x)
        - gammaln(r)
        + r * np.log(alpha)
        + betaln(a, b + level_x)
        - betaln(a, b)
    )
    # log(a / (b + x - 1)) where x > 0; the x == 0 rows never use it (their dead term is -inf).
    level_log_odds = np.log(a) - np.log(b + np.maximum(level_x, 1.0) - 1.0)
    log_alpha_age = np.log(alpha + age)
    log_alpha_tx = np.log(alpha + t_x)
    r_x = r + x
    alive_term = -r_x * log_alpha_age
    dead_term = np.where(x > 0, level_log_odds[levels.row_level] - r_x * log_alpha_tx, -np.inf)
    mix_ll = np.logaddexp(alive_term, dead_term)
    w_dead = np.exp(dead_term - mix_ll)
    return _BGNBDTerms(level_ll, mix_ll, w_dead, log_alpha_age, log_alpha_tx)


def _bgnbd_objective(
    log_params: FloatArray,
    x: FloatArray,
    t_x: FloatArray,
    age: FloatArray,
    weights: FloatArray,
    levels: _FrequencyLevels,
    penalizer: float,
) -> tuple[float, FloatArray]:
    """Mean negative log-likelihood plus L2 penalty, and its gradient in log-parameters."""
    params = np.exp(log_params)
    r, alpha, a, b = params
    terms = _bgnbd_terms(r, alpha, a, b, x, t_x, age, levels)
    level_x, level_w = levels.values, levels.weight
    w_dead = terms.w_dead
    w_alive = 1.0 - w_dead
    r_x = r + x
    psi_ab = psi(a + b)
    psi_abx = psi(a + b + level_x)
    # Derivatives of the per-level part are summed over levels, the rest over rows.
    d_r = _wsum(level_w, psi(r + level_x) - psi(r) + np.log(alpha)) - _wsum(
        weights, w_alive * terms.log_alpha_age + w_dead * terms.log_alpha_tx
    )
    d_alpha = _wsum(level_w, r / alpha) - _wsum(
        weights, r_x * (w_alive / (alpha + age) + w_dead / (alpha + t_x))
    )
    b_x = b + x - 1.0  # only used where w_dead > 0, that is x > 0
    d_a = _wsum(level_w, psi_ab - psi_abx) + _wsum(weights, w_dead / a)
    d_b = _wsum(level_w, psi_ab + psi(b + level_x) - psi(b) - psi_abx) - _wsum(
        weights, np.divide(w_dead, b_x, out=np.zeros_like(w_dead), where=w_dead > 0)
    )
    total = float(level_w.sum())
    log_likelihood = _wsum(level_w, terms.level_ll) + _wsum(weights, terms.mix_ll)
    value = -log_likelihood / total + penalizer * float(np.sum(params**2))
    if not np.isfinite(value):
        return np.inf, np.zeros_like(log_params)
    grad = -np.array([d_r, d_alpha, d_a, d_b]) / total
    return value, (grad + 2.0 * penalizer * params) * params


def fit_bgnbd(
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,
    *,
    weights: npt.ArrayLike | None = None,
    penalizer: float = 0.0,
    initial: BGNBDParams | None = None,
) -> BGNBDParams:
    """Fit the BG/NBD model by maximum likelihood.

    Parameters
    ----------
    frequency : array-like of int
        Number of repeat purchases per customer (:math:`x`).
    recency : array-like of float
        Age of each customer at their last repeat purchase (:math:`t_x`; 0 when ``frequency`` is 0).
    T : array-like of float
        Age of each customer at the end of the calibration period, in the unit of ``recency``.
    weights : array-like of float, optional
        Number of customers each row stands for, so that a dataset compressed to its distinct
        ``(frequency, recency, T)`` rows gives the same fit. Defaults to 1 per row.
    penalizer : float, default 0
        Coefficient of an L2 penalty ``penalizer * (r**2 + alpha_s**2 + a**2 + b**2)`` added to the
        mean negative log-likelihood, where ``alpha_s = alpha * max(T)`` is ``alpha`` with time
        scaled so that the oldest customer has age 1. This is the penalty of ``lifetimes``, so its
        coefficients carry over.
    initial : BGNBDParams, optional
        Starting point of the optimiser (caller's units). Defaults to ``r = a = b = 1`` and
        ``alpha = max(T)``.

    Returns
    -------
    BGNBDParams
        The maximum-likelihood (or penalised) estimates, ``alpha`` in the unit of ``T``.

    Raises
    ------
    ValueError
        If an input is malformed; the message names the argument and position.
    RuntimeError
        If the log-likelihood cannot be evaluated anywhere the optimiser looked.

    Warns
    -----
    RuntimeWarning
        If the optimiser did not converge or stopped at a (degenerate) parameter bound.

    Notes
    -----
    Time is scaled by ``1 / max(T)`` during the fit (as ``lifetimes`` does) so that all
    log-parameters are of order one; L-BFGS-B uses the analytic gradient and falls back to
    Nelder-Mead if it stops early.
    """
    x, t_x, age = _validate_rfm(frequency, recency, T)
    w = _validate_weights(weights, x.size)
    pen = _validate_penalizer(penalizer)
    max_age = float(age[w > 0].max())
    if max_age <= 0:
        raise ValueError("T is 0 for every customer: there is no observed time to fit on")
    scale = 1.0 / max_age
    x_u, t_x_u, age_u, w_u = _compress((x, t_x * scale, age * scale), w)
    levels = _FrequencyLevels.of(x_u, w_u)
    x0 = (
        np.zeros(4)
        if initial is None
        else np.log([initial.r, initial.alpha * scale, initial.a, initial.b])
    )

    def objective(log_params: FloatArray) -> tuple[float, FloatArray]:
        return _bgnbd_objective(log_params, x_u, t_x_u, age_u, w_u, levels, pen)

    r, alpha_s, a, b = np.exp(_minimize(objective, x0, "BG/NBD", _explain_bgnbd))
    return BGNBDParams(r=float(r), alpha=float(alpha_s / scale), a=float(a), b=float(b))


def _explain_bgnbd(log_params: FloatArray) -> str:
    """Why a BG/NBD fit may not converge, read off its best point."""
    log_a, log_b = float(log_params[2]), float(log_params[3])
    dropout = float(expit(log_a - log_b))  # a / (a + b), the mean dropout probability
    if dropout < _NO_DROPOUT and min(log_a, log_b) > np.log(_NO_DROPOUT_SCALE):
        return (
            f"Almost nobody drops out in this history (mean dropout probability a/(a+b) = "
            f"{dropout:.1e}, with a = {np.exp(log_a):.1e} and b = {np.exp(log_b):.1e}): the "
            "likelihood is flat as a and b grow together, so a and b are not identified. The "
            "predictions are sound: they are those of the model without dropout (NBD)"
        )
    return ""


def bgnbd_log_likelihood(
    params: BGNBDParams,
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,
) -> FloatArray:
    """Log-likelihood of each customer's ``(frequency, recency, T)`` under the BG/NBD model.

    Parameters
    ----------
    params : BGNBDParams
        Model parameters, ``alpha`` in the unit of ``T``.
    frequency, recency, T : array-like
        Customer histories, as in :func:`fit_bgnbd`.

    Returns
    -------
    ndarray of float
        One log-likelihood per customer (equation 6 of [1]_), a density in ``recency`` for customers
        with repeat purchases, so its value depends on the time unit.
    """
    x, t_x, age = _validate_rfm(frequency, recency, T)
    levels = _FrequencyLevels.of(x, np.ones_like(x))
    terms = _bgnbd_terms(params.r, params.alpha, params.a, params.b, x, t_x, age, levels)
    return terms.per_customer(levels)


def bgnbd_probability_alive(
    params: BGNBDParams,
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,
) -> FloatArray:
    """Probability that each customer is still active at age ``T``.

    Parameters
    ----------
    params : BGNBDParams
        Model parameters, ``alpha`` in the unit of ``T``.
    frequency, recency, T : array-like
        Customer histories, as in :func:`fit_bgnbd`.

    Returns
    -------
    ndarray of float
        ``1 / (1 + 1{x>0} a / (b + x - 1) ((alpha + T) / (alpha + t_x))**(r + x))`` ([3]_), in
        [0, 1].
        It is exactly 1 when ``frequency`` is 0: in the BG/NBD model a customer can only drop out
        right after a repeat purchase, so one who has made none is certainly still active.
    """
    x, t_x, age = _validate_rfm(frequency, recency, T)
    return _probability_alive(params, x, t_x, age)


def bgnbd_probability_no_purchase(
    params: BGNBDParams,
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,
    t: npt.ArrayLike,
) -> FloatArray:
    """Probability of no purchase in ``(T, T + t]`` given each customer's history.

    A customer makes none either because they have dropped out, or because they are alive and the
    Poisson process stays silent:
    ``1 - P(alive) + P(alive) ((alpha + T) / (alpha + T + t))**(r + x)``, since the posterior of
    the purchase rate is Gamma(r + x, alpha + T). This is BG/NBD's churn probability over a
    horizon, sharper than ``1 - P(alive)``, which ignores the horizon.

    Parameters
    ----------
    params : BGNBDParams
        Model parameters, ``alpha`` in the unit of ``T``.
    frequency, recency, T : array-like
        Customer histories, as in :func:`fit_bgnbd`.
    t : array-like or float
        Horizon length(s), in the unit of ``T``.

    Returns
    -------
    ndarray of float
        Probabilities in [0, 1].
    """
    x, t_x, age = _validate_rfm(frequency, recency, T)
    horizon = _validate_horizon(t, x.size)
    alive = _probability_alive(params, x, t_x, age)
    silent = np.exp(
        (params.r + x) * (np.log(params.alpha + age) - np.log(params.alpha + age + horizon))
    )
    return np.clip(1.0 - alive + alive * silent, 0.0, 1.0)


def _probability_alive(
    params: BGNBDParams, x: FloatArray, t_x: FloatArray, age: FloatArray
) -> FloatArray:
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    log_odds_dead = (
        (r + x) * (np.log(alpha + age) - np.log(alpha + t_x))
        + np.log(a)
        - np.log(b + np.maximum(x, 1.0) - 1.0)
    )
    return np.where(x > 0, expit(-log_odds_dead), 1.0)


def _scaled_hyp_term(
    params: BGNBDParams, x: FloatArray, age: FloatArray, t: FloatArray
) -> FloatArray:
    """``G = ((alpha+T)/(alpha+T+t))**(r+x) * 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))``.

    The direct form multiplies a hypergeometric function that grows like ``exp(x z)`` by a power
    that vanishes like ``(1-z)**(r+x)``, which overflows for large ``x``. Euler's transformation
    ``2F1(A, B; C; z) = (1-z)**(C-A-B) 2F1(C-A, C-B; C; z)`` turns ``G`` into
    ``(1-z)**(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)``, whose parameters do not grow with ``x`` except
    ``C`` (which only speeds convergence).

    SciPy's ``hyp2f1`` is unreliable when ``C - A - B = x + r - a + 1`` is within about 1e-9 of
    an integer, that is when ``r - a`` is: it returns inf or nan, or rarely wrong digits. There,
    ``G`` (smooth in ``r``) is the mean of its values at ``r +- 1e-6``, exact to about 1e-12.

    When ``a`` and ``b`` are both huge (a panel in which nobody drops out: ``a/(a+b)`` near 0,
    ``a`` near 1e6), ``(1-z)**(a-1)`` underflows to 0 while the transformed ``2F1`` overflows;
    there ``G`` is evaluated in the direct form, where ``B = b + x`` and ``C`` are close and the
    series converges like ``(1-z)**-(r+x)`` (checked against mpmath to about 1e-12).
    """
    r, a, b = params.r, params.a, params.b
    log_one_minus_z = np.log(params.alpha + age) - np.log(params.alpha + age + t)
    z = t / (params.alpha + age + t)
    c = a + b + x - 1.0
    euler_power = np.exp((a - 1.0) * log_one_minus_z)

    def euler_form(shape: float) -> FloatArray:
        with np.errstate(all="ignore"):
            result: FloatArray = euler_power * hyp2f1(a + b - 1.0 - shape, a - 1.0, c, z)
        return result

    def direct_form(shape: float) -> FloatArray:
        with np.errstate(all="ignore"):
            result: FloatArray = np.exp((shape + x) * log_one_minus_z) * hyp2f1(
                shape + x, b + x, c, z
            )
        return result

    def smoothed(form: Callable[[float], FloatArray]) -> FloatArray:
        if abs((r - a) - round(r - a)) < _NEAR_INTEGER:
            return 0.5 * (form(r + _R_STEP) + form(r - _R_STEP))
        g = form(r)
        unreliable = ~np.isfinite(g)
        if unreliable.any():
            g[unreliable] = 0.5 * (form(r + _R_STEP) + form(r - _R_STEP))[unreliable]
        return g

    g = smoothed(euler_form)
    unreliable = ~np.isfinite(g)
    if unreliable.any():
        g[unreliable] = smoothed(direct_form)[unreliable]
    return g


def _expected_purchases_if_alive(
    params: BGNBDParams, x: FloatArray, age: FloatArray, t: FloatArray
) -> FloatArray:
    """Expected purchases in ``(T, T + t]`` of a customer known to be alive at ``T``.

    This is ``(a+b+x-1)/(a-1) * (1 - G)``, equation 10 of [1]_ without P(alive). The expectation is
    smooth in ``a``, but the closed form is 0/0 at ``a = 1`` and, for ``x = 0``, at ``a + b = 1``
    (where ``2F1`` has ``C = 0``). Near either, it is the mean of its values at ``a +- 1e-5``,
    which is exact to about 1e-10 and keeps rounding errors (about 1e-16 / 1e-5) small.
    """
    a, b = params.a, params.b
    if min(abs(a - 1.0), abs(a + b - 1.0)) < _A_STEP / 4:
        above = replace(params, a=a + _A_STEP)
        below = replace(params, a=a - _A_STEP)
        return 0.5 * (
            _closed_form_if_alive(above, x, age, t) + _closed_form_if_alive(below, x, age, t)
        )
    return _closed_form_if_alive(params, x, age, t)


def _closed_form_if_alive(
    params: BGNBDParams, x: FloatArray, age: FloatArray, t: FloatArray
) -> FloatArray:
    a = params.a
    g = _scaled_hyp_term(params, x, age, t)
    result: FloatArray = (a + params.b + x - 1.0) / (a - 1.0) * (1.0 - g)
    return result


def _expected_purchases(
    params: BGNBDParams, x: FloatArray, t_x: FloatArray, age: FloatArray, t: FloatArray
) -> FloatArray:
    x, t_x, age, t = np.broadcast_arrays(x, t_x, age, t)
    expected = _expected_purchases_if_alive(params, x, age, t) * _probability_alive(
        params, x, t_x, age
    )
    # (a+b+x-1)/(a-1) and (1 - G) change sign together at a = 1; only rounding can make the
    # product negative, and only by a few ulps.
    return np.maximum(expected, 0.0)


def bgnbd_expected_purchases(
    params: BGNBDParams,
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,
    t: npt.ArrayLike,
) -> FloatArray:
    """Expected number of purchases of each customer in the next ``t`` time units, ``(T, T + t]``.

    Parameters
    ----------
    params : BGNBDParams
        Model parameters, ``alpha`` in the unit of ``T``.
    frequency, recency, T : array-like
        Customer histories, as in :func:`fit_bgnbd`.
    t : float or array-like of float
        Horizon, in the unit of ``T``: one value for all customers or one per customer.

    Returns
    -------
    ndarray of float
        Equation 10 of [1]_, which is the expectation for a customer known to be alive times
        :func:`bgnbd_probability_alive`; non-negative and non-decreasing in ``t``.

    Notes
    -----
    The closed form is evaluated with SciPy's ``hyp2f1`` after Euler's transformation, so that
    it neither overflows for large ``frequency`` nor breaks where the formula is 0/0 (``a = 1``)
    or SciPy is unreliable (``r - a`` an integer); accurate to about 1e-6 relative or better.
    """
    x, t_x, age = _validate_rfm(frequency, recency, T)
    horizon = _validate_horizon(t, x.size)
    return _expected_purchases(params, x, t_x, age, horizon)


def bgnbd_expected_purchases_new(params: BGNBDParams, t: npt.ArrayLike) -> FloatArray | float:
    """Expected number of repeat purchases in ``(0, t]`` of a customer who has just been acquired.

    Parameters
    ----------
    params : BGNBDParams
        Model parameters, ``alpha`` in the unit of ``t``.
    t : float or array-like of float
        Horizon(s), counted from the first purchase.

    Returns
    -------
    float or ndarray of float
        Equation 9 of [1]_, ``E[X(t)]``; a float when ``t`` is a scalar.
    """
    horizon = _as_float_vector("t", t)
    _raise_first("t", t, horizon, horizon < 0, "is negative; it is a length of time")
    # A brand-new customer is the conditional case with x = t_x = T = 0 (certainly alive).
    zeros = np.zeros_like(horizon)
    expected = _expected_purchases(params, zeros, zeros, zeros, horizon)
    if np.ndim(t) == 0:
        return float(expected[0])
    return expected


# --------------------------------------------------------------------------------------------------
# Gamma-Gamma
# --------------------------------------------------------------------------------------------------


def _gamma_gamma_objective(
    log_params: FloatArray,
    x: FloatArray,
    m: FloatArray,
    log_m: FloatArray,
    weights: FloatArray,
    levels: _FrequencyLevels,
    penalizer: float,
) -> tuple[float, FloatArray]:
    """Mean negative log-likelihood (eq. 1a of [4]_) plus L2 penalty, gradient in log-parameters."""
    params = np.exp(log_params)
    p, q, v = params
    level_x, level_w = levels.values, levels.weight
    level_px = p * level_x
    level_psi_pxq = psi(level_px + q)
    # Terms of x only are summed over frequency levels; those of the spend over rows.
    level_ll = gammaln(level_px + q) - gammaln(level_px) - gammaln(q) + level_px * np.log(level_x)
    px = p * x
    log_v_xm = np.log(v + x * m)
    row_ll = q * np.log(v) + (px - 1.0) * log_m - (px + q) * log_v_xm
    d_p = _wsum(level_w, level_x * (level_psi_pxq - psi(level_px) + np.log(level_x))) + _wsum(
        weights, x * (log_m - log_v_xm)
    )
    d_q = _wsum(level_w, level_psi_pxq - psi(q)) + _wsum(weights, np.log(v) - log_v_xm)
    d_v = _wsum(weights, q / v - (px + q) / (v + x * m))
    total = float(level_w.sum())
    log_likelihood = _wsum(level_w, level_ll) + _wsum(weights, row_ll)
    value = -log_likelihood / total + penalizer * float(np.sum(params**2))
    if not np.isfinite(value):
        return np.inf, np.zeros_like(log_params)
    grad = -np.array([d_p, d_q, d_v]) / total
    return value, (grad + 2.0 * penalizer * params) * params


def _validate_monetary(
    frequency: npt.ArrayLike, monetary_value: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    x = _validate_frequency(frequency)
    m = _as_float_vector("monetary_value", monetary_value)
    _check_same_length(("frequency", x), ("monetary_value", m))
    _raise_first("monetary_value", monetary_value, m, m < 0, "is negative; spend must be >= 0")
    return x, m


def fit_gamma_gamma(
    frequency: npt.ArrayLike,
    monetary_value: npt.ArrayLike,
    *,
    penalizer: float = 0.0,
    weights: npt.ArrayLike | None = None,
    initial: GammaGammaParams | None = None,
) -> GammaGammaParams:
    """Fit the Gamma-Gamma model of average spend per transaction by maximum likelihood.

    Parameters
    ----------
    frequency : array-like of int
        Number of repeat purchases per customer (:math:`x`).
    monetary_value : array-like of float
        Mean value of each customer's repeat purchases (:math:`\\bar m`), >= 0.
    penalizer : float, default 0
        Coefficient of an L2 penalty ``penalizer * (p**2 + q**2 + v_s**2)`` added to the mean
        negative log-likelihood, where ``v_s`` is ``v`` in units of the mean ``monetary_value`` of
        the customers fitted on.
    weights : array-like of float, optional
        Number of customers each row stands for. Defaults to 1 per row.
    initial : GammaGammaParams, optional
        Starting point of the optimiser (caller's units). Defaults to ``p = q = 1`` and
        ``v`` = the mean ``monetary_value``.

    Returns
    -------
    GammaGammaParams
        The maximum-likelihood (or penalised) estimates, ``v`` in the currency of
        ``monetary_value``.

    Raises
    ------
    ValueError
        If an input is malformed, or no customer has both ``frequency > 0`` and
        ``monetary_value > 0``.

    Notes
    -----
    Only customers with ``frequency > 0`` and ``monetary_value > 0`` carry information about spend
    and are used; the others are ignored. The model assumes spend is independent of frequency.
    """
    x, m = _validate_monetary(frequency, monetary_value)
    w = _validate_weights(weights, x.size)
    pen = _validate_penalizer(penalizer)
    used = (x > 0) & (m > 0) & (w > 0)
    if not used.any():
        raise ValueError(
            "no customer has frequency > 0 and monetary_value > 0: there is no spend to fit on"
        )
    # Compressed before the scale is taken: a dataset and its distinct rows with counts as
    # weights (e.g. gathered from the partitions of a Dask cluster) then reach the optimiser as
    # bit-identical arrays; a mean of the raw rows adds its terms in another order, and the
    # last bits it changes can move the optimum by 1e-8.
    x_u, m_c, w_u = _compress((x[used], m[used]), w[used])
    scale = 1.0 / float(np.average(m_c, weights=w_u))
    m_u = m_c * scale
    levels = _FrequencyLevels.of(x_u, w_u)
    log_m_u = np.log(m_u)
    x0 = np.zeros(3) if initial is None else np.log([initial.p, initial.q, initial.v * scale])

    def objective(log_params: FloatArray) -> tuple[float, FloatArray]:
        return _gamma_gamma_objective(log_params, x_u, m_u, log_m_u, w_u, levels, pen)

    p, q, v_s = np.exp(_minimize(objective, x0, "Gamma-Gamma"))
    return GammaGammaParams(p=float(p), q=float(q), v=float(v_s / scale))


def gamma_gamma_expected_spend(
    params: GammaGammaParams, frequency: npt.ArrayLike, monetary_value: npt.ArrayLike
) -> FloatArray:
    """Expected average spend per transaction of each customer, given their history.

    Parameters
    ----------
    params : GammaGammaParams
        Model parameters, ``v`` in the currency of ``monetary_value``.
    frequency : array-like of int
        Number of repeat purchases per customer.
    monetary_value : array-like of float
        Mean value of each customer's repeat purchases (ignored where ``frequency`` is 0).

    Returns
    -------
    ndarray of float
        ``p (v + x m) / (p x + q - 1)`` (equation 5 of [4]_): a weighted average of the population
        mean ``p v / (q - 1)`` and the customer's own mean, the latter weighted
        ``p x / (p x + q - 1)``. Customers with no repeat purchase get the population mean.
        Where ``p x + q <= 1`` the expectation does not exist (heavy tail) and ``inf`` is returned.
    """
    x, m = _validate_monetary(frequency, monetary_value)
    p, q, v = params.p, params.q, params.v
    own_mean = np.where(x > 0, m, 0.0)
    denominator = p * x + q - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = p * (v + x * own_mean) / denominator
    return np.where(denominator > 0, expected, np.inf)
