"""Training on a Dask cluster: the tree families fitted by ``xgboost.dask`` and ``lightgbm.dask``,
Optuna trials spread over the workers through the study's RDB storage.

What runs where
---------------
- **Optuna trials** (:func:`optimize_on_workers`): every worker process runs
  ``study.optimize(n_trials=k)`` on the same study in the same storage (the trials' share of
  the tuning sample, ``max_tune_rows``, travels with the objective). Trials are ordinary
  single-machine fits, one per worker at a time, so the study finishes in about ``1 / workers``
  of the time. SQLite file storage (the default, ``clv.training.hpo.storage_url``) works for a
  ``LocalCluster`` or workers on one machine; workers on several machines need a storage they
  can all reach: set ``CLV_OPTUNA_STORAGE=postgresql+psycopg://USER:PASSWORD@HOST:5432/optuna``.
  Each trial's model is saved under the study's model folder on the worker that trained it;
  when the client cannot read that folder (another machine), :func:`clv.training.hpo.run_study`
  refits the best parameters, here on the cluster.
- **The refits** (:func:`fit_best_on_dask`, called by :func:`clv.training.hpo.fit_best` inside
  :func:`on_cluster`): the whole fit frame, as a dask DataFrame, is trained on by every worker
  together: XGBoost with ``dxgb.train`` (early stopping on the validation window, as on one
  machine), LightGBM with ``lightgbm.DaskLGBMRegressor``. The result is the single-machine
  family's own model object holding a plain ``Booster`` (saved natively: XGBoost UBJ, LightGBM
  text), so bundles, the registry and ``clv score`` do not know where it was trained.
- **Keras ZILN** has no Dask backend: it trains on one worker (the one with the most threads),
  its Optuna trials one after the other and its refit too, with a log line saying so. The worker
  sends back the saved model's files (``.keras`` and the manifest), never a pickle, and they are
  loaded here with their SHA-256 checked.

Same objective and hyper-parameters as on one machine; the models are close, not bit-identical
(the histograms are built from each worker's rows and merged). Two settings differ on purpose:

- threads: each worker trains with its own thread count (``nthread`` / ``num_threads`` are
  left to ``xgboost.dask`` and ``lightgbm.dask``, which set them from the worker's threads);
- LightGBM's network: several workers share a machine here, so no ``local_listen_port`` is
  set and LightGBM picks a free port on each worker (its default; a fixed port would collide on
  one host). Behind a firewall, pass ``machines="ip1:port1,ip2:port2"`` through the model's
  parameters instead, one opened port per worker.

LightGBM's Dask interface has no early stopping: it trains ``n_estimators`` rounds and the
round with the least validation loss (the objective's own loss, with the same patience as on
one machine) is kept as the booster's ``best_iteration``, which ``save`` and ``predict`` use.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

    from clv.models.base import CLVModel
    from clv.models.trees import LightGBMModel, XGBoostModel

__all__ = [
    "TREE_FAMILIES",
    "active_client",
    "fit_best_on_dask",
    "fit_on_one_worker",
    "fit_tree_on_dask",
    "on_cluster",
    "one_worker",
    "optimize_on_workers",
    "say_trains_on_one_worker",
    "spread_over_workers",
    "to_dask_frame",
]

logger = logging.getLogger(__name__)

#: Families that train on the whole cluster; every other family trains on one worker.
TREE_FAMILIES = ("xgboost", "lightgbm")
#: Column holding the target in the dask training frame.
TARGET_COLUMN = "future_spend"

_ACTIVE: ContextVar[Client | None] = ContextVar("clv_dask_training_client", default=None)


@contextlib.contextmanager
def on_cluster(client: Client) -> Iterator[Client]:
    """Within the block, :mod:`clv.training.hpo` tunes and refits on ``client``'s cluster.

    ``clv train --dask-address`` and ``clv backtest --dask-address`` wrap the pipeline in it,
    so the flow, the backtest and :func:`clv.training.pipeline.assemble` need no parameter.

    Parameters
    ----------
    client : distributed.Client
        From :func:`clv.distributed.cluster.connect`.

    Yields
    ------
    distributed.Client
        The same client.
    """
    token = _ACTIVE.set(client)
    try:
        yield client
    finally:
        _ACTIVE.reset(token)


def active_client() -> Client | None:
    """The client set by the enclosing :func:`on_cluster`, or ``None`` (the one-machine path)."""
    return _ACTIVE.get()


def _worker_addresses(client: Client) -> list[str]:
    return sorted(client.scheduler_info()["workers"])


def to_dask_frame(
    X: pd.DataFrame, y: pd.Series, *, npartitions: int, target: str = TARGET_COLUMN
) -> dd.DataFrame:
    """Features and target as one dask DataFrame of ``npartitions`` partitions (float64)."""
    import dask.dataframe as dd

    frame = X.astype("float64").reset_index(drop=True)
    frame[target] = np.asarray(y, dtype="float64")
    return dd.from_pandas(frame, npartitions=max(1, min(npartitions, len(frame))), sort=False)


def spread_over_workers(
    client: Client, X: pd.DataFrame, y: pd.Series, *, target: str = TARGET_COLUMN
) -> dd.DataFrame:
    """Features and target as one dask DataFrame with one partition held by each worker.

    ``client.persist`` of a frame made by :func:`to_dask_frame` leaves the placement to the
    scheduler, which may put every partition on the worker that was free first, so that one
    worker trains alone; here each part is scattered to its own worker.

    Parameters
    ----------
    client : distributed.Client
        The cluster.
    X, y : DataFrame, Series
        Features and target, on this machine.
    target : str
        Name of the target column.

    Returns
    -------
    dask DataFrame
        Persisted: as many partitions as workers (fewer when there are fewer rows), in row
        order.
    """
    import dask.dataframe as dd
    from distributed import wait

    frame = X.astype("float64").reset_index(drop=True)
    frame[target] = np.asarray(y, dtype="float64")
    workers = _worker_addresses(client)
    parts = [idx for idx in np.array_split(np.arange(len(frame)), len(workers)) if len(idx)]
    if not parts:
        return dd.from_pandas(frame, npartitions=1, sort=False)
    futures = [
        client.scatter(frame.iloc[idx], workers=[worker], hash=False)
        for idx, worker in zip(parts, workers, strict=False)
    ]
    # Persisted while the scattered futures are alive: the returned frame holds its own.
    # from_delayed looks the client of the futures up as the current one.
    with client.as_current():
        spread = client.persist(dd.from_delayed(futures, meta=frame.iloc[:0], verify_meta=False))
        wait(spread)
    return spread


def _xgboost_params(model: XGBoostModel) -> tuple[dict[str, Any], int, int]:
    """``XGBoostModel.fit``'s booster parameters, rounds and patience (threads left to Dask)."""
    from clv.models.trees import monotone_vector

    p = dict(model.params)
    rounds, patience = int(p.pop("n_estimators")), int(p.pop("early_stopping_rounds"))
    if p["objective"] != "reg:tweedie":
        p.pop("tweedie_variance_power", None)
    p.update({"verbosity": 0, "eta": p.pop("learning_rate")})
    if p.pop("monotone", True):
        p["monotone_constraints"] = (
            "(" + ",".join(str(v) for v in monotone_vector(model.feature_names)) + ")"
        )
    return p, rounds, patience


def _lightgbm_params(model: LightGBMModel) -> tuple[dict[str, Any], int, int]:
    """``LightGBMModel.fit``'s parameters, rounds and patience (threads and ports left to Dask)."""
    from clv.models.trees import monotone_vector

    p = dict(model.params)
    rounds, patience = int(p.pop("n_estimators")), int(p.pop("early_stopping_rounds"))
    if p["objective"] != "tweedie":
        p.pop("tweedie_variance_power", None)
    p.update({"verbosity": -1, "deterministic": True})
    if p.pop("monotone", True):
        p["monotone_constraints"] = monotone_vector(model.feature_names)
    return p, rounds, patience


def _objective_loss(
    objective: str, params: Mapping[str, Any], y: np.ndarray, raw: np.ndarray
) -> float:
    """Mean validation loss of raw scores ``raw``, as LightGBM's early stopping would see it."""
    if objective == "tweedie":
        rho = float(params.get("tweedie_variance_power", 1.5))
        a = y * np.exp((1.0 - rho) * raw) / (1.0 - rho)
        b = np.exp((2.0 - rho) * raw) / (2.0 - rho)
        return float(np.mean(-a + b))
    residual = y - raw
    if objective == "huber":
        alpha = float(params.get("alpha", 0.9))
        size = np.abs(residual)
        return float(
            np.mean(np.where(size <= alpha, 0.5 * residual**2, alpha * (size - 0.5 * alpha)))
        )
    return float(np.mean(residual**2))


def _lightgbm_best_rounds(
    booster: Any,
    X_val: pd.DataFrame,
    y_val: pd.Series,
    *,
    objective: str,
    params: Mapping[str, Any],
    patience: int,
) -> int:
    """Rounds early stopping would have kept: validation loss after each tree, on this process."""
    y = np.asarray(y_val, dtype="float64")
    raw = np.zeros(len(X_val))
    best, best_loss = 0, np.inf
    for i in range(int(booster.num_trees())):
        raw = raw + booster.predict(X_val, raw_score=True, start_iteration=i, num_iteration=1)
        loss = _objective_loss(objective, params, y, raw)
        if loss < best_loss:
            best, best_loss = i, loss
        elif i - best >= patience:
            break
    return best + 1


def fit_tree_on_dask(
    client: Client,
    family: str,
    params: Mapping[str, Any],
    train: dd.DataFrame,
    *,
    X_val: pd.DataFrame,
    y_val: pd.Series,
    target: str = TARGET_COLUMN,
) -> XGBoostModel | LightGBMModel:
    """A tree model of ``family`` trained by every worker of ``client``'s cluster.

    Parameters
    ----------
    client : distributed.Client
        The cluster.
    family : {"xgboost", "lightgbm"}
        The tree family; its single-machine defaults complete ``params``.
    params : mapping
        The family's parameters, as its factory takes them.
    train : dask DataFrame
        Features and the ``target`` column, partitioned over the workers.
    X_val, y_val : DataFrame, Series
        Validation rows for early stopping (small enough for one machine: one window).
    target : str
        Name of the target column in ``train``.

    Returns
    -------
    XGBoostModel or LightGBMModel
        The single-machine family's model object around the trained ``Booster``: saved, loaded
        and scored exactly as a model trained on one machine.

    Raises
    ------
    ValueError
        For another family.
    """
    if family not in TREE_FAMILIES:
        raise ValueError(f"{family!r} does not train on Dask; tree families: {TREE_FAMILIES}")
    # xgboost.dask looks the client up as the current one even when it is passed explicitly,
    # and clv.distributed.cluster.connect does not make its client the process-wide default.
    with client.as_current():
        return _fit_tree(client, family, params, train, X_val=X_val, y_val=y_val, target=target)


def _fit_tree(
    client: Client,
    family: str,
    params: Mapping[str, Any],
    train: dd.DataFrame,
    *,
    X_val: pd.DataFrame,
    y_val: pd.Series,
    target: str,
) -> XGBoostModel | LightGBMModel:
    from clv.models.base import align_features
    from clv.models.registry import create

    model: Any = create(family, dict(params))
    model.feature_names = [str(c) for c in train.columns if c != target]
    features = train[model.feature_names].astype("float64")
    label = train[target].astype("float64")
    validation = align_features(X_val, model.feature_names).astype("float64")
    n_workers = len(_worker_addresses(client))
    if family == "xgboost":
        from xgboost import dask as dxgb

        booster_params, rounds, patience = _xgboost_params(model)
        dtrain = dxgb.DaskDMatrix(client, features, label)
        val = to_dask_frame(validation, y_val, npartitions=n_workers, target=target)
        dval = dxgb.DaskDMatrix(client, val[model.feature_names], val[target])
        out = dxgb.train(
            client,
            booster_params,
            dtrain,
            num_boost_round=rounds,
            evals=[(dval, "validation")],
            early_stopping_rounds=patience,
            verbose_eval=False,
        )
        model._booster = out["booster"]
        best = getattr(model._booster, "best_iteration", None)
        model.best_rounds = rounds if best is None else int(best) + 1
        return model

    import lightgbm as lgb

    lgb_params, rounds, patience = _lightgbm_params(model)
    estimator = lgb.DaskLGBMRegressor(client=client, n_estimators=rounds, **lgb_params)
    with warnings.catch_warnings():
        # The estimator's own n_jobs=None default, replaced by each worker's threads.
        warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
        estimator.fit(features, label)
    booster = estimator.booster_
    best = _lightgbm_best_rounds(
        booster,
        validation,
        y_val,
        objective=str(lgb_params["objective"]),
        params=lgb_params,
        patience=patience,
    )
    booster.best_iteration = best
    model._booster = booster
    model.best_rounds = best
    return model


def say_trains_on_one_worker(family: str, rows: int, worker: str) -> None:
    """Log (and tell the CLI's spinner) that ``family`` trains on one Dask worker."""
    from clv.progress import report

    message = (
        f"{family} trains on one worker: it has no Dask backend, so its {rows:,} training rows "
        f"go to the Dask worker {worker}, which fits it alone"
    )
    logger.warning(message)
    report(message)


def one_worker(client: Client) -> str:
    """The worker a family without a Dask backend trains on: the most threads, then memory."""
    info = client.scheduler_info(n_workers=-1)["workers"]
    return min(
        info,
        key=lambda w: (-int(info[w].get("nthreads", 1)), -int(info[w].get("memory_limit") or 0), w),
    )


def _fit_and_save(
    family: str,
    params: Mapping[str, Any],
    X: pd.DataFrame,
    y: pd.Series,
    X_val: pd.DataFrame,
    y_val: pd.Series,
) -> dict[str, bytes]:
    """On a worker: fit ``family`` and return its saved files (native formats and manifest)."""
    import tempfile
    from pathlib import Path

    from clv.models.registry import create

    model = create(family, dict(params))
    model.fit(X, y, X_val=X_val, y_val=y_val)
    with tempfile.TemporaryDirectory(prefix="clv-fit-") as tmp:
        folder = Path(tmp) / "model"
        model.save(folder)
        return {
            path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*"))
            if path.is_file()
        }


def fit_on_one_worker(
    client: Client,
    family: str,
    params: Mapping[str, Any],
    *,
    X: pd.DataFrame,
    y: pd.Series,
    X_val: pd.DataFrame,
    y_val: pd.Series,
) -> CLVModel:
    """A model of a family without a Dask backend (Keras ZILN), fitted on one Dask worker.

    The worker (:func:`one_worker`) fits the model and sends back its saved files, never a
    pickle of the model: they are loaded here by the family's own ``load``, which checks every
    file's SHA-256 against the manifest.

    Parameters
    ----------
    client : distributed.Client
        The cluster.
    family : str
        The model family; ``params`` as its factory takes them.
    params : mapping
        The family's parameters.
    X, y : DataFrame, Series
        Fit rows.
    X_val, y_val : DataFrame, Series
        Validation rows (early stopping).

    Returns
    -------
    CLVModel
        The fitted model, loaded from the worker's files.
    """
    import tempfile
    from pathlib import Path

    from clv.training.bundle import _load_model

    worker = one_worker(client)
    say_trains_on_one_worker(family, len(X), worker)
    future = client.submit(
        _fit_and_save,
        family,
        dict(params),
        X,
        y,
        X_val,
        y_val,
        workers=[worker],
        allow_other_workers=False,
        pure=False,
        key=f"clv-fit-{family}-{uuid.uuid4().hex[:8]}",
    )
    files: dict[str, bytes] = future.result()
    with tempfile.TemporaryDirectory(prefix="clv-fitted-") as tmp:
        folder = Path(tmp) / "model"
        for name, content in files.items():
            relative = Path(name)
            if relative.is_absolute() or ".." in relative.parts:
                raise ValueError(f"the worker sent a file outside the model folder: {name!r}")
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        return _load_model(family, folder)


def fit_best_on_dask(
    client: Client,
    family: str,
    params: Mapping[str, Any],
    *,
    X_fit: pd.DataFrame,
    y_fit: pd.Series,
    X_val: pd.DataFrame,
    y_val: pd.Series,
    max_fit_rows: int | None = None,
    seed: int = 0,
) -> CLVModel:
    """:func:`clv.training.hpo.fit_best` on the cluster: the same rows, trained by every worker.

    The fit rows (at most ``max_fit_rows``, drawn with ``seed + 2`` as on one machine) become a
    dask DataFrame of one partition per worker. Families outside :data:`TREE_FAMILIES` (Keras
    ZILN) train on one worker (:func:`fit_on_one_worker`), and the log says so.
    """
    from clv.training.hpo import _sample

    X_all, y_all = _sample(X_fit, y_fit, max_fit_rows, seed + 2)
    if family not in TREE_FAMILIES:
        return fit_on_one_worker(client, family, params, X=X_all, y=y_all, X_val=X_val, y_val=y_val)
    workers = _worker_addresses(client)
    logger.info("%s: fitting %d rows on %d Dask workers", family, len(X_all), len(workers))
    frame = spread_over_workers(client, X_all, y_all)
    return fit_tree_on_dask(client, family, params, frame, X_val=X_val, y_val=y_val)


def _optimize_part(
    objective: Callable[[Any], float],
    *,
    storage: str,
    study_name: str,
    family: str,
    n_trials: int,
    seed: int,
    timeout_s: float | None,
) -> int:
    """On a worker: run ``n_trials`` trials of the study in ``storage``; how many were run."""
    import optuna

    from clv.training.hpo import _pruner, _sampler, _storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=study_name,
        storage=_storage(storage),
        sampler=_sampler(seed),
        pruner=_pruner(family),
    )
    study.optimize(
        objective,
        n_trials=n_trials,
        timeout=timeout_s,
        catch=(ValueError, ArithmeticError),
        gc_after_trial=True,
    )
    return n_trials


def _check_sqlite_reachable(client: Client, storage: str) -> None:
    """Refuse SQLite storage when a worker runs on another machine: it would open its own file."""
    import socket

    here = socket.gethostname()
    hosts = sorted(set(client.run(socket.gethostname).values()) - {here})
    if hosts:
        raise ValueError(
            f"Optuna's storage {storage} is a SQLite file on {here}, which the Dask workers on "
            f"{', '.join(hosts)} cannot share: set CLV_OPTUNA_STORAGE to a database every "
            "worker reaches, e.g. postgresql+psycopg://USER:PASSWORD@HOST:5432/optuna"
        )


def optimize_on_workers(
    client: Client,
    objective: Callable[[Any], float],
    *,
    storage: str,
    study_name: str,
    family: str,
    n_trials: int,
    seed: int,
    timeout_s: float | None = None,
    workers: list[str] | None = None,
) -> None:
    """Run ``n_trials`` more trials of an existing study, spread over ``client``'s workers.

    Each worker process loads the study from ``storage`` and runs its share with
    ``study.optimize`` (worker ``i``'s sampler is seeded ``seed + i``, so the workers do not
    propose the same points); Optuna's storage hands out the queued trials (the defaults) and
    records every result. Returns when every worker is done.

    Parameters
    ----------
    client : distributed.Client
        The cluster.
    objective : callable
        The study's objective (picklable; it carries its data).
    storage : str
        SQLAlchemy URL that every worker can reach (see the module's notes on SQLite and
        PostgreSQL).
    study_name : str
        The study, already created in ``storage``.
    family : str
        Model family (its pruner's warm-up).
    n_trials : int
        Trials to run in all.
    seed : int
        Base seed of the workers' samplers.
    timeout_s : float, optional
        Each worker stops starting trials after this many seconds.
    workers : list of str, optional
        Only these workers (default: every worker); one worker runs the trials of a family
        without a Dask backend, one after the other.
    """
    workers = _worker_addresses(client) if workers is None else sorted(workers)
    if storage.startswith("sqlite"):
        _check_sqlite_reachable(client, storage)
    shares = [n_trials // len(workers) + (i < n_trials % len(workers)) for i in range(len(workers))]
    batch = uuid.uuid4().hex[:8]
    futures = [
        client.submit(
            _optimize_part,
            objective,
            storage=storage,
            study_name=study_name,
            family=family,
            n_trials=share,
            seed=seed + i,
            timeout_s=timeout_s,
            workers=[worker],
            allow_other_workers=False,
            pure=False,
            key=f"clv-optuna-{study_name}-{batch}-{i}",
        )
        for i, (worker, share) in enumerate(zip(workers, shares, strict=True))
        if share > 0
    ]
    logger.info("%s: %d Optuna trial(s) on %d Dask worker(s)", family, n_trials, len(futures))
    client.gather(futures)
