"""Benchmark: a campaign's planning, rendering, sending and analysis, each beside the naive way.

Goals (issue: campaigns): plan 1M customers in <= 60 s; send 100k emails at >= 500 messages/s
through the outbox; analyse a 1M-customer campaign in <= 10 s. In one run, on synthetic data
generated from ``--seed`` (not timed):

* **plan**: ``plan_campaign`` on ``--customers`` scores (gamma predicted CLV, uniform churn),
  customers (85% opted in, four regions), contacts (email, phone, first name; 20% opted out of
  email, so the SMS channel is used too) and a modest transactions table for the habits (Poisson(2)
  purchases per customer in the year before its start), with ``examples/campaign.yaml`` and a
  budget of ``--budget``. No baseline: planning has no naive twin worth writing.
* **render**: the contacted customers' messages with ``clv.campaigns.rendering.render_messages``
  (templates compiled once per variant and channel), against the per-row loop
  ``clv.cli_campaign._messages`` (``render_preview`` and a ``.loc`` per customer, which compiles
  the templates again for every message) timed on the first ``--naive-render`` contacted rows and
  **extrapolated** linearly to all of them. The two outputs are checked equal on that sample.
* **send**: ``send_campaign`` from a real ``Store`` (SQLite in a temporary folder, the campaign
  stored with ``create_campaign``, whose time is reported too) through the ``EmailProvider`` that
  ``providers_from_settings`` builds (what ``clv campaign send`` uses: each batch of 200 spread
  over ``CLV_SMTP_CONNECTIONS`` parallel SMTP sessions, 4 by default) to an aiosmtpd sink running
  in its own process, for ``--emails`` of the rendered email messages; the time inside the
  provider is measured apart, so the rest is the outbox (claims, one transaction per batch).
  Baseline: one ``smtplib.SMTP`` connection per message (connect, EHLO, MAIL, RCPT, DATA, QUIT),
  no database, on ``--naive-emails`` messages.
* **analyse**: ``analyze_campaign`` on a synthetic ``--customers`` plan (10% holdout, two
  variants, six segments, send times over two weeks) with Poisson purchases in the two weeks
  before and the four after each send (a +3% uplift in the treated arms). Baseline: a pandas
  ``groupby`` loop per customer for the attributed revenue and a per-variant Welch t-test with
  Python loops, on the first ``--naive-analysis`` customers, **extrapolated** linearly.

Wall times are ``time.perf_counter`` of one call. ``--quick`` runs small sizes (a smoke run).

Usage: python benchmarks/campaigns.py [--customers 1000000] [--emails 100000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import smtplib
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from email.message import EmailMessage
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
CACHE = BENCH_DIR / ".cache"
RESULTS_PATH = CACHE / "campaigns.json"
EXAMPLE = ROOT / "examples" / "campaign.yaml"
GOAL_PLAN_SECONDS = 60.0
GOAL_SEND_RATE = 500.0
GOAL_ANALYSIS_SECONDS = 10.0
SENDER = "CLV Shop <news@shop.example>"


# --------------------------------------------------------------------------------- the inputs


def _ids(n: int, prefix: str = "C") -> Any:
    """``C0000000``, ``C0000001``, ... as Python strings (object dtype), without a Python loop."""
    import numpy as np

    digits = (np.arange(n)[:, None] // 10 ** np.arange(6, -1, -1)) % 10 + ord("0")
    raw = np.column_stack([np.full(n, ord(prefix)), digits]).astype(np.uint8)
    return raw.view("S8").ravel().astype("U8").astype(object)


def _start() -> Any:
    """The example campaign's start, naive UTC: the purchases are generated around it."""
    import pandas as pd

    from clv.campaigns.definition import load_campaign

    return pd.Timestamp(load_campaign(EXAMPLE).start).tz_convert("UTC").tz_localize(None)


def planning_inputs(n: int, seed: int) -> dict[str, Any]:
    """Scores, customers, transactions and contacts for ``n`` customers, seeded."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    ids = _ids(n)
    per_customer = rng.poisson(2.0, n)
    owners = np.repeat(ids, per_customer)
    seconds_before = rng.integers(1, 365 * 24 * 3600, len(owners))
    categories = np.array(["garden", "kitchen", "books", "toys", "fashion", "beauty"], dtype=object)
    names = np.array(["Ann", "Bo", "Zoë", "Li", "Sam", "<Kim>"], dtype=object)
    plain = ids.astype("U8")
    return {
        "scores": pd.DataFrame(
            {
                "customer_id": ids,
                "predicted_clv": rng.gamma(1.5, 300.0, n),
                "churn_probability": rng.uniform(0.0, 1.0, n),
            }
        ),
        "customers": pd.DataFrame(
            {
                "customer_id": ids,
                "marketing_opt_in": rng.random(n) < 0.85,
                "region": rng.choice(np.array(["north", "south", "east", "west"], dtype=object), n),
                "eco_preference": rng.random(n),
            }
        ),
        "transactions": pd.DataFrame(
            {
                "customer_id": owners,
                "timestamp": _start() - pd.to_timedelta(seconds_before, unit="s"),
                "amount": rng.gamma(2.0, 20.0, len(owners)).round(2),
                "product_category": rng.choice(categories, len(owners)),
            }
        ),
        "contacts": pd.DataFrame(
            {
                "customer_id": ids,
                "email": np.char.add(np.char.lower(plain), "@example.org").astype(object),
                "phone": np.char.add("+44794", np.char.zfill(np.arange(n).astype("U7"), 7)).astype(
                    object
                ),
                "first_name": rng.choice(names, n),
                "opt_out_email": rng.random(n) < 0.2,
            }
        ),
    }


def analysis_inputs(n: int, seed: int) -> tuple[Any, Any]:
    """A planned campaign of ``n`` customers and their purchases around the send, seeded."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed + 1)
    ids = _ids(n)
    group = rng.choice(
        np.array(["holdout", "classic", "eco"], dtype=object), n, p=[0.1, 0.45, 0.45]
    )
    segments = np.array(
        ["champions", "loyal", "at_risk", "hibernating", "new", "promising"], dtype=object
    )
    channel = np.where(rng.random(n) < 0.9, "email", "sms").astype(object)
    cost = np.where(group == "holdout", 0.0, np.where(channel == "email", 0.002, 0.045))
    send_at = _start() + pd.to_timedelta(rng.integers(0, 14 * 24, n), unit="h")
    clv = rng.gamma(1.5, 300.0, n)
    plan = pd.DataFrame(
        {
            "customer_id": ids,
            "group": group,
            "segment": rng.choice(segments, n),
            "channel": channel,
            "send_at": send_at,
            "predicted_clv": clv,
            "expected_incremental_value": 0.006 * clv,
            "cost": cost,
        }
    )
    value = rng.lognormal(0.0, 0.5, n)  # a customer's own rate: before and after the send alike
    lift = np.where(group == "holdout", 1.0, 1.03)
    before = rng.poisson(0.6 * value)
    after = rng.poisson(1.2 * value * lift)
    owner = np.concatenate([np.repeat(np.arange(n), before), np.repeat(np.arange(n), after)])
    offset_hours = np.concatenate(
        [-rng.uniform(0, 14 * 24, before.sum()), rng.uniform(0, 28 * 24, after.sum())]
    )
    tx = pd.DataFrame(
        {
            "customer_id": ids[owner],
            "timestamp": send_at[owner] + pd.to_timedelta(offset_hours, unit="h"),
            "amount": rng.gamma(2.0, 25.0, len(owner)).round(2),
            "is_eco_product": rng.random(len(owner)) < 0.2,
        }
    )
    return plan, tx


# --------------------------------------------------------------------------------- the SMTP sink


def _sink() -> None:
    """A counting SMTP sink on a free port; prints the port, then the count once stdin closes."""
    from aiosmtpd.controller import Controller

    class Counter:
        count = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd hook)
            self.count += 1
            return "250 OK"

    class EphemeralPortController(Controller):
        # The stock controller pings ``self.port`` to see the server is up: read port 0's back.
        def _trigger_server(self) -> None:
            assert isinstance(self.server, asyncio.Server)
            self.port = int(self.server.sockets[0].getsockname()[1])
            super()._trigger_server()

    handler = Counter()
    controller = EphemeralPortController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    print(controller.port, flush=True)
    sys.stdin.read()
    controller.stop()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(handler.count, usage.ru_utime + usage.ru_stime, flush=True)


class _Sink:
    """The sink's process: ``port`` while it runs, ``stop()`` gives the messages it accepted."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, __file__, "--sink"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        self.port = int(self._process.stdout.readline())

    def stop(self) -> tuple[int, float]:
        """Messages accepted, and the CPU seconds the sink's process used."""
        out, _ = self._process.communicate(timeout=60)
        count, cpu = out.strip().splitlines()[-1].split()
        return int(count), float(cpu)


class _TimedProvider:
    """An ``EmailProvider`` whose ``send_batch`` time is summed (the rest is the outbox's)."""

    def __init__(self, provider: Any) -> None:
        self._provider = provider
        self.seconds = 0.0

    @property
    def name(self) -> str:
        return str(self._provider.name)

    def send_batch(self, messages: Sequence[Any]) -> list[Any]:
        start = time.perf_counter()
        try:
            return list(self._provider.send_batch(messages))
        finally:
            self.seconds += time.perf_counter() - start

    def close(self) -> None:
        self._provider.close()

    def __enter__(self) -> _TimedProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------- the baselines


def naive_send(port: int, messages: Any) -> int:
    """One SMTP connection per message, as a loop over ``smtplib.SMTP`` writes it."""
    sent = 0
    for row in messages.itertuples(index=False):
        msg = EmailMessage()
        msg["From"] = SENDER
        msg["To"] = row.recipient
        msg["Subject"] = row.subject
        msg.set_content(row.body)
        with smtplib.SMTP("127.0.0.1", port, local_hostname="bench.local") as smtp:
            smtp.send_message(msg)
        sent += 1
    return sent


def naive_analysis(
    plan: Any, tx: Any, window_days: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Attributed revenue by a groupby loop per customer; Welch's t per variant by Python loops.

    Returns the revenue per customer (checked against ours) and Welch's t per variant.
    """
    import math

    import pandas as pd

    window = pd.Timedelta(days=window_days)
    send = dict(zip(plan["customer_id"], plan["send_at"], strict=True))
    revenue = dict.fromkeys(plan["customer_id"], 0.0)
    for customer, purchases in tx.groupby("customer_id"):
        at = send[customer]
        inside = (purchases["timestamp"] >= at) & (purchases["timestamp"] < at + window)
        revenue[customer] = float(purchases.loc[inside, "amount"].sum())
    arms: dict[str, list[float]] = {}
    for customer, group in zip(plan["customer_id"], plan["group"], strict=True):
        arms.setdefault(str(group), []).append(revenue[customer])

    def moments(values: list[float]) -> tuple[int, float, float]:
        n = len(values)
        mean = sum(values) / n
        return n, mean, sum((v - mean) ** 2 for v in values) / (n - 1)

    nc, mc, vc = moments(arms["holdout"])
    out = {}
    for name, values in arms.items():
        if name == "holdout":
            continue
        nt, mt, vt = moments(values)
        out[name] = (mt - mc) / math.sqrt(vt / nt + vc / nc)
    return revenue, out


# --------------------------------------------------------------------------------- the run


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    meminfo = Path("/proc/meminfo").read_text()
    total = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.MULTILINE)
    return {
        "cpu": model.group(1).strip() if model else platform.machine(),
        "cores": os.cpu_count(),
        "ram_gib": int(total.group(1)) / 1024**2 if total else None,
        "python": platform.python_version(),
    }


def _commit() -> str:
    sys.path.insert(0, str(BENCH_DIR))
    from _data import git_revision

    return git_revision()


def _step(label: str) -> None:
    print(f"  {label} ...", file=sys.stderr, flush=True)


def run_plan_and_render(args: argparse.Namespace) -> dict[str, Any]:
    import pandas as pd

    from clv.campaigns.definition import HOLDOUT, load_campaign
    from clv.campaigns.planning import plan_campaign
    from clv.campaigns.rendering import render_messages
    from clv.cli_campaign import _messages

    data = planning_inputs(args.customers, args.seed)
    definition = load_campaign(EXAMPLE).model_copy(update={"budget": float(args.budget)})
    _step(f"plan {args.customers:,} customers")
    start = time.perf_counter()
    plan = plan_campaign(
        definition,
        scores=data["scores"],
        customers=data["customers"],
        transactions=data["transactions"],
        contacts=data["contacts"],
    )
    plan_seconds = time.perf_counter() - start
    contacted = plan.rows[plan.rows["group"] != HOLDOUT]
    _step(f"render {len(contacted):,} messages")
    start = time.perf_counter()
    messages = render_messages(definition, plan.rows, plan.fields, data["contacts"])
    render_seconds = time.perf_counter() - start
    sample = contacted.head(args.naive_render)
    _step(f"render {len(sample):,} messages the per-row way")
    start = time.perf_counter()
    slow = _messages(definition, sample, plan.fields, data["contacts"])
    naive_seconds = time.perf_counter() - start
    pd.testing.assert_frame_equal(messages.head(len(sample)), slow)
    return {
        "plan": plan,
        "messages": messages,
        "transactions": len(data["transactions"]),
        "summary": plan.summary,
        "plan_seconds": plan_seconds,
        "render_seconds": render_seconds,
        "render_count": len(messages),
        "naive_render_count": len(sample),
        "naive_render_seconds": naive_seconds,
    }


def run_send(args: argparse.Namespace, plan: Any, messages: Any) -> dict[str, Any]:
    from clv.campaigns.channels import providers_from_settings
    from clv.campaigns.definition import HOLDOUT
    from clv.campaigns.sending import send_campaign
    from clv.settings import Settings
    from clv.store import Store

    emails = messages[messages["channel"] == "email"].head(args.emails).reset_index(drop=True)
    chosen = set(emails["customer_id"])
    rows = plan.rows
    keep = rows["customer_id"].isin(chosen) | (rows["group"] == HOLDOUT)
    stored_plan = rows[keep].rename(columns={"group": "group_name"})
    naive_part = emails.head(args.naive_emails)
    with tempfile.TemporaryDirectory(prefix="clv-bench-") as folder:
        store = Store(f"sqlite:///{Path(folder) / 'clv.db'}")
        store.migrate()
        _step(f"store a campaign of {len(emails):,} emails")
        start = time.perf_counter()
        info = store.create_campaign(
            "bench-send",
            "bench",
            "b" * 64,
            {"name": "bench"},
            stored_plan,
            budget=float(args.budget),
            holdout_share=0.1,
            segment_version=None,
            scores_as_of=None,
            summary={},
            messages=emails,
        )
        create_seconds = time.perf_counter() - start
        sink = _Sink()
        try:
            # What ships: the provider `clv campaign send` builds from the settings (their
            # default number of parallel SMTP sessions, CLV_SMTP_CONNECTIONS).
            settings = Settings(smtp_host="127.0.0.1", smtp_port=sink.port, smtp_from=SENDER)
            [email_provider] = providers_from_settings(settings, channels=["email"]).values()
            provider = _TimedProvider(email_provider)
            _step(f"send {len(emails):,} emails through the outbox")
            start = time.perf_counter()
            with provider:
                report = send_campaign(
                    store, info.campaign_id, {"email": provider}, channel_kinds={"email": "email"}
                )
            send_seconds = time.perf_counter() - start
            _step(f"send {len(naive_part):,} emails, one connection each")
            start = time.perf_counter()
            naive_sent = naive_send(sink.port, naive_part)
            naive_seconds = time.perf_counter() - start
        finally:
            received, sink_cpu = sink.stop()
        store.close()
    return {
        "emails": len(emails),
        "create_seconds": create_seconds,
        "sent": report.sent,
        "failed": report.failed,
        "deferred": report.deferred,
        "send_seconds": send_seconds,
        "provider_seconds": provider.seconds,
        "connections": email_provider.connections,
        "naive_sent": naive_sent,
        "naive_seconds": naive_seconds,
        "sink_received": received,
        "sink_cpu_seconds": sink_cpu,
    }


def run_analysis(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from clv.campaigns.definition import load_campaign
    from clv.campaigns.measurement import analyze_campaign, attributed_metrics

    definition = load_campaign(EXAMPLE)
    plan, tx = analysis_inputs(args.customers, args.seed)
    _step(f"analyse a campaign of {len(plan):,} customers, {len(tx):,} purchases")
    start = time.perf_counter()
    result = analyze_campaign("bench-analysis", definition, plan, tx)
    seconds = time.perf_counter() - start
    sample = plan.head(args.naive_analysis)
    sample_tx = tx[tx["customer_id"].isin(set(sample["customer_id"]))]
    _step(f"analyse {len(sample):,} customers with a loop per customer")
    start = time.perf_counter()
    revenue, naive = naive_analysis(sample, sample_tx, definition.attribution_window_days)
    naive_seconds = time.perf_counter() - start
    ours = attributed_metrics(sample, sample_tx, window_days=definition.attribution_window_days)
    theirs = np.array([revenue[c] for c in ours["customer_id"]])
    if not np.allclose(ours["revenue"].to_numpy(), theirs, rtol=1e-9, atol=1e-9):
        raise SystemExit("the naive attributed revenue differs from attributed_metrics'")
    return {
        "customers": len(plan),
        "purchases": len(tx),
        "seconds": seconds,
        "incremental_revenue": result.incremental_revenue,
        "winner": result.winner,
        "naive_customers": len(sample),
        "naive_seconds": naive_seconds,
        "naive_welch_t": naive,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--emails", type=int, default=100_000)
    parser.add_argument("--budget", type=float, default=1000.0, help="the campaign's budget, EUR")
    parser.add_argument("--naive-render", type=int, default=20_000)
    parser.add_argument("--naive-emails", type=int, default=2_000)
    parser.add_argument("--naive-analysis", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        _sink()
        return
    if args.quick:
        args.customers, args.emails, args.budget = 20_000, 2_000, 50.0
        args.naive_render, args.naive_emails, args.naive_analysis = 500, 200, 2_000

    import numpy as np
    import pandas as pd

    machine = _machine()
    load_start = os.getloadavg()
    print(
        f"# campaigns — {date.today()} — {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['ram_gib']:.0f} GiB RAM, commit {_commit()}\n"
        f"# Python {machine['python']}, numpy {np.__version__}, pandas {pd.__version__}; "
        f"seed {args.seed}; load average (1, 5, 15 min) at the start: "
        + ", ".join(f"{v:.2f}" for v in load_start),
        flush=True,
    )
    planned = run_plan_and_render(args)
    sent = run_send(args, planned.pop("plan"), planned.pop("messages"))
    analysed = run_analysis(args)

    def rate(count: float, seconds: float) -> str:
        return f"{count / seconds:,.0f}/s" if seconds > 0 else "–"

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    render_naive_all = planned["naive_render_seconds"] * (
        planned["render_count"] / max(planned["naive_render_count"], 1)
    )
    analysis_naive_all = analysed["naive_seconds"] * (
        analysed["customers"] / max(analysed["naive_customers"], 1)
    )
    send_rate = sent["sent"] / sent["send_seconds"]
    naive_rate = sent["naive_sent"] / sent["naive_seconds"]
    summary = planned["summary"]
    print()
    print("| step | size | ours (s) | ours rate | naive way | naive (s) | × naive | goal |")
    print("|---|---:|---:|---:|---|---:|---:|---|")
    print(
        f"| plan (`plan_campaign`) | {args.customers:,} customers, "
        f"{planned['transactions']:,} purchases | {planned['plan_seconds']:.1f} | "
        f"{rate(args.customers, planned['plan_seconds'])} | – | – | – | ≤ 60 s "
        f"{verdict(planned['plan_seconds'] <= GOAL_PLAN_SECONDS)} |"
    )
    print(
        f"| render (`render_messages`) | {planned['render_count']:,} messages | "
        f"{planned['render_seconds']:.1f} | "
        f"{rate(planned['render_count'], planned['render_seconds'])} | "
        f"`_messages` per row, {planned['naive_render_count']:,} timed "
        f"({planned['naive_render_seconds']:.1f} s), extrapolated | {render_naive_all:,.0f} | "
        f"{render_naive_all / planned['render_seconds']:,.0f} | – |"
    )
    print(
        f"| store the outbox (`create_campaign`) | {sent['emails']:,} messages | "
        f"{sent['create_seconds']:.1f} | {rate(sent['emails'], sent['create_seconds'])} | – | – "
        "| – | – |"
    )
    print(
        f"| send (`send_campaign`, SMTP sink, {sent['connections']} sessions) | "
        f"{sent['sent']:,} emails | "
        f"{sent['send_seconds']:.1f} | {send_rate:,.0f}/s | one `smtplib.SMTP` per message, "
        f"{sent['naive_sent']:,} timed, no database | {sent['naive_seconds']:.1f} | "
        f"{send_rate / naive_rate:.1f} (rate) | ≥ 500/s {verdict(send_rate >= GOAL_SEND_RATE)} |"
    )
    print(
        f"| analyse (`analyze_campaign`) | {analysed['customers']:,} customers, "
        f"{analysed['purchases']:,} purchases | {analysed['seconds']:.1f} | "
        f"{rate(analysed['customers'], analysed['seconds'])} | groupby loop per customer + "
        f"Welch by loops, {analysed['naive_customers']:,} timed "
        f"({analysed['naive_seconds']:.1f} s), extrapolated | {analysis_naive_all:,.0f} | "
        f"{analysis_naive_all / analysed['seconds']:,.0f} | ≤ 10 s "
        f"{verdict(analysed['seconds'] <= GOAL_ANALYSIS_SECONDS)} |"
    )
    print()
    outbox_seconds = sent["send_seconds"] - sent["provider_seconds"]
    print(
        f"# plan: audience {summary['audience']:,}, eligible {summary['eligible']:,}, chosen "
        f"{summary['chosen']:,} (groups {summary['groups']}), channels {summary['channels']}, "
        f"cost {summary['total_cost']:,.2f} of {summary['budget']:,.2f}"
    )
    print(
        f"# send: {sent['provider_seconds']:.1f} s in the provider (SMTP: "
        f"{rate(sent['sent'], sent['provider_seconds'])}), {outbox_seconds:.1f} s in the outbox "
        f"(claims and one transaction per batch: {rate(sent['sent'], outbox_seconds)}); "
        f"failed {sent['failed']}, deferred {sent['deferred']}; the sink received "
        f"{sent['sink_received']:,} (ours + naive) and used {sent['sink_cpu_seconds']:.1f} s of "
        f"CPU ({1000 * sent['sink_cpu_seconds'] / max(sent['sink_received'], 1):.2f} ms a message)"
    )
    inc = analysed["incremental_revenue"]
    print(
        f"# analysis: incremental revenue {inc['estimate']:,.0f} (95% CI {inc['ci_low']:,.0f} to "
        f"{inc['ci_high']:,.0f}), winner {analysed['winner']!r}; naive Welch t on the sample "
        + ", ".join(f"{k} {v:.2f}" for k, v in analysed["naive_welch_t"].items())
    )
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"# peak RSS {_peak_gb():.1f} GB; load average (1, 5, 15 min) at the end: {load}; "
        f"raw results: {RESULTS_PATH}"
    )
    CACHE.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(
        json.dumps(
            {
                "date": str(date.today()),
                "machine": machine,
                "commit": _commit(),
                "args": vars(args),
                "load_average": {"start": load_start, "end": os.getloadavg()},
                "plan_and_render": planned,
                "send": sent,
                "analysis": analysed,
            },
            indent=2,
            default=str,
        )
    )
    if sent["sink_received"] != sent["sent"] + sent["naive_sent"]:
        print("the sink did not receive every message sent", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
