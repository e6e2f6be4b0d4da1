"""Training as a library: cached frames, resumable Optuna studies, monitor hooks, bundles, scoring.

One generated data set (600 customers, seed 3) and one window plan are shared by the module. The
as-of date lies three months before the end of the data, so rows after it exist and must be ignored.
Studies tune LightGBM with 60 trees, so a trial costs a fraction of a second of CPU.
"""

from __future__ import annotations

import dataclasses
import gc
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import clv.training.dataset as dataset
import clv.training.hpo as hpo
from clv.data.generator import GeneratorConfig, generate
from clv.data.validation import validate_frame
from clv.evaluation.metrics import normalized_gini
from clv.models.base import IntegrityError
from clv.models.intervals import BinnedRatioInterval
from clv.models.keras_ziln import KerasZILNModel
from clv.models.registry import create
from clv.models.trees import (
    LIGHTGBM_DEFAULT_TRIAL,
    LightGBMModel,
    XGBoostModel,
    lightgbm_search_space,
)
from clv.training.bundle import SpendBundle, load_bundle, save_bundle
from clv.training.dataset import TARGET, TrainingFrames, build_training_frames
from clv.training.hpo import StudyOutcome, run_study
from clv.training.pipeline import TrainConfig, fingerprint, make_plan
from clv.training.scoring import SCORE_COLUMNS, score_customers
from clv.training.windows import WindowPlan, end_of_day, plan_windows

HORIZON = 60
AS_OF = end_of_day(pd.Timestamp("2025-09-30"))  # the generated data run to 2025-12-31
HASHES = {"transactions": "sha256-of-the-transactions-file"}
FIXED = {"n_estimators": 60}


# ---------------------------------------------------------------------------------------------
# Shared data
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    return validate_frame(generate(GeneratorConfig(n_customers=600), seed=3).frame("transactions"))


@pytest.fixture(scope="module")
def config() -> TrainConfig:
    return TrainConfig(
        horizon_days=HORIZON, as_of=AS_OF, families=("lightgbm",), n_windows=4, step_days=45
    )


@pytest.fixture(scope="module")
def plan(transactions: pd.DataFrame, config: TrainConfig) -> WindowPlan:
    return make_plan(transactions, config)


@pytest.fixture(scope="module")
def frames(transactions: pd.DataFrame, plan: WindowPlan) -> TrainingFrames:
    return build_training_frames(transactions, plan=plan, input_hashes=HASHES, cache_dir=None)


@pytest.fixture(scope="module")
def study_inputs(frames: TrainingFrames) -> dict[str, Any]:
    fit, validation = frames.fit, frames.validation
    return {
        "X_fit": frames.X(fit),
        "y_fit": fit[TARGET],
        "X_val": frames.X(validation),
        "y_val": validation[TARGET],
        "fixed_params": FIXED,
    }


def _finished(outcome: StudyOutcome) -> list[int]:
    return [t.number for t in outcome.trials if t.state in ("COMPLETE", "PRUNED")]


# ---------------------------------------------------------------------------------------------
# Training frames and their cache
# ---------------------------------------------------------------------------------------------


def test_frames_hold_every_role_with_targets_from_each_window(
    frames: TrainingFrames, transactions: pd.DataFrame, plan: WindowPlan
) -> None:
    assert len(frames.fit) > 0 and len(frames.validation) > 0 and len(frames.holdout) > 0
    assert set(frames.fit["cutoff"]) == set(plan.fit)
    # the holdout target is the spend in (holdout, as_of], floored at 0
    window = transactions[
        (transactions["timestamp"] > plan.holdout) & (transactions["timestamp"] <= plan.as_of)
    ]
    expected = window.groupby("customer_id")["amount"].sum().clip(lower=0.0)
    holdout = frames.holdout.set_index("customer_id")[TARGET]
    np.testing.assert_allclose(holdout, expected.reindex(holdout.index).fillna(0.0))
    assert holdout.sum() > 0


def test_second_build_with_the_same_inputs_reads_the_cache(
    transactions: pd.DataFrame, plan: WindowPlan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = build_training_frames(transactions, plan=plan, input_hashes=HASHES, cache_dir=tmp_path)
    assert (tmp_path / f"training-{first.cache_key}.parquet").exists()

    def refuse(*args: object, **kwargs: object) -> pd.DataFrame:
        raise AssertionError("features were built again instead of read from the cache")

    monkeypatch.setattr(dataset, "training_set", refuse)
    second = build_training_frames(transactions, plan=plan, input_hashes=HASHES, cache_dir=tmp_path)
    assert second.cache_key == first.cache_key
    pd.testing.assert_frame_equal(second.rows, first.rows)
    # cut-offs read back exactly (to the microsecond), so the roles split the same way
    assert (len(second.fit), len(second.validation), len(second.holdout)) == (
        len(first.fit),
        len(first.validation),
        len(first.holdout),
    )


@pytest.mark.parametrize(
    "change",
    ["transactions-hash", "extra-input-table", "plan"],
    ids=["other-transactions-hash", "extra-input-table", "other-plan"],
)
def test_changed_inputs_or_plan_miss_the_cache(
    change: str,
    transactions: pd.DataFrame,
    plan: WindowPlan,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    builds: list[int] = []
    real = dataset.training_set

    def counting(*args: Any, **kwargs: Any) -> pd.DataFrame:
        builds.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(dataset, "training_set", counting)
    build_training_frames(transactions, plan=plan, input_hashes=HASHES, cache_dir=tmp_path)
    hashes, other_plan = dict(HASHES), plan
    if change == "transactions-hash":
        hashes["transactions"] = "sha256-of-a-changed-file"
    elif change == "extra-input-table":
        hashes["customers"] = "sha256-of-a-customers-file"
    else:
        other_plan = plan_windows(
            transactions["timestamp"].min(),
            as_of=AS_OF,
            horizon_days=HORIZON,
            n_windows=3,
            step_days=45,
        )
    build_training_frames(transactions, plan=other_plan, input_hashes=hashes, cache_dir=tmp_path)
    assert len(builds) == 2
    assert len(list(tmp_path.glob("training-*.parquet"))) == 2


def test_transactions_after_as_of_never_change_the_frames(
    transactions: pd.DataFrame, plan: WindowPlan, frames: TrainingFrames
) -> None:
    late = transactions.iloc[[0, 0]].reset_index(drop=True)
    late["timestamp"] = [AS_OF + pd.Timedelta(microseconds=1), AS_OF + pd.Timedelta(days=1)]
    late["amount"] = [1e7, 1e7]
    late["order_id"] = ["late-order-1", "late-order-2"]
    late.loc[1, "customer_id"] = "C99999999"  # a customer first seen after as_of
    with_late = pd.concat([transactions, late], ignore_index=True)
    rebuilt = build_training_frames(with_late, plan=plan, input_hashes=HASHES, cache_dir=None)
    pd.testing.assert_frame_equal(rebuilt.rows, frames.rows)
    assert rebuilt.rows[TARGET].max() < 1e7


def test_a_quiet_spell_just_before_as_of_does_not_stop_training(
    transactions: pd.DataFrame, config: TrainConfig
) -> None:
    ts = transactions["timestamp"]
    quiet = transactions[~((ts > AS_OF - pd.Timedelta(days=3)) & (ts <= AS_OF))]
    plan = make_plan(quiet, config)  # accepted: the data run three months past as_of
    rebuilt = build_training_frames(quiet, plan=plan, input_hashes=HASHES, cache_dir=None)
    assert len(rebuilt.holdout) > 0


# ---------------------------------------------------------------------------------------------
# Optuna studies
# ---------------------------------------------------------------------------------------------


@dataclass
class ResumedStudy:
    """A study run to 2 trials, killed during its third, then resumed to 3 finished trials."""

    first: StudyOutcome
    resumed: StudyOutcome
    interrupted_number: int
    storage: str
    model_root: Path


@pytest.fixture(scope="module")
def resumed_study(
    study_inputs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> ResumedStudy:
    import optuna

    folder = tmp_path_factory.mktemp("optuna-sqlite")
    storage = f"sqlite:///{folder / 'optuna.db'}"
    common = {
        **study_inputs,
        "study_name": "clv-test-lightgbm",
        "storage": storage,
        "model_root": folder / "models",
    }
    first = run_study("lightgbm", n_trials=2, **common)
    # A kill during the next trial leaves it RUNNING in the storage, its parameters sampled.
    interrupted = optuna.load_study(study_name="clv-test-lightgbm", storage=storage).ask()
    lightgbm_search_space(interrupted)
    resumed = run_study("lightgbm", n_trials=3, **common)
    return ResumedStudy(first, resumed, interrupted.number, storage, folder / "models")


def test_a_resumed_study_runs_only_the_missing_trial(resumed_study: ResumedStudy) -> None:
    assert resumed_study.first.new_trials == 2
    assert _finished(resumed_study.first) == [0, 1]
    assert resumed_study.resumed.new_trials == 1
    assert len(_finished(resumed_study.resumed)) == 3
    assert resumed_study.resumed.study_name == "clv-test-lightgbm"


def test_a_trial_left_running_is_marked_failed_and_not_counted(
    resumed_study: ResumedStudy,
) -> None:
    assert resumed_study.interrupted_number == 2
    states = {t.number: t.state for t in resumed_study.resumed.trials}
    assert states == {0: "COMPLETE", 1: "COMPLETE", 2: "FAIL", 3: "COMPLETE"}
    assert _finished(resumed_study.resumed) == [0, 1, 3]


def test_a_complete_study_runs_no_new_trial(
    resumed_study: ResumedStudy, study_inputs: dict[str, Any]
) -> None:
    again = run_study(
        "lightgbm",
        n_trials=3,
        study_name="clv-test-lightgbm",
        storage=resumed_study.storage,
        model_root=resumed_study.model_root,
        **study_inputs,
    )
    assert again.new_trials == 0
    assert len(again.trials) == 4
    assert again.best_value == resumed_study.resumed.best_value


def test_trial_zero_carries_the_default_parameters(resumed_study: ResumedStudy) -> None:
    trial_zero = resumed_study.resumed.trials[0]
    assert trial_zero.number == 0
    assert trial_zero.params == LIGHTGBM_DEFAULT_TRIAL
    assert resumed_study.resumed.trials[1].params != LIGHTGBM_DEFAULT_TRIAL


def test_trials_report_the_validation_gini_every_25_rounds(
    resumed_study: ResumedStudy,
) -> None:
    # 60 trees, checked every 25 rounds; early stopping (patience 30) cannot stop before round 31
    completed = [t for t in resumed_study.resumed.trials if t.state == "COMPLETE"]
    assert len(completed) == 3
    for trial in completed:
        assert 25 in trial.intermediate, trial
        assert set(trial.intermediate) <= {25, 50}
        assert all(-1.0 <= v <= 1.0 for v in trial.intermediate.values())


def test_best_model_loads_and_predicts_its_validation_score(
    resumed_study: ResumedStudy, study_inputs: dict[str, Any]
) -> None:
    outcome = resumed_study.resumed
    best = max((t for t in outcome.trials if t.value is not None), key=lambda t: t.value or 0.0)
    assert outcome.best_value == best.value
    assert outcome.model_dir.name == f"trial-{best.number}"
    assert outcome.best_params["n_estimators"] == FIXED["n_estimators"]
    model = outcome.load_model()
    predicted = model.predict(study_inputs["X_val"])
    assert predicted.shape == (len(study_inputs["X_val"]),)
    assert (predicted >= 0).all()
    assert normalized_gini(study_inputs["y_val"], predicted) == pytest.approx(outcome.best_value)


def test_a_study_refits_the_best_trial_when_its_saved_model_is_gone(
    resumed_study: ResumedStudy, study_inputs: dict[str, Any], tmp_path: Path
) -> None:
    # The same study on another machine: its storage is shared, its model folder is not.
    storage_file = resumed_study.storage.removeprefix("sqlite:///")
    shutil.copy(storage_file, tmp_path / "optuna.db")
    elsewhere = run_study(
        "lightgbm",
        n_trials=3,
        study_name="clv-test-lightgbm",
        storage=f"sqlite:///{tmp_path / 'optuna.db'}",
        model_root=tmp_path / "models",
        **study_inputs,
    )
    assert elsewhere.new_trials == 0
    best_trial = resumed_study.resumed.model_dir.name
    assert elsewhere.model_dir == tmp_path / "models" / "clv-test-lightgbm" / best_trial
    expected = resumed_study.resumed.load_model().predict(study_inputs["X_val"])
    np.testing.assert_allclose(elsewhere.load_model().predict(study_inputs["X_val"]), expected)


def test_keras_ziln_trials_tune_one_network_and_the_best_is_refitted_as_the_deep_ensemble(
    study_inputs: dict[str, Any], tmp_path: Path
) -> None:
    common = {
        **study_inputs,
        "fixed_params": {"epochs": 4, "patience": 2},
        "study_name": "clv-test-ziln",
        "storage": f"sqlite:///{tmp_path / 'optuna.db'}",
        "model_root": tmp_path / "models",
    }
    outcome = run_study("keras_ziln", n_trials=2, **common)

    best = max((t for t in outcome.trials if t.value is not None), key=lambda t: t.value or 0.0)
    trial_model = KerasZILNModel.load(outcome.model_dir.parent / f"trial-{best.number}")
    final = outcome.load_model()
    assert isinstance(final, KerasZILNModel)
    assert trial_model.params["n_members"] == 1
    assert final.params["n_members"] == 3  # the default: nothing fixed it
    assert "n_members" not in outcome.best_params  # the trials' setting is not the model's
    assert outcome.model_dir.name == f"final-trial-{best.number}"
    # Same data, parameters and seed: the ensemble's first member is the tuned network itself.
    X_val = study_inputs["X_val"]
    members = final.predict_distribution(X_val)
    alone = trial_model.predict_distribution(X_val)
    for name in ("p_positive", "mu", "sigma"):
        np.testing.assert_allclose(members[f"{name}_0"], alone[name], rtol=1e-5, atol=1e-6)
    # Running the finished study again reuses the refit instead of training it a second time.
    stamp = (outcome.model_dir / "model.keras").stat().st_mtime_ns
    again = run_study("keras_ziln", n_trials=2, **common)
    assert again.new_trials == 0
    assert again.model_dir == outcome.model_dir
    assert (again.model_dir / "model.keras").stat().st_mtime_ns == stamp


def test_defaults_still_run_when_the_first_run_was_killed_during_trial_zero(
    study_inputs: dict[str, Any], tmp_path: Path
) -> None:
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    # What run_study leaves behind when killed during its first trial.
    study = optuna.create_study(study_name="killed", storage=storage, direction="maximize")
    study.enqueue_trial(LIGHTGBM_DEFAULT_TRIAL)
    killed = study.ask()
    lightgbm_search_space(killed)
    assert killed.params == LIGHTGBM_DEFAULT_TRIAL

    resumed = run_study(
        "lightgbm",
        n_trials=1,
        study_name="killed",
        storage=storage,
        model_root=tmp_path / "models",
        **study_inputs,
    )

    completed = [t for t in resumed.trials if t.state == "COMPLETE"]
    assert any(t.params == LIGHTGBM_DEFAULT_TRIAL for t in completed)


class _RunawayStudyError(Exception):
    """Raised by the test when run_study starts far more trials than it was asked for."""


def test_a_study_whose_every_trial_fails_stops_with_an_error(
    study_inputs: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    X_fit = study_inputs["X_fit"].copy()
    X_fit.iloc[0, 0] = np.inf
    created: list[str] = []

    def counting_create(family: str, params: Any = None) -> Any:
        created.append(family)
        if len(created) > 6:  # 2 trials were asked for
            raise _RunawayStudyError(f"{len(created)} trials started")
        return create(family, params)

    monkeypatch.setattr(hpo, "create", counting_create)
    with pytest.raises(ValueError, match="no trial completed"):
        run_study(
            "lightgbm",
            **{**study_inputs, "X_fit": X_fit},
            n_trials=2,
            study_name="failing",
            storage=f"sqlite:///{tmp_path / 'optuna.db'}",
            model_root=tmp_path / "models",
        )


def test_a_constant_validation_target_is_refused(
    study_inputs: dict[str, Any], tmp_path: Path
) -> None:
    constant = pd.Series(0.0, index=study_inputs["y_val"].index)
    with pytest.raises(ValueError, match="same for every customer"):
        run_study(
            "lightgbm",
            **{**study_inputs, "y_val": constant},
            n_trials=1,
            study_name="constant",
            storage=f"sqlite:///{tmp_path / 'optuna.db'}",
            model_root=tmp_path / "models",
        )


@pytest.mark.parametrize(
    ("family", "n_trials", "message"),
    [("catboost", 1, "no search space for 'catboost'"), ("lightgbm", 0, "at least 1, got 0")],
    ids=["unknown-family", "zero-trials"],
)
def test_bad_study_arguments_are_refused(
    family: str, n_trials: int, message: str, study_inputs: dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=message):
        run_study(
            family,
            **study_inputs,
            n_trials=n_trials,
            study_name="bad",
            storage=f"sqlite:///{tmp_path / 'optuna.db'}",
            model_root=tmp_path / "models",
        )


@pytest.fixture
def postgres_storage(postgres_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Optuna's URL for a throwaway PostgreSQL database; its pooled connections closed after."""
    # run_study makes its own RDBStorage; keep them so their pooled connections can be closed
    storages: list[Any] = []
    real_storage = hpo._storage

    def recording_storage(url: str) -> Any:
        storages.append(real_storage(url))
        return storages[-1]

    monkeypatch.setattr(hpo, "_storage", recording_storage)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{postgres_database}"
    finally:
        for storage in storages:
            storage.engine.dispose()
        storages.clear()
        gc.collect()


def test_a_study_on_postgresql_resumes_with_only_the_missing_trial(
    postgres_storage: str, study_inputs: dict[str, Any], tmp_path: Path
) -> None:
    import optuna

    common = {
        **study_inputs,
        "study_name": "clv-test-postgres",
        "storage": postgres_storage,
        "model_root": tmp_path / "models",
    }
    first = run_study("lightgbm", n_trials=2, **common)
    resumed = run_study("lightgbm", n_trials=3, **common)

    assert (first.new_trials, resumed.new_trials) == (2, 1)
    assert _finished(resumed) == [0, 1, 2]
    assert resumed.trials[0].params == LIGHTGBM_DEFAULT_TRIAL
    stored = optuna.load_study(study_name="clv-test-postgres", storage=postgres_storage)
    assert len(stored.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 3
    assert len(resumed.load_model().predict(study_inputs["X_val"])) == len(study_inputs["X_val"])


# ---------------------------------------------------------------------------------------------
# The monitor hook (pruning)
# ---------------------------------------------------------------------------------------------


TREES: dict[str, type[XGBoostModel | LightGBMModel]] = {
    "xgboost": XGBoostModel,
    "lightgbm": LightGBMModel,
}


class _StopTrainingError(Exception):
    """What a pruner raises from the monitor."""


@pytest.fixture(scope="module")
def tree_monitor_calls(study_inputs: dict[str, Any]) -> dict[str, list[tuple[int, np.ndarray]]]:
    """Per tree family: what the monitor saw during a 60-round fit, checked every 20 rounds."""
    calls: dict[str, list[tuple[int, np.ndarray]]] = {}
    for family in ("xgboost", "lightgbm"):
        seen = calls.setdefault(family, [])

        def record(step: int, predicted: np.ndarray, seen: list[Any] = seen) -> None:
            seen.append((step, np.array(predicted)))

        # patience beyond the 60 rounds: early stopping cannot cut the sequence short
        create(family, {"n_estimators": 60, "early_stopping_rounds": 100}).fit(
            study_inputs["X_fit"],
            study_inputs["y_fit"],
            X_val=study_inputs["X_val"],
            y_val=study_inputs["y_val"],
            monitor=record,
            monitor_every=20,
        )
    return calls


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_tree_monitor_sees_validation_predictions_every_20_rounds(
    family: str,
    tree_monitor_calls: dict[str, list[tuple[int, np.ndarray]]],
    study_inputs: dict[str, Any],
) -> None:
    seen = tree_monitor_calls[family]
    assert [step for step, _ in seen][:2] == [20, 40]
    for _, predicted in seen:
        assert predicted.shape == (len(study_inputs["X_val"]),)
        assert (predicted >= 0).all()
    assert not np.allclose(seen[0][1], seen[1][1])  # the model as it stands at each check


@pytest.mark.parametrize(
    "family",
    [
        "xgboost",
        "lightgbm",
    ],
)
def test_tree_monitor_sees_the_last_round_when_training_runs_to_the_end(
    family: str, tree_monitor_calls: dict[str, list[tuple[int, np.ndarray]]]
) -> None:
    assert [step for step, _ in tree_monitor_calls[family]] == [20, 40, 60]


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_tree_monitor_steps_stop_where_early_stopping_does(
    family: str, study_inputs: dict[str, Any]
) -> None:
    steps: list[int] = []
    model = TREES[family]({"n_estimators": 60, "early_stopping_rounds": 30})
    model.fit(
        study_inputs["X_fit"],
        study_inputs["y_fit"],
        X_val=study_inputs["X_val"],
        y_val=study_inputs["y_val"],
        monitor=lambda step, predicted: steps.append(step),
        monitor_every=20,
    )
    # Training stops 30 rounds after the best one; every multiple of 20 before that is checked.
    assert model.best_rounds is not None and model.best_rounds + 30 < 60  # it did stop early
    assert steps == [s for s in (20, 40, 60) if s <= model.best_rounds + 30]
    assert steps


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_an_exception_in_the_tree_monitor_stops_fit(
    family: str, study_inputs: dict[str, Any]
) -> None:
    steps: list[int] = []

    def prune(step: int, predicted: np.ndarray) -> None:
        steps.append(step)
        raise _StopTrainingError(f"pruned at {step}")

    with pytest.raises(_StopTrainingError, match="pruned at 20"):
        create(family, {"n_estimators": 60}).fit(
            study_inputs["X_fit"],
            study_inputs["y_fit"],
            X_val=study_inputs["X_val"],
            y_val=study_inputs["y_val"],
            monitor=prune,
            monitor_every=20,
        )
    assert steps == [20]


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_tree_monitor_is_never_called_without_validation_data(
    family: str, study_inputs: dict[str, Any]
) -> None:
    steps: list[int] = []
    model = create(family, {"n_estimators": 60})
    model.fit(
        study_inputs["X_fit"],
        study_inputs["y_fit"],
        monitor=lambda step, predicted: steps.append(step),
        monitor_every=20,
    )
    assert steps == []
    assert len(model.predict(study_inputs["X_val"])) == len(study_inputs["X_val"])


ZILN_FAST = {"hidden_units": [8], "epochs": 4, "batch_size": 256, "seed": 1}


def test_keras_monitor_sees_validation_predictions_every_2_epochs(
    study_inputs: dict[str, Any],
) -> None:
    X_val = study_inputs["X_val"]
    seen: list[tuple[int, np.ndarray]] = []
    KerasZILNModel(ZILN_FAST).fit(
        study_inputs["X_fit"],
        study_inputs["y_fit"],
        X_val=X_val,
        y_val=study_inputs["y_val"],
        monitor=lambda step, predicted: seen.append((step, np.array(predicted))),
        monitor_every=2,
    )
    assert [step for step, _ in seen] == [2, 4]
    for _, predicted in seen:
        assert predicted.shape == (len(X_val),)
        assert (predicted >= 0).all()


def test_keras_monitor_is_never_called_without_validation_data(
    study_inputs: dict[str, Any],
) -> None:
    steps: list[int] = []
    KerasZILNModel(ZILN_FAST).fit(
        study_inputs["X_fit"],
        study_inputs["y_fit"],
        monitor=lambda step, predicted: steps.append(step),
        monitor_every=2,
    )
    assert steps == []


# ---------------------------------------------------------------------------------------------
# Bundles
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spend_bundle(frames: TrainingFrames, plan: WindowPlan) -> SpendBundle:
    fit, validation = frames.fit, frames.validation
    X_val, y_val = frames.X(validation), validation[TARGET]
    model = LightGBMModel(FIXED).fit(frames.X(fit), fit[TARGET], X_val=X_val, y_val=y_val)
    return SpendBundle(
        model=model,
        family="lightgbm",
        feature_columns=frames.feature_columns,
        horizon_days=HORIZON,
        as_of=plan.as_of,
        level_factor=1.05,
        intervals=BinnedRatioInterval.fit(y_val, model.predict(X_val)),
        info={"fingerprint": "test-run", "plan": plan.to_dict()},
    )


def test_a_saved_bundle_loads_to_identical_predictions(
    spend_bundle: SpendBundle, frames: TrainingFrames, tmp_path: Path
) -> None:
    loaded = load_bundle(save_bundle(spend_bundle, tmp_path / "bundle"))
    assert isinstance(loaded, SpendBundle)
    X_hold = frames.X(frames.holdout)
    pd.testing.assert_frame_equal(
        loaded.predict_frame(X_hold), spend_bundle.predict_frame(X_hold), check_exact=True
    )
    assert loaded.feature_columns == spend_bundle.feature_columns
    assert (loaded.family, loaded.horizon_days, loaded.level_factor) == ("lightgbm", HORIZON, 1.05)
    assert loaded.as_of == AS_OF
    assert loaded.intervals == spend_bundle.intervals
    assert loaded.info == spend_bundle.info


@pytest.mark.parametrize(
    "name",
    ["bundle.json", "intervals.json", "model/model.txt", "model/manifest.json"],
    ids=["bundle-json", "intervals-json", "native-model", "model-manifest"],
)
def test_one_changed_byte_anywhere_in_a_bundle_refuses_the_load(
    name: str, spend_bundle: SpendBundle, tmp_path: Path
) -> None:
    folder = save_bundle(spend_bundle, tmp_path / "bundle")
    target = folder / name
    content = bytearray(target.read_bytes())
    content[len(content) // 2] ^= 0x01
    target.write_bytes(bytes(content))
    with pytest.raises(IntegrityError, match="SHA-256"):
        load_bundle(folder)


def test_a_saved_bundle_holds_no_pickle(spend_bundle: SpendBundle, tmp_path: Path) -> None:
    folder = save_bundle(spend_bundle, tmp_path / "bundle")
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {"bundle.json", "intervals.json", "manifest.json", "model/model.txt"} <= files
    assert not list(folder.rglob("*.pkl")) and not list(folder.rglob("*.pickle"))


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


def _buyers(transactions: pd.DataFrame, as_of: pd.Timestamp) -> list[str]:
    seen = transactions[(transactions["timestamp"] <= as_of) & (transactions["amount"] > 0)]
    return sorted(seen["customer_id"].astype(str).unique())


def test_scores_have_one_row_per_customer_who_bought_by_as_of(
    spend_bundle: SpendBundle, transactions: pd.DataFrame
) -> None:
    scores = score_customers(transactions, spend=spend_bundle, horizon_days=HORIZON, as_of=AS_OF)
    assert tuple(scores.columns[: len(SCORE_COLUMNS)]) == SCORE_COLUMNS
    assert scores["customer_id"].tolist() == _buyers(transactions, AS_OF)
    assert (scores["predicted_clv"] >= 0).all()
    # ratio intervals need not contain the prediction, but they are ordered
    assert (scores["predicted_clv_lower"] <= scores["predicted_clv_upper"]).all()
    assert (scores["predicted_clv_lower"] >= 0).all()
    assert (scores["as_of"] == AS_OF).all()
    assert (scores["horizon_days"] == HORIZON).all()


def test_scoring_without_as_of_uses_every_transaction(
    spend_bundle: SpendBundle, transactions: pd.DataFrame
) -> None:
    scores = score_customers(transactions, spend=spend_bundle, horizon_days=HORIZON)
    last = transactions["timestamp"].max()
    assert scores["customer_id"].tolist() == _buyers(transactions, last)
    assert (scores["as_of"] == end_of_day(last)).all()


def test_scoring_with_another_horizon_names_both_horizons(
    spend_bundle: SpendBundle, transactions: pd.DataFrame
) -> None:
    with pytest.raises(ValueError, match=r"60-day horizon, not 90") as err:
        score_customers(transactions, spend=spend_bundle, horizon_days=90)
    assert "--horizon-days 60" in str(err.value)


def test_scoring_before_the_first_transaction_is_refused(
    spend_bundle: SpendBundle, transactions: pd.DataFrame
) -> None:
    before = transactions["timestamp"].min() - pd.Timedelta(days=1)
    with pytest.raises(ValueError, match="no transaction on or before"):
        score_customers(transactions, spend=spend_bundle, horizon_days=HORIZON, as_of=before)


def test_customer_age_of_a_single_cohort_is_left_out_of_the_learnt_columns_by_default(
    transactions: pd.DataFrame,
) -> None:
    first = transactions.groupby("customer_id")["timestamp"].transform("min")
    cohort = transactions[first <= transactions["timestamp"].min() + pd.Timedelta(days=90)]
    config = TrainConfig(
        horizon_days=HORIZON,
        as_of=end_of_day(pd.Timestamp("2024-03-31")),
        families=("lightgbm",),
        n_windows=4,
        step_days=30,
    )
    plan = make_plan(cohort, config)
    kept = build_training_frames(
        cohort, plan=plan, input_hashes=HASHES, cache_dir=None, max_extrapolated_share=None
    )
    guarded = build_training_frames(cohort, plan=plan, input_hashes=HASHES, cache_dir=None)

    assert kept.out_of_range["T"] > 0.9 and guarded.out_of_range == kept.out_of_range
    assert guarded.extrapolated["T"] > 0.9
    assert "T" not in guarded.learnt_columns and "T" not in guarded.learnt_X(guarded.fit)
    # A training run hands the frames its config's share: by default the same guard.
    as_trained = dataclasses.replace(kept, max_extrapolated_share=config.max_extrapolated_share)
    assert as_trained.learnt_columns == guarded.learnt_columns
    # Bundles still receive every feature (references read their own), and monotone
    # features stay with the learnt models.
    assert "T" in guarded.feature_columns
    assert "days_since_last_purchase" in guarded.learnt_columns
    assert kept.extrapolated == {} and kept.learnt_columns == kept.feature_columns


def test_mixed_cohorts_keep_customer_age_in_range(transactions, plan) -> None:  # type: ignore[no-untyped-def]
    frames = build_training_frames(transactions, plan=plan, input_hashes=HASHES, cache_dir=None)
    assert "T" not in frames.out_of_range and "T" in frames.learnt_columns
    # This short plan's fit windows span three months of calendar positions: the holdout's
    # position lies outside them, so the calendar columns are the ones left out.
    assert set(frames.extrapolated) <= {
        "horizon_doy_sin",
        "horizon_doy_cos",
        "horizon_peak_days",
    } | {c for c in frames.feature_columns if "seasonal" in c}
    assert set(frames.learnt_columns) == set(frames.feature_columns) - set(frames.extrapolated)


@pytest.mark.parametrize("share", [None, 1.0])
def test_every_feature_is_learnt_from_when_the_share_is_none_or_one(
    frames: TrainingFrames, share: float | None
) -> None:
    keep_all = dataclasses.replace(frames, max_extrapolated_share=share)
    assert keep_all.extrapolated == {}
    assert keep_all.learnt_columns == keep_all.feature_columns


# ---------------------------------------------------------------------------------------------
# Configuration, plan and fingerprint
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"horizon_days": 0}, "--horizon-days must be at least 1, got 0"),
        ({"horizon_days": 90, "n_trials": 0}, "--trials must be at least 1, got 0"),
        ({"horizon_days": 90, "families": ("catboost",)}, r"unknown model families \['catboost'\]"),
        ({"horizon_days": 90, "families": ()}, "at least one model family"),
        ({"horizon_days": 90, "coverage": 1.0}, "coverage must be strictly between 0 and 1"),
        (
            {"horizon_days": 90, "max_extrapolated_share": 0.0},
            r"max_extrapolated_share must be in \(0, 1\] \(or None to keep every feature\)",
        ),
        ({"horizon_days": 90, "ziln_members": 0}, "ziln_members must be at least 1, got 0"),
        ({"horizon_days": 90, "ziln_members": 2.5}, "ziln_members must be a whole number"),
        ({"horizon_days": 90, "ziln_sigma_cap": 0.0}, "ziln_sigma_cap must be a positive number"),
        ({"horizon_days": 90, "ziln_sigma_cap": "2"}, "ziln_sigma_cap must be a positive number"),
    ],
    ids=[
        "zero-horizon",
        "zero-trials",
        "unknown-family",
        "no-family",
        "full-coverage",
        "zero-extrapolated-share",
        "no-network",
        "half-a-network",
        "zero-sigma-cap",
        "text-sigma-cap",
    ],
)
def test_train_config_rejects_bad_values_with_a_message(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_plan_defaults_to_the_end_of_the_last_day_and_refuses_a_later_as_of(
    transactions: pd.DataFrame,
) -> None:
    last = transactions["timestamp"].max()
    plan = make_plan(transactions, TrainConfig(horizon_days=HORIZON, n_windows=3))
    assert plan.as_of == end_of_day(last)
    assert plan.holdout == end_of_day(last) - pd.Timedelta(days=HORIZON)
    later = TrainConfig(horizon_days=HORIZON, as_of=last + pd.Timedelta(days=2))
    with pytest.raises(ValueError, match=r"--as-of .* is after the last transaction"):
        make_plan(transactions, later)


FIRST = pd.Timestamp("2023-01-01 09:00")


def _fingerprint(
    *,
    data_hash: str = "aaa",
    horizon_days: int = 60,
    n_trials: int = 5,
    as_of: str = "2025-06-30 23:59:59",
    customers_hash_first: bool = False,
) -> str:
    hashes = {"transactions": data_hash, "customers": "bbb"}
    if customers_hash_first:
        hashes = {"customers": "bbb", "transactions": data_hash}
    config = TrainConfig(horizon_days=horizon_days, as_of=pd.Timestamp(as_of), n_trials=n_trials)
    plan = plan_windows(
        FIRST,
        as_of=pd.Timestamp(as_of),
        horizon_days=horizon_days,
        n_windows=config.n_windows,
        step_days=config.step_days,
    )
    return fingerprint(hashes, plan, config)


def test_fingerprint_is_stable_for_equal_inputs() -> None:
    assert _fingerprint() == _fingerprint()
    assert _fingerprint() == _fingerprint(customers_hash_first=True)


@pytest.mark.parametrize(
    "change",
    [
        {"data_hash": "ccc"},
        {"horizon_days": 90},
        {"n_trials": 6},
        {"as_of": "2025-07-31 23:59:59"},
    ],
    ids=["data-hash", "horizon", "trials", "as-of"],
)
def test_fingerprint_changes_with_data_horizon_trials_or_as_of(change: dict[str, Any]) -> None:
    assert _fingerprint(**change) != _fingerprint()


def test_train_config_fixes_the_deep_ensembles_size_and_sigma_cap_for_keras_ziln_only() -> None:
    config = TrainConfig(horizon_days=90)
    assert config.ziln_members == 3
    assert config.family_params("keras_ziln") == {"n_members": 3, "sigma_cap": 1.5}
    assert config.family_params("xgboost") == config.family_params("lightgbm") == {}
    assert TrainConfig(horizon_days=90, ziln_members=1, ziln_sigma_cap=None).family_params(
        "keras_ziln"
    ) == {"n_members": 1, "sigma_cap": None}
