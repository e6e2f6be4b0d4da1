"""prefect.yaml (process pool) and k8s/prefect.yaml (Kubernetes pool): same deployments, sound
triggers, and parameters that the flows accept."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.drift_monitoring import DRIFT_EVENT, RESOURCE

ROOT = Path(__file__).resolve().parents[2]
LOCAL = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
PRODUCTION = yaml.safe_load((ROOT / "k8s" / "prefect.yaml").read_text(encoding="utf-8"))
TEMPLATE = json.loads((ROOT / "k8s" / "base-job-template.json").read_text(encoding="utf-8"))


def _deployments(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in doc["deployments"]}


def _flow(entrypoint: str) -> Any:
    from prefect.flows import load_flow_from_entrypoint

    path, name = entrypoint.split(":")
    return load_flow_from_entrypoint(f"{ROOT / path}:{name}")


def _duration_seconds(value: str | int) -> float:
    from datetime import timedelta

    from pydantic import TypeAdapter

    return TypeAdapter(timedelta).validate_python(value).total_seconds()


def test_both_files_define_the_same_deployments_apart_from_pool_and_code_location() -> None:
    local, production = _deployments(LOCAL), _deployments(PRODUCTION)
    assert (
        set(local)
        == set(production)
        == {
            "clv-training",
            "clv-monitoring",
            "clv-scoring",
            "clv-segmentation",
            "clv-drift-safety-net",
            "clv-campaign",
            "clv-campaign-analysis",
        }
    )
    for name, deployment in local.items():
        other = production[name]
        for key in ("entrypoint", "parameters", "schedules", "triggers", "concurrency_limit"):
            assert deployment.get(key) == other.get(key), (name, key)
        assert deployment["work_pool"]["name"] == "clv-process"
        assert other["work_pool"]["name"] == "clv-kubernetes"
        known = set(TEMPLATE["variables"]["properties"])
        assert set(other["work_pool"].get("job_variables", {})) <= known, name


@pytest.mark.parametrize("name", sorted(_deployments(LOCAL)))
def test_parameters_and_trigger_parameters_are_ones_the_flow_accepts(name: str) -> None:
    deployment = _deployments(LOCAL)[name]
    accepted = set(inspect.signature(_flow(deployment["entrypoint"]).fn).parameters)
    assert set(deployment.get("parameters", {})) <= accepted
    for trigger in deployment.get("triggers", []):
        assert set(trigger.get("parameters", {})) <= accepted
    assert deployment.get("schedules"), f"{name} needs a schedule (automations may not fire)"


@pytest.mark.parametrize("name", sorted(_deployments(LOCAL)))
def test_a_payload_rendered_as_json_text_passes_the_flows_parameter_schema(name: str) -> None:
    # The server validates a triggered run's parameters against the deployment's schema and
    # drops the run (an automation.action.failed event, nothing else) when they do not pass:
    # `{{ event.payload | tojson }}` renders as text, so its parameter must accept a string.
    import jsonschema
    from prefect.utilities.callables import parameter_schema

    deployment = _deployments(LOCAL)[name]
    schema = parameter_schema(_flow(deployment["entrypoint"]).fn).model_dump_for_openapi()
    for trigger in deployment.get("triggers", []):
        for key, template in trigger.get("parameters", {}).items():
            if "tojson" in str(template):
                rendered = {key: '{"scores": "s.parquet", "customers": 3}'}
                jsonschema.validate(rendered, {**schema, "required": []})


def test_drift_retrains_once_per_burst_and_one_training_at_a_time() -> None:
    training = _deployments(LOCAL)["clv-training"]
    (trigger,) = training["triggers"]
    assert trigger["enabled"] is True
    assert trigger["expect"] == [DRIFT_EVENT]
    assert trigger["match"] == {"prefect.resource.id": RESOURCE}
    assert trigger["posture"] == "Reactive" and trigger["threshold"] == 1
    within = float(trigger["within"])
    assert 0 < within <= 600  # an operator sees the retrain within ten minutes
    assert 0 <= _duration_seconds(trigger["schedule_after"]) <= within
    assert training["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
    # The event's payload becomes the run's parameters (what the monitor sends).
    assert trigger["parameters"]["transactions"] == "{{ event.payload.transactions }}"


def test_each_scoring_event_segments_the_scores_file_it_names_one_run_at_a_time() -> None:
    from flows.segmentation import SCORES_EVENT, SCORES_RESOURCE

    segmentation = _deployments(LOCAL)["clv-segmentation"]
    (trigger,) = segmentation["triggers"]
    assert trigger["enabled"] is True
    assert trigger["expect"] == [SCORES_EVENT]
    assert trigger["match"] == {"prefect.resource.id": SCORES_RESOURCE}
    assert trigger["parameters"]["scores"] == "{{ event.payload.scores }}"
    assert segmentation["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
    # The configuration both files pass is the shipped one, relative to the project folder.
    assert (ROOT / segmentation["parameters"]["config"]).is_file()


def test_the_triggers_validate_as_prefect_deployment_triggers() -> None:
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

    for deployment in LOCAL["deployments"]:
        for trigger in deployment.get("triggers", []):
            parsed = DeploymentEventTrigger.model_validate(trigger)
            assert parsed.within.total_seconds() <= 600


def test_no_flow_module_shadows_a_top_level_package() -> None:
    # A worker loads an entrypoint with its folder (flows/) on sys.path: a flows/monitoring.py
    # would then shadow the monitoring package for every import in the run.
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    modules = {p.stem for p in (ROOT / "flows").glob("*.py")}
    assert packages & modules == set()


def test_a_campaign_is_sent_one_run_at_a_time_and_its_analysis_has_a_daily_safety_net() -> None:
    from flows.campaigns import ANALYSIS_DEPLOYMENT

    local = _deployments(LOCAL)
    campaign, analysis = local["clv-campaign"], local["clv-campaign-analysis"]
    assert campaign["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
    assert (ROOT / campaign["parameters"]["definition"]).is_file()
    # The standing campaign's schedule is off until an operator switches it on.
    assert [s.get("active") for s in campaign["schedules"]] == [False]
    assert all(s.get("active", True) for s in analysis["schedules"])
    flow_name, deployment_name = ANALYSIS_DEPLOYMENT.split("/")
    assert deployment_name == analysis["name"]
    assert _flow(analysis["entrypoint"]).name == flow_name


def test_kubernetes_campaign_runs_get_channel_settings_and_secrets_not_inline_passwords() -> None:
    production = _deployments(PRODUCTION)["clv-campaign"]
    env = production["work_pool"]["job_variables"]["env"]
    assert {"CLV_SMTP_HOST", "CLV_SMTP_PORT", "CLV_SMTP_FROM"} <= set(env)
    assert not {"CLV_SMTP_PASSWORD", "CLV_SMTP_USER"} & set(env)
    container = TEMPLATE["job_configuration"]["job_manifest"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    from_secrets = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e
    }
    for name in (
        "CLV_SMTP_USER",
        "CLV_SMTP_PASSWORD",
        "CLV_SMS_WEBHOOK_URL",
        "CLV_INAPP_WEBHOOK_URL",
    ):
        assert from_secrets[name]["name"] == "clv-campaign-channels"
        assert from_secrets[name]["optional"] is True  # a campaign without SMS still starts
