"""The clv-platform image, built the way ``make image`` builds it and run with podman.

The module builds ``localhost/clv-platform:latest`` with ``infra/image/build.sh`` (forced to podman:
this test runs the image with podman; the first build on a machine takes about 11 minutes, a
rebuild reuses the layer cache) and checks what the image promises: a numeric non-root user, no
compiler or build leftovers, the CLI and the flow-run files at /opt/clv. It then serves the API
from the container (``--network host``, a free port, ``CLV_API_KEYS``, a temporary ``CLV_HOME``
bind-mounted): health, readiness, the API key, the image's HEALTHCHECK, and predictions by a
champion trained here on the host and fetched by the container from a real ``mlflow server``.

Skipped (failed under ``CI=true``, see :func:`tests.conftest.missing`) only where podman cannot run:
not installed and not installable, or no user namespaces for a rootless run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import _free_port, _start_mlflow_server, _stop_process_group, missing

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "infra" / "image" / "build.sh"
IMAGE = "localhost/clv-platform:latest"
BIN = Path(sys.executable).parent
#: A first build (debootstrap, the Python base, every wheel) takes about 11 minutes on 2 cores.
BUILD_TIMEOUT_S = 3600
#: The API imports the modelling stack and loads the champion from MLflow before it answers.
SERVE_TIMEOUT_S = 180.0
API_KEY = "test-key"
HORIZON_DAYS = 90


def _podman(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``podman --runtime runc ARGS`` (crun refuses this machine kind's hybrid cgroups)."""
    return subprocess.run(
        ["podman", "--runtime", "runc", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _run_image(
    *args: str, entrypoint: str | None = None, user: str | None = None
) -> subprocess.CompletedProcess[str]:
    """A one-off container of the image (no health-check timer: these machines have no systemd)."""
    options = ["--rm", "--no-healthcheck", "--network", "host"]
    if entrypoint is not None:
        options += ["--entrypoint", entrypoint]
    if user is not None:
        options += ["--user", user]
    return _podman("run", *options, IMAGE, *args)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Build the image with ``infra/image/build.sh`` (podman); return its name."""
    if shutil.which("podman") is None and (shutil.which("apt-get") is None or os.geteuid() != 0):
        missing(
            "podman is not installed and cannot be installed here (needs root and apt-get): "
            "apt-get install --no-install-recommends podman runc debootstrap uidmap"
        )
    if os.geteuid() != 0:
        probe = subprocess.run(
            ["unshare", "--user", "--map-root-user", "true"], capture_output=True, check=False
        )
        if probe.returncode != 0:
            missing("rootless podman needs user namespaces, and this machine has none")
    log = tmp_path_factory.mktemp("image") / "build.log"
    env = {**os.environ, "CLV_IMAGE": IMAGE, "CLV_IMAGE_ENGINE": "podman"}
    prerequisites = subprocess.run(
        [str(BUILD_SCRIPT), "prerequisites"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    if prerequisites.returncode != 0:
        missing(
            "podman cannot run here (infra/image/build.sh prerequisites failed):\n"
            + prerequisites.stdout
            + prerequisites.stderr
        )
    with log.open("wb") as sink:
        build = subprocess.run(
            [str(BUILD_SCRIPT)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    if build.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-80:])
        pytest.fail(f"infra/image/build.sh exited {build.returncode}; last lines:\n{tail}")
    return IMAGE


def test_the_image_runs_as_a_numeric_non_root_user(image: str) -> None:
    config = json.loads(_podman("image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"  # numeric: Kubernetes can check runAsNonRoot
    done = _run_image(entrypoint="id")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("uid=10001(clv) gid=10001(clv)"), done.stdout


def test_the_image_holds_no_compiler_and_no_build_leftovers(image: str) -> None:
    script = (
        "for tool in gcc cc c++ g++ clang make; do "
        'command -v "$tool" && exit 1; done; '
        "for path in /wheels /opt/build /src /root/.cache/pip /run/secrets/ca-bundle; do "
        '[ -e "$path" ] && echo "$path" && exit 1; done; exit 0'
    )
    # As root: nothing stays hidden behind a folder the image's user may not read.
    done = _run_image("-c", script, entrypoint="/bin/sh", user="0")
    assert done.returncode == 0, f"found in the image: {done.stdout}{done.stderr}"


def test_the_cli_and_the_flow_run_files_are_in_the_image(image: str) -> None:
    inspected = json.loads(_podman("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    assert config["Entrypoint"] == ["clv"]
    assert config["Cmd"] == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert config["WorkingDir"] == "/opt/clv"
    # podman shows the (docker-format) HEALTHCHECK beside the OCI config, which has no such field.
    assert (inspected.get("Healthcheck") or {}).get("Test"), "the image has no HEALTHCHECK"

    done = _run_image("--help")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Usage: clv" in done.stdout
    # k8s/prefect.yaml's pull step runs flows from /opt/clv; the worker needs prefect-kubernetes.
    done = _run_image(
        "-c",
        "ls flows/training.py prefect.yaml k8s/prefect.yaml config/training.yaml examples "
        "&& prefect version && python -c 'import prefect_kubernetes'"
        # Every model family's native libraries load (LightGBM needs the OpenMP runtime).
        " && python -c 'import lightgbm, xgboost, keras'",
        entrypoint="/bin/sh",
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _clv(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "clv"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"clv {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real ``mlflow server``, and a tiny champion trained, promoted and scored on the host.

    Yields the MLflow URL, the data home (scores and the platform database) and a customer id
    that has a score.
    """
    import pandas as pd

    folder = tmp_path_factory.mktemp("image-champion")
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
    try:
        data = folder / "data"
        _clv(env, "generate", "--customers", "800", "--seed", "3", "--out", str(data))
        transactions = str(data / "transactions.parquet")
        _clv(env, "train", "--transactions", transactions, "--trials", "1",
             "--families", "lightgbm", "--horizon-days", str(HORIZON_DAYS))  # fmt: skip
        _clv(env, "promote", "--latest", "--yes", "--force", "--reason", "test")
        scores = home / "scores.parquet"
        _clv(env, "score", "--transactions", transactions,
             "--horizon-days", str(HORIZON_DAYS), "--out", str(scores))  # fmt: skip
        customer = str(pd.read_parquet(scores)["customer_id"].iloc[0])
        yield {"mlflow": url, "home": str(home), "customer": customer}
    finally:
        _stop_process_group(proc)


def _request(
    url: str, *, data: dict[str, object] | None = None, key: str | None = None
) -> tuple[int, str]:
    """Status and body of a GET (or a JSON POST with ``data``), never through a proxy."""
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if key is not None:
        headers["X-API-Key"] = key
    request = urllib.request.Request(
        url,
        data=json.dumps(data).encode() if data is not None else None,
        headers=headers,
        method="POST" if data is not None else "GET",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode()


@pytest.fixture(scope="module")
def served(image: str, champion: dict[str, str]) -> Iterator[dict[str, str]]:
    """The image serving the API on a free port of the host network; yields its URL and more."""
    home = champion["home"]
    port = _free_port()
    name = f"clv-image-test-{uuid.uuid4().hex[:8]}"
    started = _podman(
        "run", "--detach", "--name", name, "--network", "host",
        # The image's HEALTHCHECK without a timer (no systemd here): `podman healthcheck run`.
        "--health-interval", "disable",
        "--env", f"CLV_API_KEYS={API_KEY}",
        "--env", f"CLV_PORT={port}",
        "--env", f"CLV_HOME={home}",
        "--env", f"MLFLOW_TRACKING_URI={champion['mlflow']}",
        "--env", "MLFLOW_HTTP_REQUEST_MAX_RETRIES=0",
        # Same path inside, owned by the image's user (`U`): its files name host paths.
        "--volume", f"{home}:{home}:U",
        image, "serve", "--host", "127.0.0.1", "--port", str(port),
    )  # fmt: skip
    if started.returncode != 0:
        pytest.fail(f"podman run failed:\n{started.stderr}")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVE_TIMEOUT_S
        while True:
            try:
                if _request(f"{url}/health")[0] == 200:
                    break
            except OSError:
                pass
            state = _podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
            if state != "true" or time.monotonic() > deadline:
                logs = _podman("logs", name)
                pytest.fail(
                    f"the container did not answer {url}/health within {SERVE_TIMEOUT_S:g} s "
                    f"(running: {state}):\n{logs.stdout}{logs.stderr}"
                )
            time.sleep(1)
        yield {"url": url, "name": name, **champion}
    finally:
        _podman("rm", "--force", "--time", "10", name)


def _ready(served: dict[str, str]) -> dict[str, object]:
    """``/ready``'s body once it answers 200 (the champion loads in the background)."""
    deadline = time.monotonic() + SERVE_TIMEOUT_S
    while True:
        status, body = _request(f"{served['url']}/ready", key=API_KEY)
        if status == 200:
            return dict(json.loads(body))
        if time.monotonic() > deadline:
            pytest.fail(f"/ready still answers {status} after {SERVE_TIMEOUT_S:g} s: {body}")
        time.sleep(1)


def test_the_container_serves_health_and_readiness(served: dict[str, str]) -> None:
    status, body = _request(f"{served['url']}/health")
    assert status == 200, body
    status, body = _request(f"{served['url']}/ready", key=API_KEY)
    assert status in {200, 503}, body
    if status == 503:  # still loading the champion: it says so
        assert json.loads(body)["reason"], body
    assert _ready(served)["status"] == "ready"


def test_the_images_healthcheck_passes_on_a_serving_container(served: dict[str, str]) -> None:
    done = _podman("healthcheck", "run", served["name"], timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_container_refuses_a_request_without_an_api_key(served: dict[str, str]) -> None:
    status, body = _request(f"{served['url']}/segments/active")
    assert status == 401, body
    status, body = _request(f"{served['url']}/ready")
    assert status == 401, body


def test_the_container_predicts_with_the_champion_it_loaded_from_mlflow(
    served: dict[str, str],
) -> None:
    features = _ready(served)["features"]
    assert isinstance(features, list) and features, "/ready lists no features"
    url = f"{served['url']}/predict/clv"

    # A known customer: its stored scores from the host's `clv score` run.
    status, body = _request(url, data={"customer_id": served["customer"]}, key=API_KEY)
    assert status == 200, body
    stored = json.loads(body)
    assert stored["customer_id"] == served["customer"]
    assert stored["source"] == "stored"
    assert stored["predicted_clv"] >= 0

    # A customer described by its features: scored now by the champion the container fetched
    # from the MLflow server over the host network.
    described = {"customer_id": "image-test", "features": dict.fromkeys(features, 1.0)}
    status, body = _request(url, data=described, key=API_KEY)
    assert status == 200, body
    scored = json.loads(body)
    assert scored["source"] == "scored"
    assert scored["predicted_clv"] >= 0
