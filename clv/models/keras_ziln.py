"""Zero-inflated lognormal (ZILN) spend model: a small Keras network with a probabilistic head.

The network maps standardised features to three numbers per customer: the logit of
:math:`p = P(\\text{spend} > 0)`, the location :math:`\\mu` and a raw scale turned into
:math:`\\sigma = \\operatorname{softplus}(\\cdot) + 10^{-4}`. Spend is then zero with probability
:math:`1 - p` and lognormal(:math:`\\mu, \\sigma`) otherwise, so

- the expected spend is :math:`p \\, e^{\\mu + \\sigma^2 / 2}` (never negative), with
  :math:`\\sigma` limited to a multiple of the training labels' log-spread (``sigma_cap``,
  see :func:`sigma_limit`);
- the loss is the binary cross-entropy of the positive indicator plus the lognormal negative
  log-likelihood of the positive labels, as in the reference implementation [1]_;
- intervals come from quantiles of the mixture, computed here with NumPy/SciPy.

TensorFlow and Keras are imported lazily, inside the functions that need them: importing this
module (to register the factory, or to read ``search_space``) stays cheap.

References
----------
.. [1] Wang, X., Liu, T. and Miao, J. (2019). "A Deep Probabilistic Model for Customer Lifetime
   Value Prediction". arXiv:1912.07753. Reference code: ``google/lifetime_value``
   (``zero_inflated_lognormal_loss``, ``zero_inflated_lognormal_pred``).
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import expit, ndtr, ndtri

from clv.models._tf_quiet import filtered_stderr, quiet_environment
from clv.models.base import Monitor, align_features, read_manifest, register, write_manifest

__all__ = [
    "DEFAULT_PARAMS",
    "TUNING_PARAMS",
    "KerasZILNModel",
    "check_sigma_cap",
    "search_space",
    "sigma_limit",
    "ziln_loss",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

NAME = "keras_ziln"
MODEL_FILE = "model.keras"
PREPROCESSING_FILE = "preprocessing.json"

DEFAULT_PARAMS: dict[str, Any] = {
    "hidden_units": [64, 32],
    "dropout": 0.0,
    "learning_rate": 3e-3,
    "epochs": 60,
    "batch_size": 256,
    "l2": 1e-5,
    "patience": 8,
    "seed": 0,
    "n_members": 3,
    "sigma_cap": 1.5,
}

#: What Optuna trials use in place of the final model's parameters: trials tune one network, and
#: the best trial's parameters are then refitted as the deep ensemble (tuning costs one network
#: per trial, not ``n_members``).
TUNING_PARAMS: dict[str, Any] = {"n_members": 1}

#: Member ``k`` of a deep ensemble (``n_members > 1``) is trained with seed ``seed + k * this``.
MEMBER_SEED_STEP = 1000
# Added to softplus(raw scale): sigma can never reach 0, where the lognormal density of the labels
# (and so the loss) would be infinite.
SIGMA_FLOOR = 1e-4
# Labels are floored before the log in the loss: zeros are already replaced by 1 (their term is
# masked out), this only guards against subnormal positive spends.
_LABEL_FLOOR = 1e-12
#: Standardised inputs are clipped to this many standard deviations.
Z_CLIP = 5.0
# exp() of larger log-means overflows float64; a prediction there is meaningless anyway.
_MAX_LOG_MEAN = 700.0


def check_sigma_cap(value: Any, name: str = "sigma_cap") -> float | None:
    """``value`` as a ``sigma_cap``: a positive finite number, or ``None`` (no cap).

    Raises
    ------
    ValueError
        Anything else; the message starts with ``name``.
    """
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a positive number (or None for no cap), got {value!r}")
    return float(value)


def sigma_limit(labels: FloatArray, sigma_cap: float | None) -> float | None:
    """The largest ``sigma`` the expected spend uses: ``sigma_cap`` × std(log positive labels).

    Parameters
    ----------
    labels : ndarray
        Training labels (spend, ``>= 0``).
    sigma_cap : float or None
        The multiplier; ``None`` means no limit.

    Returns
    -------
    float or None
        ``None`` when ``sigma_cap`` is ``None`` or fewer than two labels are positive (no spread
        to measure); otherwise at least :data:`SIGMA_FLOOR`.

    Notes
    -----
    The expected value ``p exp(mu + sigma² / 2)`` multiplies the median by ``exp(sigma² / 2)``:
    on small, heavy-tailed training sets a network that puts a large ``sigma`` on a customer
    (uncertain, not necessarily big) inflates that customer's expectation many-fold, and a handful
    of them dominate the base's total. No customer's spend is more spread out than the whole
    base's, so the limit is a multiple of the training labels' own log-spread.
    """
    if sigma_cap is None:
        return None
    positive = labels[labels > 0]
    if positive.size < 2:
        return None
    return max(float(sigma_cap) * float(np.log(positive).std()), SIGMA_FLOOR)


def _keras() -> Any:
    """Keras, imported on first use (importing it loads TensorFlow, which takes seconds).

    TensorFlow's log levels are set first (only where the user has not set them) and its
    load-time notices are kept off the terminal: see ``clv.models._tf_quiet``.
    """
    if "keras" in sys.modules:
        return sys.modules["keras"]
    quiet_environment()
    with filtered_stderr():
        return importlib.import_module("keras")


# --------------------------------------------------------------------------------------------
# Loss and distribution
# --------------------------------------------------------------------------------------------


def ziln_loss(labels: Any, outputs: Any) -> Any:
    """Zero-inflated lognormal loss per example (Keras averages it over the batch).

    Parameters
    ----------
    labels : tensor, shape (batch, 1)
        Observed spend, ``>= 0``.
    outputs : tensor, shape (batch, 3 * members)
        The network's raw outputs, three per member of a deep ensemble: logit of
        ``P(spend > 0)``, ``mu``, raw scale.

    Returns
    -------
    tensor, shape (batch,)
        ``BCE(1[label > 0], logit) - 1[label > 0] * log LogNormal(mu, sigma).pdf(label)``,
        averaged over the members. The members share no weights, so each one's gradient is that
        of its own loss: training them together is training them side by side.
    """
    members = int(outputs.shape[-1]) // 3
    if members == 1:
        return _member_loss(labels, outputs)
    losses = [_member_loss(labels, outputs[..., 3 * k : 3 * k + 3]) for k in range(members)]
    return sum(losses[1:], losses[0]) / float(members)


def _member_loss(labels: Any, outputs: Any) -> Any:
    keras = _keras()
    ops = keras.ops
    labels = ops.cast(labels, "float32")
    outputs = ops.cast(outputs, "float32")
    positive = ops.cast(labels > 0, "float32")

    classification = keras.losses.binary_crossentropy(positive, outputs[..., :1], from_logits=True)

    mu = outputs[..., 1:2]
    sigma = ops.softplus(outputs[..., 2:]) + SIGMA_FLOOR
    # Zero labels would give log(0); their term is masked, so any positive stand-in will do.
    safe_labels = ops.maximum(positive * labels + (1.0 - positive), _LABEL_FLOOR)
    log_labels = ops.log(safe_labels)
    log_prob = (
        -log_labels
        - ops.log(sigma)
        - 0.5 * math.log(2.0 * math.pi)
        - ops.square(log_labels - mu) / (2.0 * ops.square(sigma))
    )
    regression = -ops.mean(positive * log_prob, axis=-1)
    return classification + regression


def _registered_loss() -> Any:
    """``ziln_loss`` registered with Keras, so a saved model's compile config names it safely."""
    keras = _keras()
    registered = keras.saving.get_registered_object("clv>ziln_loss")
    if registered is None:
        registered = keras.saving.register_keras_serializable(package="clv", name="ziln_loss")(
            ziln_loss
        )
    return registered


def _member_parameters(outputs: npt.NDArray[Any]) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(p_positive, mu, sigma)``, each of shape ``(rows, members)``, from raw outputs."""
    outputs = np.asarray(outputs, dtype=np.float64)
    members = outputs.reshape(outputs.shape[0], -1, 3)
    return (
        expit(members[..., 0]),
        members[..., 1],
        np.logaddexp(0.0, members[..., 2]) + SIGMA_FLOOR,
    )


def _distribution_from_outputs(outputs: npt.NDArray[Any]) -> pd.DataFrame:
    p_positive, mu, sigma = _member_parameters(outputs)
    if p_positive.shape[1] == 1:
        return pd.DataFrame({"p_positive": p_positive[:, 0], "mu": mu[:, 0], "sigma": sigma[:, 0]})
    columns: dict[str, FloatArray] = {"p_positive": p_positive.mean(axis=1)}
    for k in range(p_positive.shape[1]):
        columns[f"p_positive_{k}"] = p_positive[:, k]
        columns[f"mu_{k}"] = mu[:, k]
        columns[f"sigma_{k}"] = sigma[:, k]
    return pd.DataFrame(columns)


def _expected_from_outputs(outputs: npt.NDArray[Any], limit: float | None) -> FloatArray:
    """Expected spend: the mean of the members' expectations, ``sigma`` at most ``limit``."""
    p_positive, mu, sigma = _member_parameters(outputs)
    if limit is not None:
        sigma = np.minimum(sigma, limit)
    result: FloatArray = ziln_mean(p_positive, mu, sigma).mean(axis=1)
    return result


def _signed_log1p(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``sign(x) log(1 + |x|)``: spend-like features are heavy-tailed; this tames their scale."""
    return np.sign(values) * np.log1p(np.abs(values))


def ziln_mean(p_positive: FloatArray, mu: FloatArray, sigma: FloatArray) -> FloatArray:
    """Expected value ``p * exp(mu + sigma² / 2)`` of a zero-inflated lognormal."""
    log_mean = np.minimum(mu + 0.5 * np.square(sigma), _MAX_LOG_MEAN)
    return np.asarray(p_positive * np.exp(log_mean), dtype=np.float64)


def ziln_quantile(
    q: float | FloatArray, p_positive: FloatArray, mu: FloatArray, sigma: FloatArray
) -> FloatArray:
    """Quantile ``q`` of the zero-inflated lognormal: 0 if ``q <= 1 - p``, else lognormal's."""
    q_arr = np.broadcast_to(np.asarray(q, dtype=np.float64), np.shape(p_positive))
    zero_mass = 1.0 - p_positive
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.clip((q_arr - zero_mass) / p_positive, 0.0, 1.0)
        positive_quantile = np.exp(np.minimum(mu + sigma * ndtri(level), _MAX_LOG_MEAN))
    return np.where(q_arr <= zero_mass, 0.0, positive_quantile)


def ziln_mixture_quantile(
    q: float | FloatArray, p_positive: FloatArray, mu: FloatArray, sigma: FloatArray
) -> FloatArray:
    """Quantile ``q`` of an equal-weight mixture of zero-inflated lognormals, row by row.

    Parameters
    ----------
    q : float or array of shape (rows,)
        Levels in ``(0, 1)``.
    p_positive, mu, sigma : arrays of shape (rows, members)
        Each member's parameters.

    Returns
    -------
    ndarray of shape (rows,)
        0 where ``q`` is within the mixture's atom at zero (the mean of ``1 - p``); otherwise
        the ``y > 0`` where the mixture's CDF reaches ``q``, found by bisection on ``log y``
        between the members' own quantiles (a mixture's quantile lies between them), to a
        relative precision of about 1e-9. With one member it is :func:`ziln_quantile`.
    """
    p_positive, mu, sigma = (
        np.atleast_2d(np.asarray(a, dtype=np.float64)) for a in (p_positive, mu, sigma)
    )
    rows, members = p_positive.shape
    q_arr = np.broadcast_to(np.asarray(q, dtype=np.float64), (rows,))
    if members == 1:
        return ziln_quantile(q_arr, p_positive[:, 0], mu[:, 0], sigma[:, 0])
    zero_mass = (1.0 - p_positive).mean(axis=1)
    each = ziln_quantile(q_arr[:, None], p_positive, mu, sigma)
    # The mixture's CDF at the largest member quantile is at least q; at the floor (every
    # lognormal ten of its sigmas below its mu, or the smallest positive member quantile) it
    # is the atom at zero, below q. Members whose own quantile is 0 pull the answer down there.
    with np.errstate(divide="ignore"):
        smallest = np.log(np.where(each > 0.0, each, np.inf).min(axis=1))
        high = np.log(each.max(axis=1))
    low = np.minimum((mu - 10.0 * sigma).min(axis=1), smallest)
    high = np.maximum(high, low)
    for _ in range(64):
        middle = 0.5 * (low + high)
        z = (middle[:, None] - mu) / sigma
        cdf = ((1.0 - p_positive) + p_positive * ndtr(z)).mean(axis=1)
        below = cdf < q_arr
        low = np.where(below, middle, low)
        high = np.where(below, high, middle)
    positive = np.exp(np.minimum(high, _MAX_LOG_MEAN))
    return np.where(q_arr <= zero_mass, 0.0, positive)


def ziln_interval(
    p_positive: FloatArray, mu: FloatArray, sigma: FloatArray, coverage: float
) -> tuple[FloatArray, FloatArray]:
    """Central ``coverage`` interval of the zero-inflated lognormal.

    Equal tails ``(1 - c) / 2`` where the lower quantile is positive. Where it falls in the atom
    at zero, the interval is ``[0, Q(c)]`` instead: the same lower end, a shorter upper one, and
    coverage exactly ``c`` (the equal-tailed ``[0, Q((1 + c) / 2)]`` would cover ``(1 + c) / 2``).
    Parameters of shape ``(rows, members)`` give the interval of the members' equal-weight
    mixture (:func:`ziln_mixture_quantile`).
    """
    quantile = ziln_mixture_quantile if np.ndim(p_positive) == 2 else ziln_quantile
    lower_level = (1.0 - coverage) / 2.0
    lower = quantile(lower_level, p_positive, mu, sigma)
    upper_level = np.where(lower > 0.0, (1.0 + coverage) / 2.0, coverage)
    upper = quantile(upper_level, p_positive, mu, sigma)
    return lower, upper


# --------------------------------------------------------------------------------------------
# Validation at the boundary
# --------------------------------------------------------------------------------------------


def _validate_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    given = dict(params or {})
    unknown = sorted(set(given) - set(DEFAULT_PARAMS))
    if unknown:
        raise ValueError(
            f"keras_ziln: unknown parameter(s) {unknown}; expected some of {sorted(DEFAULT_PARAMS)}"
        )
    merged = {**DEFAULT_PARAMS, **given}
    units = merged["hidden_units"]
    if isinstance(units, int | str) or not all(
        isinstance(u, int | np.integer) and u > 0 for u in units
    ):
        raise ValueError(f"keras_ziln: hidden_units must be a list of positive ints, got {units!r}")
    merged["hidden_units"] = [int(u) for u in units]
    if not 0.0 <= float(merged["dropout"]) < 1.0:
        raise ValueError(f"keras_ziln: dropout must be in [0, 1), got {merged['dropout']!r}")
    for key in ("learning_rate",):
        if not float(merged[key]) > 0.0:
            raise ValueError(f"keras_ziln: {key} must be > 0, got {merged[key]!r}")
    merged["sigma_cap"] = check_sigma_cap(merged["sigma_cap"], "keras_ziln: sigma_cap")
    if float(merged["l2"]) < 0.0:
        raise ValueError(f"keras_ziln: l2 must be >= 0, got {merged['l2']!r}")
    for key in ("epochs", "batch_size", "patience", "n_members"):
        if int(merged[key]) < 1:
            raise ValueError(f"keras_ziln: {key} must be a positive integer, got {merged[key]!r}")
        merged[key] = int(merged[key])
    merged["seed"] = int(merged["seed"])
    merged["dropout"] = float(merged["dropout"])
    merged["learning_rate"] = float(merged["learning_rate"])
    merged["l2"] = float(merged["l2"])
    return merged


def _validate_features(X: pd.DataFrame, name: str = "X") -> None:
    if not isinstance(X, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame, got {type(X).__name__}")
    non_numeric = [
        str(c)
        for c in X.columns
        if not (pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c]))
    ]
    if non_numeric:
        raise ValueError(f"{name}: column(s) {non_numeric} are not numeric")
    values = X.to_numpy(dtype=np.float64, na_value=np.nan)
    infinite = np.isinf(values)
    if infinite.any():
        row, col = np.argwhere(infinite)[0]
        raise ValueError(
            f"{name} row {X.index[row]!r}, column {X.columns[col]!r}: infinite value "
            f"({int(infinite.sum())} infinite value(s) in all); use NaN for missing"
        )


def _validate_y(y: pd.Series | npt.ArrayLike, n_rows: int, name: str = "y") -> FloatArray:
    try:
        values = np.asarray(y, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from exc
    if values.shape[0] != n_rows:
        raise ValueError(f"{name} has {values.shape[0]} rows but X has {n_rows}; they must match")
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} position {i}: {values[i]!r} is not finite (NaN or infinite)")
    negative = values < 0
    if negative.any():
        i = int(np.flatnonzero(negative)[0])
        raise ValueError(f"{name} position {i}: {values[i]!r} is negative; spend must be >= 0")
    return values


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


@register(NAME)
class KerasZILNModel:
    """Zero-inflated lognormal spend model (Wang, Liu & Miao 2019) behind the CLVModel interface.

    Parameters
    ----------
    params : mapping, optional
        Any of ``hidden_units`` (list of layer widths), ``dropout``, ``learning_rate``,
        ``epochs``, ``batch_size``, ``l2`` (kernel penalty), ``patience`` (early-stopping epochs,
        used only when validation data are given), ``seed`` and ``n_members``: a deep ensemble
        of that many networks (default 3), member ``k`` trained on its own with seed
        ``seed + 1000 k``, whose expected spend is the members' mean and whose intervals are
        the mixture's (one network's results move with its seed; the mean of several moves
        less). Optuna's pruning ``monitor`` watches the first member; Optuna trials train one
        network (:data:`TUNING_PARAMS`). ``sigma_cap`` (default 1.5; ``None`` for none) limits
        the ``sigma`` that the expected spend uses to that multiple of the training labels'
        log-spread (:func:`sigma_limit`); intervals and :meth:`predict_distribution` keep the
        network's own ``sigma``. See :data:`DEFAULT_PARAMS`.

    Attributes
    ----------
    sigma_limit : float or None
        The limit learnt by :meth:`fit` (``None``: no limit).
    """

    name = NAME

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params = _validate_params(params)
        self.feature_names: list[str] = []
        self.means: dict[str, float] = {}
        self.stds: dict[str, float] = {}
        self.missing_indicators: list[str] = []
        self.sigma_limit: float | None = None
        self._network: Any = None

    # -- preprocessing ----------------------------------------------------------------------

    def _learn_preprocessing(self, X: pd.DataFrame) -> None:
        self.feature_names = [str(c) for c in X.columns]
        values = _signed_log1p(X.to_numpy(dtype=np.float64, na_value=np.nan))
        observed = ~np.isnan(values)
        counts = observed.sum(axis=0)
        sums = np.where(observed, values, 0.0).sum(axis=0)
        means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
        centred = np.where(observed, values - means, 0.0)
        variances = np.divide(
            np.square(centred).sum(axis=0), counts, out=np.zeros_like(sums), where=counts > 0
        )
        stds = np.sqrt(variances)
        # A constant (or never observed) column carries no signal; scale 1 keeps it at 0.
        stds = np.where(stds > 1e-12, stds, 1.0)
        self.means = dict(zip(self.feature_names, means.tolist(), strict=True))
        self.stds = dict(zip(self.feature_names, stds.tolist(), strict=True))
        self.missing_indicators = [
            name
            for name, seen in zip(
                self.feature_names, np.asarray(observed.all(axis=0), dtype=bool), strict=True
            )
            if not seen
        ]

    def _design_matrix(self, X: pd.DataFrame) -> npt.NDArray[np.float32]:
        aligned = align_features(X, self.feature_names)
        values = _signed_log1p(aligned.to_numpy(dtype=np.float64, na_value=np.nan))
        means = np.array([self.means[c] for c in self.feature_names])
        stds = np.array([self.stds[c] for c in self.feature_names])
        missing = np.isnan(values)
        # Clipped: a value far outside the training range (a new season, a record spender) must
        # not push the network into extrapolation, where exp(mu + sigma^2 / 2) explodes.
        standardised = np.clip(np.where(missing, 0.0, (values - means) / stds), -Z_CLIP, Z_CLIP)
        indicator_index = [self.feature_names.index(c) for c in self.missing_indicators]
        indicators = missing[:, indicator_index].astype(np.float64)
        return np.hstack([standardised, indicators]).astype(np.float32)

    # -- network ----------------------------------------------------------------------------

    def _build_network(self, n_inputs: int, y: FloatArray, name: str = NAME) -> Any:
        keras = _keras()
        p = self.params
        regulariser = keras.regularizers.L2(p["l2"]) if p["l2"] > 0 else None
        layers: list[Any] = [keras.Input(shape=(n_inputs,), name="features")]
        for i, units in enumerate(p["hidden_units"]):
            layers.append(
                keras.layers.Dense(
                    units,
                    activation="relu",
                    kernel_regularizer=regulariser,
                    name=f"hidden_{i}",
                )
            )
            if p["dropout"] > 0:
                layers.append(keras.layers.Dropout(p["dropout"], name=f"dropout_{i}"))
        layers.append(
            keras.layers.Dense(
                3,
                bias_initializer=keras.initializers.Constant(_initial_bias(y)),
                name="ziln_logits",
            )
        )
        network = keras.Sequential(layers, name=name)
        network.compile(
            optimizer=keras.optimizers.Adam(learning_rate=p["learning_rate"]),
            loss=_registered_loss(),
        )
        return network

    def _deep_ensemble(self, members: list[Any], n_inputs: int) -> Any:
        """One network holding the trained ``members`` side by side (one file, one call).

        Each member was trained on its own, from its own seed, with its own early stopping;
        here they are called on one input and their outputs concatenated.
        """
        keras = _keras()
        features = keras.Input(shape=(n_inputs,), name="features")
        outputs = keras.layers.Concatenate(name="members")([member(features) for member in members])
        network = keras.Model(features, outputs, name=NAME)
        network.compile(
            optimizer=keras.optimizers.Adam(learning_rate=self.params["learning_rate"]),
            loss=_registered_loss(),
        )
        return network

    def _require_fitted(self) -> Any:
        if self._network is None:
            raise RuntimeError("keras_ziln: the model is not fitted; call fit() or load() first")
        return self._network

    # -- interface ----------------------------------------------------------------------------

    def fit(
        self,
        X: pd.DataFrame,
        y: pd.Series | npt.ArrayLike,
        *,
        X_val: pd.DataFrame | None = None,
        y_val: pd.Series | npt.ArrayLike | None = None,
        monitor: Monitor | None = None,
        monitor_every: int = 5,
    ) -> Self:
        """Fit the network; with validation data, stop early on the validation loss.

        ``monitor(epoch, validation_predictions)`` is called every ``monitor_every`` epochs when
        validation data are given (Optuna pruning raises from it to stop the trial).

        Deterministic for a given ``seed``: Keras' global seed is set and, on the TensorFlow
        backend, op determinism is switched on (process-wide; harmless for networks this small).
        """
        _validate_features(X)
        labels = _validate_y(y, len(X))
        if len(X) == 0:
            raise ValueError("X has no rows; cannot fit")
        if (X_val is None) != (y_val is None):
            raise ValueError("give both X_val and y_val, or neither")
        val_labels: FloatArray | None = None
        if X_val is not None and y_val is not None:
            _validate_features(X_val, "X_val")
            val_labels = _validate_y(y_val, len(X_val), "y_val")

        _seed_everything(self.params["seed"])
        self._learn_preprocessing(X)
        self.sigma_limit = sigma_limit(labels, self.params["sigma_cap"])
        design = self._design_matrix(X)
        validation = None
        if X_val is not None and val_labels is not None:
            validation = (self._design_matrix(X_val), val_labels.reshape(-1, 1).astype(np.float32))

        members = []
        best_epochs = []
        n_members = self.params["n_members"]
        for k in range(n_members):
            if k:
                _seed_everything(self.params["seed"] + MEMBER_SEED_STEP * k)
            network = self._build_network(
                design.shape[1], labels, name=NAME if n_members == 1 else f"member_{k}"
            )
            best_epochs.append(
                self._train(
                    network,
                    design,
                    labels,
                    validation,
                    monitor=monitor if k == 0 else None,
                    monitor_every=monitor_every,
                )
            )
            members.append(network)
        self.best_epochs = round(float(np.mean(best_epochs)))
        self._network = (
            members[0] if n_members == 1 else self._deep_ensemble(members, design.shape[1])
        )
        return self

    def _train(
        self,
        network: Any,
        design: npt.NDArray[np.float32],
        labels: FloatArray,
        validation: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None,
        *,
        monitor: Monitor | None,
        monitor_every: int,
    ) -> int:
        """Train one network (early stopping with validation data); return its best epoch."""
        keras = _keras()
        callbacks = []
        if validation is not None:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor="val_loss",
                    patience=self.params["patience"],
                    restore_best_weights=True,
                )
            )
            if monitor is not None:
                callbacks.append(
                    _epoch_monitor(keras, monitor, validation[0], monitor_every, self.sigma_limit)
                )
        with filtered_stderr():
            history = network.fit(
                design,
                labels.reshape(-1, 1).astype(np.float32),
                validation_data=validation,
                epochs=self.params["epochs"],
                batch_size=self.params["batch_size"],
                shuffle=True,
                callbacks=callbacks,
                verbose=0,
            )
        losses = history.history.get("val_loss") or history.history["loss"]
        logger.info(
            "keras_ziln: %d epochs, best %s loss %.4f",
            len(history.history["loss"]),
            "validation" if validation is not None else "training",
            float(np.min(losses)),
        )
        return int(np.argmin(losses)) + 1

    def refit_params(self) -> dict[str, Any]:
        """Parameters to refit on more data for the number of epochs early stopping chose."""
        epochs = getattr(self, "best_epochs", None) or self.params["epochs"]
        return {**self.params, "epochs": int(epochs)}

    def _raw_outputs(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        network = self._require_fitted()
        _validate_features(X)
        design = self._design_matrix(X)
        if design.shape[0] == 0:
            return np.empty((0, 3))
        with filtered_stderr():
            outputs = network.predict(design, batch_size=8192, verbose=0)
        return np.asarray(outputs, dtype=np.float64)

    def predict_distribution(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per row: ``p_positive`` (P(spend > 0)), ``mu`` and ``sigma`` of the lognormal part.

        With ``n_members > 1``: ``p_positive`` of the mixture, and each member's parameters as
        ``p_positive_k``, ``mu_k`` and ``sigma_k``.
        """
        distribution = _distribution_from_outputs(self._raw_outputs(X))
        distribution.index = X.index
        return distribution

    def predict(self, X: pd.DataFrame) -> FloatArray:
        """Expected spend ``p * exp(mu + sigma² / 2)`` (the members' mean); never negative.

        ``sigma`` is first limited to :attr:`sigma_limit` (see ``sigma_cap``).
        """
        return _expected_from_outputs(self._raw_outputs(X), self.sigma_limit)

    def predict_interval(
        self, X: pd.DataFrame, coverage: float = 0.8
    ) -> tuple[FloatArray, FloatArray]:
        """(lower, upper) spend bounds holding ``coverage`` of the predicted distribution.

        See :func:`ziln_interval`: equal-tailed, except that a lower bound in the atom at zero
        gives ``[0, Q(coverage)]``.
        """
        if not 0.0 < coverage < 1.0:
            raise ValueError(f"coverage must be strictly between 0 and 1, got {coverage!r}")
        return ziln_interval(*_member_parameters(self._raw_outputs(X)), coverage)

    # -- persistence --------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write ``model.keras``, ``preprocessing.json`` and a manifest with their SHA-256."""
        network = self._require_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # Keras 3.15 on TensorFlow 2.21 converts variables with np.array(copy=False) while
            # saving; NumPy 2 warns about TensorFlow's __array__. Harmless, and not ours to fix.
            warnings.filterwarnings(
                "ignore", message="__array__ implementation", category=DeprecationWarning
            )
            network.save(folder / MODEL_FILE)
        preprocessing = {
            "feature_names": self.feature_names,
            "means": self.means,
            "stds": self.stds,
            "missing_indicators": self.missing_indicators,
            "params": self.params,
            "sigma_limit": self.sigma_limit,
        }
        (folder / PREPROCESSING_FILE).write_text(
            json.dumps(preprocessing, indent=2, sort_keys=True), encoding="utf-8"
        )
        write_manifest(
            folder,
            name=NAME,
            files=[MODEL_FILE, PREPROCESSING_FILE],
            meta={"feature_names": self.feature_names, "params": self.params},
        )

    @classmethod
    def load(cls, path: Path) -> KerasZILNModel:
        """Load a saved model after verifying every file against the manifest (no pickle)."""
        folder = Path(path)
        read_manifest(folder, expected_model=NAME)
        preprocessing = json.loads((folder / PREPROCESSING_FILE).read_text(encoding="utf-8"))
        params = dict(preprocessing["params"])
        if "sigma_limit" not in preprocessing:
            # Saved before sigma_cap existed: its predictions used the network's own sigma.
            params["sigma_cap"] = None
        model = cls(params)
        limit = preprocessing.get("sigma_limit")
        model.sigma_limit = None if limit is None else float(limit)
        model.feature_names = list(preprocessing["feature_names"])
        model.means = {k: float(v) for k, v in preprocessing["means"].items()}
        model.stds = {k: float(v) for k, v in preprocessing["stds"].items()}
        model.missing_indicators = list(preprocessing["missing_indicators"])
        keras = _keras()
        _registered_loss()
        # Inference only: the optimiser state is not needed, so skip compiling.
        model._network = keras.models.load_model(folder / MODEL_FILE, compile=False, safe_mode=True)
        return model


def _epoch_monitor(
    keras: Any, monitor: Monitor, design: npt.NDArray[np.float32], every: int, limit: float | None
) -> Any:
    """A Keras callback passing expected spend on the validation design to ``monitor``."""

    class _Monitor(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            done = epoch + 1
            if done % every == 0:
                outputs = np.asarray(self.model.predict(design, verbose=0), dtype=np.float64)
                monitor(done, _expected_from_outputs(outputs, limit))

    return _Monitor()


def _initial_bias(y: FloatArray) -> list[float]:
    """Output bias matching the marginal distribution: training starts from a sensible model."""
    positive = y[y > 0]
    share = float(np.clip(positive.size / max(y.size, 1), 1e-3, 1 - 1e-3))
    if positive.size:
        logs = np.log(positive)
        mu, sd = float(logs.mean()), float(max(logs.std(), 0.1))
    else:
        mu, sd = 0.0, 1.0
    raw_scale = sd + math.log(-math.expm1(-sd))  # inverse softplus
    return [math.log(share / (1 - share)), mu, raw_scale]


def _seed_everything(seed: int) -> None:
    keras = _keras()
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        tf = importlib.import_module("tensorflow")
        tf.config.experimental.enable_op_determinism()


#: Trial 0 of every ZILN study: the defaults (:data:`DEFAULT_PARAMS`) in search-space terms.
DEFAULT_TRIAL: dict[str, Any] = {
    "n_layers": 2,
    "first_units": 64,
    "dropout": 0.0,
    "learning_rate": 3e-3,
    "batch_size": 256,
    "l2": 1e-5,
}


def search_space(trial: Any) -> dict[str, Any]:
    """Optuna search space for :class:`KerasZILNModel` (layers halve in width)."""
    n_layers = trial.suggest_int("n_layers", 1, 3)
    first = trial.suggest_categorical("first_units", [16, 32, 64, 128])
    return {
        "hidden_units": [max(first // 2**i, 4) for i in range(n_layers)],
        "dropout": trial.suggest_float("dropout", 0.0, 0.3),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [128, 256, 512]),
        "l2": trial.suggest_float("l2", 1e-7, 1e-3, log=True),
    }
