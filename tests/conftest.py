"""Shared fixtures: isolated settings, real servers (moto S3, MLflow, Prefect, PostgreSQL), data.

Services and tools that every machine of this kind has (PostgreSQL at 127.0.0.1:5432, promtool
from ``.ci/run``'s apt install) are asked for through :func:`missing`: on a developer's machine a
test without them skips and says why; under ``CI=true`` it fails, so CI never passes by skipping.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from clv.data.generator import GeneratorConfig, SyntheticData, generate
from clv.settings import get_settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: Dummy credentials: passed explicitly everywhere so that a real ~/.aws is never read.
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
MOTO_START_TIMEOUT_S = 20.0
#: The PostgreSQL server every machine of this kind runs (trust auth); throwaway databases go here.
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"

pytest_plugins = ["pytester"]


def running_in_ci() -> bool:
    """Whether ``CI`` is set to a true value (``true``, ``1`` or ``yes``, any case)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def missing(reason: str) -> NoReturn:
    """Stop a test whose required service or tool is absent: skip, or fail under ``CI=true``.

    Parameters
    ----------
    reason : str
        What is missing and how to provide it; shown in the skip or failure message.
    """
    if running_in_ci():
        pytest.fail(
            f"{reason} -- CI=true: every required service and tool must be present, "
            "a skip would hide a test that did not run",
            pytrace=False,
        )
    pytest.skip(reason)


def require_tool(name: str, how: str) -> str:
    """The path of the command-line tool ``name``; :func:`missing` (with ``how``) if absent."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not on PATH ({how})")
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    """The ``promtool`` binary (Debian's prometheus package, installed by ``.ci/run``)."""
    return require_tool("promtool", "apt-get install --no-install-recommends prometheus")


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL database (created here, dropped after); yield its name.

    Connect as ``postgresql+psycopg://postgres@127.0.0.1:5432/<name>`` (trust auth).
    """
    import psycopg
    from psycopg import sql

    name = f"clv_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as err:
        missing(f"PostgreSQL at 127.0.0.1:5432 does not answer: {err}")
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point ``CLV_HOME`` at a fresh folder and drop other ``CLV_*`` settings from the environment.

    ``CLV_TEST_CACHE`` (where tests keep downloaded reference data) is not a setting and stays.
    """
    for name in list(os.environ):
        if name.startswith("CLV_") and name != "CLV_TEST_CACHE":
            monkeypatch.delenv(name)
    home = tmp_path / "clv-home"
    monkeypatch.setenv("CLV_HOME", str(home))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_http(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(url, timeout=1) as response:
            return bool(response.status < 500)
    except urllib.error.HTTPError as err:
        return err.code < 500
    except OSError:
        return False


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[str]:
    """A real ``distributed.LocalCluster``: two worker processes, one thread each; its address.

    Shared by the whole session (starting one costs a few seconds). Tests connect with
    :func:`clv.distributed.cluster.connect` (or pass the address to the code under test) and must
    not close the cluster or change its workers.
    """
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        memory_limit="2GiB",
        silence_logs=40,
    )
    try:
        yield str(cluster.scheduler_address)
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Run a real ``moto.server`` process on a free port; yield its endpoint URL."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
    env = {**os.environ, **AWS_TEST_ENV}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: teardown stops every child too
        )
    try:
        deadline = time.monotonic() + MOTO_START_TIMEOUT_S
        while not _answers_http(endpoint):
            if proc.poll() is not None:
                pytest.fail(
                    f"moto server exited with code {proc.returncode}:\n"
                    + log_path.read_text(errors="replace")
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"moto server did not answer on {endpoint} within {MOTO_START_TIMEOUT_S:g} s:\n"
                    + log_path.read_text(errors="replace")
                )
            time.sleep(0.1)
        yield endpoint
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def s3_bucket(
    moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, S3Client]]:
    """A fresh, uniquely named bucket on the moto server; the settings point ``s3://`` at it."""
    import boto3

    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    # No shared config or credentials files: nothing from ~/.aws can leak into the tests.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("CLV_S3_ENDPOINT_URL", moto_server)
    get_settings.cache_clear()
    client = boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name=AWS_TEST_ENV["AWS_DEFAULT_REGION"],
        aws_access_key_id=AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
    )
    bucket = f"clv-test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket)
    yield bucket, client
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def small_data() -> SyntheticData:
    """300 synthetic customers (seed 7): about 3,000 transactions, generated in well under 1 s."""
    return generate(GeneratorConfig(n_customers=300), seed=7)


#: ``mlflow server`` runs its migrations and starts several processes: give it time on busy cores.
MLFLOW_START_TIMEOUT_S = 90.0


def _start_mlflow_server(
    backend_store_uri: str, folder: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``mlflow server`` in its own process group; return it and its URL once it answers."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = folder / "mlflow_server.log"
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",  # offline: no usage reporting from the server
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--backend-store-uri",
        backend_store_uri,
        "--serve-artifacts",
        "--artifacts-destination",
        str(folder / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=folder,  # anything the server writes relative to its cwd stays in the temp folder
            start_new_session=True,  # its own process group: teardown stops every child too
        )
    deadline = time.monotonic() + MLFLOW_START_TIMEOUT_S
    while not _answers_http(f"{url}/health"):
        if proc.poll() is not None:
            pytest.fail(
                f"mlflow server exited with code {proc.returncode}:\n"
                + log_path.read_text(errors="replace")
            )
        if time.monotonic() > deadline:
            _stop_process_group(proc)
            pytest.fail(
                f"mlflow server did not answer on {url}/health within "
                f"{MLFLOW_START_TIMEOUT_S:g} s:\n" + log_path.read_text(errors="replace")
            )
        time.sleep(0.25)
    return proc, url


def _stop_process_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mlflow server`` (SQLite backend, served artifacts) on a free port; yield its URL.

    The server is shared by the whole session: tests use their own model and experiment names.
    """
    folder = tmp_path_factory.mktemp("mlflow-server")
    proc, url = _start_mlflow_server(f"sqlite:///{folder}/mlflow.db", folder)
    try:
        yield url
    finally:
        _stop_process_group(proc)


@pytest.fixture
def mlflow_tracking(mlflow_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point MLflow at the session's server, failing fast rather than retrying; yield its URL."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return mlflow_server


#: What ``cli_champion`` generates and trains on (LightGBM, one trial): customers, seed, horizon.
CLI_CHAMPION_CUSTOMERS = 900
CLI_CHAMPION_SEED = 4
CLI_CHAMPION_HORIZON_DAYS = 90


def _run_clv(env: dict[str, str], *args: str) -> str:
    """``clv ARGS`` in a subprocess with ``env``; its output, or a test failure showing it."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("clv")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"clv {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@pytest.fixture(scope="session")
def cli_champion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A champion trained, promoted and used to score through the CLI, as a team would.

    In a folder of its own: a real ``mlflow server``, generated data (900 customers, seed 4),
    ``clv train`` (LightGBM, one trial, 90 days), ``clv-spend`` and ``clv-churn`` version 1
    promoted (forced past the gate), ``clv score`` and an approved segmentation (version 1).
    Built once per session for ``tests/integration/test_api.py`` and ``tests/e2e/test_image.py``.

    Yields ``env`` (the CLI's environment: ``CLV_HOME``, ``MLFLOW_TRACKING_URI``, ...), ``home``
    (the data home: the platform database with the scores and the segmentation), ``data`` (the
    generated files), ``scores`` (the scores file), ``mlflow`` (the server's URL) and
    ``horizon_days``.

    Shared: a test that promotes another version puts version 1 back as the champion when it ends,
    and one that hands the home to a container gives it a copy.
    """
    folder = tmp_path_factory.mktemp("cli-champion")
    proc, url = _start_mlflow_server(f"sqlite:///{folder}/mlflow.db", folder)
    home = folder / "home"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLV_", "PREFECT_", "MLFLOW_")) or k == "CLV_TEST_CACHE"
    }
    env.update(
        {
            "CLV_HOME": str(home),
            "MLFLOW_TRACKING_URI": url,
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
    )
    data = folder / "data"
    horizon = str(CLI_CHAMPION_HORIZON_DAYS)
    try:
        _run_clv(env, "generate", "--customers", str(CLI_CHAMPION_CUSTOMERS),
                 "--seed", str(CLI_CHAMPION_SEED), "--out", str(data))  # fmt: skip
        transactions = str(data / "transactions.parquet")
        _run_clv(env, "train", "--transactions", transactions, "--horizon-days", horizon,
                 "--trials", "1", "--families", "lightgbm")  # fmt: skip
        for model in ("clv-spend", "clv-churn"):
            _run_clv(env, "promote", "--model", model, "--latest", "--yes", "--force",
                     "--reason", "the tests' champion")  # fmt: skip
        scores = folder / "scores.parquet"
        _run_clv(env, "score", "--transactions", transactions, "--horizon-days", horizon,
                 "--out", str(scores))  # fmt: skip
        _run_clv(env, "segment", "run", "--scores", str(scores))
        _run_clv(env, "segment", "approve", "1", "--yes", "--override-rules",
                 "--reason", "the tests' champion")  # fmt: skip
        yield {
            "env": env,
            "home": home,
            "data": data,
            "scores": scores,
            "mlflow": url,
            "horizon_days": CLI_CHAMPION_HORIZON_DAYS,
        }
    finally:
        _stop_process_group(proc)


#: ``prefect server start`` runs its migrations first: give it time on busy cores.
PREFECT_START_TIMEOUT_S = 120.0


def _start_prefect_server(
    folder: Path, base_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """Start ``prefect server`` (SQLite under ``folder``, free port) in its own process group.

    Returns the process and the environment pointing at it (``PREFECT_API_URL`` included) once
    ``/api/health`` answers. ``base_env`` (default: this process's, minus ``PREFECT_*``) is the
    environment it starts from.
    """
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = dict(base_env) if base_env is not None else dict(os.environ)
    env = {k: v for k, v in env.items() if not k.startswith("PREFECT_")}
    env.update(
        {
            "PREFECT_HOME": str(folder / "prefect-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{folder}/prefect.db",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    log_path = folder / "prefect-server.log"
    prefect = str(Path(sys.executable).with_name("prefect"))
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: teardown stops every child too
        )
    deadline = time.monotonic() + PREFECT_START_TIMEOUT_S
    while not _answers_http(f"{api}/health"):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop_process_group(proc)
            pytest.fail(
                f"prefect server did not answer on {api}/health within "
                f"{PREFECT_START_TIMEOUT_S:g} s:\n" + log_path.read_text(errors="replace")
            )
        time.sleep(0.5)
    return proc, {**env, "PREFECT_API_URL": api}


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real ``prefect server`` shared by the session; yield the environment pointing at it.

    Tests use their own work-pool and deployment names. A test that needs a server of its own
    (deployments with triggers, a worker) starts one with :func:`_start_prefect_server`.
    """
    proc, env = _start_prefect_server(tmp_path_factory.mktemp("prefect-server"))
    try:
        yield env
    finally:
        _stop_process_group(proc)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """Prefect's test harness (a temporary server and database), shared by the session."""
    from prefect.testing.utilities import prefect_test_harness

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        with prefect_test_harness(server_startup_timeout=120):
            yield
