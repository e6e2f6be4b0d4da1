"""Reference models every learnt model must beat.

The naive run-rate model: each customer's share of past spend times the whole base's recent spend
rate times the horizon. It needs no training, ranks customers by past value and gets the aggregate
nearly right when the business is stable, which makes it a strong reference (on CDNOW it ranks
better than BG/NBD).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from clv.models.base import Monitor, read_manifest, register, write_manifest


class _RuleModel:
    """A reference that learns nothing: its parameters are its only state."""

    name: str
    params: dict[str, Any]
    feature_names: list[str]

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
        """Nothing to learn (so nothing to monitor); checks the feature columns it reads exist."""
        missing = [c for c in self.feature_names if c not in X.columns]
        if missing:
            raise ValueError(f"the {self.name} reference needs feature columns {missing}")
        return self

    def save(self, path: Path) -> None:
        """Write the parameters as ``params.json`` with a SHA-256 manifest."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "params.json").write_text(json.dumps(self.params, sort_keys=True))
        write_manifest(folder, name=self.name, files=["params.json"], meta={})

    @classmethod
    def load(cls, path: Path) -> Self:
        """Load after verifying the SHA-256 of ``params.json``."""
        read_manifest(Path(path), expected_model=cls.name)
        return cls(json.loads((Path(path) / "params.json").read_text()))  # type: ignore[call-arg]


@register("run_rate")
class RunRateBaseline(_RuleModel):
    """``share_i * (base spend in the last window / window days) * horizon days``.

    Uses feature columns ``net_total`` (spend so far) and ``spend_{window}d`` (recent spend) from
    :func:`clv.features.build_features`. Parameters: ``horizon_days``, ``window_days`` (90).
    """

    name = "run_rate"

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params = {"window_days": 90, **(params or {})}
        if "horizon_days" not in self.params:
            raise ValueError("RunRateBaseline needs params['horizon_days']")
        self.feature_names = ["net_total", f"spend_{self.params['window_days']}d"]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Share of past spend times the base's recent daily spend times the horizon."""
        past = X["net_total"].clip(lower=0.0).fillna(0.0).to_numpy(dtype="float64")
        recent = X[self.feature_names[1]].fillna(0.0).to_numpy(dtype="float64")
        total = past.sum()
        if total <= 0:
            return np.zeros(len(X))
        daily = recent.sum() / float(self.params["window_days"])
        return past / total * daily * float(self.params["horizon_days"])


@register("btyd")
class BTYDReference(_RuleModel):
    """BG/NBD expected purchases times Gamma-Gamma expected order value, as a model.

    The parameters are fitted per cut-off by :func:`clv.features.build_features` (on data up to
    that cut-off only); this model reads the resulting column ``btyd_expected_spend``, so it can
    join an ensemble beside the learnt families.
    """

    name = "btyd"

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params = dict(params or {})
        self.feature_names = ["btyd_expected_spend"]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """BG/NBD x Gamma-Gamma expected spend (never negative)."""
        return np.maximum(X["btyd_expected_spend"].fillna(0.0).to_numpy(dtype="float64"), 0.0)


@register("btyd_churn")
class BTYDChurnReference(_RuleModel):
    """BG/NBD's probability of no purchase in the horizon, as a churn model.

    Reads the column ``btyd_p_no_purchase`` that :func:`clv.features.build_features` computes at
    each cut-off; the churn model registered when the history is too short for a learnt one.
    """

    name = "btyd_churn"

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params = dict(params or {})
        self.feature_names = ["btyd_p_no_purchase"]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The probability of no purchase in the horizon (the same as :meth:`predict_proba`)."""
        return self.predict_proba(X)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """BG/NBD's probability of no purchase in the horizon, clipped to [0, 1]."""
        values = X["btyd_p_no_purchase"].fillna(1.0).to_numpy(dtype="float64")
        return np.clip(values, 0.0, 1.0)
