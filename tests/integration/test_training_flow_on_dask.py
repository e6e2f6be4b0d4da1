"""The training flow given a Dask address: its tasks on the cluster, the trees trained there too.

A ``distributed.LocalCluster`` of this module's own (two worker processes), started after the
data home and the MLflow store are set in the environment, so that its workers see the same
settings as the flow run: what ``k8s/base/dask.yaml`` and ``docker-compose.yml`` give theirs.
A small run registers challengers as on one machine: XGBoost with one Optuna trial (run on one
worker; trials spread over several workers are :mod:`clv.distributed.training`'s to test) and its
final refit by ``xgboost.dask`` on both workers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clv.data.generator import GeneratorConfig, generate, write_synthetic
from clv.settings import get_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shared_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The data home and a SQLite MLflow store, in this process's environment for the module."""
    root = tmp_path_factory.mktemp("flow-on-dask")
    env = {
        "CLV_HOME": str(root / "home"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield env


@pytest.fixture(scope="module")
def cluster(shared_env: dict[str, str]) -> Iterator[str]:
    """Two worker processes started with :func:`shared_env`'s environment; the address."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
        memory_limit="2GiB",
        silence_logs=40,
    ) as local:
        yield str(local.scheduler_address)


@pytest.fixture(scope="module")
def run(prefect_harness: None, shared_env: dict[str, str], cluster: str) -> dict[str, Any]:
    """One training run on the cluster, with what the cluster executed meanwhile."""
    from distributed import get_task_stream

    from clv.distributed.cluster import connect
    from flows.training import training_flow

    with pytest.MonkeyPatch.context() as patch:
        # isolated_settings (function scope) has not run for a module fixture: set what it would.
        for name in [n for n in os.environ if n.startswith("CLV_") and n != "CLV_HOME"]:
            patch.delenv(name)
        get_settings.cache_clear()
        data = generate(GeneratorConfig(n_customers=600), seed=11)
        home = Path(shared_env["CLV_HOME"])
        write_synthetic(data, home / "data", fmt="csv")
        with connect(cluster) as client, get_task_stream(client) as stream:
            result = training_flow(
                transactions=str(home / "data" / "transactions.csv"),
                horizon_days=90,
                trials=1,
                families=["xgboost"],
                dask_address=cluster,
            )
            workers = set(client.scheduler_info(n_workers=-1)["workers"])
    get_settings.cache_clear()
    return {"result": result, "stream": stream.data, "workers": workers}


def test_the_run_registers_challengers_as_on_one_machine(run: dict[str, Any]) -> None:
    result = run["result"]
    assert result["spend_created"]
    assert int(result["spend_version"]) >= 1
    assert int(result["churn_version"]) >= 1
    assert "xgboost" in result["metrics"]


def test_the_runs_tasks_and_the_tree_training_ran_on_both_workers(run: dict[str, Any]) -> None:
    ran_on = {record["worker"] for record in run["stream"]}
    assert ran_on == run["workers"]
    # xgboost.dask trains with one task per worker holding data (``do_train`` inside the ``fn``
    # that ``xgboost.dask.map_worker_partitions`` submits to each worker): both took part.
    names = {str(record["key"]).strip("('\"").rsplit("-", 1)[0] for record in run["stream"]}
    trained = {
        record["worker"]
        for record in run["stream"]
        if str(record["key"]).startswith(("fn-", "do_train-", "dispatched_train-"))
    }
    assert trained == run["workers"], sorted(names)
