"""One Optuna study per model family: TPE sampling, pruning on validation scores, resumable.

Studies live in an RDB storage (SQLite under the data home by default, PostgreSQL in production;
``CLV_OPTUNA_STORAGE``). A study is named after the training run's fingerprint, so starting a
killed run again loads the same study: finished trials count, trials the kill interrupted are
marked failed, and only the missing trials run. Each finished trial's model is saved natively
beside the storage, so the best one is loaded, not retrained.

The objective is the normalised Gini on the validation window (the primary metric of the
registry); the models report it every few rounds or epochs, and the median pruner stops trials
that fall behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clv.data.io import write_folder_atomic
from clv.evaluation.metrics import normalized_gini
from clv.models.base import MODELS, CLVModel, IntegrityError
from clv.models.registry import SEARCH_SPACES, TUNING_PARAMS, create

if TYPE_CHECKING:
    from distributed import Client

logger = logging.getLogger(__name__)

#: Rounds (trees) or epochs (networks) between pruning checks, and before the first one counts.
MONITOR_EVERY = {"xgboost": 25, "lightgbm": 25, "keras_ziln": 5}
WARMUP_STEPS = {"xgboost": 50, "lightgbm": 50, "keras_ziln": 10}


@dataclass
class TrialRecord:
    """What one trial did (for the MLflow child run).

    Attributes
    ----------
    number : int
        Trial number in its study.
    state : str
        ``COMPLETE``, ``PRUNED`` or ``FAIL``.
    value : float or None
        Validation Gini of a completed trial.
    params : dict
        Sampled parameters.
    intermediate : dict of int to float
        Validation Gini reported at each checked step.
    seconds : float or None
        Wall time.
    """

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    intermediate: dict[int, float]
    seconds: float | None


@dataclass
class StudyOutcome:
    """Result of one family's study.

    Attributes
    ----------
    family : str
        Model family.
    study_name : str
        Name in the Optuna storage.
    best_value : float
        Best validation Gini.
    best_params : dict
        Parameters of the family's model (as passed to the factory): the best trial's, without
        the cheaper settings trials use (:data:`clv.models.registry.TUNING_PARAMS`).
    model_dir : Path
        Folder holding the family's saved model: the best trial's own, or its refit.
    trials : list of TrialRecord
        Every trial of the study, finished in this run or an earlier one.
    new_trials : int
        Trials run by this call (0 when the study was already complete).
    """

    family: str
    study_name: str
    best_value: float
    best_params: dict[str, Any]
    model_dir: Path
    trials: list[TrialRecord] = field(default_factory=list)
    new_trials: int = 0

    def load_model(self) -> CLVModel:
        """The best trial's model, loaded through its verified native loader."""
        loader = getattr(MODELS[self.family], "load", None)
        if loader is None:
            raise ValueError(f"model family {self.family!r} cannot be loaded")
        model: CLVModel = loader(self.model_dir)
        return model


def storage_url(url: str | None, home: Path) -> str:
    """The Optuna storage URL: ``url`` when given, else SQLite under ``home/optuna``."""
    if url:
        return url
    folder = Path(home).resolve() / "optuna"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'optuna.db'}"


def _storage(url: str) -> Any:
    import optuna

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Several processes (a resumed run, the UI) may touch the file: wait rather than fail.
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    return optuna.storages.RDBStorage(url, **kwargs)


def _sampler(seed: int) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=seed)


def _pruner(family: str) -> Any:
    import optuna

    return optuna.pruners.MedianPruner(
        n_startup_trials=3, n_warmup_steps=WARMUP_STEPS.get(family, 0)
    )


def _dask_client(explicit: Client | None) -> Client | None:
    """``explicit``, else the client of an enclosing :func:`clv.distributed.training.on_cluster`."""
    if explicit is not None:
        return explicit
    from clv.distributed.training import active_client

    return active_client()


def _records(study: Any) -> list[TrialRecord]:
    out = []
    for t in study.get_trials(deepcopy=False):
        seconds = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        out.append(
            TrialRecord(
                number=t.number,
                state=t.state.name,
                value=None if t.value is None else float(t.value),
                params=dict(t.params),
                intermediate={int(k): float(v) for k, v in t.intermediate_values.items()},
                seconds=seconds,
            )
        )
    return out


def _save_atomically(model: CLVModel, target: Path) -> None:
    write_folder_atomic(target, model.save)


def _sample(
    X: pd.DataFrame, y: pd.Series, limit: int | None, seed: int
) -> tuple[pd.DataFrame, pd.Series]:
    """At most ``limit`` rows, drawn without replacement with ``seed`` (in their original order)."""
    if limit is None or len(X) <= limit:
        return X, y
    keep = np.sort(np.random.default_rng(seed).choice(len(X), size=limit, replace=False))
    return X.iloc[keep], y.iloc[keep]


def fit_best(
    family: str,
    params: Mapping[str, Any],
    *,
    X_fit: pd.DataFrame,
    y_fit: pd.Series,
    X_val: pd.DataFrame,
    y_val: pd.Series,
    max_fit_rows: int | None = None,
    seed: int = 0,
    dask_client: Client | None = None,
) -> CLVModel:
    """A model of ``family`` with a study's best parameters, fitted on these rows.

    The final refit of :func:`run_study` and of the pipeline's final model (every window one
    horizon later): at most ``max_fit_rows`` fit rows, drawn with ``seed + 2``; the validation
    rows drive early stopping. With ``dask_client`` (or inside
    :func:`clv.distributed.training.on_cluster`) the tree families train on the cluster
    (:func:`clv.distributed.training.fit_best_on_dask`).
    """
    client = _dask_client(dask_client)
    if client is not None:
        from clv.distributed.training import fit_best_on_dask

        return fit_best_on_dask(
            client,
            family,
            params,
            X_fit=X_fit,
            y_fit=y_fit,
            X_val=X_val,
            y_val=y_val,
            max_fit_rows=max_fit_rows,
            seed=seed,
        )
    model = create(family, dict(params))
    X_all, y_all = _sample(X_fit, y_fit, max_fit_rows, seed + 2)
    model.fit(X_all, y_all, X_val=X_val, y_val=y_val)
    return model


def run_study(
    family: str,
    *,
    X_fit: pd.DataFrame,
    y_fit: pd.Series,
    X_val: pd.DataFrame,
    y_val: pd.Series,
    n_trials: int,
    study_name: str,
    storage: str,
    model_root: Path,
    seed: int = 0,
    fixed_params: Mapping[str, Any] | None = None,
    timeout_s: float | None = None,
    on_trial: Callable[[TrialRecord], None] | None = None,
    max_tune_rows: int | None = None,
    max_fit_rows: int | None = None,
    dask_client: Client | None = None,
) -> StudyOutcome:
    """Tune ``family`` on the validation window until the study holds ``n_trials`` finished trials.

    Parameters
    ----------
    family : str
        A key of :data:`clv.models.registry.SEARCH_SPACES`.
    X_fit, y_fit : DataFrame, Series
        Training rows.
    X_val, y_val : DataFrame, Series
        Validation rows: early stopping, pruning and the objective.
    n_trials : int
        Finished (complete or pruned) trials the study must hold; trials from an interrupted
        earlier run count.
    study_name : str
        Study name; the same name resumes the same study.
    storage : str
        SQLAlchemy URL of the Optuna storage.
    model_root : Path
        Where trial models are saved (``model_root / study_name / trial-N``).
    seed : int
        Seed of the sampler and of every model.
    fixed_params : mapping, optional
        Parameters every trial shares (e.g. ``n_estimators``, ``epochs``).
    timeout_s : float, optional
        Stop starting new trials after this many seconds.
    on_trial : callable, optional
        Called with each trial's record as it finishes.
    max_tune_rows : int, optional
        Trials see at most this many fit rows and this many validation rows (a seeded random
        sample): tuning cost stops growing with the data. When rows were left out, the best
        parameters are refitted once on up to ``max_fit_rows`` fit rows (and the whole
        validation window for early stopping); that refit is the family's model. A family
        whose trials use cheaper settings than its model (:data:`TUNING_PARAMS`: Keras ZILN
        tunes one network) is refitted the same way, with the model's settings.
    max_fit_rows : int, optional
        Rows of that final refit (default: every fit row).
    dask_client : distributed.Client, optional
        Spread the trials over this cluster's workers (through ``storage``, which they must
        reach) and refit on it (:mod:`clv.distributed.training`). Default: the client of an
        enclosing :func:`clv.distributed.training.on_cluster`, else this process alone.

    Returns
    -------
    StudyOutcome
        The best trial and every trial's record.

    Raises
    ------
    ValueError
        Unknown family, ``n_trials < 1``, a constant validation target, or no trial completed.
    """
    import optuna

    if family not in SEARCH_SPACES:
        raise ValueError(f"no search space for {family!r}; tunable: {', '.join(SEARCH_SPACES)}")
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    if float(np.ptp(np.asarray(y_val, dtype="float64"))) == 0.0:
        raise ValueError(
            "the validation window's spend is the same for every customer; "
            "nothing to rank, so nothing to tune"
        )
    space, default_trial = SEARCH_SPACES[family]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rdb = _storage(storage)
    study = optuna.create_study(
        study_name=study_name,
        storage=rdb,
        direction="maximize",
        sampler=_sampler(seed),
        pruner=_pruner(family),
        load_if_exists=True,
    )
    finished_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    for stale in study.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
    ):
        if stale.state == optuna.trial.TrialState.RUNNING:
            # One training per study at a time (the deployment's concurrency limit): a trial
            # still RUNNING was interrupted by a kill.
            logger.warning("%s: trial %d was interrupted; marking it failed", family, stale.number)
            rdb.set_trial_state_values(stale._trial_id, optuna.trial.TrialState.FAIL)
    finished = study.get_trials(deepcopy=False, states=finished_states)
    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    if not finished and not waiting:
        # Also after a kill during trial 0: the defaults always get their trial.
        study.enqueue_trial(default_trial)
    remaining = n_trials - len(finished)
    study_dir = Path(model_root) / study_name
    every = MONITOR_EVERY.get(family, 25)
    X_tune, y_tune = _sample(X_fit, y_fit, max_tune_rows, seed)
    X_tval, y_tval = _sample(X_val, y_val, max_tune_rows, seed + 1)
    sampled = len(X_tune) < len(X_fit) or len(X_tval) < len(X_val)

    cheaper = TUNING_PARAMS.get(family, {})

    def objective(trial: optuna.Trial) -> float:
        final = {**dict(fixed_params or {}), **space(trial), "seed": seed}
        params = {**final, **cheaper}
        model = create(family, params)

        def monitor(step: int, predicted: np.ndarray) -> None:
            score = normalized_gini(y_tval, predicted)
            if np.isfinite(score):
                trial.report(float(score), step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"validation Gini {score:.4f} at step {step}")

        model.fit(X_tune, y_tune, X_val=X_tval, y_val=y_tval, monitor=monitor, monitor_every=every)
        value = float(normalized_gini(y_tval, model.predict(X_tval)))
        if not np.isfinite(value):
            raise ValueError("validation Gini is undefined for this trial")
        _save_atomically(model, study_dir / f"trial-{trial.number}")
        trial.set_user_attr("params", params)
        trial.set_user_attr("final_params", final)
        return value

    def callback(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        if on_trial is not None:
            on_trial(next(r for r in _records(study) if r.number == frozen.number))

    client = _dask_client(dask_client)
    trial_workers: list[str] | None = None
    if client is not None:
        from clv.distributed.training import TREE_FAMILIES, one_worker, say_trains_on_one_worker

        if family not in TREE_FAMILIES:
            # No Dask backend: every trial fits on one worker, one after the other.
            trial_workers = [one_worker(client)]
            say_trains_on_one_worker(family, len(X_tune), trial_workers[0])
    done_states = (*finished_states, optuna.trial.TrialState.FAIL)
    started = time.perf_counter()
    new = failed = 0
    while client is not None and remaining > 0 and failed < n_trials:
        from clv.distributed.training import optimize_on_workers

        left = None if timeout_s is None else timeout_s - (time.perf_counter() - started)
        if left is not None and left <= 0:
            break
        # The queued default trial is WAITING, not yet run: it is not known.
        known = {t.number for t in study.get_trials(deepcopy=False, states=done_states)}
        optimize_on_workers(
            client,
            objective,
            storage=storage,
            study_name=study_name,
            family=family,
            n_trials=remaining,
            seed=seed + new,
            timeout_s=left,
            workers=trial_workers,
        )
        ran = [r for r in _records(study) if r.number not in known]
        if not ran:
            break
        for record in ran:
            if on_trial is not None:
                on_trial(record)
        new += len(ran)
        failed += sum(r.state == "FAIL" for r in ran)
        remaining = n_trials - len(study.get_trials(deepcopy=False, states=finished_states))
    while client is None and remaining > 0:
        left = None if timeout_s is None else timeout_s - (time.perf_counter() - started)
        if left is not None and left <= 0:
            break
        if failed >= n_trials:  # every attempt fails: a data or code problem, not bad luck
            break
        study.optimize(
            objective,
            n_trials=1,
            timeout=left,
            catch=(ValueError, ArithmeticError),
            callbacks=[callback],
            gc_after_trial=True,
        )
        new += 1
        if study.trials[-1].state == optuna.trial.TrialState.FAIL:
            failed += 1
        remaining = n_trials - len(study.get_trials(deepcopy=False, states=finished_states))

    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not completed:
        raise ValueError(
            f"{family}: no trial completed ({len(study.trials)} tried); see the log for errors"
        )
    best = study.best_trial
    trial_params = dict(best.user_attrs.get("params", {}))
    # Trials of studies started before TUNING_PARAMS existed have no separate final parameters.
    final_params = dict(best.user_attrs.get("final_params", trial_params))
    refit = sampled or final_params != trial_params
    model_dir = study_dir / (f"final-trial-{best.number}" if refit else f"trial-{best.number}")

    def fit_final() -> None:
        logger.info("%s: refitting trial %d with %s", family, best.number, final_params)
        model = fit_best(
            family,
            final_params,
            X_fit=X_fit,
            y_fit=y_fit,
            X_val=X_val,
            y_val=y_val,
            max_fit_rows=max_fit_rows if sampled else None,
            seed=seed,
            dask_client=client,
        )
        _save_atomically(model, model_dir)

    if refit and not model_dir.exists():
        fit_final()
    outcome = StudyOutcome(
        family=family,
        study_name=study_name,
        best_value=float(best.value or 0.0),
        best_params=final_params,
        model_dir=model_dir,
        trials=_records(study),
        new_trials=new,
    )
    try:
        outcome.load_model()
    except (IntegrityError, OSError, ValueError) as err:
        # The study is in a shared database but the model folder is local: another machine, or
        # a cleaned folder. Refit the best parameters (same seed, same data, same model).
        logger.warning("%s: %s's model unusable (%s); refitting", family, model_dir.name, err)
        fit_final()
    return outcome
