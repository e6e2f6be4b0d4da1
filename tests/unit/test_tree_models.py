"""XGBoost, LightGBM and the run-rate baseline behind one interface, saved natively and safely."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clv.data.generator import GeneratorConfig, generate
from clv.data.validation import validate_frame
from clv.evaluation.metrics import normalized_gini
from clv.features import rolling_cutoffs, training_set
from clv.models.base import MODELS, IntegrityError
from clv.models.baselines import RunRateBaseline
from clv.models.trees import LightGBMModel, XGBoostModel

HORIZON = 90


@pytest.fixture(scope="module")
def split() -> tuple[pd.DataFrame, pd.DataFrame]:
    # Flat seasonality: the training windows (spring, summer) then predict autumn at the same
    # level. With holidays on, the autumn window spends far more than the windows before it; how
    # the models learn that is measured in the benchmarks, not asserted here.
    data = generate(GeneratorConfig(n_customers=3000, seasonality=0.0), seed=13)
    tx = validate_frame(data.frame("transactions"))
    cutoffs = rolling_cutoffs(
        tx["timestamp"].max(), horizon_days=HORIZON, n_windows=3, step_days=90
    )
    stacked = training_set(tx, cutoffs=cutoffs, horizon_days=HORIZON)
    latest = stacked["cutoff"].max()
    return stacked[stacked["cutoff"] < latest], stacked[stacked["cutoff"] == latest]


def _xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    X = frame.drop(columns=["cutoff", "customer_id", "future_spend", "future_purchases"])
    return X, frame["future_spend"]


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_tree_models_rank_future_spend_and_never_predict_negative(
    family: str, split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    train, test = split
    X, y = _xy(train)
    X_test, y_test = _xy(test)
    model = MODELS[family]({"n_estimators": 150})
    model.fit(X, y, X_val=X_test.iloc[:500], y_val=y_test.iloc[:500])
    pred = model.predict(X_test)
    assert (pred >= 0).all()
    assert normalized_gini(y_test, pred) > 0.5
    # the aggregate is in the right range (a 25% band: this is a small data set)
    assert pred.sum() == pytest.approx(y_test.sum(), rel=0.25)


def test_run_rate_baseline_scales_past_share_by_the_recent_rate() -> None:
    X = pd.DataFrame({"net_total": [100.0, 300.0, 0.0], "spend_90d": [90.0, 90.0, 0.0]})
    # base spends 180 per 90 days = 2/day; over 30 days 60, split 1:3:0 -> 15, 45, 0
    pred = RunRateBaseline({"horizon_days": 30}).fit(X, pd.Series([0, 0, 0])).predict(X)
    np.testing.assert_allclose(pred, [15.0, 45.0, 0.0])


@pytest.mark.parametrize("cls", [XGBoostModel, LightGBMModel], ids=["xgboost", "lightgbm"])
def test_saved_model_loads_to_identical_predictions_and_refuses_tampering(
    cls: type[XGBoostModel] | type[LightGBMModel],
    split: tuple[pd.DataFrame, pd.DataFrame],
    tmp_path: Path,
) -> None:
    X, y = _xy(split[0])
    model = cls({"n_estimators": 30}).fit(X, y)
    model.save(tmp_path / "m")
    loaded = cls.load(tmp_path / "m")
    # scoring data may lack a column seen in training (e.g. a channel): it counts as missing
    X_score = X.iloc[:200].drop(columns=[X.columns[-1]])
    np.testing.assert_array_equal(model.predict(X_score), loaded.predict(X_score))
    native = next(p for p in (tmp_path / "m").iterdir() if p.name.startswith("model."))
    native.write_bytes(native.read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match="SHA-256 does not match"):
        cls.load(tmp_path / "m")


def test_loading_the_wrong_family_is_refused(
    split: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    X, y = _xy(split[0])
    XGBoostModel({"n_estimators": 5}).fit(X, y).save(tmp_path / "m")
    with pytest.raises(IntegrityError, match="holds a 'xgboost' model"):
        LightGBMModel.load(tmp_path / "m")


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (pd.DataFrame({"a": [1.0, 2.0]}), pd.Series([1.0]), "X has 2 rows but y has 1"),
        (pd.DataFrame({"a": [1.0, np.inf]}), pd.Series([1.0, 2.0]), "infinite values"),
        (pd.DataFrame({"a": [1.0, 2.0]}), pd.Series([1.0, -2.0]), "non-negative"),
        (pd.DataFrame({"a": []}), pd.Series([], dtype=float), "X is empty"),
    ],
    ids=["length-mismatch", "infinite-feature", "negative-target", "empty"],
)
def test_bad_training_input_is_rejected(X: pd.DataFrame, y: pd.Series, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        XGBoostModel().fit(X, y)


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
@pytest.mark.parametrize(
    ("feature", "change"),
    [("frequency", 3.0), ("purchase_days_90d", 2.0), ("days_since_last_purchase", -60.0)],
    ids=["more-frequent", "more-recent-activity", "more-recent-last-purchase"],
)
def test_more_recent_or_frequent_buyers_never_score_lower_all_else_equal(
    family: str, feature: str, change: float, split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    X, y = _xy(split[0])
    model = MODELS[family]({"n_estimators": 80}).fit(X, y)
    base = X.iloc[:300].copy()
    better = base.copy()
    better[feature] = (better[feature] + change).clip(lower=0)
    assert (model.predict(better) >= model.predict(base) - 1e-9).all()


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_refit_params_keep_the_rounds_early_stopping_chose(
    family: str, split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    train, test = split
    X, y = _xy(train)
    X_val, y_val = _xy(test)
    model = MODELS[family]({"n_estimators": 300, "learning_rate": 0.3})
    model.fit(X, y, X_val=X_val, y_val=y_val)
    rounds = model.refit_params()["n_estimators"]  # type: ignore[attr-defined]
    assert 1 <= rounds < 300
    unvalidated = MODELS[family]({"n_estimators": 40}).fit(X, y)
    assert unvalidated.refit_params()["n_estimators"] == 40  # type: ignore[attr-defined]
