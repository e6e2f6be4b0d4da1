"""A real ``dask scheduler`` and two ``dask worker`` processes, as docker-compose.yml and k8s/ run.

Started from the venv's ``dask`` command on free ports, each in its own process group (stopped,
children and all, at teardown). The platform connects with :func:`clv.distributed.cluster.connect`
(what ``--dask-address`` / ``CLV_DASK_ADDRESS`` reach) and computes on generated transactions
read from partitioned Parquet: a map over the partitions, and the features of
:func:`clv.distributed.features.dask_features`, which must equal the single machine's
(:func:`clv.features.build_features`). The health checks of the Compose services and the probes of
the Kubernetes pods ask ``/health`` on the HTTP port of each process: that is checked here too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import pandas as pd
import pyarrow.parquet as pq
import pytest

from clv.data.generator import SyntheticData
from clv.data.validation import validate_frame
from clv.distributed.cluster import DaskUnavailableError, connect
from clv.distributed.features import dask_features
from clv.distributed.io import read_transactions
from clv.features import build_features
from tests.conftest import _free_port, _stop_process_group

pytestmark = pytest.mark.slow

#: The ``dask`` command the image runs, here the venv's (beside this interpreter).
DASK = str(Path(sys.executable).parent / "dask")
START_TIMEOUT_S = 30.0
WORKERS = ("worker-1", "worker-2")
#: Late enough for a year of history before last year's window (the seasonal lift is defined).
CUTOFF = pd.Timestamp("2025-09-30 23:59:59")
HORIZON_DAYS = 90


def _health(url: str) -> str | None:
    """The body of ``url``'s ``/health``, or ``None`` while nothing answers (never via a proxy)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/health", timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return None


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [DASK, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the nanny's worker goes with it
        )


def _wait_until_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while _health(url) != "ok":
        if proc.poll() is not None:
            pytest.fail(f"{proc.args!r} exited with {proc.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            waited = f"no /health within {START_TIMEOUT_S:g} s"
            pytest.fail(f"{proc.args!r}: {waited}:\n{log.read_text()}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The scheduler's address and the HTTP URLs of the scheduler and of each worker."""
    folder = tmp_path_factory.mktemp("dask-processes")
    port, http_port = _free_port(), _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        log = folder / "scheduler.log"
        scheduler_args = ["scheduler", "--host", "127.0.0.1", "--port", str(port)]
        procs.append(_start([*scheduler_args, "--dashboard-address", f":{http_port}"], log))
        scheduler_url = f"http://127.0.0.1:{http_port}"
        _wait_until_healthy(procs[0], scheduler_url, log)
        worker_urls = {}
        for name in WORKERS:
            worker_http = _free_port()
            log = folder / f"{name}.log"
            args = [
                "worker", address, "--name", name, "--host", "127.0.0.1",
                "--nthreads", "1", "--memory-limit", "1GiB",
                "--dashboard-address", f"127.0.0.1:{worker_http}",
                "--local-directory", str(folder / name),
            ]  # fmt: skip
            procs.append(_start(args, log))
            worker_urls[name] = f"http://127.0.0.1:{worker_http}"
        for proc, (name, url) in zip(procs[1:], worker_urls.items(), strict=True):
            _wait_until_healthy(proc, url, folder / f"{name}.log")
        yield {"address": address, "scheduler_url": scheduler_url, "worker_urls": worker_urls}
    finally:
        for proc in reversed(procs):
            _stop_process_group(proc)


@pytest.fixture(scope="module")
def parquet_folder(small_data: SyntheticData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated transactions in time order as three Parquet files (customers cross them)."""
    folder = tmp_path_factory.mktemp("transactions")
    table = small_data.transactions
    third = table.num_rows // 3
    pq.write_table(table.slice(0, third), folder / "part-0.parquet", row_group_size=500)
    pq.write_table(table.slice(third, third), folder / "part-1.parquet")
    pq.write_table(table.slice(2 * third), folder / "part-2.parquet")
    return folder


def test_connect_reaches_both_worker_processes(cluster: dict[str, Any]) -> None:
    with connect(cluster["address"]) as client:
        client.wait_for_workers(len(WORKERS), timeout=START_TIMEOUT_S)
        workers = client.scheduler_info(n_workers=-1)["workers"]
        assert sorted(w["name"] for w in workers.values()) == sorted(WORKERS)
        pids = set(client.run(os.getpid).values())
    assert len(pids) == len(WORKERS) and os.getpid() not in pids


def test_every_process_answers_the_health_check_the_deployments_probe(
    cluster: dict[str, Any],
) -> None:
    for url in (cluster["scheduler_url"], *cluster["worker_urls"].values()):
        assert _health(url) == "ok", url


def test_a_map_over_the_partitions_runs_on_the_workers_and_keeps_each_customer_whole(
    cluster: dict[str, Any], parquet_folder: Path, small_data: SyntheticData
) -> None:
    from distributed import get_task_stream

    transactions = read_transactions(parquet_folder, npartitions=4)
    spend = transactions.map_partitions(
        lambda part: part.groupby("customer_id")["amount"].sum(),
        meta=pd.Series(dtype="float64", name="amount"),
    )
    with connect(cluster["address"]) as client:
        with get_task_stream(client) as stream:
            got = client.compute(spend).result()
        workers = set(client.scheduler_info(n_workers=-1)["workers"])
    ran_on = {task["worker"] for task in stream.data}
    assert ran_on and ran_on <= workers
    # Every customer's rows in one partition: one total per customer, none split in two.
    assert got.index.is_unique
    frame = validate_frame(small_data.frame("transactions"), "transactions")
    expected = frame.groupby("customer_id")["amount"].sum()
    got.index = got.index.astype(object)
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), rtol=1e-12)


def test_dask_features_on_the_processes_equal_the_single_machine_features(
    cluster: dict[str, Any], parquet_folder: Path, small_data: SyntheticData
) -> None:
    transactions = read_transactions(parquet_folder, npartitions=3)
    with connect(cluster["address"]) as client, dask.config.set(scheduler=client):
        features = dask_features(transactions, cutoff=CUTOFF, horizon_days=HORIZON_DAYS)
        got = client.compute(features).result()
    frame = validate_frame(small_data.frame("transactions"), "transactions")
    expected = build_features(frame, cutoff=CUTOFF, horizon_days=HORIZON_DAYS).sort_index()
    got = got.sort_index()
    got.index = got.index.astype(object)
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(got, expected, rtol=1e-9)


def test_a_scheduler_that_is_not_there_is_named_in_the_error() -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    expected = "cannot reach the Dask scheduler at " + address
    with pytest.raises(DaskUnavailableError, match=expected), connect(address, timeout=0.5):
        pass
