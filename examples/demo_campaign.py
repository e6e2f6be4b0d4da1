"""The campaign step of ``make demo``: plan, send to local sinks, simulate, analyse, report.

Runs the ``clv campaign`` commands a team would run, against local stand-ins for the outside
systems: a real SMTP server (aiosmtpd) that keeps every email as an ``.eml`` file, and an HTTP
server that takes the SMS webhook's requests and keeps them as JSON lines. The demo customers
have no addresses, so a contacts file is made up for them (``<customer>@demo.example``). The
response to the campaign is simulated from the generator's latent truth with the uplift in
``examples/campaign_uplift.yaml`` (the eco variant works best on eco-conscious customers), so the
analysis can be compared with the true incremental revenue.

Usage: ``python examples/demo_campaign.py --home .clv`` (after the rest of ``make demo``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
from aiosmtpd.controller import Controller

HERE = Path(__file__).resolve().parent
CLV = str(Path(sys.executable).with_name("clv"))
FIRST_NAMES = ("Ada", "Ben", "Chloé", "Dev", "Emma", "Farid", "Greta", "Hugo", "Ines", "Jonas")


class _Mailbox:
    """aiosmtpd handler: every message becomes ``<folder>/<n>.eml``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self._lock:
            self.count += 1
            number = self.count
        (self.folder / f"{number:06d}.eml").write_bytes(envelope.original_content)
        return "250 OK"


class _Controller(Controller):
    """aiosmtpd's controller on a port the OS picks."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = int(self.server.sockets[0].getsockname()[1])
        super()._trigger_server()


def _webhook_sink(path: Path) -> ThreadingHTTPServer:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock, path.open("ab") as out:
                out.write(body.strip() + b"\n")
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _contacts(customers: Path, out: Path) -> None:
    people = pd.read_parquet(customers, columns=["customer_id"])
    ids = people["customer_id"].astype(str)
    numbers = ids.str.extract(r"(\d+)$")[0].fillna("0").astype(int)
    pd.DataFrame(
        {
            "customer_id": ids,
            "email": ids.str.lower() + "@demo.example",
            "phone": "+4915" + numbers.map(lambda n: f"{n:08d}"),
            "first_name": [FIRST_NAMES[n % len(FIRST_NAMES)] for n in numbers],
        }
    ).to_csv(out, index=False)


def _clv(*args: str, env: dict[str, str], capture: bool = False) -> str:
    print(f"$ clv {' '.join(args)}", flush=True)
    done = subprocess.run([CLV, *args], env=env, text=True, capture_output=capture, check=False)
    if done.returncode != 0:
        if capture:
            sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"demo campaign: `clv {args[0]} {args[1]}` failed ({done.returncode})")
    return done.stdout if capture else ""


def main() -> None:
    """Run the demo campaign and print where to look."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path(".clv"), help="The demo's CLV_HOME.")
    parser.add_argument("--campaign", type=Path, default=HERE / "campaign.yaml")
    parser.add_argument("--uplift-file", type=Path, default=HERE / "campaign_uplift.yaml")
    args = parser.parse_args()
    demo = args.home / "demo"
    work = demo / "campaign"
    mail = work / "mail"
    mail.mkdir(parents=True, exist_ok=True)
    for old in mail.glob("*.eml"):
        old.unlink()
    sms_log = work / "sms.jsonl"
    sms_log.unlink(missing_ok=True)
    contacts = work / "contacts.csv"
    _contacts(demo / "data" / "customers.parquet", contacts)

    mailbox = _Mailbox(mail)
    smtp = _Controller(mailbox, hostname="127.0.0.1", port=0)
    smtp.start()
    webhook = _webhook_sink(sms_log)
    env = {
        **os.environ,
        "CLV_HOME": str(args.home),
        "CLV_SMTP_HOST": "127.0.0.1",
        "CLV_SMTP_PORT": str(smtp.port),
        "CLV_SMTP_FROM": "shop@demo.example",
        "CLV_SMS_WEBHOOK_URL": f"http://127.0.0.1:{webhook.server_address[1]}/sms",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    try:
        plan_dir = work / "plan"
        output = _clv(
            "campaign", "plan", str(args.campaign),
            "--transactions", str(demo / "data" / "transactions.parquet"),
            "--customers", str(demo / "data" / "customers.parquet"),
            "--scores", str(demo / "scores.parquet"),
            "--contacts", str(contacts),
            "--out", str(plan_dir),
            env=env, capture=True,
        )  # fmt: skip
        print(output, end="")
        campaign_id = json.loads((plan_dir / "summary.json").read_text())["campaign_id"]
        _clv("campaign", "send", str(plan_dir), env=env)
        response = work / "response"
        _clv(
            "campaign", "simulate", str(plan_dir), "--data", str(demo / "data"),
            "--out", str(response), "--uplift-file", str(args.uplift_file), "--seed", "1",
            env=env,
        )  # fmt: skip
        report = work / "report"
        _clv(
            "campaign", "analyze", campaign_id,
            "--transactions", str(response / "transactions.parquet"), "--report", str(report),
            env=env,
        )  # fmt: skip
        analyze_json = (
            "campaign", "analyze", campaign_id,
            "--transactions", str(response / "transactions.parquet"), "--json",
        )  # fmt: skip
        measured = json.loads(_clv(*analyze_json, env=env, capture=True))
    finally:
        smtp.stop()
        webhook.shutdown()
    truth = json.loads((response / "truth.json").read_text())
    inc, roi = measured["incremental_revenue"], measured["roi"]
    sms = len(sms_log.read_text().splitlines()) if sms_log.exists() else 0
    print()
    print(f"Campaign:    {campaign_id}: {mailbox.count:,} emails in {mail}")
    print(f"             {sms:,} SMS in {sms_log}")
    print(
        f"Measured:    incremental revenue {inc['estimate']:,.0f} "
        f"(95% CI {inc['ci_low']:,.0f} to {inc['ci_high']:,.0f}); "
        f"true (simulated) {truth['incremental_revenue']:,.0f}"
    )
    if roi["estimate"] is not None:
        print(
            f"ROI:         {roi['estimate']:+.0%} "
            f"(95% CI {roi['ci_low']:+.0%} to {roi['ci_high']:+.0%}); "
            f"winner: {measured['winner'] or 'none'}"
        )
    print(f"Report:      {report / 'report.html'}")


if __name__ == "__main__":
    main()
