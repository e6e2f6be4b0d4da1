"""docker-compose.yml and its local-only override: valid Compose, and wired together correctly.

Both files are validated against the Compose specification's JSON schema (Draft 7), vendored in
``tests/data/compose-spec.json`` (source and commit in ``compose-spec.json.source`` beside it), as
written and with every ``${VAR:-default}`` replaced by its default. The other checks are the
mistakes a schema cannot see: a dependency on a service that does not exist or has no health
check, a health check on the wrong port, a Prometheus job that misses the API, a mounted file
missing from the repository, a password in plain text. ``tests/e2e/test_compose_up.py`` starts what
runs here for real.
"""

from __future__ import annotations

import copy
import graphlib
import hashlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
LOCAL_ONLY = ROOT / "infra" / "compose" / "local-only.yml"
ENV_EXAMPLE = ROOT / "infra" / "compose" / "env.example"
INIT_DATABASES = ROOT / "infra" / "compose" / "postgres" / "init-databases.sh"
SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"
SCHEMA_SOURCE = ROOT / "tests" / "data" / "compose-spec.json.source"
PLATFORM_IMAGE = "localhost/clv-platform:latest"
#: What the issue asks the compose file to run.
REQUIRED_SERVICES = {
    "postgres", "minio", "mlflow", "prefect-server", "prefect-worker", "api", "prometheus",
    "grafana",
}  # fmt: skip
#: What the override may change: the stores, nothing else.
OVERRIDABLE_KEYS = {"command", "environment", "volumes"}

#: ``$$`` (a literal ``$``) or ``${NAME}``, ``${NAME:-default}``, ``${NAME-default}``.
_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}"
)


def _interpolate(text: str, env: dict[str, str] | None = None) -> str:
    """``text`` as Compose interpolates it in environment ``env`` (default: empty)."""
    env = env or {}

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, default = match.group("name", "op", "default")
        if op is None:
            if name not in env:
                raise AssertionError(f"${{{name}}} has no default: write ${{{name}:-...}}")
            return env[name]
        if op == ":-":
            return env.get(name) or default
        return env.get(name, default)

    return _VARIABLE.sub(replace, text)


def _variables(text: str) -> dict[str, str]:
    """Every variable the file reads, with its default."""
    return {
        m.group("name"): m.group("default") or ""
        for m in _VARIABLE.finditer(text)
        if m.group(0) != "$$"
    }


def _load(path: Path, *, interpolated: bool) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(_interpolate(text) if interpolated else text)
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml with the defaults filled in (YAML anchors and merge keys resolved)."""
    return _load(COMPOSE, interpolated=True)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(
        schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )


def _schema_errors(validator: jsonschema.Draft7Validator, document: object) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<top>'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    ]


def _platform(service: dict[str, Any]) -> bool:
    return service.get("image") == PLATFORM_IMAGE


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "write environment as a mapping: the override merges it"
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _ports(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host IP, host port, container port) of each published port (short syntax)."""
    out = []
    for spec in service.get("ports", []):
        host_ip, host_port, container_port = str(spec).split(":")
        out.append((host_ip, int(host_port), int(container_port.split("/")[0])))
    return out


def _binds(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each bind mount (a source that is a path, not a volume name)."""
    out = []
    for spec in service.get("volumes", []):
        source, target = str(spec).split(":")[:2]
        if source.startswith((".", "/")):
            out.append((source, target))
    return out


def _mounted(service: dict[str, Any], container_path: str) -> Path | None:
    """The repository file a bind mount shows at ``container_path``, if one does."""
    for source, target in _binds(service):
        if container_path == target:
            return ROOT / source
        if container_path.startswith(target.rstrip("/") + "/"):
            return ROOT / source / container_path[len(target) :].lstrip("/")
    return None


def _healthcheck_url(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    urls = re.findall(r"http://[^'\" ]+", " ".join(test))
    assert len(urls) == 1, f"one URL expected in the health check {test}"
    return str(urls[0])


def _option(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command else None


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Compose's merge of an override into a service, for the keys the override may set."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if key == "environment":
            merged[key] = {**merged.get(key, {}), **value}
        elif key == "volumes":
            targets = {str(v).split(":")[1] for v in value}
            kept = [v for v in merged.get(key, []) if str(v).split(":")[1] not in targets]
            merged[key] = kept + list(value)
        else:
            merged[key] = value
    return merged


#: Settings and options that name a store (a database, an artefact or bucket location).
STORE_SETTINGS = ("CLV_DATABASE_URL", "CLV_OPTUNA_STORAGE", "PREFECT_API_DATABASE_CONNECTION_URL")
STORE_OPTIONS = ("--backend-store-uri", "--artifacts-destination")


def _holds_a_store(service: dict[str, Any]) -> bool:
    command = [str(c) for c in service.get("command", [])]
    env = _environment(service)
    return any(name in env for name in STORE_SETTINGS) or any(o in command for o in STORE_OPTIONS)


# --------------------------------------------------------------------------------------------
# the schema


def test_the_vendored_schema_is_the_one_its_note_names() -> None:
    digest = hashlib.sha256(SCHEMA.read_bytes()).hexdigest()
    assert digest in SCHEMA_SOURCE.read_text(encoding="utf-8"), (
        f"tests/data/compose-spec.json changed (sha256 {digest}): note its new source and commit"
    )
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    # It names Draft 7 as https://json-schema.org/draft-07/schema, an address jsonschema does not
    # map to a draft (validator_for would fall back to the newest): the validator is chosen here.
    assert schema["$schema"].rstrip("#").endswith("json-schema.org/draft-07/schema")
    jsonschema.Draft7Validator.check_schema(schema)


@pytest.mark.parametrize("interpolated", [False, True], ids=["as-written", "interpolated"])
@pytest.mark.parametrize("path", [COMPOSE, LOCAL_ONLY], ids=["docker-compose", "local-only"])
def test_the_file_is_valid_compose(
    validator: jsonschema.Draft7Validator, path: Path, interpolated: bool
) -> None:
    errors = _schema_errors(validator, _load(path, interpolated=interpolated))
    assert not errors, f"{path.relative_to(ROOT)} breaks the Compose schema:\n" + "\n".join(errors)


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [
        ("api", "healthchek", {"test": ["CMD", "true"]}),
        ("api", "depends_on", {"mlflow": {"condition": "service_heathy"}}),
        ("grafana", "ports", [{"target": 3000, "publishd": 3000}]),
    ],
    ids=["misspelt-key", "unknown-condition", "misspelt-port-key"],
)
def test_the_schema_catches_a_broken_file(
    validator: jsonschema.Draft7Validator,
    compose: dict[str, Any],
    where: str,
    key: str,
    value: object,
) -> None:
    broken = copy.deepcopy(compose)
    broken["services"][where][key] = value
    assert _schema_errors(validator, broken)


# --------------------------------------------------------------------------------------------
# services and dependencies


def test_it_runs_every_service_the_issue_asks_for(services: dict[str, Any]) -> None:
    assert set(services) >= REQUIRED_SERVICES, REQUIRED_SERVICES - set(services)


def test_every_long_running_service_has_a_health_check(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if service.get("restart") == "no":  # one-off jobs (minio-init) finish instead
            continue
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name}: no healthcheck"
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name


def test_platform_services_are_healthy_or_wait_for_healthy_dependencies(
    services: dict[str, Any],
) -> None:
    platform = {name for name, service in services.items() if _platform(service)}
    assert platform >= {"api", "mlflow", "prefect-server", "prefect-worker"}
    for name in platform:
        service = services[name]
        assert service.get("pull_policy") == "never", f"{name}: built by `make image`, not pulled"
        assert "healthcheck" in service, name
        for target, dependency in service.get("depends_on", {}).items():
            assert dependency["condition"] in {
                "service_healthy",
                "service_completed_successfully",
            }, f"{name} starts before {target} is ready"


def test_depends_on_targets_exist_and_their_conditions_can_be_met(
    services: dict[str, Any],
) -> None:
    graph: dict[str, set[str]] = {}
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: write depends_on with conditions"
        graph[name] = set(depends_on)
        for target, dependency in depends_on.items():
            assert target in services, f"{name} depends on {target}, which is not a service"
            condition = dependency["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no health check"
            if condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} must run once"
    order = list(graphlib.TopologicalSorter(graph).static_order())  # raises on a cycle
    assert order.index("postgres") < order.index("mlflow") < order.index("api")


def test_the_api_publishes_8000_and_grafana_3000_on_localhost(services: dict[str, Any]) -> None:
    assert ("127.0.0.1", 8000, 8000) in _ports(services["api"])
    assert ("127.0.0.1", 3000, 3000) in _ports(services["grafana"])
    for name, service in services.items():
        for host_ip, _, _ in _ports(service):
            assert host_ip == "127.0.0.1", f"{name} publishes beyond this machine"


@pytest.mark.parametrize(
    ("name", "port", "path"),
    [
        ("api", 8000, "/health"),
        ("mlflow", 5000, "/health"),
        ("prefect-server", 4200, "/api/health"),
        ("prefect-worker", 8080, "/health"),
    ],
    ids=["api", "mlflow", "prefect-server", "prefect-worker"],
)
def test_platform_health_checks_ask_the_port_the_service_serves(
    services: dict[str, Any], name: str, port: int, path: str
) -> None:
    service = services[name]
    url = urlsplit(_healthcheck_url(service))
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", port, path)
    command = [str(part) for part in service["command"]]
    served = _option(command, "--port") or _environment(service).get(
        "PREFECT_WORKER_WEBSERVER_PORT"
    )
    assert served == str(port), f"{name} serves on {served}, its health check asks {port}"
    published = {container for _, _, container in _ports(service)}
    assert not published or port in published


def test_the_api_gets_the_settings_its_kubernetes_deployment_sets(
    services: dict[str, Any],
) -> None:
    manifests = list(yaml.safe_load_all((ROOT / "k8s" / "base" / "api.yaml").read_text()))
    deployment = next(m for m in manifests if m["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    wanted = {e["name"] for e in container["env"]} - {"HOME"}
    env = _environment(services["api"])
    assert wanted <= set(env), wanted - set(env)
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert env["CLV_DATABASE_URL"].startswith("postgresql+psycopg://")


def test_the_worker_polls_the_pool_of_the_deployments(services: dict[str, Any]) -> None:
    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    pools = {d["work_pool"]["name"] for d in deployments}
    command = [str(part) for part in services["prefect-worker"]["command"]]
    assert pools == {_option(command, "--pool")}
    assert _option(command, "--type") == "process"
    env = _environment(services["prefect-worker"])
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"


# --------------------------------------------------------------------------------------------
# the Dask cluster: a scheduler and two workers, the address the API and the flow runs use

DASK_SCHEDULER = "dask-scheduler"
DASK_WORKERS = ("dask-worker-1", "dask-worker-2")
#: What a task sent to a worker needs of its flow run's settings: the same stores and data home.
SHARED_WITH_THE_FLOW_RUNS = (
    "CLV_HOME",
    "CLV_DATABASE_URL",
    "CLV_OPTUNA_STORAGE",
    "MLFLOW_TRACKING_URI",
    "CLV_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)


def _dask_command(service: dict[str, Any]) -> list[str]:
    entrypoint = [str(part) for part in service.get("entrypoint", [])]
    assert entrypoint == ["dask"], (
        f"the image's entrypoint is clv: set entrypoint [dask], not {entrypoint}"
    )
    return [str(part) for part in service["command"]]


def test_the_dask_cluster_is_a_scheduler_and_two_workers_of_the_platform_image(
    services: dict[str, Any],
) -> None:
    for name in (DASK_SCHEDULER, *DASK_WORKERS):
        assert name in services and _platform(services[name]), name
    scheduler = _dask_command(services[DASK_SCHEDULER])
    assert scheduler[0] == "scheduler"
    address = f"tcp://{DASK_SCHEDULER}:{_option(scheduler, '--port')}"
    names = set()
    for name in DASK_WORKERS:
        command = _dask_command(services[name])
        assert command[:2] == ["worker", address], name
        assert int(_option(command, "--nthreads") or 0) >= 1, name
        assert _option(command, "--memory-limit"), f"{name}: bound its memory"
        names.add(_option(command, "--name"))
        depends_on = services[name]["depends_on"]
        assert depends_on[DASK_SCHEDULER]["condition"] == "service_healthy", name
    assert names == set(DASK_WORKERS), "each worker under its own name"


@pytest.mark.parametrize("name", [DASK_SCHEDULER, *DASK_WORKERS])
def test_dask_health_checks_ask_the_port_the_service_serves(
    services: dict[str, Any], name: str
) -> None:
    url = urlsplit(_healthcheck_url(services[name]))
    served = _option(_dask_command(services[name]), "--dashboard-address")
    assert (url.hostname, url.path) == ("127.0.0.1", "/health")
    assert served == f":{url.port}", f"{name} serves HTTP on {served}, its check asks {url.port}"


def test_the_api_and_the_flow_runs_are_given_the_schedulers_address(
    services: dict[str, Any],
) -> None:
    from clv.distributed.cluster import dask_address

    scheduler = _dask_command(services[DASK_SCHEDULER])
    address = f"tcp://{DASK_SCHEDULER}:{_option(scheduler, '--port')}"
    for name in ("api", "prefect-worker"):
        given = _environment(services[name]).get("CLV_DASK_ADDRESS")
        assert given == address, f"{name}: CLV_DASK_ADDRESS {given!r}"
        assert dask_address(given) == address


@pytest.mark.parametrize("name", DASK_WORKERS)
def test_dask_workers_share_the_flow_runs_stores_data_home_and_code(
    services: dict[str, Any], name: str
) -> None:
    worker, runs = services[name], services["prefect-worker"]
    env, runs_env = _environment(worker), _environment(runs)
    for setting in SHARED_WITH_THE_FLOW_RUNS:
        assert env.get(setting) == runs_env.get(setting), f"{name}: {setting}"
    assert set(worker["volumes"]) == set(runs["volumes"])
    # Prefect sends a task by reference to its module: the image's flows/ must be importable.
    # (the runtime stage's, the last WORKDIR of the Dockerfile, where it copies flows/)
    workdir = re.findall(r"^WORKDIR (\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)[-1]
    assert workdir in env["PYTHONPATH"].split(":")


def test_local_only_runs_the_flows_and_the_api_without_the_dask_cluster(
    services: dict[str, Any],
) -> None:
    # tests/e2e/test_compose_up.py starts neither the scheduler nor the workers: the services it
    # starts must not send work there. Started anyway, the workers use the override's stores.
    override = _load(LOCAL_ONLY, interpolated=True)["services"]
    for name in ("api", "prefect-worker"):
        assert _environment(_merged(services[name], override[name]))["CLV_DASK_ADDRESS"] == ""
    runs = _environment(_merged(services["prefect-worker"], override["prefect-worker"]))
    for name in DASK_WORKERS:
        env = _environment(_merged(services[name], override[name]))
        for setting in SHARED_WITH_THE_FLOW_RUNS:
            assert env.get(setting) == runs.get(setting), f"{name}: {setting}"


# --------------------------------------------------------------------------------------------
# stores: the databases and buckets the URLs name exist


def test_every_database_a_url_names_is_created(compose: dict[str, Any]) -> None:
    text = _interpolate(COMPOSE.read_text(encoding="utf-8"))
    named = set(re.findall(r"@postgres:5432/(\w+)", text))
    created = {compose["services"]["postgres"]["environment"]["POSTGRES_DB"]}
    loop = re.search(r"for database in ([\w ]+); do", INIT_DATABASES.read_text())
    assert loop, "init-databases.sh: the loop over the databases moved"
    created |= set(loop.group(1).split())
    assert named and named <= created, named - created


def test_every_bucket_a_url_names_is_created(services: dict[str, Any]) -> None:
    text = _interpolate(COMPOSE.read_text(encoding="utf-8"))
    named = set(re.findall(r"s3://([a-z0-9.-]+)", text))
    created = set(re.findall(r"clv/([a-z0-9.-]+)", " ".join(services["minio-init"]["command"])))
    assert named and named <= created, named - created


# --------------------------------------------------------------------------------------------
# mounted configuration: Prometheus and Grafana


def test_mounted_files_exist_and_named_volumes_are_declared() -> None:
    for path in (COMPOSE, LOCAL_ONLY):
        data = _load(path, interpolated=True)
        declared = set(data.get("volumes") or {})
        for name, service in data["services"].items():
            for source, target in _binds(service):
                assert (ROOT / source).exists(), f"{path.name}: {name} mounts missing {source}"
                assert target.startswith("/"), target
            for spec in service.get("volumes", []):
                source = str(spec).split(":")[0]
                if not source.startswith((".", "/")):
                    assert source in declared, f"{path.name}: volume {source} is not declared"
    assert (INIT_DATABASES.stat().st_mode & 0o111) != 0, "the postgres image runs it: chmod +x"


def _prometheus_config(services: dict[str, Any]) -> dict[str, Any]:
    prometheus = services["prometheus"]
    flags = [str(c) for c in prometheus["command"] if str(c).startswith("--config.file=")]
    assert len(flags) == 1, "prometheus: name its config with --config.file=PATH"
    mounted = _mounted(prometheus, flags[0].split("=", 1)[1])
    assert mounted is not None and mounted.is_file()
    data: dict[str, Any] = yaml.safe_load(mounted.read_text(encoding="utf-8"))
    return data


def test_prometheus_scrapes_the_api_metrics(services: dict[str, Any]) -> None:
    config = _prometheus_config(services)
    api_port = _ports(services["api"])[0][2]
    jobs = {
        target: job
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    assert f"api:{api_port}" in jobs, f"no job scrapes the API: {sorted(jobs)}"
    assert jobs[f"api:{api_port}"].get("metrics_path", "/metrics") == "/metrics"
    for target in jobs:
        assert target.split(":")[0] in services, f"Prometheus scrapes {target}: not a service"


def test_prometheus_config_passes_promtool_in_the_containers_layout(
    promtool: str, services: dict[str, Any], tmp_path: Path
) -> None:
    prometheus = services["prometheus"]
    # Each mounted file at its path inside the container, so rule_files resolve as they will.
    for source, target in _binds(prometheus):
        place = tmp_path / target.lstrip("/")
        place.parent.mkdir(parents=True, exist_ok=True)
        place.write_bytes((ROOT / source).read_bytes())
    config = tmp_path / "etc" / "prometheus" / "prometheus.yml"
    done = subprocess.run(
        [promtool, "check", "config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "alerts.yml" in done.stdout, "the alert rules were not loaded"


def test_grafana_provisions_prometheus_and_opens_the_clv_dashboard(
    services: dict[str, Any],
) -> None:
    grafana = services["grafana"]
    datasources = _mounted(grafana, "/etc/grafana/provisioning/datasources/prometheus.yml")
    assert datasources is not None and datasources.is_file()
    source = yaml.safe_load(datasources.read_text())["datasources"][0]
    url = urlsplit(source["url"])
    assert url.hostname == "prometheus"
    assert url.port in {container for _, _, container in _ports(services["prometheus"])}

    providers = _mounted(grafana, "/etc/grafana/provisioning/dashboards/clv.yml")
    assert providers is not None and providers.is_file()
    folder = yaml.safe_load(providers.read_text())["providers"][0]["options"]["path"]
    dashboards = _mounted(grafana, folder)
    assert dashboards is not None and any(dashboards.glob("*.json"))

    home = _environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    dashboard = _mounted(grafana, home)
    assert dashboard is not None and dashboard.is_file(), home
    uids = {panel["datasource"]["uid"] for panel in json.loads(dashboard.read_text())["panels"]}
    assert uids == {source["uid"]}


# --------------------------------------------------------------------------------------------
# variables, credentials, images


def test_every_variable_has_a_default_listed_in_env_example() -> None:
    used: dict[str, str] = {}
    for path in (COMPOSE, LOCAL_ONLY):
        text = path.read_text(encoding="utf-8")
        _interpolate(text)  # raises on a variable without a default
        for name, default in _variables(text).items():
            assert used.setdefault(name, default) == default, f"{name}: two defaults"
        values = "\n".join(re.sub(r"(^|\s)#.*$", "", line) for line in text.splitlines())
        bare = re.findall(r"\$(?![{$])\w+", _VARIABLE.sub("", values))
        assert not bare, f"{path.name}: write ${{NAME:-default}}, not {bare}"
    example = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert example == used


def test_no_credential_is_written_in_plain_text() -> None:
    secret = re.compile(r"PASSWORD|SECRET|_KEYS?$|KEY_ID$")
    for path in (COMPOSE, LOCAL_ONLY):
        text = path.read_text(encoding="utf-8")
        # Every variable set to a marker: a credential must be one, not a literal.
        markers = {name: f"<{name}>" for name in _variables(text)}
        data = yaml.safe_load(_interpolate(text, markers))
        for name, service in data["services"].items():
            for key, value in (service.get("environment") or {}).items():
                if secret.search(key):
                    assert str(value) in markers.values(), f"{name}: {key} is written out"
            dumped = yaml.safe_dump(service)
            for user, password in re.findall(r"://([^:/@\s]+):([^@\s]+)@", dumped):
                assert {user, password} <= set(markers.values()), f"{name}: {user}:{password}"


def test_third_party_images_are_fully_named_and_pinned(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if _platform(service):
            continue
        image = str(service["image"])
        registry, _, rest = image.partition("/")
        assert "." in registry, f"{name}: {image} (podman wants the registry in the name)"
        tag = rest.rpartition(":")[2]
        assert ":" in rest and tag not in {"", "latest"}, f"{name}: pin a tag, not {image}"


# --------------------------------------------------------------------------------------------
# the local-only override (what tests/e2e/test_compose_up.py starts)


def test_local_only_swaps_the_stores_and_nothing_else(services: dict[str, Any]) -> None:
    override = _load(LOCAL_ONLY, interpolated=True)["services"]
    for name, changes in override.items():
        assert name in services and _platform(services[name]), name
        assert set(changes) <= OVERRIDABLE_KEYS, f"{name}: {set(changes) - OVERRIDABLE_KEYS}"
    # Every platform service that holds a store is covered, and none keeps one on PostgreSQL or
    # S3. (The Dask scheduler holds none: it keeps its state in memory.)
    assert {n for n, s in services.items() if _platform(s) and _holds_a_store(s)} == set(override)
    for name, changes in override.items():
        merged = _merged(services[name], changes)
        env = _environment(merged)
        stores = [
            env.get("CLV_DATABASE_URL", ""),
            env.get("CLV_OPTUNA_STORAGE", ""),
            env.get("PREFECT_API_DATABASE_CONNECTION_URL", ""),
        ]
        command = [str(c) for c in merged.get("command", [])]
        stores += [
            _option(command, "--backend-store-uri") or "",
            _option(command, "--artifacts-destination") or "",
        ]
        for store in stores:
            assert "@postgres" not in store and not store.startswith("s3://"), f"{name}: {store}"
        # SQLite files live on a volume mounted where the image's user may write (/data).
        for store in stores:
            if store.startswith("sqlite"):
                folder = "/" + store.split(":///", 1)[1].lstrip("/")
                targets = [str(v).split(":")[1] for v in merged.get("volumes", [])]
                assert any(folder.startswith(t.rstrip("/") + "/") for t in targets), store
