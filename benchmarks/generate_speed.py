"""Benchmark: synthetic data generation speed and peak memory.

Goal (issue: foundation): 1M customers (~10M transactions) in <= 30 s and <= 4 GB on 2 cores.
Baseline measured in the same run: the plain way, a per-customer Python loop simulating the same
BG/NBD + Gamma-Gamma process (as lifetimes' ``beta_geometric_nbd_model`` generator does), run on
fewer customers and scaled linearly (it is linear in customers).

Each measurement runs in a fresh subprocess so that peak RSS belongs to that measurement alone.

Usage: python benchmarks/generate_speed.py [--sizes 100000,1000000] [--baseline 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date


def _measure_platform(n: int, out: str) -> dict[str, float]:
    from clv.data.generator import GeneratorConfig, generate, write_synthetic

    t0 = time.perf_counter()
    data = generate(GeneratorConfig(n_customers=n), seed=1)
    t1 = time.perf_counter()
    write_synthetic(data, out, fmt="parquet")
    t2 = time.perf_counter()
    return {
        "customers": n,
        "transactions": data.transactions.num_rows + data.future_transactions.num_rows,
        "generate_s": t1 - t0,
        "write_parquet_s": t2 - t1,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }


def _measure_baseline(n: int) -> dict[str, float]:
    """Per-customer loop: the way lifetimes' generator and most tutorials simulate BTYD data."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(1)
    horizon = float((date(2025, 12, 31) - date(2023, 1, 1)).days + 91)
    rows: list[tuple[int, float, float]] = []
    t0 = time.perf_counter()
    for cid in range(n):
        lam = rng.gamma(0.9, 1 / 30.0)
        p = rng.beta(0.9, 8.0)
        nu = rng.gamma(3.5, 1 / 30.0)
        t = rng.uniform(0, horizon - 91)
        rows.append((cid, t, rng.gamma(4.0, 1 / nu)))
        while True:
            t += rng.exponential(1 / lam)
            if t >= horizon:
                break
            rows.append((cid, t, rng.gamma(4.0, 1 / nu)))
            if rng.random() < p:
                break
    frame = pd.DataFrame(rows, columns=["customer_id", "t", "amount"])
    elapsed = time.perf_counter() - t0
    return {
        "customers": n,
        "transactions": len(frame),
        "generate_s": elapsed,
        "write_parquet_s": float("nan"),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }


def _run_child(kind: str, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="clv-bench-") as tmp:
        cmd = [sys.executable, __file__, "--child", kind, "--n", str(n), "--out", tmp]
        result = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--baseline", type=int, default=20_000)
    parser.add_argument("--child", choices=["platform", "baseline"])
    parser.add_argument("--n", type=int)
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child == "platform":
        print(json.dumps(_measure_platform(args.n, args.out)))
        return
    if args.child == "baseline":
        print(json.dumps(_measure_baseline(args.n)))
        return

    print(
        f"# generate_speed — {date.today()} — {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        "| method | customers | transactions | generate (s) | write Parquet (s) | "
        "peak RSS (GB) | s per 1M customers |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    rows = [
        ("clv.data.generator (vectorised)", _run_child("platform", int(s)))
        for s in args.sizes.split(",")
    ]
    rows.append(("per-customer loop (baseline)", _run_child("baseline", args.baseline)))
    for name, r in rows:
        per_million = r["generate_s"] / r["customers"] * 1e6
        print(
            f"| {name} | {r['customers']:,} | {r['transactions']:,} | {r['generate_s']:.2f} | "
            f"{r['write_parquet_s']:.2f} | {r['peak_rss_gb']:.2f} | {per_million:.1f} |"
        )


if __name__ == "__main__":
    main()
