"""Churn: the probability that a customer makes no purchase over the horizon, calibrated.

A LightGBM binary classifier ranks customers; an isotonic regression fitted on a separate
validation fold turns its scores into probabilities that match observed churn rates. The target is
``future_purchases == 0`` from :func:`clv.features.training_set`.

The calibration is kept as its breakpoints and applied with :func:`numpy.interp` (flat beyond the
ends, as ``IsotonicRegression(out_of_bounds="clip")``), so it saves as plain JSON: the model folder
holds ``model.txt`` (LightGBM text), ``calibration.json`` and a ``manifest.json`` with the SHA-256
of both, verified before anything is loaded. Nothing is pickled.

:func:`btyd_churn_reference` gives the BG/NBD answer to the same question, ``1 - P(alive)``, to
compare against.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pandas as pd

from clv.models.base import IntegrityError, align_features, read_manifest, write_manifest

__all__ = ["ChurnModel", "btyd_churn_reference", "churn_search_space"]

CALIBRATION_FILE = "calibration.json"
#: LightGBM objectives whose raw prediction is a probability of class 1.
BINARY_OBJECTIVES = frozenset({"binary", "cross_entropy", "xentropy"})


def _check_features(X: pd.DataFrame, name: str) -> None:
    if len(X) == 0:
        raise ValueError(f"{name} is empty: no customers to train or score")
    values = X.to_numpy(dtype="float64", na_value=np.nan)
    if np.isinf(values).any():
        column = X.columns[np.isinf(values).any(axis=0)][0]
        raise ValueError(f"{name} column {column!r} has infinite values; replace them or drop it")


def _check_labels(labels: npt.ArrayLike, name: str, *, rows: int, x_name: str) -> np.ndarray:
    """Churn labels as float 0/1, aligned with ``rows`` feature rows; both classes present."""
    try:
        array = np.asarray(labels, dtype="float64")
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must hold 0/1 or booleans (1 = churned: no purchase in the horizon)"
        ) from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if len(array) != rows:
        raise ValueError(f"{x_name} has {rows} rows but {name} has {len(array)}")
    bad = ~np.isin(array, (0.0, 1.0))  # NaN is not in the set either
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} must be binary (0/1 or booleans, 1 = churned); position {first} is "
            f"{float(array[first])!r} and {int(bad.sum())} value(s) in all are neither 0 nor 1"
        )
    if np.unique(array).size < 2:
        only = "churned (1)" if array[0] == 1.0 else "retained (0)"
        raise ValueError(
            f"{name} holds one class only: every customer is {only}; a classifier needs both"
        )
    return array


class ChurnModel:
    """LightGBM binary classifier of churn, calibrated by isotonic regression on a validation fold.

    Parameters
    ----------
    params : mapping, optional
        LightGBM parameters over :attr:`defaults`; ``n_estimators`` is the maximum number of
        rounds and ``early_stopping_rounds`` the patience on the validation fold's log loss.

    Notes
    -----
    The validation fold serves both early stopping and the calibration. Early stopping picks one
    number (the round count), so the overlap costs little; the fold must still be kept apart from
    the training rows and from any test window.
    """

    name = "churn"
    native_file = "model.txt"
    defaults: Mapping[str, Any] = {
        "objective": "binary",
        "n_estimators": 400,
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_child_samples": 20,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
        "early_stopping_rounds": 30,
        "seed": 0,
    }

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params = {**self.defaults, **(params or {})}
        if self.params["objective"] not in BINARY_OBJECTIVES:
            raise ValueError(
                f"objective {self.params['objective']!r} is not a binary objective; "
                f"use one of {sorted(BINARY_OBJECTIVES)}"
            )
        self.feature_names: list[str] = []
        self.X_thresholds_: np.ndarray = np.empty(0)
        self.y_thresholds_: np.ndarray = np.empty(0)
        self._booster: Any = None

    def fit(
        self,
        X: pd.DataFrame,
        churned: npt.ArrayLike,
        *,
        X_val: pd.DataFrame | None = None,
        churned_val: npt.ArrayLike | None = None,
    ) -> Self:
        """Train on ``(X, churned)``, stop early and calibrate on ``(X_val, churned_val)``.

        Parameters
        ----------
        X : DataFrame
            Features per customer and cut-off.
        churned : array-like of shape (n,)
            1 (or True) when the customer made no purchase in the horizon, else 0.
        X_val, churned_val
            A validation fold, required: the isotonic calibration is learnt on it. Use another
            cut-off than the training rows (e.g. the next one).

        Raises
        ------
        ValueError
            When validation data is missing, labels are not binary, a fold holds one class only,
            or lengths disagree.
        """
        import lightgbm as lgb
        from sklearn.isotonic import IsotonicRegression  # type: ignore[import-untyped]

        if X_val is None or churned_val is None:
            missing = " and ".join(
                n for n, v in (("X_val", X_val), ("churned_val", churned_val)) if v is None
            )
            raise ValueError(
                f"validation data is required: {missing} not given. The churn probabilities are "
                "calibrated (isotonic regression) on a validation fold kept apart from training."
            )
        _check_features(X, "X")
        target = _check_labels(churned, "churned", rows=len(X), x_name="X")
        _check_features(X_val, "X_val")
        target_val = _check_labels(churned_val, "churned_val", rows=len(X_val), x_name="X_val")

        self.feature_names = [str(c) for c in X.columns]
        p = dict(self.params)
        rounds, patience = int(p.pop("n_estimators")), int(p.pop("early_stopping_rounds"))
        # One thread: these data sets are small, and OpenMP threads that spin-wait on a busy
        # machine can slow a fit a hundredfold (seen: 0.5 s became 94 s).
        p.setdefault("num_threads", 1)
        p.update({"verbosity": -1, "deterministic": True})
        train = lgb.Dataset(X.astype("float64"), label=target)
        features_val = align_features(X_val, self.feature_names)
        valid = lgb.Dataset(features_val, label=target_val, reference=train)
        callbacks: list[Callable[..., Any]] = [lgb.early_stopping(patience, verbose=False)]
        self._booster = lgb.train(
            p, train, num_boost_round=rounds, valid_sets=[valid], callbacks=callbacks
        )

        isotonic = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        isotonic.fit(self._raw(features_val), target_val)
        self.X_thresholds_ = np.asarray(isotonic.X_thresholds_, dtype="float64")
        self.y_thresholds_ = np.asarray(isotonic.y_thresholds_, dtype="float64")
        return self

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """Uncalibrated LightGBM probability of churn, in [0, 1]."""
        _check_features(X, "X")
        return self._raw(align_features(X, self.feature_names))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of no purchase over the horizon, in [0, 1]."""
        if self.X_thresholds_.size == 0:
            raise RuntimeError("the model is not fitted")
        raw = self.predict_raw(X)
        return np.clip(np.interp(raw, self.X_thresholds_, self.y_thresholds_), 0.0, 1.0)

    def _raw(self, features: pd.DataFrame) -> np.ndarray:
        if self._booster is None:
            raise RuntimeError("the model is not fitted")
        from clv.models.base import small_batch_threads

        best = self._booster.best_iteration or None
        raw = self._booster.predict(features, num_iteration=best, **small_batch_threads(features))
        return np.asarray(raw, dtype="float64")

    def save(self, path: Path) -> None:
        """Write ``model.txt``, ``calibration.json`` and ``manifest.json`` (SHA-256 of both)."""
        if self._booster is None or self.X_thresholds_.size == 0:
            raise RuntimeError("the model is not fitted")
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        # save_model keeps the best iteration only, so the loaded booster predicts the same
        self._booster.save_model(str(folder / self.native_file))
        calibration = {
            "method": "isotonic",
            "X_thresholds": self.X_thresholds_.tolist(),
            "y_thresholds": self.y_thresholds_.tolist(),
        }
        (folder / CALIBRATION_FILE).write_text(json.dumps(calibration, indent=1), encoding="utf-8")
        meta = {"feature_names": self.feature_names, "params": json.loads(json.dumps(self.params))}
        write_manifest(
            folder, name=self.name, files=[self.native_file, CALIBRATION_FILE], meta=meta
        )

    @classmethod
    def load(cls, path: Path) -> Self:
        """Load a saved model after verifying the SHA-256 of its files.

        Raises
        ------
        IntegrityError
            When a file is missing or changed since it was saved.
        """
        import lightgbm as lgb

        folder = Path(path)
        manifest = read_manifest(folder, expected_model=cls.name)
        if CALIBRATION_FILE not in manifest["files"]:
            raise IntegrityError(f"{folder}: the manifest does not cover {CALIBRATION_FILE}")
        model = cls(manifest["meta"]["params"])
        model.feature_names = list(manifest["meta"]["feature_names"])
        calibration = json.loads((folder / CALIBRATION_FILE).read_text(encoding="utf-8"))
        model.X_thresholds_ = np.asarray(calibration["X_thresholds"], dtype="float64")
        model.y_thresholds_ = np.asarray(calibration["y_thresholds"], dtype="float64")
        model._booster = lgb.Booster(model_file=str(folder / cls.native_file))
        return model


def churn_search_space(trial: Any) -> dict[str, Any]:
    """Optuna search space for :class:`ChurnModel` (the objective stays ``binary``)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 200, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
    }


def btyd_churn_reference(features: pd.DataFrame) -> np.ndarray:
    """The BG/NBD reference for churn: ``1 - btyd_p_alive`` per row.

    P(alive) is the probability that the customer has not dropped out by the cut-off; one minus
    it is the BTYD view of churn, without a horizon (a live customer may still buy nothing in a
    short window), so compare it with :class:`ChurnModel` by ranking (AUC) first.

    Raises
    ------
    ValueError
        When the column ``btyd_p_alive`` is absent (build features with ``include_btyd=True``)
        or holds values outside [0, 1].
    """
    if "btyd_p_alive" not in features.columns:
        raise ValueError(
            "features lack column 'btyd_p_alive': build them with include_btyd=True "
            "(clv.features.build_features / training_set)"
        )
    p_alive = features["btyd_p_alive"].to_numpy(dtype="float64", na_value=np.nan)
    bad = ~((p_alive >= 0.0) & (p_alive <= 1.0))  # NaN fails both comparisons
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"btyd_p_alive must be a probability in [0, 1]; position {first} is "
            f"{float(p_alive[first])!r} ({int(bad.sum())} bad value(s) in all)"
        )
    return 1.0 - p_alive
