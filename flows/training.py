"""Training flow: validate → features (cached) → one Optuna study per family → ensemble →
holdout evaluation → register challengers, with what the promotion gate needs.

The flow never moves the ``champion`` alias: it registers challengers. Each version carries its
holdout metrics (``metric.*``), the references' metrics on the same holdout
(``reference_metric.<ref>.*``: BG/NBD + Gamma-Gamma and the run rate for spend, BG/NBD's
probability of no purchase for churn), the then-champion's metrics on that holdout
(``champion_metric.*`` with ``champion_version``) and the SHA-256 of the holdout rows, logged as
the run's artifact ``holdout/holdout.parquet`` so that ``clv promote`` can score a later champion
on the same rows. The gate itself is :func:`clv.tracking.promote`.

Orchestration only: every step is a function of :mod:`clv.training`; MLflow is reached through
:mod:`clv.tracking`. Tasks exchange small JSON-serialisable values (paths, parameters, metrics);
the heavy frames live in the content-addressed feature cache. Tasks retry only on I/O errors.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from clv.features.support import MAX_EXTRAPOLATED_SHARE, describe_shares
from clv.progress import report
from clv.settings import get_settings
from clv.training.dataset import (
    PURCHASES,
    TARGET,
    TrainingFrames,
    build_training_frames,
    cache_path,
    read_training_frames,
)
from clv.training.hpo import StudyOutcome, TrialRecord, run_study, storage_url
from clv.training.pipeline import (
    TrainConfig,
    assemble,
    evaluate_churn_bundle,
    evaluate_spend_bundle,
    fingerprint,
    load_inputs,
    make_plan,
)
from clv.training.windows import end_of_day, plan_from_dict
from flows._dask import ClusterTaskRunner, on_this_tasks_cluster
from flows._hooks import OUTCOME_HOOKS

EXPERIMENT = "clv-training"


def _logger() -> Any:
    """The run logger inside a flow or task run; the module logger when called directly (.fn)."""
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def retry_on_io(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a task only when it failed on I/O (files, network, a store that did not answer)."""
    try:
        state.result()
    except (OSError, TimeoutError, ConnectionError):
        return True
    except Exception:  # anything else is a bug or bad input: retrying will not help
        return False
    return False


def _config(parameters: dict[str, Any]) -> TrainConfig:
    as_of = parameters.get("as_of")
    return TrainConfig(
        horizon_days=int(parameters["horizon_days"]),
        # A date means the end of that day, as on the command line; the instant the CLI passes
        # (already the end of a day) is kept as it is.
        as_of=None if as_of is None else end_of_day(pd.Timestamp(as_of)),
        families=tuple(parameters["families"]),
        n_trials=int(parameters["n_trials"]),
        n_windows=int(parameters["n_windows"]),
        step_days=int(parameters["step_days"]),
        seed=int(parameters["seed"]),
        coverage=float(parameters.get("coverage", TrainConfig.coverage)),
        max_tune_rows=parameters.get("max_tune_rows", 50_000),
        max_fit_rows=parameters.get("max_fit_rows", 250_000),
        max_extrapolated_share=parameters.get("max_extrapolated_share"),
        ziln_members=parameters.get("ziln_members", TrainConfig.ziln_members),
        ziln_sigma_cap=parameters.get("ziln_sigma_cap", TrainConfig.ziln_sigma_cap),
        refit_final=bool(parameters.get("refit_final", True)),
    )


def _frames(prepared: dict[str, Any]) -> TrainingFrames:
    return read_training_frames(
        Path(prepared["frames_path"]),
        plan=plan_from_dict(prepared["plan"]),
        key=prepared["cache_key"],
        max_extrapolated_share=prepared["max_extrapolated_share"],
    )


@task(retries=2, retry_delay_seconds=5, retry_condition_fn=retry_on_io)
def prepare(
    transactions: str,
    customers: str | None,
    sustainability: str | None,
    parameters: dict[str, Any],
    read_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate the inputs, lay out the windows and build (or read) the cached features.

    ``read_options`` are :func:`clv.training.pipeline.load_inputs`'s ``on_duplicate``,
    ``columns`` and ``future_tolerance_days``.
    """
    config = _config(parameters)
    report(f"reading and validating {transactions}")
    inputs = load_inputs(
        transactions, customers=customers, sustainability=sustainability, **(read_options or {})
    )
    plan = make_plan(inputs.transactions, config)
    cache_dir = get_settings().home / "cache" / "features"
    frames = build_training_frames(
        inputs.transactions,
        plan=plan,
        input_hashes=inputs.hashes,
        cache_dir=cache_dir,
        customers=inputs.customers,
        sustainability=inputs.sustainability,
        max_extrapolated_share=config.max_extrapolated_share,
    )
    return {
        "plan": plan.to_dict(),
        "hashes": inputs.hashes,
        "fingerprint": fingerprint(inputs.hashes, plan, config),
        "cache_key": frames.cache_key,
        "frames_path": str(cache_path(cache_dir, frames.cache_key)),
        "feature_columns": frames.feature_columns,
        "max_extrapolated_share": config.max_extrapolated_share,
        "extrapolated_features": frames.extrapolated,
        "out_of_range": frames.out_of_range,
        "rows": {
            "fit": len(frames.fit),
            "validation": len(frames.validation),
            "holdout": len(frames.holdout),
            "final_fit": len(frames.final_fit),
        },
        "reductions": list(plan.reductions),
    }


@task
def tune(family: str, prepared: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """Run (or resume) the family's Optuna study; return the best trial and every record."""
    logger = _logger()
    frames = _frames(prepared)
    settings = get_settings()
    fit, validation = frames.fit, frames.validation

    total = int(parameters["n_trials"])
    report(f"tuning {family}: {total} Optuna trial(s)")

    def on_trial(record: TrialRecord) -> None:
        score = "" if record.value is None else f", validation Gini {record.value:.4f}"
        report(f"tuning {family}: trial {record.number + 1} {record.state.lower()}{score}")
        logger.info(
            "%s trial %d: %s%s",
            family,
            record.number,
            record.state,
            "" if record.value is None else f", validation Gini {record.value:.4f}",
        )

    with on_this_tasks_cluster():
        outcome = run_study(
            family,
            X_fit=frames.learnt_X(fit),
            y_fit=frames.y(fit),
            X_val=frames.learnt_X(validation),
            y_val=frames.y(validation),
            n_trials=int(parameters["n_trials"]),
            study_name=f"clv-{prepared['fingerprint']}-{family}",
            storage=storage_url(settings.optuna_storage, settings.home),
            model_root=settings.home / "hpo",
            seed=int(parameters["seed"]),
            fixed_params=_config(parameters).family_params(family),
            on_trial=on_trial,
            max_tune_rows=parameters.get("max_tune_rows"),
            max_fit_rows=parameters.get("max_fit_rows"),
        )
    result = asdict(outcome)
    result["model_dir"] = str(outcome.model_dir)
    return result


def _outcome(data: dict[str, Any]) -> StudyOutcome:
    trials = [
        TrialRecord(**{**t, "intermediate": {int(k): v for k, v in t["intermediate"].items()}})
        for t in data["trials"]
    ]
    return StudyOutcome(**{**data, "model_dir": Path(data["model_dir"]), "trials": trials})


def champion_version(model_name: str, champions: dict[str, dict[str, float]]) -> dict[str, str]:
    """The ``champion_version`` tag: which champion the ``champion_metric.*`` tags scored."""
    version = champions.get(model_name, {}).get("version")
    return {} if version is None else {"champion_version": str(int(version))}


@task(retries=2, retry_delay_seconds=5, retry_condition_fn=retry_on_io)
def champion_scores(prepared: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The current champions' metrics on this run's holdout (empty when there is none)."""
    from clv import tracking
    from clv.training.bundle import ChurnBundle, SpendBundle, load_bundle

    frames = _frames(prepared)
    scores: dict[str, dict[str, float]] = {}
    for name in (tracking.SPEND_MODEL, tracking.CHURN_MODEL):
        champion = tracking.get_version(name, alias=tracking.CHAMPION)
        if champion is None:
            continue
        report(f"scoring {name} v{champion.version} (the champion) on this holdout")
        with tempfile.TemporaryDirectory(prefix="clv-champion-") as tmp:
            bundle = load_bundle(
                tracking.download_bundle(name, alias=tracking.CHAMPION, dst=Path(tmp))
            )
            if bundle.horizon_days != frames.plan.horizon_days:
                continue  # another horizon: not comparable
            if isinstance(bundle, SpendBundle):
                scores[name] = evaluate_spend_bundle(bundle, frames)
            elif isinstance(bundle, ChurnBundle):
                scores[name] = evaluate_churn_bundle(bundle, frames)
            else:
                continue
            scores[name]["version"] = float(champion.version)
    return scores


def _champion_tags(model_name: str, champions: dict[str, dict[str, float]]) -> dict[str, str]:
    """``champion_metric.holdout_*`` tags of the champion scored on this run's holdout."""
    scores = champions.get(model_name, {})
    tags = {f"champion_metric.holdout_{k}": f"{v:.6g}" for k, v in scores.items() if k != "version"}
    if tags:
        tags["champion_scored"] = "training"
    return {**tags, **champion_version(model_name, champions)}


def extrapolated_share_to_use(given: float | None, trigger: dict[str, Any] | None) -> float:
    """The share to train with: the one given, else the one a drift event carries, else the default.

    A retraining started by a ``clv.drift.detected`` event keeps the champion's choice: the event's
    payload (passed as ``trigger``) carries its ``max_extrapolated_share``. A champion trained
    before there was a default carries ``None`` (every feature kept), which is kept as 1.
    """
    if given is not None:
        return float(given)
    if trigger is not None and "max_extrapolated_share" in trigger:
        carried = trigger["max_extrapolated_share"]
        if carried is None:
            return 1.0
        if isinstance(carried, int | float) and not isinstance(carried, bool):
            return float(carried)
    return MAX_EXTRAPOLATED_SHARE


def _out_of_range_note(prepared: dict[str, Any]) -> str:
    """A markdown line naming the features most holdout customers lie outside of, if any."""
    outside = prepared["out_of_range"]
    if not outside:
        return ""
    shares = describe_shares(outside)
    left_out = ", ".join(prepared["extrapolated_features"]) or "none"
    return (
        f"\nCustomers outside the fit windows' range (share of the holdout): {shares}; "
        f"left out of the learnt models: {left_out}.\n"
    )


def _tags(
    prepared: dict[str, Any], metrics: dict[str, float], extra: dict[str, str]
) -> dict[str, str]:
    import clv

    plan = prepared["plan"]
    return {
        "data_hash": prepared["hashes"]["transactions"],
        "as_of": plan["as_of"],
        "horizon_days": str(plan["horizon_days"]),
        "holdout_cutoff": plan["holdout"],
        "code_version": clv.__version__,
        "reductions": "; ".join(prepared.get("reductions", [])) or "none",
        **{f"metric.{k}": f"{v:.6g}" for k, v in metrics.items()},
        **extra,
    }


@task(retries=2, retry_delay_seconds=5, retry_condition_fn=retry_on_io)
def evaluate_and_register(
    prepared: dict[str, Any],
    outcomes: list[dict[str, Any]],
    champions: dict[str, dict[str, float]],
    parameters: dict[str, Any],
    run_id: str,
) -> dict[str, Any]:
    """Ensemble, evaluate on the holdout, package and register both challengers."""
    from clv import tracking
    from clv.training.bundle import save_bundle

    frames = _frames(prepared)
    config = _config(parameters)
    with on_this_tasks_cluster():  # the final refits of the tree families
        evaluation = assemble(
            frames,
            [_outcome(o) for o in outcomes],
            config,
            provenance={"fingerprint": prepared["fingerprint"], "data_hashes": prepared["hashes"]},
        )
    run_dir = get_settings().home / "runs" / prepared["fingerprint"]
    spend_dir = save_bundle(evaluation.spend, run_dir / "spend")
    churn_dir = save_bundle(evaluation.churn, run_dir / "churn")
    example = frames.X(frames.holdout).head(5)
    handle = tracking.attach_run(run_id)
    holdout = evaluation.flat_metrics()
    handle.log_metrics(holdout)
    handle.log_dict(evaluation.ensemble_weights, "ensemble_weights.json")
    handle.log_text(evaluation.to_markdown(), "summary.md")
    predictions = run_dir / "holdout_predictions.parquet"
    evaluation.holdout_predictions.to_parquet(predictions, index=False)
    handle.log_artifact(predictions)
    # The holdout rows, so that a champion promoted later can be scored on this very holdout.
    rows = frames.holdout
    # spend over the horizon: a shortened holdout window's spend is scaled (TrainingFrames.y)
    holdout_rows = rows.assign(**{TARGET: frames.y(rows)})[
        ["customer_id", *frames.feature_columns, TARGET, PURCHASES]
    ]
    holdout_tags = tracking.log_holdout(handle, holdout_rows, run_dir)
    from clv.evaluation.plots import decile_sum_plot, lift_plot

    actual = evaluation.holdout_predictions["actual"]
    models = {name: evaluation.holdout_predictions[name] for name in evaluation.metrics}
    handle.log_artifact(lift_plot(actual, models, run_dir / "lift.png"), "plots")
    handle.log_artifact(
        decile_sum_plot(
            actual, evaluation.holdout_predictions[evaluation.winner], run_dir / "deciles.png"
        ),
        "plots",
    )

    spend_metrics = evaluation.metrics[evaluation.winner]
    spend = tracking.register_bundle(
        tracking.SPEND_MODEL,
        spend_dir,
        run=handle,
        fingerprint=prepared["fingerprint"],
        tags=_tags(
            prepared,
            {f"holdout_{k}": v for k, v in spend_metrics.items()},
            {
                "family": evaluation.winner,
                **_champion_tags(tracking.SPEND_MODEL, champions),
                # The references on the same holdout: the gate wants the challenger to beat them.
                **tracking.reference_tags(
                    {
                        key: evaluation.metrics[key]
                        for key, _ in tracking.references(tracking.SPEND_MODEL)
                    }
                ),
                **holdout_tags,
            },
        ),
        input_example=example,
        output_example=evaluation.spend.predict_frame(example),
        description=f"{evaluation.winner}, horizon {config.horizon_days} days, as of "
        f"{prepared['plan']['as_of'][:10]}",
    )
    churn_metrics = evaluation.churn_metrics["churn_model"]
    churn = tracking.register_bundle(
        tracking.CHURN_MODEL,
        churn_dir,
        run=handle,
        fingerprint=prepared["fingerprint"],
        tags=_tags(
            prepared,
            {f"holdout_{k}": v for k, v in churn_metrics.items()},
            {
                **_champion_tags(tracking.CHURN_MODEL, champions),
                **tracking.reference_tags(
                    {
                        key: evaluation.churn_metrics[key]
                        for key, _ in tracking.references(tracking.CHURN_MODEL)
                    }
                ),
                **holdout_tags,
            },
        ),
        input_example=example,
        output_example=evaluation.churn.predict_frame(example),
        description=(
            "calibrated LightGBM churn"
            if evaluation.churn.family == "churn"
            else "BG/NBD probability of no purchase (history too short for a learnt model)"
        )
        + f", horizon {config.horizon_days} days",
    )
    return {
        "winner": evaluation.winner,
        "spend_version": spend.version,
        "spend_created": spend.created,
        "churn_version": churn.version,
        "churn_created": churn.created,
        "metrics": evaluation.metrics,
        "churn_metrics": evaluation.churn_metrics,
        "champion_metrics": champions,
        "summary": evaluation.to_markdown(),
    }


@flow(
    name="clv-training",
    task_runner=ClusterTaskRunner(),
    persist_result=True,
    result_serializer="json",
    log_prints=True,
    **OUTCOME_HOOKS,
)
def training_flow(
    transactions: str,
    horizon_days: int = 90,
    as_of: str | None = None,
    trials: int = 10,
    families: list[str] | str | None = None,
    customers: str | None = None,
    sustainability: str | None = None,
    n_windows: int = 12,
    step_days: int = 30,
    seed: int = 0,
    trigger: dict[str, Any] | str | None = None,
    max_extrapolated_share: float | None = None,
    ziln_members: int = TrainConfig.ziln_members,
    ziln_sigma_cap: float | None = TrainConfig.ziln_sigma_cap,
    on_duplicate: str = "warn",
    columns: dict[str, str] | None = None,
    future_tolerance_days: float | None = None,
    coverage: float = TrainConfig.coverage,
    max_tune_rows: int | None = TrainConfig.max_tune_rows,
    max_fit_rows: int | None = TrainConfig.max_fit_rows,
    refit_final: bool = TrainConfig.refit_final,
    dask_address: str | None = None,
) -> dict[str, Any]:
    """Train, evaluate and register challengers for ``clv-spend`` and ``clv-churn``.

    Registering never promotes. ``clv promote`` then compares a challenger, on its own holdout
    and primary metric (Gini for spend, Brier score for churn), with the champion and with
    BG/NBD + Gamma-Gamma and the run rate (BG/NBD's probability of no purchase for churn), and
    refuses one that loses to any of them unless forced.

    Parameters
    ----------
    transactions : str
        Path or ``s3://`` URI of the transactions (a bare ``customer_id,timestamp,amount`` CSV
        is enough).
    horizon_days : int
        Prediction horizon in days.
    as_of : str, optional
        Training cut-off: an ISO date (the end of that day) or instant (its day's end);
        default: the end of the last transaction's day.
    trials : int
        Optuna trials per family.
    families : list of str or str, optional
        Families to tune, as a list or comma-separated (default: xgboost, lightgbm, keras_ziln).
    customers, sustainability : str, optional
        Optional tables.
    n_windows, step_days : int
        Rolling training windows and days between them.
    seed : int
        Seed of samplers and models.
    trigger : dict or str, optional
        What started the run (e.g. the payload of a ``clv.drift.detected`` event, as a dict or
        JSON text, as a deployment trigger renders it); recorded with the run.
    max_extrapolated_share : float, optional
        The learnt models leave out a feature without a monotone constraint when more than this
        share of the holdout's customers lie outside its values in the fit windows (see
        :class:`clv.training.pipeline.TrainConfig`); 1 keeps every feature. Default: the
        champion's setting when a drift event's payload (``trigger``) carries one, else
        :data:`clv.features.support.MAX_EXTRAPOLATED_SHARE` (0.5).
    ziln_members : int
        Networks in Keras ZILN's deep ensemble (default 3); its Optuna trials train one network
        and the best trial is refitted with this many.
    ziln_sigma_cap : float, optional
        Keras ZILN's expected spend uses ``sigma`` at most this multiple of the training labels'
        log-spread (default 1.5); ``None`` keeps the network's own ``sigma``.
    on_duplicate : {"warn", "error", "drop"}
        Exact duplicate transactions without ``order_id``: kept with a warning (default),
        refused, or dropped.
    columns : dict, optional
        The transactions file's own column names, ``{contract name: file name}``.
    future_tolerance_days : float, optional
        Dates after now plus this many days are refused (default: the settings', 1 day).
    coverage, max_tune_rows, max_fit_rows, refit_final
        As in :class:`clv.training.pipeline.TrainConfig`: the intervals' nominal coverage, the
        rows Optuna's trials and the final refits see, and whether the recipe is refitted one
        holdout later before it is registered.
    dask_address : str, optional
        Run the tasks on the Dask scheduler at this address (``tcp://HOST:8786``); default:
        ``CLV_DASK_ADDRESS``, and without it on this machine (see :mod:`flows._dask`).

    Returns
    -------
    dict
        Registered versions, holdout metrics and the markdown summary.
    """
    from clv import tracking

    logger = get_run_logger()
    if isinstance(families, str):
        families = [f.strip() for f in families.split(",") if f.strip()]
    if isinstance(trigger, str):
        import json

        try:
            trigger = {"event": "clv.drift.detected", **json.loads(trigger)} if trigger else None
        except json.JSONDecodeError:
            trigger = {"event": "unknown", "text": trigger}
    max_extrapolated_share = extrapolated_share_to_use(max_extrapolated_share, trigger)
    parameters = _config(
        {
            "horizon_days": horizon_days,
            "as_of": as_of,
            "families": families or ["xgboost", "lightgbm", "keras_ziln"],
            "n_trials": trials,
            "n_windows": n_windows,
            "step_days": step_days,
            "seed": seed,
            "max_extrapolated_share": max_extrapolated_share,
            "ziln_members": ziln_members,
            "ziln_sigma_cap": ziln_sigma_cap,
            "coverage": coverage,
            "max_tune_rows": max_tune_rows,
            "max_fit_rows": max_fit_rows,
            "refit_final": refit_final,
        }
    ).to_dict()
    parameters["n_trials"] = trials
    read_options = {
        "on_duplicate": on_duplicate,
        "columns": columns,
        "future_tolerance_days": future_tolerance_days,
    }
    prepared = prepare.submit(
        transactions, customers, sustainability, parameters, read_options
    ).result()
    logger.info("training rows: %s; fingerprint %s", prepared["rows"], prepared["fingerprint"])

    tracking.configure()
    existing = tracking.find_by_fingerprint(tracking.SPEND_MODEL, prepared["fingerprint"])
    with tracking.training_run(
        EXPERIMENT,
        f"train-{prepared['plan']['as_of'][:10]}-{horizon_days}d",
        tags={
            "clv.fingerprint": prepared["fingerprint"],
            "data_hash": prepared["hashes"]["transactions"],
            "trigger": "manual" if trigger is None else str(trigger.get("event", "event")),
        },
    ) as run:
        run.log_params(
            {
                **{k: v for k, v in parameters.items() if k != "as_of"},
                "as_of": prepared["plan"]["as_of"],
                "transactions": transactions,
                "n_features": len(prepared["feature_columns"]),
                **{f"rows_{k}": v for k, v in prepared["rows"].items()},
            }
        )
        run.log_dict(
            {
                "features": prepared["feature_columns"],
                "learnt_features": [
                    c
                    for c in prepared["feature_columns"]
                    if c not in prepared["extrapolated_features"]
                ],
                "out_of_range": prepared["out_of_range"],
                "left_out_as_extrapolated": prepared["extrapolated_features"],
            },
            "features.json",
        )
        run.log_dict({"plan": prepared["plan"], "hashes": prepared["hashes"]}, "data.json")
        if trigger is not None:
            run.log_dict(trigger, "trigger.json")
        for reduction in prepared["reductions"]:
            logger.warning("short history: %s", reduction)
        run.set_tags({"clv.reductions": "; ".join(prepared["reductions"]) or "none"})
        # Without a fit window there is nothing to tune: BG/NBD + Gamma-Gamma is the model.
        learnt = parameters["families"] if prepared["plan"]["fit"] else []
        # One family after the other, as on one machine: the families' studies share the Optuna
        # storage, and each study's models already use every core of the worker it runs on.
        outcomes = [tune.submit(f, prepared, parameters).result() for f in learnt]
        for outcome in outcomes:
            for record in outcome["trials"]:
                run.nested(
                    f"{outcome['family']}-trial-{record['number']}",
                    params={"family": outcome["family"], **record["params"]},
                    metrics={} if record["value"] is None else {"validation_gini": record["value"]},
                    tags={"state": record["state"], "study": outcome["study_name"]},
                )
            run.log_metrics({f"validation_gini_{outcome['family']}": outcome["best_value"]})
        champions = {} if existing else champion_scores.submit(prepared).result()
        result = evaluate_and_register.submit(
            prepared, outcomes, champions, parameters, run.run_id
        ).result()
        links = {"MLflow run": run.url, "MLflow UI": tracking.ui_hint()}
    state = "registered" if result["spend_created"] else "already registered (same data and config)"
    logger.info(
        "clv-spend version %s %s; clv-churn version %s",
        result["spend_version"],
        state,
        result["churn_version"],
    )
    create_markdown_artifact(
        markdown=result["summary"]
        + _out_of_range_note(prepared)
        + "\n"
        + "\n".join(f"- {k}: {v}" for k, v in links.items())
        + f"\n- clv-spend version {result['spend_version']} ({state}); "
        f"clv-churn version {result['churn_version']}\n",
        key="clv-training-summary",
        description="Holdout evaluation of the training run",
    )
    result["links"] = links
    result["fingerprint"] = prepared["fingerprint"]
    result["out_of_range"] = prepared["out_of_range"]
    result["extrapolated_features"] = prepared["extrapolated_features"]
    from monitoring.metrics import record_model_metrics, write_default_textfile

    record_model_metrics("clv-spend", result["spend_version"], result["metrics"][result["winner"]])
    record_model_metrics(
        "clv-churn", result["churn_version"], result["churn_metrics"]["churn_model"]
    )
    write_default_textfile()
    return result


logging.getLogger(__name__).addHandler(logging.NullHandler())
