"""Connecting to a Dask cluster: addresses, a real LocalCluster, a scheduler that is not there."""

from __future__ import annotations

import socket

import pytest

from clv.distributed.cluster import DaskUnavailableError, connect, dask_address
from clv.settings import get_settings


def test_no_address_anywhere_means_the_single_machine_path() -> None:
    assert dask_address() is None
    assert dask_address("  ") is None


def test_the_explicit_address_wins_over_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLV_DASK_ADDRESS", "tcp://10.0.0.1:8786")
    get_settings.cache_clear()

    assert dask_address() == "tcp://10.0.0.1:8786"
    assert dask_address(" tcp://127.0.0.1:9000 ") == "tcp://127.0.0.1:9000"


@pytest.mark.parametrize("bad", ["127.0.0.1:8786", "http://host:8786", "tcp://"])
def test_an_address_without_a_dask_scheme_is_refused_with_an_example(bad: str) -> None:
    with pytest.raises(DaskUnavailableError, match="tcp://HOST:PORT"):
        dask_address(bad)


def test_a_client_of_the_local_cluster_runs_work_on_its_two_workers(dask_cluster: str) -> None:
    with connect(dask_cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        assert client.submit(sum, [1, 2, 3]).result() == 6
    assert client.status == "closed"


def test_a_scheduler_that_is_not_there_is_reported_with_its_address() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"

    expected = f"cannot reach the Dask scheduler at {address}"
    with pytest.raises(DaskUnavailableError, match=expected), connect(address, timeout=1.0):
        pass
