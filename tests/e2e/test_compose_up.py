"""docker-compose.yml started for real with podman-compose, as far as it runs on these machines.

These machines have no registry of third-party images, so PostgreSQL, MinIO, Prometheus,
node-exporter and Grafana cannot be pulled: they are validated only (tests/unit/test_compose.py).
What runs from the platform image ``localhost/clv-platform:latest`` is started here with the
override ``infra/compose/local-only.yml`` (SQLite files and a local artefact folder on volumes
instead of PostgreSQL and MinIO), ``up --no-deps`` so that the services it replaces are not
asked for: the MLflow and Prefect servers first, then the API and the Prefect worker once both
answer. Each must answer its health endpoint on its published port, pass its own
compose health check, reach the others by service name, and the worker must be polling the pool.
The training deployment of ``prefect.yaml`` is then deployed from the checkout to that Prefect
server with the variables docker-compose.yml's header gives, a run of it goes through the worker
into the MLflow server, and the API serves the champion promoted from it. Then everything
(containers, volumes, network) is taken down.

The image is the session's ``image`` fixture (``tests/e2e/conftest.py``), built once with
``infra/image/build.sh`` for this module and ``tests/e2e/test_image.py``. Skipped, or failed under
``CI=true`` (see :func:`tests.conftest.missing`), only where podman cannot run: podman or
podman-compose missing and not installable, no user namespaces for a rootless run, or no DNS for
container networks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import _free_port, missing
from tests.e2e.podman import ROOT, container_logs, http, podman, require_podman, wait_until_answers

pytestmark = pytest.mark.slow

COMPOSE = ROOT / "docker-compose.yml"
LOCAL_ONLY = ROOT / "infra" / "compose" / "local-only.yml"
PODMAN_COMPOSE = Path(sys.executable).with_name("podman-compose")
#: Migrations on first start and the modelling stack's imports: about 45 s here on 2 cores.
START_TIMEOUT_S = 240.0
API_KEY = "compose-test-key"
#: Started first, together: they wait for nothing but the stores local-only.yml replaces.
SERVERS = ("mlflow", "prefect-server")
#: Started once both answer: podman 4.3 cannot wait for `condition: service_healthy` (podman-compose
#: ignores it before podman 4.6, and no systemd runs the checks here), so the test keeps the order
#: docker-compose.yml's depends_on asks for. An API started before MLflow reports that failure
#: as its not-ready reason until its next poll.
DEPENDENTS = ("api", "prefect-worker")
WORKER = "prefect-worker"
POOL = "clv-process"
BIN = Path(sys.executable).parent
#: A training run on 400 customers, one trial of one family: about 30 s in the worker here.
FLOW_TIMEOUT_S = 600.0
#: The API looks for a new champion every CLV_API_POLL_SECONDS (30 s by default).
CHAMPION_TIMEOUT_S = 180.0
#: Where the worker's flow runs find their data: the clv-data volume.
DATA = "/data/clv/compose-test"
#: Where podman looks for CNI plugins (containers.conf's default cni_plugin_dirs).
CNI_PLUGIN_DIRS = ("/usr/local/libexec/cni", "/usr/libexec/cni", "/usr/local/lib/cni",
                   "/usr/lib/cni", "/opt/cni/bin")  # fmt: skip
DNSNAME_PACKAGE = "golang-github-containernetworking-plugin-dnsname"


def _get(url: str, *, key: str | None = None, data: bytes | None = None) -> tuple[int, str]:
    """Status and body of a GET (a JSON POST with ``data``), never through a proxy."""
    return http(url, key=key, data=data, timeout=10)


def _container_dns_works() -> bool:
    """Whether containers on a podman network find each other by name (netavark, CNI + dnsname)."""
    backend = podman("info", "--format", "{{.Host.NetworkBackend}}").stdout.strip()
    if backend != "cni":
        return True  # netavark resolves names with aardvark-dns
    return any((Path(folder) / "dnsname").exists() for folder in CNI_PLUGIN_DIRS)


@pytest.fixture(scope="module")
def compose_image(request: pytest.FixtureRequest) -> str:
    """podman and podman-compose ready, container networks with DNS, and the session's image."""
    require_podman()
    if not PODMAN_COMPOSE.exists():
        missing(f"podman-compose is not in {PODMAN_COMPOSE.parent}: pip install -e '.[dev]'")
    request.getfixturevalue("podman_ready")  # build.sh prerequisites: podman installed, configured
    if not _container_dns_works() and shutil.which("apt-get") and os.geteuid() == 0:
        # Podman 4 with CNI (Debian 12) resolves service names only with the dnsname plugin.
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", DNSNAME_PACKAGE],
            capture_output=True,
            timeout=600,
            check=False,
        )
    if not _container_dns_works():
        missing(
            "podman's CNI networks have no DNS here, so services cannot find each other by "
            f"name: apt-get install --no-install-recommends {DNSNAME_PACKAGE}"
        )
    return str(request.getfixturevalue("image"))


class Stack:
    """One compose project of docker-compose.yml + local-only.yml, named for this test run."""

    def __init__(self, image: str, folder: Path) -> None:
        self.project = f"clv-compose-test-{uuid.uuid4().hex[:8]}"
        self.ports = {"api": _free_port(), "mlflow": _free_port(), "prefect-server": _free_port()}
        env_file = folder / "empty.env"  # never the checkout's own .env
        env_file.write_text("")
        self.command = [
            str(PODMAN_COMPOSE),
            "--podman-args=--runtime=runc",
            f"--env-file={env_file}",
            "--project-name", self.project,
            "--file", str(COMPOSE),
            "--file", str(LOCAL_ONLY),
        ]  # fmt: skip
        # Only what the compose files read: no CLV_, MLFLOW_ or PREFECT_ setting of this shell.
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CLV_", "MLFLOW_", "PREFECT_", "HOST_PORT_"))
        }
        self.env.update(
            {
                "CLV_IMAGE": image,
                "CLV_API_KEYS": API_KEY,
                "HOST_PORT_API": str(self.ports["api"]),
                "HOST_PORT_MLFLOW": str(self.ports["mlflow"]),
                "HOST_PORT_PREFECT": str(self.ports["prefect-server"]),
            }
        )
        self.log = folder / "podman-compose.log"
        self.folder = folder

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self.command, *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=ROOT,
            timeout=timeout,
            check=False,
        )
        with self.log.open("a") as log:
            log.write(f"$ podman-compose {' '.join(args)}  (exit {done.returncode})\n")
            log.write(done.stdout + done.stderr)
        return done

    def up(self, *services: str) -> None:
        done = self.compose("up", "--detach", "--no-deps", *services)
        if done.returncode != 0:
            pytest.fail(f"podman-compose up {' '.join(services)} failed:\n{self.log.read_text()}")

    def container(self, service: str) -> str:
        names = podman(
            "ps", "--all", "--format", "{{.Names}}",
            "--filter", f"label=io.podman.compose.project={self.project}",
            "--filter", f"label=io.podman.compose.service={service}",
        ).stdout.split()  # fmt: skip
        assert len(names) == 1, f"{service}: containers {names}"
        return names[0]

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def logs(self, service: str) -> str:
        return container_logs(self.container(service), tail=60)

    def wait_until_answers(self, service: str, path: str) -> None:
        wait_until_answers(
            self.url(service) + path,
            self.container(service),
            timeout_s=START_TIMEOUT_S,
            log_tail=60,
        )

    def exec(self, service: str, *command: str) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.container(service), *command, timeout=120)

    def down(self) -> list[str]:
        """Take the project down with its volumes; return whatever is left of it."""
        self.compose("down", "--volumes", "--timeout", "10")
        label = f"label=io.podman.compose.project={self.project}"
        left = []
        for kind in ("ps --all", "volume ls", "network ls"):
            listed = podman(*kind.split(), "--quiet", "--filter", label).stdout.split()
            left += [f"{kind.split()[0]} {item}" for item in listed]
        # Whatever `down` missed goes too, so that a failed run leaves nothing behind.
        for item in left:
            kind, name = item.split()
            podman(*({"ps": ["rm", "--force"]}.get(kind, [kind, "rm", "--force"])), name)
        return left


@pytest.fixture(scope="module")
def stack(compose_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The MLflow and Prefect servers, then the API and the worker, up and answering."""
    stack = Stack(compose_image, tmp_path_factory.mktemp("compose"))
    try:
        stack.up(*SERVERS)
        stack.wait_until_answers("mlflow", "/health")
        stack.wait_until_answers("prefect-server", "/api/health")
        stack.up(*DEPENDENTS)
        stack.wait_until_answers("api", "/health")
        yield stack
    finally:
        stack.down()


@pytest.mark.parametrize(
    ("service", "path", "body"),
    [("api", "/health", {"status": "ok"}), ("mlflow", "/health", "OK"),
     ("prefect-server", "/api/health", True)],
    ids=["api", "mlflow", "prefect-server"],
)  # fmt: skip
def test_each_server_answers_its_health_endpoint_on_its_published_port(
    stack: Stack, service: str, path: str, body: object
) -> None:
    status, text = _get(stack.url(service) + path)
    assert status == 200, text
    assert (json.loads(text) if service != "mlflow" else text) == body


@pytest.mark.parametrize("service", [*SERVERS, *DEPENDENTS])
def test_the_compose_health_check_passes_in_each_container(stack: Stack, service: str) -> None:
    # No systemd here to run the checks on a timer: `podman healthcheck run` runs one now.
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        done = podman("healthcheck", "run", stack.container(service), timeout=60)
        if done.returncode == 0:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"{service}: health check fails: {done.stdout}{done.stderr}\n"
                        f"{stack.logs(service)}")  # fmt: skip
        time.sleep(2)
    health = podman("inspect", "--format", "{{.State.Health.Status}}", stack.container(service))
    assert health.stdout.strip() == "healthy"


def test_the_worker_polls_the_process_pool_of_the_prefect_server(stack: Stack) -> None:
    url = f"{stack.url('prefect-server')}/api/work_pools/{POOL}/workers/filter"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        status, text = _get(url, data=b"{}")
        online = status == 200 and any(w["status"] == "ONLINE" for w in json.loads(text))
        if online:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"no worker online in {POOL}: {status} {text}\n{stack.logs(WORKER)}")
        time.sleep(2)


def test_the_services_reach_each_other_by_service_name(stack: Stack) -> None:
    script = (
        "import urllib.request as u; o = u.build_opener(u.ProxyHandler({}));"
        "print(o.open('http://mlflow:5000/health', timeout=5).read().decode());"
        "print(o.open('http://prefect-server:4200/api/health', timeout=5).read().decode())"
    )
    done = stack.exec("api", "python", "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["OK", "true"]


def test_the_api_serves_metrics_openly_and_wants_a_key_for_the_rest(stack: Stack) -> None:
    status, text = _get(stack.url("api") + "/metrics")  # what Prometheus scrapes
    assert status == 200 and "clv_api_requests_total" in text, text[:500]
    assert _get(stack.url("api") + "/ready")[0] == 401
    status, text = _get(stack.url("api") + "/ready", key=API_KEY)
    # No champion has been promoted in this fresh stack: not ready, and it says why.
    assert status == 503, text
    assert "champion" in json.loads(text)["reason"]


def test_mlflow_keeps_runs_in_sqlite_and_artefacts_in_the_local_folder(stack: Stack) -> None:
    # A client in the API's container logs through the server (artefacts proxied by it).
    script = (
        "import mlflow; mlflow.set_tracking_uri('http://mlflow:5000');"
        "mlflow.set_experiment('compose-test');"
        "run = mlflow.start_run(); mlflow.log_text('hello', 'note.txt'); mlflow.end_run();"
        "print(run.info.experiment_id, run.info.run_id)"
    )
    done = stack.exec("api", "env", "MLFLOW_HTTP_REQUEST_MAX_RETRIES=0", "python", "-c", script)
    assert done.returncode == 0, done.stdout + done.stderr
    experiment, run = done.stdout.split()[-2:]
    listed = stack.exec("mlflow", "find", "/data", "-name", "note.txt")
    assert f"/data/mlflow-artifacts/{experiment}/{run}/artifacts/note.txt" in listed.stdout
    assert stack.exec("mlflow", "test", "-s", "/data/mlflow.db").returncode == 0
    assert stack.exec("prefect-server", "test", "-s", "/data/prefect.db").returncode == 0
    assert stack.exec("api", "test", "-s", "/data/clv/clv.db").returncode == 0


def _prefect_cli_env(stack: Stack) -> dict[str, str]:
    """The checkout's ``prefect`` CLI pointed at the stack's server (deploy-time variables too)."""
    env = {k: v for k, v in stack.env.items() if k != "CLV_API_KEYS"}
    env.update(
        {
            "PREFECT_API_URL": f"{stack.url('prefect-server')}/api",
            "PREFECT_HOME": str(stack.folder / "prefect-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            # prefect.yaml's deploy-time variables, as docker-compose.yml's header gives them.
            "CLV_PROJECT_DIR": "/opt/clv",
            "CLV_TRANSACTIONS": f"{DATA}/transactions.parquet",
            "CLV_CUSTOMERS": f"{DATA}/customers.parquet",
        }
    )
    return env


def _flow_run_state(stack: Stack, flow_run_id: str) -> str:
    status, text = _get(f"{stack.url('prefect-server')}/api/flow_runs/{flow_run_id}")
    assert status == 200, text
    return str(json.loads(text)["state"]["type"])


def test_the_worker_runs_a_training_deployed_from_the_checkout(stack: Stack) -> None:
    done = stack.exec(WORKER, "clv", "generate", "--customers", "400", "--seed", "3", "--out", DATA)
    assert done.returncode == 0, done.stdout + done.stderr
    deploy = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", "deploy", "--name", "clv-training"],
        cwd=ROOT,
        env=_prefect_cli_env(stack),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    api = f"{stack.url('prefect-server')}/api"
    status, text = _get(f"{api}/deployments/name/clv-training/clv-training")
    assert status == 200, text
    parameters = {"trials": 1, "families": ["lightgbm"], "n_windows": 3}
    status, text = _get(
        f"{api}/deployments/{json.loads(text)['id']}/create_flow_run",
        data=json.dumps({"parameters": parameters}).encode(),
    )
    assert status == 201, text
    flow_run_id = json.loads(text)["id"]
    deadline = time.monotonic() + FLOW_TIMEOUT_S
    while (state := _flow_run_state(stack, flow_run_id)) not in {
        "COMPLETED", "FAILED", "CRASHED", "CANCELLED",
    }:  # fmt: skip
        if time.monotonic() > deadline:
            pytest.fail(f"the training run is still {state}:\n{stack.logs(WORKER)}")
        time.sleep(2)
    assert state == "COMPLETED", stack.logs(WORKER)

    # Registered in the MLflow server, its files in the server's artefact folder.
    registry = f"{stack.url('mlflow')}/api/2.0/mlflow/registered-models/get"
    status, text = _get(f"{registry}?name=clv-spend")
    assert status == 200, text
    listed = stack.exec("mlflow", "find", "/data/mlflow-artifacts", "-name", "MLmodel")
    assert listed.stdout.count("MLmodel") >= 2, listed.stdout  # clv-spend and clv-churn
    # The flow's textfile metrics are where docker-compose.yml's node-exporter reads them.
    command = yaml.safe_load(COMPOSE.read_text())["services"]["node-exporter"]["command"]
    flag = "--collector.textfile.directory="
    folder = next(c for c in command if c.startswith(flag)).removeprefix(flag)
    assert stack.exec(WORKER, "test", "-s", f"{folder}/clv.prom").returncode == 0


def test_the_api_serves_the_champion_promoted_in_the_stack(stack: Stack) -> None:
    for model in ("clv-spend", "clv-churn"):
        done = stack.exec(WORKER, "clv", "promote", "--model", model, "--latest", "--yes",
                          "--force", "--reason", "compose test")  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    deadline = time.monotonic() + CHAMPION_TIMEOUT_S
    while True:
        status, text = _get(stack.url("api") + "/ready", key=API_KEY)
        if status == 200:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"/ready still {status} after {CHAMPION_TIMEOUT_S:g} s: {text}")
        time.sleep(2)
    ready = json.loads(text)
    assert str(ready["model_version"]) == "1" and ready["features"], ready
    described = {"customer_id": "compose-test", "features": dict.fromkeys(ready["features"], 1.0)}
    status, text = _get(
        stack.url("api") + "/predict/clv", key=API_KEY, data=json.dumps(described).encode()
    )
    assert status == 200, text
    assert json.loads(text)["predicted_clv"] >= 0


def test_down_removes_every_container_volume_and_network(stack: Stack) -> None:
    # Last in the module: the fixture's own teardown then finds nothing left.
    assert stack.down() == []
