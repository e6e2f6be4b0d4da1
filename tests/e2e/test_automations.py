"""Automations as code, on a real Prefect server: the files in ``automations/`` notify a webhook.

Starts a ``prefect server`` of its own (temp home and database, free port) and a local HTTP
webhook sink, then runs the command ``make deploy`` runs (``python -m flows.automations``) with
``CLV_ALERT_WEBHOOK_URL`` pointing at the sink, twice. The server itself sends the
notifications (its actions service renders the templates and calls the block), so a message at
the sink proves the whole path: file -> automation -> trigger -> action -> block -> HTTP.

Before a negative check ("no further message") the test waits for a probe automation, created
after the change under test, to fire: events are evaluated in order, so once the probe's message
arrives the server has loaded the automations and evaluated the events emitted before it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import _start_prefect_server, _stop_process_group

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NAMES = {"clv-drift-alert", "clv-flow-run-failed", "clv-training-overdue"}
DEPLOY_COMMAND = [sys.executable, "-m", "flows.automations"]
WAIT_S = 120.0


class Sink:
    """A webhook receiver on a free port: every request's JSON body, in arrival order."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    received.append({"path": self.path, **json.loads(body or b"{}")})
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._received = received
        self._lock = lock
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/clv"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def messages(self, subject: str = "") -> list[dict[str, Any]]:
        """Messages whose subject contains ``subject``."""
        with self._lock:
            return [m for m in self._received if subject in m.get("subject", "")]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Api:
    """The bits of Prefect's REST API the test reads and writes (never through a proxy)."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, trust_env=False, timeout=30)

    def automations(self) -> list[dict[str, Any]]:
        response = self.client.post("/automations/filter", json={"limit": 200})
        response.raise_for_status()
        automations: list[dict[str, Any]] = response.json()
        return automations

    def managed(self) -> dict[str, dict[str, Any]]:
        found = [a for a in self.automations() if "clv-automations" in a["tags"]]
        by_name = {a["name"]: a for a in found}
        assert len(by_name) == len(found), f"duplicate names: {[a['name'] for a in found]}"
        return by_name


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    proc, env = _start_prefect_server(tmp_path_factory.mktemp("automations"))
    try:
        yield env
    finally:
        _stop_process_group(proc)


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    receiver = Sink()
    try:
        yield receiver
    finally:
        receiver.close()


def _deploy(
    env: dict[str, str], *args: str, webhook: str | None
) -> subprocess.CompletedProcess[str]:
    run_env = {k: v for k, v in env.items() if k != "CLV_ALERT_WEBHOOK_URL"}
    if webhook is not None:
        run_env["CLV_ALERT_WEBHOOK_URL"] = webhook
    return subprocess.run(
        [*DEPLOY_COMMAND, *args], env=run_env, cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def _python(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def _emit(env: dict[str, str], events: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Emit (event, resource id, payload) triples to the server, in order."""
    code = (
        "import json, sys\nfrom prefect.events import emit_event\n"
        f"for name, resource, payload in json.loads({json.dumps(events)!r}):\n"
        "    assert emit_event(event=name, resource={'prefect.resource.id': resource},"
        " payload=payload) is not None\n"
    )
    done = _python(env, code)
    assert done.returncode == 0, done.stdout + done.stderr


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.5)


class Probe:
    """An automation of the test's own that notifies on ``clv.test.probe.<n>`` (see module doc)."""

    def __init__(self, api: Api, env: dict[str, str], sink: Sink, block_document_id: str) -> None:
        self.api, self.env, self.sink = api, env, sink
        self.block_document_id = block_document_id
        self.id: str | None = None
        self.rounds = 0

    def sync(self) -> None:
        """Change the probe, wait until the server acts on it: earlier changes are loaded too."""
        self.rounds += 1
        event = f"clv.test.probe.{self.rounds}"
        body = {
            "name": "test-probe",
            "trigger": {
                "type": "event", "posture": "Reactive", "expect": [event],
                "match": {"prefect.resource.id": "clv.test.probe"}, "threshold": 1, "within": 0,
            },
            "actions": [{
                "type": "send-notification", "block_document_id": self.block_document_id,
                "subject": f"probe {self.rounds}", "body": "{{ event.event }}",
            }],
        }  # fmt: skip
        if self.id is None:
            response = self.api.client.post("/automations/", json=body)
            response.raise_for_status()
            self.id = response.json()["id"]
        else:
            self.api.client.put(f"/automations/{self.id}", json=body).raise_for_status()
        deadline = time.monotonic() + WAIT_S
        while not self.sink.messages(f"probe {self.rounds}"):
            if time.monotonic() > deadline:
                pytest.fail("the server never acted on the probe automation")
            _emit(self.env, [(event, "clv.test.probe", {})])
            for _ in range(10):
                if self.sink.messages(f"probe {self.rounds}"):
                    break
                time.sleep(0.5)


@pytest.fixture(scope="module")
def deployed(server: dict[str, str], sink: Sink) -> dict[str, Any]:
    """The automations created by the deploy command (run twice); the API and the probe."""
    api = Api(server["PREFECT_API_URL"])
    first = _deploy(server, webhook=sink.url)
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(re.findall(r"automation created: (\S+)", first.stdout)) == sorted(NAMES)
    second = _deploy(server, webhook=sink.url)
    assert second.returncode == 0, second.stdout + second.stderr
    assert sorted(re.findall(r"automation updated: (\S+)", second.stdout)) == sorted(NAMES)
    assert "created" not in second.stdout
    managed = api.managed()
    block = managed["clv-drift-alert"]["actions"][0]["block_document_id"]
    probe = Probe(api, server, sink, block)
    probe.sync()
    return {"api": api, "probe": probe, "automations": managed}


def test_make_deploy_runs_the_automations_command() -> None:
    recipe = (ROOT / "Makefile").read_text(encoding="utf-8").split("\ndeploy:", 1)[1]
    recipe = recipe.split("\n\n", 1)[0]
    assert "prefect --no-prompt deploy --all" in recipe
    assert "$(BIN)/python -m flows.automations" in recipe.split("deploy --all", 1)[1]


def test_without_the_webhook_url_nothing_is_created_and_the_message_says_why(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # A server of its own: nothing may appear on it.
    proc, env = _start_prefect_server(tmp_path_factory.mktemp("no-webhook"))
    try:
        skipped = _deploy(env, webhook=None)
        assert skipped.returncode == 0, skipped.stdout + skipped.stderr
        assert "CLV_ALERT_WEBHOOK_URL is not set" in skipped.stderr
        assert all(name in skipped.stderr for name in NAMES)
        refused = _deploy(env, "--require-webhook", webhook="")
        assert refused.returncode == 2 and "CLV_ALERT_WEBHOOK_URL" in refused.stderr
        bad = _deploy(env, webhook="hooks.example.com/no-scheme")
        assert bad.returncode == 1 and "must be an http(s) URL" in bad.stderr
        # An invalid file stops the deploy before anything is saved.
        folder = tmp_path_factory.mktemp("invalid")
        for path in (ROOT / "automations").glob("*.yaml"):
            shutil.copy(path, folder)
        broken = yaml.safe_load((folder / "drift-alert.yaml").read_text(encoding="utf-8"))
        broken["trigger"]["posture"] = "Sometimes"
        (folder / "drift-alert.yaml").write_text(yaml.safe_dump(broken), encoding="utf-8")
        invalid = _deploy(env, "--dir", str(folder), webhook="http://127.0.0.1:9/hook")
        assert invalid.returncode == 1, invalid.stdout + invalid.stderr
        assert "automation 'clv-drift-alert'" in invalid.stderr and "posture" in invalid.stderr
        api = Api(env["PREFECT_API_URL"])
        assert api.automations() == []
        blocks = api.client.post("/block_documents/filter", json={})
        assert [b["name"] for b in blocks.json() if not b.get("is_anonymous")] == []
    finally:
        _stop_process_group(proc)


def test_three_automations_with_the_triggers_of_their_files(deployed: dict[str, Any]) -> None:
    automations = deployed["automations"]
    assert set(automations) == NAMES
    # The second deploy updated in place: still one of each, and nothing else was created.
    assert [a["name"] for a in deployed["api"].automations()].count("clv-drift-alert") == 1

    drift = automations["clv-drift-alert"]["trigger"]
    assert drift["posture"] == "Reactive" and drift["expect"] == ["clv.drift.detected"]
    assert drift["match"] == {"prefect.resource.id": "clv.model.clv-spend"}
    assert drift["threshold"] == 1 and drift["within"] == 600.0

    failed = automations["clv-flow-run-failed"]["trigger"]
    assert failed["posture"] == "Reactive"
    assert set(failed["expect"]) == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    assert failed["for_each"] == ["prefect.resource.id"]

    overdue = automations["clv-training-overdue"]["trigger"]
    assert overdue["posture"] == "Proactive" and overdue["within"] == 7200.0
    assert overdue["after"] == ["prefect.flow-run.Running"]
    assert set(overdue["expect"]) == {
        f"prefect.flow-run.{s}" for s in ("Completed", "Failed", "Crashed", "Cancelled")
    }
    assert overdue["match_related"] == {
        "prefect.resource.role": "flow",
        "prefect.resource.name": "clv-training",
    }
    for automation in automations.values():
        (action,) = automation["actions"]
        assert action["type"] == "send-notification"
        assert action["block_document_id"] == drift_block(automations)


def drift_block(automations: dict[str, dict[str, Any]]) -> str:
    block: str = automations["clv-drift-alert"]["actions"][0]["block_document_id"]
    return block


def test_the_block_keeps_the_webhook_url_secret(deployed: dict[str, Any], sink: Sink) -> None:
    api: Api = deployed["api"]
    block = api.client.get(f"/block_documents/{drift_block(deployed['automations'])}")
    block.raise_for_status()
    assert block.json()["name"] == "clv-alerts"
    assert sink.url not in block.text  # the URL lives in the block's secrets, obfuscated


def test_a_drift_event_sends_one_notification_and_a_burst_no_more(
    deployed: dict[str, Any], server: dict[str, str], sink: Sink
) -> None:
    marker = "tenure_days-marker-41"
    payload = {
        "drift_share": 0.62,
        "drifted_columns": ["monetary_mean", marker],
        "report_uri": "file:///tmp/report.html",
        "champion_version": 3,
    }
    _emit(server, [("clv.drift.detected", "clv.model.clv-spend", payload)])
    _wait_for(lambda: len(sink.messages("CLV drift")) >= 1, "the drift notification")
    (message,) = sink.messages("CLV drift")
    assert message["path"] == "/hooks/clv"
    assert message["subject"] == "CLV drift detected on clv.model.clv-spend"
    assert marker in message["body"] and "0.62" in message["body"]
    assert "champion version 3" in message["body"]
    assert message["text"] == f"{message['subject']}\n{message['body']}"

    # A burst inside the 600 s window: the probe afterwards proves the server evaluated it.
    burst = [("clv.drift.detected", "clv.model.clv-spend", {**payload, "i": i}) for i in range(15)]
    _emit(server, burst)
    deployed["probe"].sync()
    time.sleep(2)
    assert len(sink.messages("CLV drift")) == 1


def test_a_failed_flow_run_sends_one_notification_naming_flow_and_run(
    deployed: dict[str, Any], server: dict[str, str], sink: Sink
) -> None:
    code = (
        "from prefect import flow\nfrom prefect.runtime import flow_run\n"
        "@flow(name='clv-test-failing')\n"
        "def failing():\n"
        "    print('RUN', flow_run.name, flush=True)\n"
        "    raise RuntimeError('boom: the warehouse is down')\n"
        "failing()\n"
    )
    done = _python(server, code)
    assert done.returncode != 0 and "boom" in done.stderr, done.stdout + done.stderr
    run_name = re.search(r"RUN (\S+)", done.stdout + done.stderr)
    assert run_name is not None
    _wait_for(lambda: len(sink.messages("clv-test-failing")) >= 1, "the failure notification")
    deployed["probe"].sync()
    (message,) = sink.messages("clv-test-failing")
    assert message["subject"] == f"Flow run clv-test-failing/{run_name[1]} Failed"
    assert f"Flow run {run_name[1]} of flow clv-test-failing entered Failed" in message["body"]
    assert "boom: the warehouse is down" in message["body"]


def test_a_training_running_past_the_window_sends_one_notification(
    deployed: dict[str, Any], server: dict[str, str], sink: Sink, tmp_path: Path
) -> None:
    # The same files with a 10 s window (Prefect's minimum), applied over the deployed ones:
    # an update by name, so there are still three.
    folder = tmp_path / "automations"
    shutil.copytree(ROOT / "automations", folder)
    overdue = folder / "training-overdue.yaml"
    definition = yaml.safe_load(overdue.read_text(encoding="utf-8"))
    definition["trigger"]["within"] = 10
    overdue.write_text(yaml.safe_dump(definition), encoding="utf-8")
    done = _deploy(server, "--dir", str(folder), webhook=sink.url)
    assert done.returncode == 0, done.stdout + done.stderr
    api: Api = deployed["api"]
    managed = api.managed()
    assert set(managed) == NAMES and managed["clv-training-overdue"]["trigger"]["within"] == 10
    deployed["probe"].sync()

    code = (
        "import sys, time\nfrom prefect import flow\nfrom prefect.runtime import flow_run\n"
        "@flow(name='clv-training')\n"
        "def training(seconds: float) -> None:\n"
        "    print('RUN', flow_run.name, flush=True)\n"
        "    time.sleep(seconds)\n"
        "training(float(sys.argv[1]))\n"
    )
    quick = subprocess.run(
        [sys.executable, "-c", code, "0"], env=server, cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert quick.returncode == 0, quick.stdout + quick.stderr
    slow = subprocess.run(
        [sys.executable, "-c", code, "30"], env=server, cwd=ROOT, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert slow.returncode == 0, slow.stdout + slow.stderr
    quick_name = re.search(r"RUN (\S+)", quick.stdout + quick.stderr)
    slow_name = re.search(r"RUN (\S+)", slow.stdout + slow.stderr)
    assert quick_name is not None and slow_name is not None

    _wait_for(lambda: len(sink.messages("running longer")) >= 1, "the overdue notification")
    # The quick run's window closed long ago; any message for it would have arrived by now.
    deployed["probe"].sync()
    time.sleep(6)  # one more periodic (5 s) evaluation of proactive triggers
    (message,) = sink.messages("running longer")
    assert message["subject"] == f"Training {slow_name[1]} is running longer than expected"
    assert "has not finished within 0:00:10" in message["body"]
    assert "Current state: Running" in message["body"]  # sent while the run was still going
    assert quick_name[1] not in json.dumps(sink.messages())
    # A run that completed is no failure either.
    assert not sink.messages("clv-training/")


def test_a_redeploy_removes_duplicates_and_orphans_and_nothing_else(
    deployed: dict[str, Any], server: dict[str, str], sink: Sink
) -> None:
    api: Api = deployed["api"]
    block = drift_block(deployed["automations"])

    def create(name: str, tags: list[str]) -> None:
        body = {
            "name": name, "tags": tags,
            "trigger": {"type": "event", "posture": "Reactive", "expect": ["clv.test.never"],
                        "threshold": 1, "within": 0},
            "actions": [{"type": "send-notification", "block_document_id": block,
                         "subject": name, "body": "never sent"}],
        }  # fmt: skip
        api.client.post("/automations/", json=body).raise_for_status()

    create("clv-drift-alert", [])  # a second one of the name, made by hand
    create("clv-retired-alert", ["clv-automations"])  # its file was deleted
    create("someone-elses-alert", ["ops"])  # not ours: must survive
    done = _deploy(server, webhook=sink.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "automation deleted: clv-retired-alert" in done.stdout
    assert "automation deleted: clv-drift-alert (duplicate" in done.stdout
    names = [a["name"] for a in api.automations()]
    assert sorted(n for n in names if n in NAMES) == sorted(NAMES)  # one of each
    assert "clv-retired-alert" not in names and "someone-elses-alert" in names
