"""Gradient-boosted trees for spend: XGBoost and LightGBM behind :class:`clv.models.base.CLVModel`.

Both default to a Tweedie objective, which suits spend: many exact zeros and a long right tail.
Other objectives are one parameter away (``objective``) and part of each Optuna search space.
Saved natively (XGBoost UBJ, LightGBM text) with SHA-256 verified on load.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from clv.models.base import (
    Monitor,
    align_features,
    read_manifest,
    register,
    small_batch_threads,
    write_manifest,
)


def _check_xy(X: pd.DataFrame, y: pd.Series | None) -> None:
    if len(X) == 0:
        raise ValueError("X is empty: no customers to train or score")
    values = X.to_numpy(dtype="float64", na_value=np.nan)
    if np.isinf(values).any():
        column = X.columns[np.isinf(values).any(axis=0)][0]
        raise ValueError(f"X column {column!r} has infinite values; replace them or drop it")
    if y is not None:
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
        target = np.asarray(y, dtype="float64")
        if not np.isfinite(target).all() or (target < 0).any():
            raise ValueError("y must be finite and non-negative (spend over the horizon)")


#: Directions in which future spend may move with a feature, all else equal: more purchases and
#: more spend never lower the prediction, a longer silence never raises it. Trees are constrained
#: accordingly (parameter ``monotone``, on by default), so a more recent or more frequent buyer
#: never scores lower than an otherwise identical customer.
MONOTONE: dict[str, int] = {
    "frequency": 1,
    "purchase_days": 1,
    "gross_total": 1,
    "monetary_value": 1,
    "days_since_last_purchase": -1,
    "purchase_days_30d": 1,
    "purchase_days_90d": 1,
    "purchase_days_180d": 1,
    "purchase_days_365d": 1,
    "spend_30d": 1,
    "spend_90d": 1,
    "spend_180d": 1,
    "spend_365d": 1,
    "btyd_expected_purchases": 1,
    "btyd_p_alive": 1,
    "btyd_expected_spend": 1,
}


def monotone_vector(feature_names: list[str]) -> list[int]:
    """Constraint per feature, in order (0 for unconstrained features)."""
    return [MONOTONE.get(name, 0) for name in feature_names]


class _BoostedTrees:
    """What both tree families share: parameters, feature order, native save and verified load."""

    name: str
    native_file: str
    defaults: Mapping[str, Any] = {}

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params = {**self.defaults, **(params or {})}
        self.feature_names: list[str] = []
        self._booster: Any = None
        self.best_rounds: int | None = None

    def refit_params(self) -> dict[str, Any]:
        """Parameters to refit on more data with the number of rounds early stopping chose."""
        rounds = getattr(self, "best_rounds", None) or self.params["n_estimators"]
        return {**self.params, "n_estimators": int(rounds)}

    def _fitted_booster(self) -> Any:
        if self._booster is None:
            raise RuntimeError("the model is not fitted")
        return self._booster

    def save(self, path: Path) -> None:
        """Write the native model file and ``manifest.json`` (with SHA-256) to the folder."""
        booster = self._fitted_booster()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        booster.save_model(str(folder / self.native_file))
        meta = {"feature_names": self.feature_names, "params": json.loads(json.dumps(self.params))}
        write_manifest(folder, name=self.name, files=[self.native_file], meta=meta)

    @classmethod
    def load(cls, path: Path) -> Self:
        """Load a saved model after verifying its files' SHA-256."""
        manifest = read_manifest(Path(path), expected_model=cls.name)
        model = cls(manifest["meta"]["params"])
        model.feature_names = list(manifest["meta"]["feature_names"])
        model._booster = model._load_native(Path(path) / cls.native_file)
        return model

    def _load_native(self, file: Path) -> Any:
        raise NotImplementedError


@register("xgboost")
class XGBoostModel(_BoostedTrees):
    """XGBoost regressor on future spend (default objective ``reg:tweedie``)."""

    name = "xgboost"
    native_file = "model.ubj"
    defaults: Mapping[str, Any] = {
        "objective": "reg:tweedie",
        "tweedie_variance_power": 1.5,
        "n_estimators": 400,
        "learning_rate": 0.05,
        "max_depth": 6,
        "min_child_weight": 5.0,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
        "early_stopping_rounds": 30,
        "monotone": True,
        "seed": 0,
    }

    def fit(
        self,
        X: pd.DataFrame,
        y: pd.Series,
        *,
        X_val: pd.DataFrame | None = None,
        y_val: pd.Series | None = None,
        monitor: Monitor | None = None,
        monitor_every: int = 25,
    ) -> Self:
        """Train; with a validation set, stop early on its loss.

        ``monitor(round, validation_predictions)`` is called every ``monitor_every`` rounds when
        validation data are given (Optuna pruning raises from it to stop the trial).
        """
        import xgboost as xgb

        _check_xy(X, y)
        self.feature_names = [str(c) for c in X.columns]
        p = dict(self.params)
        rounds, patience = int(p.pop("n_estimators")), int(p.pop("early_stopping_rounds"))
        if p["objective"] != "reg:tweedie":
            p.pop("tweedie_variance_power", None)
        p.update({"nthread": 2, "verbosity": 0, "eta": p.pop("learning_rate")})
        if p.pop("monotone", True):
            p["monotone_constraints"] = (
                "(" + ",".join(str(v) for v in monotone_vector(self.feature_names)) + ")"
            )
        train = xgb.DMatrix(X.astype("float64"), label=np.asarray(y, dtype="float64"))
        evals = []
        if X_val is not None and y_val is not None:
            _check_xy(X_val, y_val)
            val = xgb.DMatrix(align_features(X_val, self.feature_names), label=np.asarray(y_val))
            evals = [(val, "validation")]
        callbacks = []
        if monitor is not None and evals:
            callbacks.append(_xgboost_monitor(monitor, evals[0][0], monitor_every))
        self._booster = xgb.train(
            p,
            train,
            num_boost_round=rounds,
            evals=evals,
            early_stopping_rounds=patience if evals else None,
            verbose_eval=False,
            callbacks=callbacks,
        )
        best = getattr(self._booster, "best_iteration", None) if evals else None
        self.best_rounds = rounds if best is None else int(best) + 1
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Expected spend over the horizon (never negative)."""
        import xgboost as xgb

        booster = self._fitted_booster()
        _check_xy(X, None)
        matrix = xgb.DMatrix(align_features(X, self.feature_names))
        best = getattr(booster, "best_iteration", None)
        kwargs = {"iteration_range": (0, best + 1)} if best is not None else {}
        return np.maximum(booster.predict(matrix, **kwargs), 0.0)

    def _load_native(self, file: Path) -> Any:
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(str(file))
        return booster


@register("lightgbm")
class LightGBMModel(_BoostedTrees):
    """LightGBM regressor on future spend (default objective ``tweedie``)."""

    name = "lightgbm"
    native_file = "model.txt"
    defaults: Mapping[str, Any] = {
        "objective": "tweedie",
        "tweedie_variance_power": 1.5,
        "n_estimators": 400,
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_child_samples": 20,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
        "early_stopping_rounds": 30,
        "monotone": True,
        "seed": 0,
    }

    def fit(
        self,
        X: pd.DataFrame,
        y: pd.Series,
        *,
        X_val: pd.DataFrame | None = None,
        y_val: pd.Series | None = None,
        monitor: Monitor | None = None,
        monitor_every: int = 25,
    ) -> Self:
        """Train; with a validation set, stop early on its loss.

        ``monitor(round, validation_predictions)`` is called every ``monitor_every`` rounds when
        validation data are given (Optuna pruning raises from it to stop the trial).
        """
        import lightgbm as lgb

        _check_xy(X, y)
        self.feature_names = [str(c) for c in X.columns]
        p = dict(self.params)
        rounds, patience = int(p.pop("n_estimators")), int(p.pop("early_stopping_rounds"))
        if p["objective"] != "tweedie":
            p.pop("tweedie_variance_power", None)
        p.update({"num_threads": 2, "verbosity": -1, "deterministic": True})
        if p.pop("monotone", True):
            p["monotone_constraints"] = monotone_vector(self.feature_names)
        train = lgb.Dataset(X.astype("float64"), label=np.asarray(y, dtype="float64"))
        valid_sets: list[Any] = []
        callbacks: list[Callable[..., Any]] = []
        if X_val is not None and y_val is not None:
            _check_xy(X_val, y_val)
            valid_sets = [
                lgb.Dataset(
                    align_features(X_val, self.feature_names),
                    label=np.asarray(y_val, dtype="float64"),
                    reference=train,
                )
            ]
            callbacks = [lgb.early_stopping(patience, verbose=False)]
            if monitor is not None:
                callbacks.append(
                    _lightgbm_monitor(
                        monitor, align_features(X_val, self.feature_names), monitor_every
                    )
                )
        self._booster = lgb.train(
            p, train, num_boost_round=rounds, valid_sets=valid_sets, callbacks=callbacks
        )
        self.best_rounds = int(self._booster.best_iteration or rounds)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Expected spend over the horizon (never negative)."""
        booster = self._fitted_booster()
        _check_xy(X, None)
        best = booster.best_iteration or None
        raw = booster.predict(
            align_features(X, self.feature_names), num_iteration=best, **small_batch_threads(X)
        )
        return np.maximum(np.asarray(raw, dtype="float64"), 0.0)

    def _load_native(self, file: Path) -> Any:
        import lightgbm as lgb

        return lgb.Booster(model_file=str(file))


def _xgboost_monitor(monitor: Monitor, validation: Any, every: int) -> Any:
    """An XGBoost callback passing validation predictions to ``monitor`` every ``every`` rounds."""
    import xgboost as xgb

    class _Monitor(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            done = epoch + 1
            if done % every == 0:
                predicted = model.predict(validation, iteration_range=(0, done))
                monitor(done, np.maximum(np.asarray(predicted, dtype="float64"), 0.0))
            return False

    return _Monitor()


def _lightgbm_monitor(monitor: Monitor, X_val: pd.DataFrame, every: int) -> Callable[[Any], None]:
    """A LightGBM callback passing validation predictions to ``monitor`` every ``every`` rounds."""

    def callback(env: Any) -> None:
        done = env.iteration + 1
        if done % every == 0:
            predicted = env.model.predict(X_val, num_iteration=done)
            monitor(done, np.maximum(np.asarray(predicted, dtype="float64"), 0.0))

    # Before early stopping (order 30), which raises at the last round to record the best one.
    callback.order = 25  # type: ignore[attr-defined]
    return callback


#: Trial 0 of every XGBoost study: the defaults, so tuning never ends worse than not tuning.
XGBOOST_DEFAULT_TRIAL: dict[str, Any] = {
    "objective": "reg:tweedie",
    "learning_rate": 0.05,
    "max_depth": 6,
    "min_child_weight": 5.0,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "tweedie_variance_power": 1.5,
}

#: Trial 0 of every LightGBM study: the defaults.
LIGHTGBM_DEFAULT_TRIAL: dict[str, Any] = {
    "objective": "tweedie",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_child_samples": 20,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "tweedie_variance_power": 1.5,
}


def xgboost_search_space(trial: Any) -> dict[str, Any]:
    """Optuna search space for :class:`XGBoostModel`."""
    objective = trial.suggest_categorical("objective", ["reg:tweedie", "reg:squarederror"])
    params: dict[str, Any] = {
        "objective": objective,
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "max_depth": trial.suggest_int("max_depth", 3, 8),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 50.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
    }
    if objective == "reg:tweedie":
        params["tweedie_variance_power"] = trial.suggest_float("tweedie_variance_power", 1.1, 1.9)
    return params


def lightgbm_search_space(trial: Any) -> dict[str, Any]:
    """Optuna search space for :class:`LightGBMModel`."""
    objective = trial.suggest_categorical("objective", ["tweedie", "regression", "huber"])
    params: dict[str, Any] = {
        "objective": objective,
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 200, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
    }
    if objective == "tweedie":
        params["tweedie_variance_power"] = trial.suggest_float("tweedie_variance_power", 1.1, 1.9)
    return params
