"""How fast one customer's segment history is read from the platform database.

Stores ``--versions`` activated segment versions of ``--customers`` customers each through
:class:`clv.store.Store` (what ``clv segment run`` + ``approve`` write), in SQLite (a temporary
file) and PostgreSQL (a throwaway database on 127.0.0.1:5432, dropped after), then times
:meth:`~clv.store.Store.segment_of` (the segment on a past date) and
:meth:`~clv.store.Store.history` (every activation) for 1,000 random customers. Target: ≤ 10 ms
per customer. The baseline is the same question answered by a pandas boolean filter over the
whole assignments table in memory (what a team without the database would do).

Usage::

    python benchmarks/segment_history.py [--customers 1000000] [--versions 12] [--backend both]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from clv.store import Store

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def _load(store: Store, customers: int, versions: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    ids = np.array([f"C{i:08d}" for i in range(customers)])
    names = [f"segment {k}" for k in range(8)]
    segments = pd.DataFrame(
        {
            "segment_id": [f"V{k + 1}" for k in range(8)],
            "name": names,
            "description": [""] * 8,
            "new": [False] * 8,
            "matched_from": [None] * 8,
            "profile": [{}] * 8,
        }
    )
    started = time.perf_counter()
    for v in range(versions):
        assignments = pd.DataFrame(
            {
                "customer_id": ids,
                "segment_id": rng.choice(segments["segment_id"].to_numpy(), customers),
                "predicted_clv": rng.gamma(2.0, 50.0, customers),
                "churn_probability": rng.uniform(0, 1, customers),
            }
        )
        info = store.create_version(
            method="kmeans",
            segments=segments,
            assignments=assignments,
            rules=[],
            config={},
            model=None,
            scores_as_of=None,
            source="benchmark",
            content_hash=f"bench-{v}",
        )
        store.approve(info.version, by="bench", reason="bench", at=T0 + dt.timedelta(days=30 * v))
    return time.perf_counter() - started


def _time(calls: Callable[[str], object], customers: list[str]) -> np.ndarray:
    out = []
    for c in customers:
        started = time.perf_counter()
        calls(c)
        out.append((time.perf_counter() - started) * 1000)
    return np.array(out)


def _row(backend: str, rows: int, load_s: float, query: str, ms: np.ndarray) -> str:
    return (
        f"| {backend} | {rows:,} | {load_s:.0f} | {query} | {np.median(ms):.2f} | "
        f"{np.percentile(ms, 95):.2f} | {ms.max():.2f} |"
    )


def _measure(backend: str, url: str, args: argparse.Namespace) -> list[str]:
    store = Store(url)
    load_s = _load(store, args.customers, args.versions, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    picked = [f"C{i:08d}" for i in rng.integers(0, args.customers, 1000)]
    on = T0 + dt.timedelta(days=30 * (args.versions // 2) + 3)
    rows = args.customers * args.versions
    lines = [
        _row(
            backend,
            rows,
            load_s,
            "segment_of(c, on=date)",
            _time(lambda c: store.segment_of(c, on=on), picked),
        ),
        _row(backend, rows, load_s, "history(c)", _time(store.history, picked)),
    ]
    if args.explain:
        import sqlalchemy as sa

        from clv.store import segment_of_query

        query = segment_of_query(picked[0], on)
        compiled = query.compile(store.engine, compile_kwargs={"literal_binds": True})
        with store.engine.connect() as conn:
            prefix = "EXPLAIN ANALYZE " if backend == "PostgreSQL" else "EXPLAIN QUERY PLAN "
            for row in conn.execute(sa.text(prefix + str(compiled))):
                print("    " + " ".join(map(str, row)))
    store.engine.dispose()
    return lines


def _baseline(args: argparse.Namespace) -> list[str]:
    """Every version's assignments in one pandas frame; a boolean filter per customer."""
    rng = np.random.default_rng(args.seed)
    ids = np.array([f"C{i:08d}" for i in range(args.customers)])
    frame = pd.DataFrame(
        {
            "customer_id": np.tile(ids, args.versions),
            "version": np.repeat(np.arange(1, args.versions + 1), args.customers),
            "segment_id": rng.choice([f"V{k}" for k in range(8)], args.customers * args.versions),
        }
    )
    picked = [
        f"C{i:08d}" for i in np.random.default_rng(args.seed + 1).integers(0, args.customers, 50)
    ]
    ms = _time(lambda c: frame[frame["customer_id"] == c], picked)
    return [_row("pandas, in memory (50 customers)", len(frame), 0, "boolean filter", ms)]


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--versions", type=int, default=12)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--explain", action="store_true", help="print the history query's plan")
    args = parser.parse_args()
    print(
        f"# segment_history — {dt.date.today()} — {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}\n"
    )
    print("| backend | assignment rows | load s | query | median ms | p95 ms | max ms |")
    print("|---|---:|---:|---|---:|---:|---:|")
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            for line in _measure("SQLite", f"sqlite:///{Path(tmp) / 'clv.db'}", args):
                print(line, flush=True)
    if args.backend in ("postgresql", "both"):
        import psycopg

        name = f"clv_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
            for line in _measure("PostgreSQL", url, args):
                print(line, flush=True)
        finally:
            with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    for line in _baseline(args):
        print(line)


if __name__ == "__main__":
    main()
