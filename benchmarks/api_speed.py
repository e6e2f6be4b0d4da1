"""Benchmark: the serving API's requests/s and latency under ``wrk``, beside two references.

Goals (issue: serving API), one run, same machine, same champion:

* ``POST /predict/clv`` for known customers (stored scores) against ``GET /health`` of the same
  server: at least 50% of its requests/s, and p99 <= 50 ms, at 8 concurrent connections;
* ``POST /predict/clv`` with ``features`` (scored on the fly by the champion) against
  ``mlflow models serve`` of the same registered model (``models:/clv-spend@champion``) fed the
  same feature rows at ``/invocations``, one row per request: at least 2x its requests/s at equal
  p99.

What is measured is what ships. In a throwaway ``CLV_HOME`` (its MLflow registry: SQLite and
local artifacts under it, the URI passed explicitly to every command) the CLI builds a champion
as a team would: ``clv generate --customers N``, ``clv train --trials 1 --families lightgbm``,
``clv promote --latest --yes --force`` (spend and churn), ``clv score``, ``clv segment run`` and
``approve``. Then, one server at a time, each in its own process group (stopped with its
children):

1. ``clv serve --workers 1`` (uvicorn, its default log level): ``/health``, ``/predict/clv``
   known, ``/predict/clv`` with features;
2. ``mlflow models serve -m models:/clv-spend@champion --env-manager local`` (uvicorn, 1
   worker): ``/invocations`` with ``dataframe_split`` bodies of the spend model's signature
   columns;
3. ``clv serve --workers 2`` (unless ``--no-workers-2``): the three rows of 1 again.

Each row is ``wrk -t THREADS -c CONNECTIONS -d DURATION --latency`` after an unreported warm-up
(the pyfunc loads its bundle on the first predict). POST bodies go through
``benchmarks/wrk/post_bodies.lua``, which rotates over one body a line of a file this script
writes: one per known customer (up to ``--customers``; features from
:func:`clv.training.scoring.customer_features` at the scoring as-of date, missing values as
null). Before loading, one request of each kind is checked: 200, the stored or scored source,
and ``/invocations`` predicting what our on-the-fly scoring predicts for the same rows.
Requests/s, p50 and p99 are parsed from wrk's output; a row with socket errors or non-2xx
answers is reported as failed. Beside them: the server's CPU time per request (user + system of
every process in its process group, from ``/proc``, over the measured run), which does not
depend on how much of the cores other processes leave the server, and the load average at the
row's start. Last, two diagnostic rows that are not what ships (``--no-one-thread`` skips them):
``/predict/clv`` with features and ``/invocations`` with ``OMP_NUM_THREADS=1`` (LightGBM's
prediction on one OpenMP thread). Results are printed as a Markdown table and written to
``benchmarks/.cache/api_speed.json``.

Usage: python benchmarks/api_speed.py [--customers 1000] [--duration 20] [--connections 8]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

BENCH_DIR = Path(__file__).resolve().parent
CACHE = BENCH_DIR / ".cache"
RESULTS_PATH = CACHE / "api_speed.json"
LUA = BENCH_DIR / "wrk" / "post_bodies.lua"
BIN = Path(sys.executable).parent
API_KEY = "benchmark-key"
HORIZON_DAYS = 90
#: Goals of the issue.
GOAL_KNOWN_SHARE = 0.5
GOAL_KNOWN_P99_MS = 50.0
GOAL_FEATURES_OVER_MLFLOW = 2.0
START_TIMEOUT_S = 300.0
WARMUP_SECONDS = 3
#: Row labels.
HEALTH, KNOWN, FEATURES = "/health (trivial)", "/predict/clv known", "/predict/clv features"
MLFLOW = "mlflow /invocations"


@dataclass
class WrkResult:
    """One wrk run, parsed."""

    label: str
    url: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    non_2xx: int
    output: str
    server_cpu_ms_per_request: float = math.nan
    load_at_start: float = math.nan

    @property
    def failed(self) -> bool:
        return self.errors > 0 or self.non_2xx > 0 or self.requests == 0


# --------------------------------------------------------------------------------------------------
# Processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:  # MLflow's /ping answers a bare newline
        return raw.decode(errors="replace")


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, _json_or_text(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, _json_or_text(err.read())


def _post(url: str, body: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=body.encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def _clv(env: dict[str, str], *args: str) -> str:
    """Run ``clv ARGS`` as a user would; stop with its output if it fails."""
    done = subprocess.run(
        [str(BIN / "clv"), *args], env=env, capture_output=True, text=True, timeout=1800
    )
    if done.returncode != 0:
        raise SystemExit(f"clv {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


class Server:
    """A server command in its own process group, stopped with every child it started."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.command = command
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            command,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
            start_new_session=True,
        )

    def wait_until(self, url: str, headers: dict[str, str] | None = None) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                self.stop()
                raise SystemExit(
                    f"{self.name} exited with code {self.proc.returncode}:\n"
                    + self.log_path.read_text(errors="replace")[-5000:]
                )
            try:
                status, _ = _get(url, headers)
                if status == 200:
                    return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"{self.name} did not answer 200 at {url} in time")
            time.sleep(0.5)

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._log.close()


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every live process in process group ``pgid`` (Linux)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            # After the command name's closing parenthesis: state, ppid, pgrp, ... (proc(5)).
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def _load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


# --------------------------------------------------------------------------------------------------
# wrk

_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNIT_MS[unit]


def parse_wrk(label: str, url: str, output: str) -> WrkResult:
    """Requests/s, p50, p99 (ms), request count and errors from ``wrk --latency`` output."""
    percentiles = {
        p: _ms(v, u)
        for p, v, u in re.findall(r"^\s*(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
    }
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    count = re.search(r"^\s*(\d+) requests in", output, re.M)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if rate is None or count is None or set(percentiles) != {"50", "99"}:
        raise SystemExit(f"could not parse wrk's output for {label}:\n{output}")
    return WrkResult(
        label=label,
        url=url,
        requests_per_s=float(rate.group(1)),
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        requests=int(count.group(1)),
        errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        output=output,
    )


def wrk_command(
    url: str, *, threads: int, connections: int, seconds: int, bodies: Path | None, key: str
) -> list[str]:
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s"]
    command += ["--latency", "--timeout", "10s"]
    if bodies is None:
        return [*command, url]
    return [*command, "-s", str(LUA), url, "--", str(bodies), key]


def run_wrk(
    label: str, url: str, bodies: Path | None, args: argparse.Namespace, server: Server
) -> WrkResult:
    """One warm-up, then the measured run with the server's CPU time; print and return it."""
    key = API_KEY if bodies is not None else ""

    def command(seconds: int) -> list[str]:
        return wrk_command(
            url, threads=args.threads, connections=args.connections, seconds=seconds,
            bodies=bodies, key=key,
        )  # fmt: skip

    subprocess.run(command(WARMUP_SECONDS), capture_output=True, check=True)
    load = _load()
    cpu_before = group_cpu_seconds(server.proc.pid)
    done = subprocess.run(command(args.duration), capture_output=True, text=True, check=True)
    cpu = group_cpu_seconds(server.proc.pid) - cpu_before
    result = parse_wrk(label, url, done.stdout)
    result.load_at_start = load
    result.server_cpu_ms_per_request = 1e3 * cpu / max(result.requests, 1)
    print(
        f"  {label}: {result.requests_per_s:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
        f"p99 {result.p99_ms:.2f} ms, server CPU {result.server_cpu_ms_per_request:.2f} "
        f"ms/request, load {load:.1f} ({result.requests:,} requests, {result.errors} socket "
        f"errors, {result.non_2xx} non-2xx)",
        flush=True,
    )
    return result


# --------------------------------------------------------------------------------------------------
# Bodies


def _plain(value: Any) -> float | None:
    return None if pd.isna(value) else float(value)


def write_bodies(
    folder: Path,
    customers: list[str],
    features: pd.DataFrame,
    api_columns: list[str],
    spend_columns: list[str],
) -> dict[str, Path]:
    """One body a line per customer: known, with features, and the MLflow dataframe_split."""
    paths = {name: folder / f"{name}.jsonl" for name in ("known", "features", "invocations")}
    with (
        paths["known"].open("w") as known,
        paths["features"].open("w") as scored,
        paths["invocations"].open("w") as invocations,
    ):
        for customer in customers:
            row = features.loc[customer]
            known.write(json.dumps({"customer_id": customer}) + "\n")
            given = {c: _plain(row[c]) for c in api_columns}
            scored.write(json.dumps({"customer_id": customer, "features": given}) + "\n")
            split = {"columns": spend_columns, "data": [[_plain(row[c]) for c in spend_columns]]}
            invocations.write(json.dumps({"dataframe_split": split}) + "\n")
    return paths


def _first_line(path: Path, number: int = 0) -> str:
    with path.open() as lines:
        for i, line in enumerate(lines):
            if i == number:
                return line.strip()
    raise ValueError(f"{path} has fewer than {number + 1} lines")


# --------------------------------------------------------------------------------------------------
# The run


def build_world(folder: Path, args: argparse.Namespace) -> tuple[dict[str, str], Path, Path]:
    """A champion in a throwaway registry, stored scores and an active segmentation."""
    home = folder / "home"
    (home / "mlflow").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLV_", "MLFLOW_"))}
    env.update(
        {
            # as in an activated venv: mlflow models serve runs `uvicorn` from PATH
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "CLV_HOME": str(home),
            "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow/mlflow.db",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "CLV_API_KEYS": API_KEY,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
    )
    data = folder / "data"
    steps = [
        ["generate", "--customers", str(args.customers), "--seed", str(args.seed), "--out",
         str(data)],
    ]  # fmt: skip
    tx = str(data / "transactions.parquet")
    scores = folder / "scores.parquet"
    steps += [
        ["train", "--transactions", tx, "--horizon-days", str(HORIZON_DAYS), "--trials", "1",
         "--families", "lightgbm", "--seed", str(args.seed)],
        *(["promote", "--model", model, "--latest", "--yes", "--force", "--reason", "benchmark"]
          for model in ("clv-spend", "clv-churn")),
        ["score", "--transactions", tx, "--horizon-days", str(HORIZON_DAYS), "--out", str(scores)],
        ["segment", "run", "--scores", str(scores)],
        ["segment", "approve", "1", "--yes", "--override-rules", "--reason", "benchmark"],
    ]  # fmt: skip
    for step in steps:
        started = time.perf_counter()
        _clv(env, *step)
        name = " ".join(step[: 4 if step[0] == "promote" else 2])
        print(f"  clv {name}: {time.perf_counter() - started:.1f} s", flush=True)
    return env, data, scores


def customer_rows(data: Path, scores: Path, limit: int) -> tuple[list[str], pd.DataFrame]:
    """The first ``limit`` scored customers and their features as the scoring run saw them."""
    from clv.data.io import read_table
    from clv.training.scoring import customer_features
    from clv.training.windows import end_of_day

    tx = read_table(str(data / "transactions.parquet"), "transactions")
    features = customer_features(
        tx, as_of=end_of_day(pd.Timestamp(tx["timestamp"].max())), horizon_days=HORIZON_DAYS
    )
    scored = pd.read_parquet(scores)["customer_id"].astype(str)
    known = [c for c in scored if c in features.index][:limit]
    return known, features


def spend_signature_columns(tracking_uri: str) -> list[str]:
    """The input columns of ``models:/clv-spend@champion``'s MLflow signature, in order."""
    import mlflow
    from mlflow.models import get_model_info
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    version = client.get_model_version_by_alias("clv-spend", "champion")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    info = get_model_info(f"models:/clv-spend/{version.version}")
    assert info.signature is not None, "the registered model has no signature"
    return list(info.signature.inputs.input_names())


def check_ours(base: str, paths: dict[str, Path]) -> None:
    """One request of each kind answers 200 with the expected source."""
    headers = {"X-API-Key": API_KEY}
    for name, source in (("known", "stored"), ("features", "scored")):
        status, body = _post(f"{base}/predict/clv", _first_line(paths[name]), headers)
        if status != 200 or body.get("source") != source:
            raise SystemExit(f"POST /predict/clv ({name}) answered {status}: {body}")


def record_ours(base: str, paths: dict[str, Path], rows: int = 5) -> list[float]:
    """Our on-the-fly ``predicted_clv`` of the first feature rows."""
    predicted = []
    for number in range(rows):
        status, body = _post(
            f"{base}/predict/clv", _first_line(paths["features"], number), {"X-API-Key": API_KEY}
        )
        if status != 200:
            raise SystemExit(f"POST /predict/clv (features) answered {status}: {body}")
        predicted.append(float(body["predicted_clv"]))
    return predicted


def check_mlflow(base: str, ours: list[float], paths: dict[str, Path]) -> float:
    """/invocations answers 200 on the same rows; the largest relative gap to our predictions."""
    worst = 0.0
    for number, mine in enumerate(ours):
        status, body = _post(f"{base}/invocations", _first_line(paths["invocations"], number))
        if status != 200:
            raise SystemExit(f"POST /invocations answered {status}: {body}")
        theirs = float(body["predictions"][0]["predicted_clv"])
        worst = max(worst, abs(theirs - mine) / max(abs(mine), 1e-9))
    return worst


def serve_ours(
    env: dict[str, str], folder: Path, workers: int, tag: str = ""
) -> tuple[Server, str]:
    """``clv serve`` on a free port, once ``/ready`` answers 200."""
    port = _free_port()
    command = [str(BIN / "clv"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = Server(
        f"clv serve --workers {workers}",
        [*command, "--workers", str(workers)],
        env,
        folder / f"clv-serve-{workers}{tag}.log",
    )
    base = f"http://127.0.0.1:{port}"
    server.wait_until(f"{base}/ready", {"X-API-Key": API_KEY})
    return server, base


def serve_mlflow(env: dict[str, str], folder: Path, tag: str = "") -> tuple[Server, str]:
    """``mlflow models serve`` of the spend champion on a free port, once ``/ping`` answers."""
    port = _free_port()
    command = [str(BIN / "mlflow"), "models", "serve", "-m", "models:/clv-spend@champion",
               "--env-manager", "local", "--host", "127.0.0.1", "-p", str(port)]  # fmt: skip
    server = Server("mlflow models serve", command, env, folder / f"mlflow-serve{tag}.log")
    base = f"http://127.0.0.1:{port}"
    server.wait_until(f"{base}/ping")
    return server, base


def measure_ours(
    server: Server, base: str, paths: dict[str, Path], args: argparse.Namespace, suffix: str = ""
) -> list[WrkResult]:
    return [
        run_wrk(f"{HEALTH}{suffix}", f"{base}/health", None, args, server),
        run_wrk(f"{KNOWN}{suffix}", f"{base}/predict/clv", paths["known"], args, server),
        run_wrk(f"{FEATURES}{suffix}", f"{base}/predict/clv", paths["features"], args, server),
    ]


def machine() -> dict[str, str]:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()[:10]
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    loadavg = Path("/proc/loadavg").read_text().split()[:3]
    return {
        "nproc": str(os.cpu_count()),
        "lscpu": "\n".join(lscpu),
        "python": platform.python_version(),
        "wrk": (wrk.stdout + wrk.stderr).splitlines()[0] if (wrk.stdout + wrk.stderr) else "",
        "load": " ".join(loadavg),
    }


def table(results: list[WrkResult]) -> str:
    lines = [
        "| endpoint | requests/s | p50 (ms) | p99 (ms) | server CPU (ms/request) | "
        "load at start | requests | errors |"
    ]
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        bad = r.errors + r.non_2xx
        lines.append(
            f"| {r.label} | {r.requests_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
            f"{r.server_cpu_ms_per_request:.2f} | {r.load_at_start:.1f} | "
            f"{r.requests:,} | {bad}{' **failed**' if r.failed else ''} |"
        )
    return "\n".join(lines)


def verdicts(by: dict[str, WrkResult]) -> list[str]:
    health, known, scored, mlflow = by[HEALTH], by[KNOWN], by[FEATURES], by[MLFLOW]
    share = known.requests_per_s / health.requests_per_s
    known_met = share >= GOAL_KNOWN_SHARE and known.p99_ms <= GOAL_KNOWN_P99_MS
    ratio = scored.requests_per_s / mlflow.requests_per_s
    # At a fixed connection count a server with the lower p99 would only gain throughput if
    # allowed the other's p99: with ours at or under MLflow's p99 the ratio is a lower bound.
    equal_or_better = scored.p99_ms <= mlflow.p99_ms
    mlflow_met = ratio >= GOAL_FEATURES_OVER_MLFLOW and equal_or_better
    # CPU per request does not depend on how much of the 2 cores other processes leave us.
    extra = [
        f"by server CPU per request: known costs {known.server_cpu_ms_per_request:.2f} ms, "
        f"/health {health.server_cpu_ms_per_request:.2f} ms (share "
        f"{health.server_cpu_ms_per_request / known.server_cpu_ms_per_request:.2f}); "
        f"features {scored.server_cpu_ms_per_request:.2f} ms, mlflow "
        f"{mlflow.server_cpu_ms_per_request:.2f} ms (capacity ratio "
        f"{mlflow.server_cpu_ms_per_request / scored.server_cpu_ms_per_request:.2f})"
    ]
    one = ", OMP_NUM_THREADS=1"
    if f"{FEATURES}{one}" in by and f"{MLFLOW}{one}" in by:
        ours, theirs = by[f"{FEATURES}{one}"], by[f"{MLFLOW}{one}"]
        extra.append(
            f"diagnostic, both with OMP_NUM_THREADS=1: features ÷ mlflow "
            f"{ours.requests_per_s / theirs.requests_per_s:.2f} (p99 {ours.p99_ms:.1f} ms vs "
            f"{theirs.p99_ms:.1f} ms)"
        )
    two = ", --workers 2"
    if f"{HEALTH}{two}" in by and f"{KNOWN}{two}" in by:
        share_two = by[f"{KNOWN}{two}"].requests_per_s / by[f"{HEALTH}{two}"].requests_per_s
        extra.append(f"--workers 2: known ÷ /health {share_two:.2f}")
    return [
        f"known ÷ /health: {share:.2f} (goal ≥ {GOAL_KNOWN_SHARE:.2f}), known p99 "
        f"{known.p99_ms:.1f} ms (goal ≤ {GOAL_KNOWN_P99_MS:.0f} ms): "
        f"{'met' if known_met else 'NOT met'}",
        f"features ÷ mlflow /invocations: {ratio:.2f} (goal ≥ {GOAL_FEATURES_OVER_MLFLOW:.1f} at "
        f"equal p99; p99 {scored.p99_ms:.1f} ms vs {mlflow.p99_ms:.1f} ms): "
        f"{'met' if mlflow_met else 'NOT met'}",
        *extra,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000, help="customers generated, and "
                        "bodies rotated over")  # fmt: skip
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-workers-2", action="store_true", help="skip clv serve --workers 2")
    parser.add_argument(
        "--no-one-thread", action="store_true", help="skip the OMP_NUM_THREADS=1 diagnostic rows"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    started_at = datetime.now(UTC)
    facts = machine()
    print(f"machine: nproc {facts['nproc']}, load {facts['load']}, {facts['wrk']}", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="clv-api-speed-"))
    results: list[WrkResult] = []
    try:
        print("building the champion with the CLI:", flush=True)
        env, data, scores = build_world(folder, args)
        customers, features = customer_rows(data, scores, args.customers)
        spend_columns = spend_signature_columns(env["MLFLOW_TRACKING_URI"])

        server, base = serve_ours(env, folder, workers=1)
        try:
            _, ready = _get(f"{base}/ready", {"X-API-Key": API_KEY})
            paths = write_bodies(folder, customers, features, ready["features"], spend_columns)
            check_ours(base, paths)
            ours = record_ours(base, paths)
            print(
                f"clv serve --workers 1 ({len(customers):,} customers, {len(ready['features'])} "
                f"features; spend signature {len(spend_columns)} columns):",
                flush=True,
            )
            results += measure_ours(server, base, paths, args)
        finally:
            server.stop()

        mlflow, mlflow_base = serve_mlflow(env, folder)
        try:
            gap = check_mlflow(mlflow_base, ours, paths)
            print(f"mlflow models serve (predicted_clv vs ours: largest relative gap {gap:.1e}):")
            results.append(
                run_wrk(MLFLOW, f"{mlflow_base}/invocations", paths["invocations"], args, mlflow)
            )
        finally:
            mlflow.stop()

        if not args.no_workers_2:
            server, base = serve_ours(env, folder, workers=2)
            try:
                check_ours(base, paths)
                print("clv serve --workers 2:", flush=True)
                results += measure_ours(server, base, paths, args, suffix=", --workers 2")
            finally:
                server.stop()

        if not args.no_one_thread:
            # Diagnostic, not what ships: OpenMP (LightGBM's predict) limited to one thread.
            one = {**env, "OMP_NUM_THREADS": "1"}
            suffix = ", OMP_NUM_THREADS=1"
            server, base = serve_ours(one, folder, workers=1, tag="omp1")
            try:
                check_ours(base, paths)
                print("clv serve --workers 1, OMP_NUM_THREADS=1 (diagnostic):", flush=True)
                results.append(
                    run_wrk(
                        f"{FEATURES}{suffix}",
                        f"{base}/predict/clv",
                        paths["features"],
                        args,
                        server,
                    )
                )
            finally:
                server.stop()
            mlflow, mlflow_base = serve_mlflow(one, folder, tag="omp1")
            try:
                check_mlflow(mlflow_base, ours, paths)
                print("mlflow models serve, OMP_NUM_THREADS=1 (diagnostic):", flush=True)
                url = f"{mlflow_base}/invocations"
                results.append(
                    run_wrk(f"{MLFLOW}{suffix}", url, paths["invocations"], args, mlflow)
                )
            finally:
                mlflow.stop()
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)

    by = {r.label: r for r in results}
    lines = verdicts(by)
    command = " ".join(["python", "benchmarks/api_speed.py", *sys.argv[1:]])
    print()
    print(f"date: {started_at:%Y-%m-%d %H:%M} UTC; command: {command}")
    print(f"wrk -t {args.threads} -c {args.connections} -d {args.duration}s --latency")
    print(facts["lscpu"])
    print()
    print(table(results))
    print()
    for line in lines:
        print(line)
    CACHE.mkdir(exist_ok=True)
    RESULTS_PATH.write_text(
        json.dumps(
            {
                "date": started_at.isoformat(),
                "command": command,
                "machine": facts,
                "load_after": Path("/proc/loadavg").read_text().split()[:3],
                "customers": len(customers),
                "spend_columns": len(spend_columns),
                "results": [asdict(r) for r in results],
                "verdicts": lines,
            },
            indent=2,
        )
    )
    if any(r.failed for r in results):
        raise SystemExit("a row had socket errors or non-2xx answers (see the table)")


if __name__ == "__main__":
    main()
