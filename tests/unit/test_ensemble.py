"""The stacked ensemble's weights are convex and it never does worse than its best member."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clv.models.baselines import RunRateBaseline
from clv.models.ensemble import StackedEnsemble
from clv.models.trees import LightGBMModel, XGBoostModel


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    n = 3000
    X = pd.DataFrame(
        {
            "net_total": rng.gamma(2.0, 100.0, n),
            "spend_90d": rng.gamma(1.0, 30.0, n),
            "noise": rng.normal(size=n),
        }
    )
    rate = 0.3 * X["spend_90d"] + 0.05 * X["net_total"]
    y = pd.Series(rng.gamma(2.0, rate / 2.0))
    return X.iloc[:2000], y.iloc[:2000], X.iloc[2000:], y.iloc[2000:]


def _members(X: pd.DataFrame, y: pd.Series) -> dict:
    return {
        "xgb": XGBoostModel({"n_estimators": 60}).fit(X, y),
        "lgb": LightGBMModel({"n_estimators": 60}).fit(X, y),
        "run_rate": RunRateBaseline({"horizon_days": 90}).fit(X, y),
    }


def test_ensemble_weights_are_non_negative_and_never_worse_than_best_member(data) -> None:  # type: ignore[no-untyped-def]
    X, y, X_val, y_val = data
    members = _members(X, y)
    ensemble = StackedEnsemble(members).fit(X_val, y_val)
    assert all(w >= 0 for w in ensemble.weights.values())
    assert sum(ensemble.weights.values()) == pytest.approx(1.0)
    sse = {name: float(((m.predict(X_val) - y_val) ** 2).sum()) for name, m in members.items()}
    ensemble_sse = float(((ensemble.predict(X_val) - y_val) ** 2).sum())
    assert ensemble_sse <= min(sse.values()) + 1e-6


def test_saved_ensemble_loads_with_identical_predictions(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    X, y, X_val, y_val = data
    ensemble = StackedEnsemble(_members(X, y)).fit(X_val, y_val)
    ensemble.save(tmp_path / "e")
    loaded = StackedEnsemble.load(tmp_path / "e")
    np.testing.assert_allclose(ensemble.predict(X_val), loaded.predict(X_val))
    assert loaded.weights == ensemble.weights
