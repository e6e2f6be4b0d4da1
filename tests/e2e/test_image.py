"""The clv-platform image, built the way ``make image`` builds it and run with podman.

The image ``localhost/clv-platform:latest`` comes from the session's ``image`` fixture
(``tests/e2e/conftest.py``: ``infra/image/build.sh`` forced to podman, built once for this module
and ``test_compose_up.py``; the first build on a machine takes about 11 minutes, a rebuild reuses
the layer cache). The tests check what the image promises: a numeric non-root user, no compiler or
build leftovers, the CLI and the flow-run files at /opt/clv. It then serves the API from the
container (``--network host``, a free port, ``CLV_API_KEYS``, a temporary ``CLV_HOME``
bind-mounted): health, readiness, the API key, the image's HEALTHCHECK, and predictions by the
session's champion, trained, promoted and scored on the host through the CLI
(``cli_champion`` in ``tests/conftest.py``) and fetched by the container from its real
``mlflow server``.

Skipped (failed under ``CI=true``, see :func:`tests.conftest.missing`) only where podman cannot run:
not installed and not installable, or no user namespaces for a rootless run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import _free_port
from tests.e2e.podman import IMAGE, http, podman, wait_until_answers

pytestmark = pytest.mark.slow

#: The API imports the modelling stack and loads the champion from MLflow before it answers.
SERVE_TIMEOUT_S = 180.0
API_KEY = "test-key"


def _run_image(
    *args: str, entrypoint: str | None = None, user: str | None = None
) -> subprocess.CompletedProcess[str]:
    """A one-off container of the image (no health-check timer: these machines have no systemd)."""
    options = ["--rm", "--no-healthcheck", "--network", "host"]
    if entrypoint is not None:
        options += ["--entrypoint", entrypoint]
    if user is not None:
        options += ["--user", user]
    return podman("run", *options, IMAGE, *args)


def test_the_image_runs_as_a_numeric_non_root_user(image: str) -> None:
    config = json.loads(podman("image", "inspect", image).stdout)[0]["Config"]
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
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
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


@pytest.fixture(scope="module")
def champion(
    cli_champion: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """The session's champion (MLflow URL), a data home of this module's own and a scored customer.

    The home is a copy of the one ``cli_champion`` left (its platform database holds the scores
    and the segmentation): the container bind-mounts it, chowned to the image's user (``U``), and
    the other tests keep theirs as it was.
    """
    import pandas as pd

    home = tmp_path_factory.mktemp("image-champion") / "home"
    shutil.copytree(cli_champion["home"], home, symlinks=True)
    customer = str(pd.read_parquet(cli_champion["scores"])["customer_id"].iloc[0])
    return {"mlflow": str(cli_champion["mlflow"]), "home": str(home), "customer": customer}


def _request(
    url: str, *, data: dict[str, object] | None = None, key: str | None = None
) -> tuple[int, str]:
    """Status and body of a GET (or a JSON POST with ``data``), never through a proxy."""
    body = json.dumps(data).encode() if data is not None else None
    return http(url, key=key, data=body)


@pytest.fixture(scope="module")
def served(image: str, champion: dict[str, str]) -> Iterator[dict[str, str]]:
    """The image serving the API on a free port of the host network; yields its URL and more."""
    home = champion["home"]
    port = _free_port()
    name = f"clv-image-test-{uuid.uuid4().hex[:8]}"
    started = podman(
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
        wait_until_answers(f"{url}/health", name, timeout_s=SERVE_TIMEOUT_S)
        yield {"url": url, "name": name, **champion}
    finally:
        podman("rm", "--force", "--time", "10", name)


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
    done = podman("healthcheck", "run", served["name"], timeout=60)
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
