"""Drift → event → one retraining, on real servers: the whole loop as production runs it.

Starts a real ``prefect server`` (temp home, free port), a process work pool and a ``prefect
worker``, deploys from the repository's ``prefect.yaml`` with ``prefect deploy --all``, and a real
``mlflow server``. A champion is trained and promoted on stable data; the monitor then runs on
drifted data, emits ``clv.drift.detected``, and the deployment trigger starts exactly one training
run, which completes and registers a new challenger. Twenty more events in quick succession start
no further run (the trigger's debounce window). Every process started here is stopped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from clv.data.generator import DriftScenario, GeneratorConfig, generate, write_synthetic
from tests.conftest import _start_mlflow_server, _start_prefect_server, _stop_process_group

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        _stop_process_group(proc)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """MLflow and Prefect servers, the deployments and a process worker; yields the env."""
    folder = tmp_path_factory.mktemp("loop")
    started: list[subprocess.Popen[bytes]] = []
    mlflow_proc, mlflow_url = _start_mlflow_server(f"sqlite:///{folder}/mlflow.db", folder)
    started.append(mlflow_proc)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLV_", "PREFECT_", "MLFLOW_")) or k == "CLV_TEST_CACHE"
    }
    env.update(
        {
            "CLV_HOME": str(folder / "home"),
            "MLFLOW_TRACKING_URI": mlflow_url,
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "CLV_PROJECT_DIR": str(ROOT),
        }
    )
    try:
        # A server of this module's own: the deployments' triggers and the worker live on it.
        server, env = _start_prefect_server(folder, env)
        started.append(server)

        # Stable data: the champion is trained and promoted on it.
        base = generate(GeneratorConfig(n_customers=1500), seed=5)
        write_synthetic(base, folder / "base", fmt="parquet")
        drifted = generate(
            GeneratorConfig(
                n_customers=1500,
                drift=DriftScenario(
                    start=date(2025, 7, 1),
                    price_level=1.5,
                    eco_share_shift=0.3,
                    channel_mix=(0.1, 0.7, 0.1, 0.1),
                ),
            ),
            seed=5,
        )
        write_synthetic(drifted, folder / "drifted", fmt="parquet")
        env["CLV_TRANSACTIONS"] = str(folder / "base" / "transactions.parquet")
        _run(env, "clv", "train", "--transactions", env["CLV_TRANSACTIONS"],
             "--horizon-days", "90", "--trials", "1", "--families", "lightgbm")  # fmt: skip
        _run(env, "clv", "promote", "--latest", "--yes")
        _run(env, "clv", "promote", "--model", "clv-churn", "--latest", "--yes", "--force",
             "--reason", "the segmentation loop needs churn probabilities")  # fmt: skip

        _run(env, "prefect", "work-pool", "create", "clv-process", "--type", "process")
        _run(env, "prefect", "--no-prompt", "deploy", "--all", cwd=ROOT)
        worker_log = (folder / "worker.log").open("wb")
        worker = subprocess.Popen(
            [str(BIN / "prefect"), "worker", "start", "--pool", "clv-process"],
            env=env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
        started.append(worker)
        yield {**env, "DRIFTED": str(folder / "drifted" / "transactions.parquet")}
    finally:
        for proc in reversed(started):
            _stop(proc)


def _run(env: dict[str, str], program: str, *args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(BIN / program), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=cwd,
    )
    if done.returncode != 0:
        pytest.fail(
            f"{program} {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout + done.stderr


def _training_runs(api: str, deployment: str = "clv-training") -> list[dict[str, object]]:
    """Event-triggered runs of a deployment (default: clv-training).

    The CLI's own training run has no deployment; the schedules' future runs are
    ``auto_scheduled`` and left out.
    """
    import json
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(
        f"{api}/flow_runs/filter",
        data=json.dumps({"deployments": {"name": {"any_": [deployment]}}, "limit": 100}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with opener.open(request, timeout=30) as response:
        runs: list[dict[str, object]] = json.loads(response.read())
    return [r for r in runs if not r.get("auto_scheduled")]


def _wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(2)


def test_drift_starts_exactly_one_retraining_and_a_burst_starts_no_more(
    stack: dict[str, str],
) -> None:
    api = stack["PREFECT_API_URL"]
    assert _training_runs(api) == []

    output = _run(stack, "clv", "monitor", "--transactions", stack["DRIFTED"])
    assert "DRIFT:" in output and "emitted clv.drift.detected" in output
    report = next(line for line in output.splitlines() if line.startswith("report: "))[8:]
    assert report.endswith(".html") and Path(report).stat().st_size > 0

    _wait_for(lambda: len(_training_runs(api)) >= 1, 180, "the triggered training run")
    _wait_for(
        lambda: _training_runs(api)[0]["state_type"] in ("COMPLETED", "FAILED", "CRASHED"),
        900,
        "the training run to finish",
    )
    runs = _training_runs(api)
    assert len(runs) == 1
    assert runs[0]["state_type"] == "COMPLETED", runs[0]
    parameters = runs[0]["parameters"]
    assert isinstance(parameters, dict)
    assert parameters["transactions"] == stack["DRIFTED"]

    os.environ["MLFLOW_TRACKING_URI"] = stack["MLFLOW_TRACKING_URI"]
    try:
        from clv import tracking

        challenger = tracking.get_version(tracking.SPEND_MODEL, alias=tracking.CHALLENGER)
        assert challenger is not None and challenger.version == 2
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]

    burst = (
        "from prefect.events import emit_event\n"
        "for i in range(20):\n"
        "    emit_event(event='clv.drift.detected',"
        " resource={'prefect.resource.id': 'clv.model.clv-spend'},"
        f" payload={{'transactions': {stack['DRIFTED']!r}, 'horizon_days': 90,"
        " 'families': 'lightgbm', 'trials': 1, 'burst': i})\n"
    )
    subprocess.run([sys.executable, "-c", burst], env=stack, check=True, timeout=120)
    time.sleep(45)  # automations are evaluated within seconds; give them ample time
    assert len(_training_runs(api)) == 1


def test_a_scoring_run_starts_one_segmentation_which_stores_a_version_for_review(
    stack: dict[str, str],
) -> None:
    from clv.store import PENDING, Store

    api = stack["PREFECT_API_URL"]
    assert _training_runs(api, "clv-segmentation") == []
    score = (
        "from flows.scoring import scoring_flow\n"
        f"result = scoring_flow(transactions={stack['CLV_TRANSACTIONS']!r}, horizon_days=90)\n"
        "print('event', result['event_id'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", score], env=stack, cwd=ROOT, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "event " in done.stdout and "event None" not in done.stdout

    _wait_for(lambda: len(_training_runs(api, "clv-segmentation")) >= 1, 180, "segmentation")
    _wait_for(
        lambda: (
            _training_runs(api, "clv-segmentation")[0]["state_type"]
            in ("COMPLETED", "FAILED", "CRASHED")
        ),
        600,
        "the segmentation run to finish",
    )
    (run,) = _training_runs(api, "clv-segmentation")
    assert run["state_type"] == "COMPLETED", run
    parameters = run["parameters"]
    assert isinstance(parameters, dict) and parameters["scores"].endswith("-90d.parquet")

    store = Store(f"sqlite:///{Path(stack['CLV_HOME']) / 'clv.db'}")
    (version,) = store.versions()
    # The first version always waits for an expert; every scored customer has one segment.
    assert version.status == PENDING and version.method == "both"
    assigned = store.assignments(version.version)
    assert assigned["customer_id"].is_unique and len(assigned) == version.n_customers > 1000
    latest = store.latest_scores()
    assert latest is not None and len(latest) == version.n_customers
    store.engine.dispose()
