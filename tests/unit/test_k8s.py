"""Kubernetes manifests and the Prefect work-pool base job template, checked offline.

There is no cluster here. Every manifest of the kustomize base (``k8s/base/``, the files its
``kustomization.yaml`` lists) is checked with ``kubernetes-validate --strict`` (the Python API:
strict mode rejects unknown fields, which the lenient mode lets through). The base job template is
rendered the way the Kubernetes worker renders it and the resulting Job is validated the same way.
The rendered kustomizations: tests/unit/test_kustomize.py. The work pool on a real Prefect server:
tests/integration/test_k8s_work_pool.py.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path
from typing import Any

import jsonpatch
import jsonschema
import kubernetes_validate
import pytest
import yaml
from prefect.utilities.templating import apply_values, find_placeholders

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "k8s"
BASE_DIR = K8S_DIR / "base"
TEMPLATE_PATH = K8S_DIR / "base-job-template.json"
README_PATH = K8S_DIR / "README.md"

#: The oldest Kubernetes minor we target, and the newest kubernetes-validate 1.37 bundles.
K8S_VERSIONS = ("1.31", "1.37")

#: Variables the worker fills for each flow run (``BaseJobConfiguration.prepare_for_flow_run``
#: sets ``name``, ``labels``, ``command`` and merges its own ``env``): no default needed.
FILLED_BY_PREFECT = {"name", "labels", "command"}
#: Variables that are deliberately unset by default (unset = the key is left out of the Job).
OPTIONAL_WITHOUT_DEFAULT = {"cpu_limit", "job_watch_timeout_seconds", "cluster_config"}

#: What the worker fills in for one flow run (sample values; the real ones come from the run).
SAMPLE_FLOW_RUN_VALUES: dict[str, Any] = {
    "name": "clv-training-agile-otter",
    "labels": {
        "prefect.io/flow-run-id": "0b0ab9a6-3c47-4c0d-9a43-7f3e0d6f3a10",
        "prefect.io/flow-run-name": "agile-otter",
        "prefect.io/work-pool-name": "clv-kubernetes",
    },
    "command": "prefect flow-run execute",
}

#: prefect-kubernetes 0.8.0 ``_get_base_job_manifest()``: the worker refuses a Job template that
#: lacks any of these or sets them differently. Note ``parallelism`` and ``completions`` under the
#: *pod* spec: the worker requires them there, although they are Job fields (see
#: ``test_rendered_job_passes_strict_validation``).
WORKER_REQUIRED_MANIFEST: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"annotations": {}, "labels": {}},
    "spec": {
        "template": {
            "spec": {
                "parallelism": 1,
                "completions": 1,
                "restartPolicy": "Never",
                "containers": [{"name": "prefect-job"}],
            }
        }
    },
}
MISPLACED_JOB_FIELDS = ("parallelism", "completions")


def load_documents(path: Path) -> list[dict[str, Any]]:
    """All non-empty YAML documents of a manifest file.

    Parameters
    ----------
    path : Path
        A ``.yaml`` file holding one or more ``---``-separated Kubernetes objects.

    Returns
    -------
    list of dict
        One dict per document, in file order.
    """
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def kustomization_resources(folder: Path) -> list[Path]:
    """The local files a ``kustomization.yaml`` lists under ``resources``, in its order.

    Parameters
    ----------
    folder : Path
        A folder holding ``kustomization.yaml``.

    Returns
    -------
    list of Path
        Each listed file (folders, i.e. other kustomizations, are left out).
    """
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))
    paths = [(folder / entry).resolve() for entry in kustomization.get("resources", [])]
    return [path for path in paths if path.is_file()]


def documented_secrets(readme: Path = README_PATH) -> dict[str, set[str]]:
    """The Secrets ``k8s/README.md`` tells how to create, with the keys each command sets.

    The manifests hold no Secret (a placeholder in the kustomization would overwrite the real one
    at every apply): each is created by a command in a fenced shell block of the README,
    ``kubectl create secret generic NAME --from-literal=KEY=...``. Backslash-continued lines are
    joined.

    Parameters
    ----------
    readme : Path
        The Markdown file to read.

    Returns
    -------
    dict of str to set of str
        Secret name to the keys its command sets (``--from-literal`` or ``--from-file``).
    """
    text = readme.read_text(encoding="utf-8")
    secrets: dict[str, set[str]] = {}
    for block in re.findall(
        r"^```(?:bash|sh|shell)\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL
    ):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            words = shlex.split(line)
            for i in range(len(words) - 3):
                if words[i : i + 3] == ["create", "secret", "generic"] and "kubectl" in words[:i]:
                    keys = secrets.setdefault(words[i + 3], set())
                    for word in words[i + 4 :]:
                        option, _, value = word.partition("=")
                        if option in ("--from-literal", "--from-file") and value:
                            keys.add(value.split("=", 1)[0])
    return secrets


def strict_errors(doc: dict[str, Any], version: str) -> list[str]:
    """Problems ``kubernetes-validate --strict`` finds in one object (empty when valid).

    Parameters
    ----------
    doc : dict
        One Kubernetes object.
    version : str
        Kubernetes version, ``"major.minor"``.

    Returns
    -------
    list of str
        ``kind/name: path: message`` per problem. A kind without a bundled schema counts as a
        problem: the CLI only warns about it, which would let a typo'd ``kind`` through.
    """
    where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name', '?')}"
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as err:
        path = ".".join(str(part) for part in err.path)
        return [f"{where}: {path}: {err.message}"]
    except kubernetes_validate.SchemaNotFoundError as err:
        return [f"{where}: {err.message}"]
    return []


def load_template() -> dict[str, Any]:
    """The work pool's base job template (``k8s/base-job-template.json``).

    Returns
    -------
    dict
        With keys ``job_configuration`` and ``variables``.
    """
    return json.loads(TEMPLATE_PATH.read_text())


def render_job_configuration(
    template: dict[str, Any], job_variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Render the template as the Kubernetes worker does for one flow run.

    Mirrors ``BaseJobConfiguration.from_template_and_values`` (defaults, then overrides, with
    ``env`` merged key by key, then ``apply_values``) and the parts of prefect-kubernetes'
    ``KubernetesWorkerJobConfiguration.prepare_for_flow_run`` that shape the manifest: the ``env``
    mapping is turned into ``name``/``value`` entries placed *before* the template's own env list
    (template entries with the same name are dropped), ``args`` is split like a shell command,
    and the run's labels are copied onto the pod. Prefect's own per-run environment
    (``PREFECT__FLOW_RUN_ID``, API URL, ...) is left out.

    Parameters
    ----------
    template : dict
        Base job template with ``job_configuration`` and ``variables``.
    job_variables : dict, optional
        Deployment or flow-run overrides; the worker's own values (name, labels, command) are
        taken from ``SAMPLE_FLOW_RUN_VALUES`` unless given here.

    Returns
    -------
    dict
        The rendered job configuration; its ``job_manifest`` is the Job the worker submits.
    """
    properties = template["variables"]["properties"]
    defaults = {
        name: schema["default"]
        for name, schema in properties.items()
        if schema.get("default") is not None
    }
    overrides = {**SAMPLE_FLOW_RUN_VALUES, **(job_variables or {})}
    values = {**defaults, **overrides}
    values["env"] = {**defaults.get("env", {}), **overrides.get("env", {})}
    config = apply_values(copy.deepcopy(template["job_configuration"]), values)

    manifest = config["job_manifest"]
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    run_env = [{"name": key, "value": value} for key, value in config["env"].items()]
    template_env = container.get("env")
    if isinstance(template_env, list):
        names = {entry["name"] for entry in run_env}
        run_env += [entry for entry in template_env if entry.get("name") not in names]
    container["env"] = run_env
    if isinstance(container.get("args"), str):
        container["args"] = shlex.split(container["args"])
    pod_metadata = manifest["spec"]["template"].setdefault("metadata", {})
    pod_metadata["labels"] = {**pod_metadata.get("labels", {}), **config["labels"]}
    return config


def kubernetes_view(manifest: dict[str, Any]) -> dict[str, Any]:
    """The Job as the API server stores it: the worker's misplaced pod-spec fields dropped.

    Parameters
    ----------
    manifest : dict
        A rendered job manifest.

    Returns
    -------
    dict
        A copy without ``parallelism``/``completions`` under the pod spec (Kubernetes ignores
        unknown fields there, with a warning).
    """
    job = copy.deepcopy(manifest)
    pod_spec = job["spec"]["template"]["spec"]
    for field in MISPLACED_JOB_FIELDS:
        pod_spec.pop(field, None)
    return job


# ---------------------------------------------------------------------------------------------
# Plain manifests
# ---------------------------------------------------------------------------------------------

#: The base's Kubernetes manifests: the files k8s/base/kustomization.yaml lists. k8s/prefect.yaml
#: (Prefect deployments) and the job template are not Kubernetes objects and stay outside it.
MANIFEST_FILES = kustomization_resources(BASE_DIR)


def test_the_base_lists_every_manifest_in_its_folder() -> None:
    assert sorted(MANIFEST_FILES) == sorted(
        p.resolve() for p in BASE_DIR.glob("*.yaml") if p.name != "kustomization.yaml"
    )
    # Only Prefect's own file stays at the top: every Kubernetes object is in the base.
    assert [p.name for p in K8S_DIR.glob("*.yaml")] == ["prefect.yaml"]


def test_manifests_hold_the_expected_objects() -> None:
    kinds = sorted(
        (doc["kind"], doc["metadata"]["name"])
        for path in MANIFEST_FILES
        for doc in load_documents(path)
    )
    assert kinds == [
        ("ConfigMap", "clv-api-config"),
        ("ConfigMap", "clv-config"),
        ("ConfigMap", "clv-dask-config"),
        ("ConfigMap", "clv-mlflow-config"),
        ("Deployment", "clv-api"),
        ("Deployment", "clv-mlflow"),
        ("Deployment", "clv-prefect-worker"),
        ("Deployment", "dask-scheduler"),
        ("Deployment", "dask-worker"),
        ("HorizontalPodAutoscaler", "clv-api"),
        ("Namespace", "clv"),
        ("NetworkPolicy", "clv-api"),
        ("NetworkPolicy", "clv-mlflow"),
        ("NetworkPolicy", "dask-scheduler"),
        ("NetworkPolicy", "dask-worker"),
        ("PersistentVolumeClaim", "clv-data"),
        ("PodDisruptionBudget", "clv-api"),
        ("Role", "clv-prefect-worker"),
        ("RoleBinding", "clv-prefect-worker"),
        ("Service", "clv-api"),
        ("Service", "clv-mlflow"),
        ("Service", "dask-scheduler"),
        ("ServiceAccount", "clv-flow-runner"),
        ("ServiceAccount", "clv-prefect-worker"),
    ]
    # The Secrets hold credentials: created with kubectl (k8s/README.md), never manifests.
    assert documented_secrets().keys() == {
        "clv-api-keys",
        "clv-campaign-channels",
        "clv-database",
        "clv-mlflow",
        "clv-mlflow-server",
    }
    for path in MANIFEST_FILES:
        for doc in load_documents(path):
            if doc["kind"] != "Namespace":
                assert doc["metadata"].get("namespace") == "clv", (path.name, doc["kind"])


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", MANIFEST_FILES, ids=[p.name for p in MANIFEST_FILES])
def test_manifest_passes_strict_validation(path: Path, version: str) -> None:
    docs = load_documents(path)
    assert docs, f"{path.name} holds no objects"
    errors = [error for doc in docs for error in strict_errors(doc, version)]
    assert not errors, "\n".join(errors)


def test_strict_validation_rejects_a_misspelled_field() -> None:
    (deployment,) = (
        doc
        for doc in load_documents(BASE_DIR / "prefect-worker.yaml")
        if doc["kind"] == "Deployment"
    )
    typo = copy.deepcopy(deployment)
    container = typo["spec"]["template"]["spec"]["containers"][0]
    container["imagePulPolicy"] = container.pop("imagePullPolicy")

    errors = strict_errors(typo, K8S_VERSIONS[0])
    assert len(errors) == 1
    assert "imagePulPolicy" in errors[0]
    # Without --strict the typo passes: the reason the suite validates strictly.
    kubernetes_validate.validate(typo, K8S_VERSIONS[0], strict=False)


def test_worker_deployment_is_non_root_with_a_healthcheck() -> None:
    (deployment,) = (
        doc
        for doc in load_documents(BASE_DIR / "prefect-worker.yaml")
        if doc["kind"] == "Deployment"
    )
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["serviceAccountName"] == "clv-prefect-worker"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert isinstance(pod["securityContext"]["runAsUser"], int)
    assert pod["securityContext"]["runAsUser"] > 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]

    command = container["command"]
    assert command[:3] == ["prefect", "worker", "start"]
    assert command[command.index("--pool") + 1] == "clv-kubernetes"
    assert command[command.index("--type") + 1] == "kubernetes"
    assert "--with-healthcheck" in command
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"] == "/health"
    (port,) = (p for p in container["ports"] if p["name"] == probe["port"])
    assert port["containerPort"] == 8080
    (api_url,) = (e for e in container["env"] if e["name"] == "PREFECT_API_URL")
    assert api_url["valueFrom"]["configMapKeyRef"] == {
        "name": "clv-config",
        "key": "PREFECT_API_URL",
    }


# ---------------------------------------------------------------------------------------------
# Base job template
# ---------------------------------------------------------------------------------------------


def test_placeholders_and_variables_match() -> None:
    template = load_template()
    placeholders = {p.name for p in find_placeholders(template["job_configuration"])}
    properties = template["variables"]["properties"]
    assert placeholders == set(properties), (
        f"used but not declared: {sorted(placeholders - set(properties))}; "
        f"declared but not used: {sorted(set(properties) - placeholders)}"
    )
    for name, schema in properties.items():
        assert schema.get("title") and schema.get("description"), name
        if name not in FILLED_BY_PREFECT | OPTIONAL_WITHOUT_DEFAULT:
            assert "default" in schema, f"variable {name!r} has no default"


def test_defaults_fit_their_schemas() -> None:
    variables = load_template()["variables"]
    for name, schema in variables["properties"].items():
        if "default" in schema:
            try:
                jsonschema.validate(schema["default"], schema)
            except jsonschema.ValidationError as err:
                pytest.fail(f"default of {name!r} does not fit its schema: {err.message}")


def _bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (``512Mi``, ``8Gi``, ``2G``) in bytes."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in sorted(units.items(), key=lambda item: -len(item[0])):
        if quantity.endswith(suffix):
            return int(quantity.removesuffix(suffix)) * factor
    return int(quantity)


def test_a_job_rendered_with_the_defaults_needs_only_objects_the_manifests_create() -> None:
    # Strict validation checks each object alone; a Job naming a service account, claim, Secret
    # key or namespace nobody creates would still be refused or left pending on the cluster.
    objects = {
        (doc["kind"], doc["metadata"]["name"]): doc
        for path in MANIFEST_FILES
        for doc in load_documents(path)
    }
    manifest = render_job_configuration(load_template())["job_manifest"]
    namespace = manifest["metadata"]["namespace"]
    pod = manifest["spec"]["template"]["spec"]
    (container,) = pod["containers"]

    assert ("Namespace", namespace) in objects
    account = objects[("ServiceAccount", pod["serviceAccountName"])]
    assert account["metadata"]["namespace"] == namespace
    # Flow runs get an account of their own: the worker's (bound to its Role) is not theirs.
    bound = {
        subject["name"]
        for doc in objects.values()
        if doc["kind"] == "RoleBinding"
        for subject in doc["subjects"]
    }
    assert pod["serviceAccountName"] not in bound
    for volume in pod["volumes"]:
        claim = objects[("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])]
        assert claim["metadata"]["namespace"] == namespace
    # Secrets are not manifests: each is created in the namespace by a README command.
    secrets = documented_secrets()
    for entry in container["env"]:
        if "valueFrom" in entry:
            ref = entry["valueFrom"]["secretKeyRef"]
            assert ref["name"] in secrets, f"Secret {ref['name']!r} is not in k8s/README.md"
            assert f"kubectl -n {namespace} create secret generic {ref['name']}" in (
                README_PATH.read_text(encoding="utf-8")
            )
            # An optional key (a channel's credentials) may be left out of the Secret.
            assert ref["key"] in secrets[ref["name"]] or ref.get("optional") is True, ref
    # CLV_HOME lies on the shared volume, not in the pod's own filesystem.
    home = next(e["value"] for e in container["env"] if e["name"] == "CLV_HOME")
    mounted = {v["name"] for v in pod["volumes"]}
    assert any(
        home.startswith(mount["mountPath"].rstrip("/") + "/")
        for mount in container["volumeMounts"]
        if mount["name"] in mounted
    ), home
    # The API server refuses a pod whose memory request exceeds its limit.
    resources = container["resources"]
    assert _bytes(resources["requests"]["memory"]) <= _bytes(resources["limits"]["memory"])
    # The worker's observer watches the namespace the Jobs are created in.
    worker = objects[("Deployment", "clv-prefect-worker")]
    (worker_container,) = worker["spec"]["template"]["spec"]["containers"]
    watched = {e["name"]: e.get("value") for e in worker_container["env"]}
    assert watched["PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES"] == namespace


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_rendered_job_passes_strict_validation(version: str) -> None:
    manifest = render_job_configuration(load_template())["job_manifest"]
    assert not find_placeholders(manifest), "placeholders left after rendering"
    # prefect-kubernetes insists on these two Job fields under the pod spec (see
    # WORKER_REQUIRED_MANIFEST); strict validation rejects them there and the API server drops
    # them with a warning. Everything else must be valid as it stands.
    pod_spec = manifest["spec"]["template"]["spec"]
    assert {field: pod_spec[field] for field in MISPLACED_JOB_FIELDS} == {
        "parallelism": 1,
        "completions": 1,
    }
    (error,) = strict_errors(manifest, version)
    assert "spec.template.spec" in error
    assert all(field in error for field in MISPLACED_JOB_FIELDS)
    errors = strict_errors(kubernetes_view(manifest), version)
    assert not errors, "\n".join(errors)


def test_rendered_job_has_what_the_worker_requires() -> None:
    manifest = render_job_configuration(load_template())["job_manifest"]
    manifest["metadata"].setdefault("annotations", {})  # the worker adds it when missing
    patch = jsonpatch.JsonPatch.from_diff(manifest, WORKER_REQUIRED_MANIFEST)
    missing_or_different = [op for op in patch if op["op"] in ("add", "replace")]
    assert not missing_or_different


def test_rendered_job_uses_the_defaults() -> None:
    manifest = render_job_configuration(load_template())["job_manifest"]
    spec = manifest["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert manifest["metadata"]["namespace"] == "clv"
    assert manifest["metadata"]["generateName"] == "clv-training-agile-otter-"
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] == 86400
    assert pod["serviceAccountName"] == "clv-flow-runner"
    assert container["image"] == "clv-platform:latest"
    assert container["args"] == ["prefect", "flow-run", "execute"]
    # No CPU limit by default: the key is dropped, not rendered empty.
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "6Gi"},
        "limits": {"memory": "8Gi"},
    }
    assert pod["volumes"] == [
        {"name": "clv-data", "persistentVolumeClaim": {"claimName": "clv-data"}}
    ]
    assert container["volumeMounts"] == [{"name": "clv-data", "mountPath": "/data"}]


def test_pods_run_as_non_root_with_a_numeric_uid() -> None:
    pod = render_job_configuration(load_template())["job_manifest"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    for context in (pod["securityContext"], container["securityContext"]):
        assert context["runAsNonRoot"] is True
        assert isinstance(context["runAsUser"], int)
        assert context["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_env_merges_defaults_deployment_values_and_the_mlflow_secret() -> None:
    mlflow_from_secret = {
        "name": "MLFLOW_TRACKING_URI",
        "valueFrom": {"secretKeyRef": {"name": "clv-mlflow", "key": "tracking-uri"}},
    }
    channels_from_secret = [
        {
            "name": name,
            "valueFrom": {
                "secretKeyRef": {"name": "clv-campaign-channels", "key": key, "optional": True}
            },
        }
        for name, key in (
            ("CLV_SMTP_USER", "smtp-user"),
            ("CLV_SMTP_PASSWORD", "smtp-password"),
            ("CLV_SMS_WEBHOOK_URL", "sms-webhook-url"),
            ("CLV_INAPP_WEBHOOK_URL", "inapp-webhook-url"),
        )
    ]
    database_from_secret = [
        {
            "name": "CLV_DATABASE_URL",
            "valueFrom": {"secretKeyRef": {"name": "clv-database", "key": "url"}},
        },
        {
            "name": "CLV_OPTUNA_STORAGE",
            "valueFrom": {
                "secretKeyRef": {"name": "clv-database", "key": "optuna-url", "optional": True}
            },
        },
    ]
    template = load_template()

    env = render_job_configuration(template)["job_manifest"]["spec"]["template"]["spec"][
        "containers"
    ][0]["env"]
    assert env == [
        {"name": "CLV_HOME", "value": "/data/clv"},
        {"name": "PREFECT_SERVER_ANALYTICS_ENABLED", "value": "false"},
        mlflow_from_secret,
        *database_from_secret,
        *channels_from_secret,
    ]

    # A deployment's env adds to the defaults; a plain MLFLOW_TRACKING_URI replaces the Secret's.
    env = render_job_configuration(
        template, {"env": {"CLV_LOG_LEVEL": "debug", "MLFLOW_TRACKING_URI": "http://mlflow:5000"}}
    )["job_manifest"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [
        {"name": "CLV_HOME", "value": "/data/clv"},
        {"name": "PREFECT_SERVER_ANALYTICS_ENABLED", "value": "false"},
        {"name": "CLV_LOG_LEVEL", "value": "debug"},
        {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow:5000"},
        *database_from_secret,
        *channels_from_secret,
    ]


def test_flow_run_pods_run_prefects_command_not_the_images_clv_entrypoint() -> None:
    # The image's ENTRYPOINT is `clv`; the worker puts `prefect flow-run execute` in `args`, so
    # the container must name a command or the pod would run `clv prefect flow-run execute`.
    template = load_template()
    container = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["command"] == ["/usr/bin/env"]
    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["clv"]' in dockerfile
