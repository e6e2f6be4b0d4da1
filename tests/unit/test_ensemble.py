"""The stacked ensemble: convex weights never worse than its best member, and the plain average
when that ranks better out of fold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clv.models.baselines import RunRateBaseline
from clv.models.ensemble import StackedEnsemble, describe_weights
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


class _Column:
    """A fitted-model stand-in that predicts one column of its input."""

    name = "column"

    def __init__(self, column: str) -> None:
        self.feature_names = [column]
        self.column = column

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return X[self.column].to_numpy(dtype="float64")


def _whales(seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Ten whales and 990 small buyers.

    ``level`` gets every whale's spend exactly and ranks the small buyers at random, so the
    squared error favours it; ``a`` and ``b`` under-predict the whales (still ranking them
    first) and rank the small buyers well, so their average ranks best.
    """
    rng = np.random.default_rng(seed)
    small = rng.uniform(0.5, 10.0, 990)
    y = np.concatenate([np.full(10, 1000.0), small])
    X = pd.DataFrame(
        {
            "level": np.concatenate([np.full(10, 1000.0), rng.uniform(4.0, 6.0, 990)]),
            "a": np.concatenate([np.full(10, 100.0), small * rng.lognormal(0.0, 0.3, 990)]),
            "b": np.concatenate([np.full(10, 100.0), small * rng.lognormal(0.0, 0.3, 990)]),
        }
    )
    return X, pd.Series(y)


def _column_members() -> dict:
    return {name: _Column(name) for name in ("level", "a", "b")}


def test_plain_average_replaces_learnt_weights_that_rank_worse_out_of_fold() -> None:
    X, y = _whales()
    ensemble = StackedEnsemble(_column_members(), average=["a", "b"]).fit(X, y)
    stack, mean = ensemble.selection["stack"], ensemble.selection["mean"]
    assert stack["weights"]["level"] > 0.9  # the squared error's choice
    assert mean["out_of_fold"]["normalized_gini"] > stack["out_of_fold"]["normalized_gini"]
    assert ensemble.selection["chosen"] == "mean"
    assert ensemble.weights == {"level": 0.0, "a": 0.5, "b": 0.5}
    np.testing.assert_allclose(ensemble.predict(X), (X["a"] + X["b"]) / 2)


def test_learnt_weights_stay_when_they_rank_better_out_of_fold() -> None:
    X, y = _whales()
    X["level"] = y  # now the level member is also the perfect ranking
    ensemble = StackedEnsemble(_column_members(), average=["a", "b"]).fit(X, y)
    assert ensemble.selection["chosen"] == "stack"
    assert ensemble.weights["level"] == pytest.approx(1.0)
    assert ensemble.selection["stack"]["out_of_fold"]["normalized_gini"] == pytest.approx(1.0)


def test_without_members_to_average_the_learnt_weights_are_used_unscored() -> None:
    X, y = _whales()
    ensemble = StackedEnsemble(_column_members()).fit(X, y)
    assert ensemble.selection == {"stack": {"weights": ensemble.weights}, "chosen": "stack"}


def test_too_few_validation_rows_keep_the_learnt_weights_and_say_why() -> None:
    X, y = _whales()
    ensemble = StackedEnsemble(_column_members(), average=["a", "b"], folds=5).fit(
        X.iloc[:9], y.iloc[:9]
    )
    assert ensemble.selection["chosen"] == "stack"
    assert "9 validation rows" in ensemble.selection["reason"]
    assert "learnt weights kept: 9 validation rows" in describe_weights(
        ensemble.weights, ensemble.selection
    )


def test_weighting_left_out_predicts_with_its_own_weights() -> None:
    X, y = _whales()
    ensemble = StackedEnsemble(_column_members(), average=["a", "b"]).fit(X, y)
    stack = ensemble.weighted("stack")
    expected = sum(w * X[n] for n, w in ensemble.selection["stack"]["weights"].items())
    np.testing.assert_allclose(stack.predict(X), np.maximum(expected, 0.0))
    assert ensemble.weights["level"] == 0.0  # the chosen weighting is untouched


def test_report_sentence_names_the_weighting_kept_and_both_scores() -> None:
    X, y = _whales()
    ensemble = StackedEnsemble(_column_members(), average=["a", "b"]).fit(X, y)
    text = describe_weights(ensemble.weights, ensemble.selection)
    oof = {n: ensemble.selection[n]["out_of_fold"]["normalized_gini"] for n in ("stack", "mean")}
    assert text.startswith("Ensemble weights: level 0.000, a 0.500, b 0.500 (the plain average:")
    assert f"{oof['stack']:.4f} for the learnt weights" in text
    assert f"{oof['mean']:.4f} for the plain average of a, b" in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"average": ["a", "nope"]}, r"average names \['nope'\]"), ({"folds": 1}, "folds must be")],
)
def test_bad_ensemble_options_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StackedEnsemble(_column_members(), **kwargs)


def test_saved_ensemble_keeps_its_weighting_choice(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    X, y, X_val, y_val = data
    ensemble = StackedEnsemble(_members(X, y), average=["xgb", "lgb"]).fit(X_val, y_val)
    ensemble.save(tmp_path / "e")
    loaded = StackedEnsemble.load(tmp_path / "e")
    assert loaded.selection == ensemble.selection
    assert loaded.selection["chosen"] in ("stack", "mean")
    np.testing.assert_allclose(ensemble.predict(X_val), loaded.predict(X_val))
