"""The last step of ``make demo``: start the API on the demo's champion and ask it something.

Starts ``clv serve`` in the background (its own session, so it outlives ``make``) with a demo
API key, waits until ``/ready`` says the champion is loaded, prints one stored prediction and one
scored on the fly, and says how to call and stop it. The process id goes to
``<home>/demo/api.pid``; a server this script started earlier is stopped first.

Usage: ``python examples/demo_api.py --home .clv [--port 8000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

KEY = "demo-key"


def _free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _call(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"X-API-Key": KEY, "Content-Type": "application/json"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _stop_previous(pid_file: Path) -> None:
    if not pid_file.exists():
        return
    try:
        os.killpg(int(pid_file.read_text()), signal.SIGTERM)
        time.sleep(1)
    except (ProcessLookupError, ValueError, PermissionError):
        pass
    pid_file.unlink(missing_ok=True)


def main() -> None:
    """Start the API, show two predictions and where to look."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path(".clv"))
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    demo = args.home / "demo"
    pid_file = demo / "api.pid"
    _stop_previous(pid_file)
    port = args.port
    while not _free(port):
        port += 1
    log = (demo / "api.log").open("ab")
    env = {**os.environ, "CLV_HOME": str(args.home), "CLV_API_KEYS": KEY, "NO_PROXY": "127.0.0.1"}
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("clv")), "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pid_file.write_text(str(server.pid))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    status, ready = 0, {}
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"demo API: clv serve exited; see {demo / 'api.log'}")
        try:
            status, ready = _call(f"{base}/ready")
        except OSError:
            status = 0
        if status == 200:
            break
        time.sleep(1)
    if status != 200:
        raise SystemExit(f"demo API: not ready after 3 minutes ({ready}); see {demo / 'api.log'}")
    import pandas as pd

    scores = pd.read_parquet(demo / "scores.parquet")
    customer = str(scores.sort_values("predicted_clv").iloc[len(scores) // 2]["customer_id"])
    _, stored = _call(f"{base}/predict/clv", {"customer_id": customer})
    body = json.dumps({"customer_id": customer})
    print(f"$ curl -H 'X-API-Key: {KEY}' -d '{body}' {base}/predict/clv")
    print(json.dumps(stored, indent=2))
    _, segments = _call(f"{base}/segments/active")
    names = ", ".join(f"{s['name']} ({s['size']:,})" for s in segments.get("segments", []))
    print(f"segments of version {segments.get('version')}: {names}")
    print()
    print(f"API:         {base}  (key: {KEY}; model v{ready['model_version']})")
    print(f"             log: {demo / 'api.log'}")
    print(f"             stop it with: kill -TERM -$(cat {pid_file})")


if __name__ == "__main__":
    main()
