"""Churn model: calibrated LightGBM vs the BG/NBD reference, monotone calibration, safe saving."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from clv.data.generator import GeneratorConfig, generate
from clv.data.validation import validate_frame
from clv.evaluation.metrics import churn_report
from clv.features import rolling_cutoffs, training_set
from clv.models.base import IntegrityError
from clv.models.churn import ChurnModel, btyd_churn_reference, churn_search_space

HORIZON = 90
NOT_FEATURES = ["cutoff", "customer_id", "future_spend", "future_purchases"]

Split = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]


@pytest.fixture(scope="module")
def split() -> Split:
    """Train on the oldest cut-off, calibrate on the middle one, test on the latest.

    Seasonality stays on: the test window (October to December) holds the holidays, so its churn
    rate differs from the windows before it, which is what calibration has to cope with in use.
    """
    data = generate(GeneratorConfig(n_customers=3000), seed=13)
    tx = validate_frame(data.frame("transactions"))
    cutoffs = rolling_cutoffs(
        tx["timestamp"].max(), horizon_days=HORIZON, n_windows=3, step_days=90
    )
    stacked = training_set(tx, cutoffs=cutoffs, horizon_days=HORIZON)
    latest, middle, oldest = cutoffs
    return (
        stacked[stacked["cutoff"] == oldest],
        stacked[stacked["cutoff"] == middle],
        stacked[stacked["cutoff"] == latest],
    )


def _xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    return frame.drop(columns=NOT_FEATURES), frame["future_purchases"] == 0


@pytest.fixture(scope="module")
def model(split: Split) -> ChurnModel:
    train, val, _ = split
    X, churned = _xy(train)
    X_val, churned_val = _xy(val)
    return ChurnModel().fit(X, churned, X_val=X_val, churned_val=churned_val)


def test_calibrated_churn_ranks_well_beats_btyd_and_is_better_calibrated(
    model: ChurnModel, split: Split
) -> None:
    test = split[2]
    X_test, churned = _xy(test)
    prob = model.predict_proba(X_test)
    assert prob.shape == (len(test),)
    assert ((prob >= 0.0) & (prob <= 1.0)).all()

    calibrated = churn_report(churned, prob)
    raw = churn_report(churned, model.predict_raw(X_test))
    btyd = churn_report(churned, btyd_churn_reference(test))
    numbers = (
        f"model auc={calibrated['auc']:.3f} brier={calibrated['brier']:.3f} "
        f"ece={calibrated['calibration_error']:.3f}; "
        f"uncalibrated ece={raw['calibration_error']:.3f}; "
        f"1 - P(alive) auc={btyd['auc']:.3f} brier={btyd['brier']:.3f} "
        f"ece={btyd['calibration_error']:.3f}"
    )
    assert calibrated["auc"] > 0.75, numbers
    assert calibrated["auc"] >= btyd["auc"] - 0.02, numbers
    assert (
        calibrated["calibration_error"] < raw["calibration_error"]
        or calibrated["calibration_error"] < 0.05
    ), numbers


def test_isotonic_calibration_is_monotone_in_the_raw_score(model: ChurnModel, split: Split) -> None:
    X_test, _ = _xy(split[2])
    order = np.argsort(model.predict_raw(X_test), kind="stable")
    calibrated = model.predict_proba(X_test)[order]
    assert (np.diff(calibrated) >= 0.0).all()
    # the stored breakpoints are themselves ordered and within [0, 1]
    assert (np.diff(model.X_thresholds_) > 0.0).all()
    assert (np.diff(model.y_thresholds_) >= 0.0).all()
    assert model.y_thresholds_.min() >= 0.0
    assert model.y_thresholds_.max() <= 1.0


def test_saved_model_loads_to_identical_probabilities_and_refuses_tampering(
    model: ChurnModel, split: Split, tmp_path: Path
) -> None:
    folder = tmp_path / "churn"
    model.save(folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        "calibration.json",
        "manifest.json",
        "model.txt",
    ]
    loaded = ChurnModel.load(folder)
    # scoring data may lack a column seen in training (e.g. a channel): it counts as missing
    X_test, _ = _xy(split[2])
    X_score = X_test.drop(columns=[X_test.columns[-1]])
    np.testing.assert_array_equal(model.predict_proba(X_score), loaded.predict_proba(X_score))
    np.testing.assert_array_equal(model.predict_raw(X_score), loaded.predict_raw(X_score))

    calibration_file = folder / "calibration.json"
    calibration = json.loads(calibration_file.read_text(encoding="utf-8"))
    calibration["y_thresholds"] = [1.0 - y for y in calibration["y_thresholds"]]
    calibration_file.write_text(json.dumps(calibration), encoding="utf-8")
    with pytest.raises(IntegrityError, match="SHA-256 does not match"):
        ChurnModel.load(folder)


_X = pd.DataFrame({"frequency": [0.0, 1.0, 2.0, 3.0], "recency": [0.0, 5.0, 9.0, 30.0]})
_GOOD = [1, 0, 1, 0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"churned": [1, 0, 2, 0]}, r"churned must be binary .*position 2 is 2\.0"),
        ({"churned": [1, 0, np.nan, 0]}, r"churned must be binary .*position 2 is nan"),
        ({"churned": ["yes", "no", "no", "no"]}, r"churned must hold 0/1 or booleans"),
        ({"churned": [1, 1, 1, 1]}, r"churned holds one class only: every customer is churned"),
        ({"churned_val": [0, 0, 0, 0]}, r"churned_val holds one class only: .* retained"),
        ({"churned": [1, 0, 1]}, r"X has 4 rows but churned has 3"),
        ({"X_val": None}, r"validation data is required: X_val not given"),
        ({"X_val": None, "churned_val": None}, r"X_val and churned_val not given"),
        ({"X": _X.assign(frequency=[0.0, np.inf, 1.0, 2.0])}, r"X column 'frequency' .*infinite"),
    ],
    ids=[
        "label-2",
        "label-nan",
        "label-text",
        "one-class",
        "one-class-validation",
        "length-mismatch",
        "no-X_val",
        "no-validation",
        "infinite-feature",
    ],
)
def test_bad_inputs_are_refused_with_the_reason(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"X": _X, "churned": _GOOD, "X_val": _X, "churned_val": _GOOD}
    args.update(kwargs)
    X, churned = args.pop("X"), args.pop("churned")
    with pytest.raises(ValueError, match=message):
        ChurnModel().fit(X, churned, **args)


def test_boolean_labels_are_accepted_and_unfitted_model_refuses_to_score() -> None:
    X = pd.DataFrame({"frequency": np.arange(40.0), "recency": np.arange(40.0) % 7})
    churned = pd.Series(np.arange(40) % 2 == 0)
    with pytest.raises(RuntimeError, match="not fitted"):
        ChurnModel().predict_proba(X)
    model = ChurnModel({"n_estimators": 5, "min_child_samples": 2}).fit(
        X, churned, X_val=X, churned_val=churned
    )
    prob = model.predict_proba(X)
    assert ((prob >= 0.0) & (prob <= 1.0)).all()


def test_non_binary_objective_is_refused() -> None:
    with pytest.raises(ValueError, match="'tweedie' is not a binary objective"):
        ChurnModel({"objective": "tweedie"})


def test_btyd_reference_is_one_minus_p_alive_and_needs_the_column() -> None:
    features = pd.DataFrame({"btyd_p_alive": [1.0, 0.25, 0.0]})
    np.testing.assert_allclose(btyd_churn_reference(features), [0.0, 0.75, 1.0])
    with pytest.raises(ValueError, match=r"lack column 'btyd_p_alive'.*include_btyd=True"):
        btyd_churn_reference(features.rename(columns={"btyd_p_alive": "p"}))
    with pytest.raises(ValueError, match=r"position 1 is nan"):
        btyd_churn_reference(pd.DataFrame({"btyd_p_alive": [0.5, np.nan]}))


def test_points_of_the_search_space_train_a_churn_classifier_of_probabilities() -> None:
    import optuna

    X = pd.DataFrame({"frequency": np.arange(60.0), "recency": np.arange(60.0) % 7})
    churned = pd.Series(np.arange(60) % 3 == 0)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(4):
        params = churn_search_space(study.ask())
        model = ChurnModel({**params, "n_estimators": 5}).fit(
            X, churned, X_val=X, churned_val=churned
        )
        # Still a binary classifier: its raw scores, not only the calibrated ones, are
        # probabilities.
        for scores in (model.predict_raw(X), model.predict_proba(X)):
            assert scores.shape == (len(X),)
            assert ((scores >= 0.0) & (scores <= 1.0)).all()
