"""Monitoring flows: drift of current features against the champion's reference, and a safety net.

``monitoring_flow`` (daily) builds today's features, compares them with the reference the
champion was validated on (stored in its bundle), stores the Evidently HTML report, exports
Prometheus metrics and, when the share of drifted columns reaches the threshold, emits the Prefect
event ``clv.drift.detected`` on the resource ``clv.model.clv-spend``. The training deployment's
trigger turns that event into one retraining run (see ``prefect.yaml``).

``drift_safety_net`` (daily) re-emits the event when drift was seen but no training run followed:
automations are not guaranteed to fire.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from clv.settings import get_settings
from flows._dask import ClusterTaskRunner
from flows._hooks import OUTCOME_HOOKS
from flows.training import _logger, retry_on_io

DRIFT_EVENT = "clv.drift.detected"
RESOURCE = "clv.model.clv-spend"
STATE_FILE = "drift_state.json"


def _state_path() -> Path:
    return get_settings().home / "monitoring" / STATE_FILE


def read_drift_state() -> dict[str, Any] | None:
    """The last drift detection the monitor recorded (``None`` when there is none)."""
    path = _state_path()
    if not path.exists():
        return None
    state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return state


def _write_state(state: dict[str, Any]) -> None:
    from clv.data.io import write_atomic

    path = _state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(state, indent=2, sort_keys=True, default=str)
    write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"))


def emit_drift_event(payload: dict[str, Any], *, version: int | None) -> str | None:
    """Emit ``clv.drift.detected`` for the spend model; return the event id (None if not sent)."""
    from prefect.events import emit_event

    resource = {"prefect.resource.id": RESOURCE, "prefect.resource.name": "clv-spend"}
    if version is not None:
        resource["clv.model.version"] = str(version)
    event = emit_event(event=DRIFT_EVENT, resource=resource, payload=payload)
    return None if event is None else str(event.id)


def _realised_performance(transactions: Any) -> list[dict[str, Any]]:
    """Grade every stored scoring whose horizon has passed (newest first, at most five)."""
    import pandas as pd

    from monitoring.performance import realised_performance

    graded = []
    folder = get_settings().home / "scores"
    for path in sorted(folder.glob("????-??-??-*d.parquet"), reverse=True)[:5]:
        scores = pd.read_parquet(path)
        result = realised_performance(scores, transactions)
        if result is not None:
            version = scores["model_version"].iloc[0] if "model_version" in scores else None
            graded.append(
                {
                    "scores": path.name,
                    "model_version": None if version is None else int(version),
                    **result,
                }
            )
    return graded


@task(retries=2, retry_delay_seconds=5, retry_condition_fn=retry_on_io)
def check_drift(
    transactions: str,
    as_of: str | None,
    threshold: float,
    customers: str | None,
    sustainability: str | None,
    read_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Current features vs the champion's reference; the drift result as a dict.

    ``read_options``: :func:`clv.data.io.read_table`'s ``on_duplicate``, ``columns`` and
    ``future_tolerance_days`` for the transactions.
    """
    import pandas as pd

    from clv import tracking
    from clv.data.io import read_table
    from clv.features import build_features
    from clv.training.scoring import load_registered
    from clv.training.windows import end_of_day
    from monitoring.drift import compute_drift

    tracking.configure()
    with tempfile.TemporaryDirectory(prefix="clv-monitor-") as tmp:
        models = load_registered(tracking.CHAMPION, Path(tmp))
    spend = models.spend
    if spend.reference is None:
        raise ValueError(
            f"clv-spend v{models.spend_version} has no drift reference (trained before "
            "monitoring existed); retrain it with `clv train`"
        )
    options = dict(read_options or {})
    tolerance: float | None = options.get("future_tolerance_days")
    tx = read_table(transactions, "transactions", **options)
    cutoff = (
        end_of_day(pd.Timestamp(tx["timestamp"].max()))
        if as_of is None
        else end_of_day(pd.Timestamp(as_of))
    )
    current = build_features(
        tx[tx["timestamp"] <= cutoff],
        cutoff=cutoff,
        horizon_days=spend.horizon_days,
        customers=read_table(customers, "customers", future_tolerance_days=tolerance)
        if customers
        else None,
        sustainability=read_table(sustainability, "sustainability", future_tolerance_days=tolerance)
        if sustainability
        else None,
    )
    # A column constant in the reference (the horizon's calendar position, the base's seasonal
    # lift: one value per cut-off) differs between any two cut-offs by construction; testing it
    # would report drift every day. All-missing columns cannot be tested either.
    columns = [
        c
        for c in spend.reference.columns
        if c in current.columns
        and spend.reference[c].nunique(dropna=True) > 1
        and current[c].notna().any()
    ]
    reports = get_settings().home / "monitoring" / "reports" / f"{cutoff:%Y-%m-%d}"
    result = compute_drift(
        spend.reference[columns],
        current[columns].reset_index(drop=True),
        report_dir=reports,
        threshold=threshold,
        name="features",
    )
    # The model's outputs: on the reference it was validated on, and on today's customers.
    from monitoring.drift import prediction_drift

    predictions = prediction_drift(
        pd.DataFrame({"predicted_clv": spend.predict(spend.reference)}),
        pd.DataFrame({"predicted_clv": spend.predict(current)}),
        report_dir=reports,
        threshold=threshold,
    )
    realised = _realised_performance(tx)
    with tracking.training_run(
        "clv-monitoring",
        f"drift-{cutoff:%Y-%m-%d}",
        tags={"champion_version": str(models.spend_version), "transactions": transactions},
    ) as run:
        run.log_metrics(
            {
                "feature_drift_share": result.share,
                "drifted_columns": float(len(result.drifted_columns)),
                "prediction_drift_share": predictions.share,
                **{
                    f"realised_{k}": float(v)
                    for past in realised
                    for k, v in past.items()
                    if isinstance(v, int | float) and k not in ("horizon_days", "model_version")
                },
            }
        )
        run.log_dict(result.to_dict(), "feature_drift.json")
        run.log_dict(predictions.to_dict(), "prediction_drift.json")
        if realised:
            run.log_dict({"realised": realised}, "realised_performance.json")
        for path in (result.report_path, predictions.report_path):
            if path is not None:
                run.log_artifact(path, "reports")
        mlflow_run = run.url
    config = spend.info.get("config", {})
    return {
        **result.to_dict(),
        "prediction_drift_share": predictions.share,
        "prediction_report_path": (
            None if predictions.report_path is None else str(predictions.report_path)
        ),
        "realised": realised,
        "mlflow_run": mlflow_run,
        "as_of": cutoff.isoformat(),
        "champion_version": models.spend_version,
        "horizon_days": spend.horizon_days,
        "families": ",".join(config.get("families", [])),
        "trials": int(config.get("n_trials", 10)),
        "max_extrapolated_share": config.get("max_extrapolated_share"),
    }


@flow(
    name="clv-monitoring",
    task_runner=ClusterTaskRunner(),
    persist_result=True,
    result_serializer="json",
    log_prints=True,
    **OUTCOME_HOOKS,
)
def monitoring_flow(
    transactions: str,
    as_of: str | None = None,
    threshold: float = 0.3,
    customers: str | None = None,
    sustainability: str | None = None,
    on_duplicate: str = "warn",
    columns: dict[str, str] | None = None,
    future_tolerance_days: float | None = None,
    dask_address: str | None = None,
) -> dict[str, Any]:
    """Compare current features with the champion's reference; emit an event on drift.

    Parameters
    ----------
    transactions : str
        Path or ``s3://`` URI of the current transactions.
    as_of : str, optional
        Feature cut-off (ISO date); default: the last transaction's day.
    threshold : float
        Share of drifted feature columns at which drift is declared (0 < threshold <= 1).
    customers, sustainability : str, optional
        Optional tables, as in training.
    on_duplicate, columns, future_tolerance_days
        How the transactions are read, as in training (see :func:`clv.data.io.read_table`).
    dask_address : str, optional
        Run the tasks on the Dask scheduler at this address (``tcp://HOST:8786``); default:
        ``CLV_DASK_ADDRESS``, and without it on this machine (see :mod:`flows._dask`).

    Returns
    -------
    dict
        Drift share, drifted columns, report path and whether the event was emitted.
    """
    from monitoring.metrics import record_drift, record_model_metrics, write_default_textfile

    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    logger = _logger()
    read_options = {
        "on_duplicate": on_duplicate,
        "columns": columns,
        "future_tolerance_days": future_tolerance_days,
    }
    drift = check_drift.submit(
        transactions, as_of, threshold, customers, sustainability, read_options
    ).result()
    record_drift("clv-spend", drift["share"], len(drift["drifted_columns"]))
    record_drift("clv-spend", drift["prediction_drift_share"], 0, dataset="predictions")
    for past in drift["realised"]:
        record_model_metrics(
            "clv-spend",
            int(past["model_version"] or drift["champion_version"]),
            {
                k: v
                for k, v in past.items()
                if isinstance(v, int | float) and k not in ("horizon_days", "model_version")
            },
            prefix="realised_",
        )
    write_default_textfile()
    report = drift.get("report_path")
    create_markdown_artifact(
        key="clv-drift-report",
        markdown=(
            f"# Drift check as of {drift['as_of'][:10]}\n\n"
            f"Champion clv-spend v{drift['champion_version']}: **{drift['share']:.1%}** of "
            f"{len(drift['columns_checked'])} feature columns drifted (threshold "
            f"{threshold:.0%}).\n\nDrifted: {', '.join(drift['drifted_columns']) or 'none'}.\n\n"
            f"Report: `{report}`\n\nPrediction drift share: {drift['prediction_drift_share']:.1%}."
            f"\n\nMLflow run: {drift['mlflow_run']}\n"
        ),
        description="Evidently drift of current features against the champion's reference",
    )
    drift["event_id"] = None
    if drift["detected"]:
        payload = {
            "drift_share": drift["share"],
            "drifted_columns": drift["drifted_columns"],
            "report_uri": None if report is None else Path(report).resolve().as_uri(),
            "transactions": transactions,
            "horizon_days": drift["horizon_days"],
            "families": drift["families"],
            "trials": drift["trials"],
            "max_extrapolated_share": drift["max_extrapolated_share"],
            "champion_version": drift["champion_version"],
        }
        drift["event_id"] = emit_drift_event(payload, version=drift["champion_version"])
        _write_state(
            {
                "detected_at": datetime.now(UTC).isoformat(),
                "event_id": drift["event_id"],
                "payload": payload,
                "handled": False,
            }
        )
        logger.warning(
            "drift: %.1f%% of columns (%s); emitted %s",
            100 * drift["share"],
            ", ".join(drift["drifted_columns"]),
            DRIFT_EVENT,
        )
    else:
        logger.info("no drift: %.1f%% of columns", 100 * drift["share"])
    return drift


@flow(name="clv-drift-safety-net", log_prints=True, **OUTCOME_HOOKS)
def drift_safety_net(grace_minutes: float = 60.0) -> dict[str, Any]:
    """Re-emit ``clv.drift.detected`` when drift was seen but no training run followed.

    Parameters
    ----------
    grace_minutes : float
        How long after the detection a training run may take to appear before the event is
        emitted again (the trigger's debounce window is shorter).

    Returns
    -------
    dict
        ``action``: ``none`` (no unhandled drift), ``waiting``, ``handled`` (a training run
        exists) or ``reemitted``.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
    )

    state = read_drift_state()
    if state is None or state.get("handled"):
        return {"action": "none"}
    detected = datetime.fromisoformat(state["detected_at"])
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["clv-training"])),
            flow_run_filter=FlowRunFilter(
                expected_start_time=FlowRunFilterExpectedStartTime(after_=detected)
            ),
        )
    alive = [
        r
        for r in runs
        if r.state is None or r.state.type.value not in ("FAILED", "CRASHED", "CANCELLED")
    ]
    if alive:
        _write_state({**state, "handled": True, "training_run": str(alive[0].id)})
        return {"action": "handled", "training_run": str(alive[0].id)}
    age = (datetime.now(UTC) - detected).total_seconds() / 60.0
    if age < grace_minutes:
        return {"action": "waiting", "minutes_since_detection": age}
    payload = {**state["payload"], "reemitted": True}
    event_id = emit_drift_event(payload, version=payload.get("champion_version"))
    _write_state({**state, "detected_at": datetime.now(UTC).isoformat(), "event_id": event_id})
    print(f"drift seen {age:.0f} min ago and no training followed: re-emitted {DRIFT_EVENT}")
    return {"action": "reemitted", "event_id": event_id}
