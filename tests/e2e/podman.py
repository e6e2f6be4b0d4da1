"""Podman for the e2e tests: the platform image built as ``make image`` builds it, and containers.

Used by ``tests/e2e/conftest.py`` (the image, built once per session), ``test_image.py`` and
``test_compose_up.py``. Every podman call runs with ``--runtime runc``: crun refuses this machine
kind's hybrid cgroups. Where podman cannot run, :func:`tests.conftest.missing` skips (fails under
``CI=true``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import missing

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "infra" / "image" / "build.sh"
IMAGE = "localhost/clv-platform:latest"
#: A first build (debootstrap, the Python base, every wheel) takes about 11 minutes on 2 cores.
BUILD_TIMEOUT_S = 3600
#: ``build.sh prerequisites`` may install podman & co with apt-get first.
PREREQUISITES_TIMEOUT_S = 900
#: One request while waiting for a service: a health endpoint answers at once or not at all.
POLL_REQUEST_TIMEOUT_S = 10.0


def podman(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``podman --runtime runc ARGS``; never raises on a non-zero exit."""
    return subprocess.run(
        ["podman", "--runtime", "runc", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def build_env() -> dict[str, str]:
    """The environment ``infra/image/build.sh`` runs in: this one, forced to podman and the tag."""
    return {**os.environ, "CLV_IMAGE": IMAGE, "CLV_IMAGE_ENGINE": "podman"}


def require_podman() -> None:
    """:func:`missing` unless podman is installed or installable and, rootless, can run."""
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


def install_prerequisites() -> None:
    """Install and configure podman (``build.sh prerequisites``); :func:`missing` if it fails."""
    done = subprocess.run(
        [str(BUILD_SCRIPT), "prerequisites"],
        capture_output=True,
        text=True,
        env=build_env(),
        timeout=PREREQUISITES_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        missing(
            "podman cannot run here (infra/image/build.sh prerequisites failed):\n"
            + done.stdout
            + done.stderr
        )


def build_image(log: Path) -> str:
    """Build :data:`IMAGE` with ``infra/image/build.sh``, its output in ``log``; return the name."""
    with log.open("wb") as sink:
        build = subprocess.run(
            [str(BUILD_SCRIPT)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=build_env(),
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    if build.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-80:])
        pytest.fail(f"infra/image/build.sh exited {build.returncode}; last lines:\n{tail}")
    return IMAGE


def http(
    url: str, *, key: str | None = None, data: bytes | None = None, timeout: float = 30.0
) -> tuple[int, str]:
    """Status and body of a GET (a JSON POST with ``data``), never through a proxy.

    ``key`` goes in ``X-API-Key``. An HTTP error status is returned, not raised; a connection
    that fails raises :class:`OSError`.
    """
    headers = {"X-API-Key": key} if key is not None else {}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode()


def container_logs(container: str, *, tail: int | None = None) -> str:
    """The container's output (its last ``tail`` lines, or all of it)."""
    done = podman("logs", *(["--tail", str(tail)] if tail is not None else []), container)
    return done.stdout + done.stderr


def wait_until_answers(
    url: str, container: str, *, timeout_s: float, log_tail: int | None = None
) -> None:
    """Return once ``url`` answers 200; fail, with the container's logs, once it stops or times out.

    Parameters
    ----------
    url : str
        What to ask (a GET, on the host).
    container : str
        The container that serves it: while it is not running there is no point waiting.
    timeout_s : float
        How long to wait.
    log_tail : int or None
        How many of the container's last log lines the failure shows (None: all).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if http(url, timeout=POLL_REQUEST_TIMEOUT_S)[0] == 200:
                return
        except OSError:
            pass
        running = podman("inspect", "--format", "{{.State.Running}}", container).stdout.strip()
        if running != "true" or time.monotonic() > deadline:
            pytest.fail(
                f"{container} did not answer {url} within {timeout_s:g} s "
                f"(running: {running}):\n{container_logs(container, tail=log_tail)}"
            )
        time.sleep(1)
