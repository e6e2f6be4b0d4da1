"""The flows' task runner: a run naming a Dask scheduler runs its tasks there, else in threads.

Against the session's real ``distributed.LocalCluster`` (two worker processes) and Prefect's test
harness. The platform's flows are checked through the task runner and parameter they declare; a
small probe task says where it ran (``distributed.get_worker()`` only answers inside a worker).
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import pytest
from prefect import Flow, flow, task

from clv.distributed.cluster import DaskUnavailableError, connect
from clv.settings import get_settings
from flows._dask import DASK_ADDRESS_PARAMETER, ClusterTaskRunner, on_this_tasks_cluster
from flows.campaigns import campaign_analysis_flow, campaign_flow
from flows.drift_monitoring import monitoring_flow
from flows.scoring import scoring_flow
from flows.segmentation import segmentation_flow
from flows.training import training_flow

PLATFORM_FLOWS = {
    "training": training_flow,
    "scoring": scoring_flow,
    "segmentation": segmentation_flow,
    "monitoring": monitoring_flow,
    "campaign": campaign_flow,
    "campaign-analysis": campaign_analysis_flow,
}


@task
def where() -> dict[str, Any]:
    """The Dask worker this task ran on (``None`` outside one) and its process id."""
    import distributed

    try:
        worker: str | None = distributed.get_worker().address
    except ValueError:
        worker = None
    return {"worker": worker, "pid": os.getpid()}


def run_probe(platform_flow: Flow[Any, Any], dask_address: str | None = None) -> dict[str, Any]:
    """Run a flow with ``platform_flow``'s task runner whose one task says where it ran."""

    @flow(name=f"probe-{platform_flow.name}", task_runner=platform_flow.task_runner)
    def probe(dask_address: str | None = None) -> dict[str, Any]:
        return where.submit().result()

    ran: dict[str, Any] = probe(dask_address=dask_address)
    return ran


@task
def uses_the_cluster() -> dict[str, Any]:
    """What the library's Dask paths see inside :func:`on_this_tasks_cluster`: a client, and work
    it sends to the cluster (one thread per worker here: the task must not hold its thread)."""
    import operator

    from clv.distributed.training import active_client

    with on_this_tasks_cluster():
        client = active_client()
        if client is None:
            return {"client": None, "sum": None}
        total = client.submit(operator.add, 1, 2, pure=False).result()
        return {"client": client.scheduler.address, "sum": total}


def run_library_probe(dask_address: str | None = None) -> dict[str, Any]:
    @flow(name="probe-library", task_runner=training_flow.task_runner)
    def probe(dask_address: str | None = None) -> dict[str, Any]:
        return uses_the_cluster.submit().result()

    ran: dict[str, Any] = probe(dask_address=dask_address)
    return ran


def workers_of(address: str) -> set[str]:
    with connect(address) as client:
        return set(client.scheduler_info(n_workers=-1)["workers"])


@pytest.mark.parametrize("platform_flow", PLATFORM_FLOWS.values(), ids=PLATFORM_FLOWS.keys())
def test_each_flow_takes_a_dask_address_and_uses_the_cluster_task_runner(
    platform_flow: Flow[Any, Any],
) -> None:
    parameter = inspect.signature(platform_flow.fn).parameters[DASK_ADDRESS_PARAMETER]
    assert parameter.default is None
    assert isinstance(platform_flow.task_runner, ClusterTaskRunner)


@pytest.mark.parametrize("platform_flow", PLATFORM_FLOWS.values(), ids=PLATFORM_FLOWS.keys())
def test_a_run_given_a_dask_address_runs_its_tasks_on_that_cluster(
    prefect_harness: None, dask_cluster: str, platform_flow: Flow[Any, Any]
) -> None:
    ran = run_probe(platform_flow, dask_cluster)
    assert ran["worker"] in workers_of(dask_cluster)
    assert ran["pid"] != os.getpid()


def test_without_an_address_the_tasks_run_in_this_process(prefect_harness: None) -> None:
    ran = run_probe(training_flow)
    assert ran == {"worker": None, "pid": os.getpid()}


def test_clv_dask_address_chooses_the_cluster_when_the_run_names_none(
    prefect_harness: None, dask_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLV_DASK_ADDRESS", dask_cluster)
    get_settings.cache_clear()
    ran = run_probe(scoring_flow)
    assert ran["worker"] in workers_of(dask_cluster)


def test_the_parameter_wins_over_clv_dask_address(
    prefect_harness: None, dask_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLV_DASK_ADDRESS", "tcp://127.0.0.1:1")  # nothing listens there
    get_settings.cache_clear()
    ran = run_probe(segmentation_flow, dask_cluster)
    assert ran["worker"] in workers_of(dask_cluster)


def test_a_malformed_address_fails_the_run_saying_what_an_address_looks_like(
    prefect_harness: None,
) -> None:
    with pytest.raises(DaskUnavailableError, match=r"tcp://HOST:PORT"):
        run_probe(training_flow, "dask-scheduler:8786")


def test_the_runner_is_chosen_afresh_for_each_run(prefect_harness: None, dask_cluster: str) -> None:
    on_cluster = run_probe(campaign_flow, dask_cluster)
    local = run_probe(campaign_flow)
    assert on_cluster["worker"] is not None
    assert local["worker"] is None


def test_a_task_on_the_cluster_hands_the_library_a_client_of_that_cluster(
    prefect_harness: None, dask_cluster: str
) -> None:
    # What tune and evaluate_and_register do around run_study / assemble: the tree families
    # then train on the cluster the task runs on.
    assert run_library_probe(dask_cluster) == {"client": dask_cluster, "sum": 3}


def test_in_threads_the_library_keeps_the_callers_cluster_or_none(
    prefect_harness: None, dask_cluster: str
) -> None:
    from clv.distributed.training import on_cluster

    assert run_library_probe() == {"client": None, "sum": None}
    # `clv train --dask-address` wraps the flow in on_cluster: its tasks' threads see it.
    with connect(dask_cluster) as client, on_cluster(client):
        assert run_library_probe() == {"client": dask_cluster, "sum": 3}
