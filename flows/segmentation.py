"""Segmentation flow: after each scoring, segment the customers and store a version.

The scoring flow emits ``clv.scores.updated`` (resource ``clv.scores``) with the scores file in its
payload; the ``clv-segmentation`` deployment's trigger (``prefect.yaml``, ``k8s/prefect.yaml``)
turns it into one run of :func:`segmentation_flow`, and a daily schedule covers a trigger that did
not fire. The flow is thin glue over :mod:`clv.segmentation.runs`: it stores the run as a pending
version and activates it on its own only when every segment matched the active version's and few
customers moved (:func:`clv.segmentation.runs.can_activate_automatically`); otherwise the version
waits for an expert (``clv segment review`` / ``approve``). Re-running on the same scores stores
nothing new (the version is identified by its content).
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, task

from flows._dask import ClusterTaskRunner
from flows._hooks import OUTCOME_HOOKS

SCORES_EVENT = "clv.scores.updated"
SCORES_RESOURCE = "clv.scores"
#: Who the store records for an automatic activation.
FLOW_REVIEWER = "clv-segmentation flow"


def emit_scores_event(payload: dict[str, Any]) -> str | None:
    """Emit ``clv.scores.updated``; return the event id (None if it was not sent)."""
    from prefect.events import emit_event

    resource = {"prefect.resource.id": SCORES_RESOURCE, "prefect.resource.name": "clv-scores"}
    event = emit_event(event=SCORES_EVENT, resource=resource, payload=payload)
    return None if event is None else str(event.id)


@task
def segment(
    scores: str | None,
    method: str | None,
    config: str | None,
    auto_activate: bool | None,
) -> dict[str, Any]:
    """Segment one scoring run, store the version, activate it when nothing changed."""
    from clv.config import SegmentationConfig, load_segmentation_config
    from clv.segmentation.inputs import read_scores, scores_as_of, segment_inputs
    from clv.segmentation.rfm import load_rules
    from clv.segmentation.runs import (
        build_segmentation,
        can_activate_automatically,
        previous_of,
        save_version,
    )
    from clv.store import Store

    settings = (load_segmentation_config(config) if config else SegmentationConfig()).model_dump()
    if method is not None:
        settings["method"] = method
    if auto_activate is not None:
        settings["auto_activate"] = auto_activate
    chosen = SegmentationConfig.model_validate(settings)
    store = Store()
    if scores is None:
        frame = store.latest_scores()
        if frame is None:
            raise ValueError("no scores in the platform database yet: run the scoring flow first")
        source = "database: latest scoring run"
    else:
        frame, source = read_scores(scores), scores
    rules = load_rules(chosen.rfm_rules) if chosen.rfm_rules else None
    inputs = segment_inputs(frame, source=source, rules=rules)
    segmentation = build_segmentation(inputs, config=chosen, previous=previous_of(store))
    info = save_version(store, segmentation, source=source, scores_as_of=scores_as_of(frame))
    activated, why = False, f"version {info.version} is {info.status}"
    if info.status == "pending":
        activated, why = can_activate_automatically(segmentation)
        if activated:
            info = store.approve(info.version, by=FLOW_REVIEWER, reason=why, automatic=True)
    return {
        "version": info.version,
        "status": info.status,
        "activated": activated,
        "reason": why,
        "customers": info.n_customers,
        "segments": info.n_segments,
        "rules_passed": info.rules_passed,
        "migration_share": segmentation.migration_share,
    }


@flow(
    name="clv-segmentation",
    task_runner=ClusterTaskRunner(),
    persist_result=True,
    result_serializer="json",
    log_prints=True,
    **OUTCOME_HOOKS,
)
def segmentation_flow(
    scores: str | None = None,
    method: Literal["both", "kmeans", "rfm"] | None = None,
    config: str | None = None,
    auto_activate: bool | None = None,
    trigger: dict[str, Any] | str | None = None,
    dask_address: str | None = None,
) -> dict[str, Any]:
    """Segment the customers of a scoring run and store the result as a version.

    Parameters
    ----------
    scores : str, optional
        Scores file (local or ``s3://``); default: the newest scoring run in the platform
        database.
    method : {"both", "kmeans", "rfm"}, optional
        Overrides the configuration's method.
    config : str, optional
        A segmentation configuration file (``config/segmentation.yaml``).
    auto_activate : bool, optional
        Overrides the configuration's ``auto_activate``.
    trigger : dict or str, optional
        The ``clv.scores.updated`` payload that started the run (recorded in the run's logs);
        the deployment trigger passes it as JSON text (``{{ event.payload | tojson }}``).
    dask_address : str, optional
        Run the tasks on the Dask scheduler at this address (``tcp://HOST:8786``); default:
        ``CLV_DASK_ADDRESS``, and without it on this machine (see :mod:`flows._dask`).

    Returns
    -------
    dict
        The version, its status, whether it was activated and why (not), its size and the
        migration share from the active version.
    """
    if isinstance(trigger, str):
        import json

        trigger = json.loads(trigger) if trigger.strip() else None
    if trigger:
        print(f"started by {SCORES_EVENT}: {trigger}")
    result = segment.submit(scores, method, config, auto_activate).result()
    print(
        f"segment version {result['version']} ({result['segments']} segments, "
        f"{result['customers']:,} customers): {result['status']}; {result['reason']}"
    )
    return result
