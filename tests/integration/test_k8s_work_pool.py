"""The Kubernetes work pool and the production deployments on a real Prefect server.

Uses the session's shared ``prefect_server`` (tests/conftest.py); each test its own pool name
where the name is free to choose. The template itself is checked offline in tests/unit/test_k8s.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.unit.test_k8s import TEMPLATE_PATH, load_template

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _prefect(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN / "prefect"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"prefect {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
def test_work_pool_is_created_from_the_template(prefect_server: dict[str, str]) -> None:
    template_arg = str(TEMPLATE_PATH.relative_to(ROOT))
    pool_name = "clv-kubernetes-from-template"
    create = ("work-pool", "create", pool_name, "--type", "kubernetes")
    _prefect(prefect_server, *create, "--base-job-template", template_arg)
    pool = json.loads(
        _prefect(prefect_server, "work-pool", "inspect", pool_name, "-o", "json").stdout
    )
    assert pool["type"] == "kubernetes"
    assert pool["base_job_template"] == load_template()
    assert pool["base_job_template"]["variables"]["properties"]["namespace"]["default"] == "clv"

    # The documented update path: the same command with --overwrite.
    _prefect(prefect_server, *create, "--base-job-template", template_arg, "--overwrite")


@pytest.mark.slow
def test_the_production_deployments_deploy_onto_the_kubernetes_pool(
    prefect_server: dict[str, str],
) -> None:
    # k8s/prefect.yaml names the pool clv-kubernetes.
    _prefect(
        prefect_server,
        "work-pool",
        "create",
        "clv-kubernetes",
        "--type",
        "kubernetes",
        "--base-job-template",
        str(TEMPLATE_PATH.relative_to(ROOT)),
        "--overwrite",
    )
    env = {**prefect_server, "CLV_TRANSACTIONS": "s3://clv-data/transactions.parquet"}
    _prefect(env, "--no-prompt", "deploy", "--all", "--prefect-file", "k8s/prefect.yaml")

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    url = f"{env['PREFECT_API_URL']}/deployments/name/clv-training/clv-training"
    with opener.open(url, timeout=30) as response:
        deployment = json.loads(response.read())
    assert deployment["work_pool_name"] == "clv-kubernetes"
    assert deployment["job_variables"]["memory_limit"] == "8Gi"
    assert deployment["parameters"]["transactions"] == "s3://clv-data/transactions.parquet"
    assert deployment["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "/opt/clv"}}
    ]
