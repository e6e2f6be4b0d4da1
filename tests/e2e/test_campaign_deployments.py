"""Campaign deployments on real servers: deploy → run → messages at the local sink → analysis.

Starts a real ``prefect server`` (temp home, free port), creates the process work pool, deploys
``clv-campaign`` and ``clv-campaign-analysis`` from the repository's ``prefect.yaml`` with
``prefect deploy`` and starts a ``prefect worker``. A local SMTP server (aiosmtpd) is the sink;
its address reaches the flow run as the run's ``env`` job variable, as an operator would pass
it. The campaign run plans and sends every message once and schedules its analysis for the end
of the attribution window; an on-demand run of the analysis deployment measures it and stores
the uplift the next campaign starts from. Every process started here is stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import _start_prefect_server, _stop_process_group
from tests.integration.test_campaign_channels import EphemeralPortController
from tests.integration.test_cli_campaign import _Sink, inputs  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(env: dict[str, str], program: str, *args: str) -> str:
    done = subprocess.run(
        [str(BIN / program), *args], env=env, capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    if done.returncode != 0:
        pytest.fail(
            f"{program} {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout + done.stderr


def _api(api: str, path: str, body: dict[str, Any]) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(
        f"{api}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with opener.open(request, timeout=30) as response:
        return json.loads(response.read())


def _runs(api: str, deployment: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = _api(
        api,
        "/flow_runs/filter",
        {"deployments": {"name": {"any_": [deployment]}}, "limit": 50},
    )
    return [r for r in runs if not r.get("auto_scheduled")]


def _finished(api: str, deployment: str, timeout: float = 420) -> dict[str, Any]:
    """The deployment's one manual run once it is over (fails the test on a timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [
            r
            for r in _runs(api, deployment)
            if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
        ]
        if done:
            return done[0]
        time.sleep(2)
    pytest.fail(f"no run of {deployment} finished within {timeout:g} s")


@pytest.fixture
def stack(tmp_path: Path, inputs: dict[str, Path]) -> Iterator[dict[str, Any]]:  # noqa: F811
    """A Prefect server with the campaign deployments and a process worker, and an SMTP sink."""
    folder = tmp_path / "stack"
    folder.mkdir()
    started: list[subprocess.Popen[bytes]] = []
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLV_", "PREFECT_", "MLFLOW_")) or k == "CLV_TEST_CACHE"
    }
    env.update(
        {
            "CLV_HOME": str(folder / "home"),
            "CLV_PROJECT_DIR": str(ROOT),
            "CLV_TRANSACTIONS": str(inputs["transactions"]),
            "CLV_CUSTOMERS": str(inputs["customers"]),
        }
    )
    sink = _Sink()
    controller = EphemeralPortController(sink, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        server, env = _start_prefect_server(folder, env)
        started.append(server)
        _run(env, "prefect", "work-pool", "create", "clv-process", "--type", "process")
        _run(env, "prefect", "--no-prompt", "deploy", "--name", "clv-campaign",
             "--name", "clv-campaign-analysis")  # fmt: skip
        log = (folder / "worker.log").open("wb")
        worker = subprocess.Popen(
            [str(BIN / "prefect"), "worker", "start", "--pool", "clv-process"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
        started.append(worker)
        yield {"env": env, "sink": sink, "port": controller.port, "folder": folder}
    finally:
        for proc in reversed(started):
            if proc.poll() is None:
                _stop_process_group(proc)
        controller.stop()


def test_a_deployed_campaign_sends_once_schedules_its_analysis_and_is_measured_on_demand(
    stack: dict[str, Any],
    inputs: dict[str, Path],  # noqa: F811
) -> None:
    from clv.store import Store

    env, sink = stack["env"], stack["sink"]
    api = env["PREFECT_API_URL"]
    channels = {
        "CLV_SMTP_HOST": "127.0.0.1",
        "CLV_SMTP_PORT": str(stack["port"]),
        "CLV_SMTP_FROM": "shop@example.org",
    }
    out = stack["folder"] / "plan"
    _run(env, "prefect", "deployment", "run", "clv-campaign/clv-campaign",
         "-p", f"definition={inputs['campaign']}", "-p", f"scores={inputs['scores']}",
         "-p", f"contacts={inputs['contacts']}", "-p", f"out={out}",
         "-jv", f"env={json.dumps(channels)}")  # fmt: skip
    run = _finished(api, "clv-campaign")
    assert run["state_type"] == "COMPLETED", (stack["folder"] / "worker.log").read_text()

    plan = pd.read_parquet(out / "plan.parquet")
    contacted = plan.loc[plan["group"] != "holdout", "customer_id"]
    assert sorted(sink.recipients) == sorted(f"{c}@example.org" for c in contacted)
    campaign_id = json.loads((out / "summary.json").read_text())["campaign_id"]

    # The analysis waits for the end of the attribution window (14 days after the send).
    (scheduled,) = _runs(api, "clv-campaign-analysis")
    assert scheduled["state_type"] == "SCHEDULED"
    assert scheduled["parameters"]["campaign_id"] == campaign_id
    start = datetime.fromisoformat(scheduled["expected_start_time"])
    assert timedelta(days=13) < start - datetime.now(UTC) < timedelta(days=15)

    _run(env, "prefect", "deployment", "run", "clv-campaign-analysis/clv-campaign-analysis",
         "-p", f"campaign_id={campaign_id}")  # fmt: skip
    analysed = _finished(api, "clv-campaign-analysis")
    assert analysed["state_type"] == "COMPLETED", (stack["folder"] / "worker.log").read_text()
    store = Store(f"sqlite:///{Path(env['CLV_HOME']) / 'clv.db'}")
    try:
        assert set(store.measured_uplift()["campaign_id"]) == {campaign_id}
        assert store.outbox_counts(campaign_id).get("sent") == len(contacted)
    finally:
        store.engine.dispose()
    report = Path(env["CLV_HOME"]) / "campaigns" / campaign_id / "report" / "report.html"
    assert report.is_file()
