"""Benchmark: point-in-time feature building speed and peak memory.

Goal (issue: modelling core): 10M transactions / 1M customers in <= 30 s and <= 4 GB on 2 cores.
Baseline in the same run: the plain pandas way of computing the RFM summary (what
``lifetimes.utils.summary_data_from_transaction_data(freq="D")`` does: a pandas group-by on
customer and day, then per-customer aggregates). We compare RFM to RFM, and also report the full
feature set (RFM + behaviour + sustainability, without the BTYD fit, which is timed separately).

Each measurement runs in a fresh process (peak RSS is its own) that reads the input from Parquet
(pandas for the baseline, Polars for ours). Input generation happens once, in its own process.

Usage: python benchmarks/features_speed.py [--customers 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"

CUTOFF = "2025-09-30 23:59:59"


def _input_path(n: int) -> str:
    return str(CACHE / f"transactions-{n}.parquet")


def _prepare(n: int) -> None:
    """Generate the input once, in its own process, so it does not inflate the measured RSS."""
    from clv.data.generator import GeneratorConfig, generate, write_synthetic

    if not Path(_input_path(n)).exists():
        data = generate(GeneratorConfig(n_customers=n), seed=1)
        data.tables = ("transactions",)
        write_synthetic(data, CACHE / f"gen-{n}")
        (CACHE / f"gen-{n}" / "transactions.parquet").replace(_input_path(n))


def _load(n: int, engine: str):  # type: ignore[no-untyped-def]
    if engine == "polars":
        import polars as pl

        return pl.read_parquet(_input_path(n))
    import pandas as pd

    return pd.read_parquet(_input_path(n))


def _pandas_rfm(tx):  # type: ignore[no-untyped-def]
    import pandas as pd

    cutoff = pd.Timestamp(CUTOFF)
    hist = tx[(tx["timestamp"] <= cutoff) & (tx["amount"] > 0)]
    days = hist.assign(day=hist["timestamp"].dt.normalize())
    days = days.groupby(["customer_id", "day"], sort=False)["amount"].sum().reset_index()
    grouped = days.groupby("customer_id")
    first, last = grouped["day"].transform("min"), grouped["day"].max()
    out = pd.DataFrame(
        {
            "frequency": grouped.size() - 1,
            "recency": (last - grouped["day"].min()).dt.days,
            "T": (cutoff.normalize() - grouped["day"].min()).dt.days,
            "monetary_value": days[days["day"] > first].groupby("customer_id")["amount"].mean(),
        }
    )
    return out.fillna({"monetary_value": 0.0})


def _child(method: str, n: int) -> dict[str, float]:
    import pandas as pd

    from clv.features import build_features
    from clv.features.btyd import fit_btyd
    from clv.features.rfm import rfm_features

    tx = _load(n, "polars" if method.startswith("clv") else "pandas")
    rss_input = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    t0 = time.perf_counter()
    if method == "pandas_rfm":
        out = _pandas_rfm(tx)
    elif method == "clv_rfm":
        out = rfm_features(tx, cutoff=pd.Timestamp(CUTOFF))
    elif method == "clv_all":
        out = build_features(tx, cutoff=pd.Timestamp(CUTOFF), horizon_days=90, include_btyd=False)
    elif method == "clv_btyd_fit":
        from clv.features.btyd import fit_btyd

        rfm = rfm_features(tx, cutoff=pd.Timestamp(CUTOFF))
        t0 = time.perf_counter()
        fit_btyd(rfm)
        out = rfm
    else:
        raise ValueError(method)
    elapsed = time.perf_counter() - t0
    return {
        "transactions": tx.shape[0],
        "customers": len(out),
        "columns": out.shape[1],
        "seconds": elapsed,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "input_rss_gb": rss_input,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child == "prepare":
        _prepare(args.customers)
        return
    if args.child:
        print(json.dumps(_child(args.child, args.customers)))
        return
    print(
        f"# features_speed — {date.today()} — {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(
        "| method | transactions | customers | columns | seconds | peak RSS (GB) | "
        "RSS of input alone (GB) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    labels = {
        "pandas_rfm": "plain pandas RFM (baseline)",
        "clv_rfm": "clv rfm_features (Polars)",
        "clv_all": "clv build_features, all families but BTYD",
        "clv_btyd_fit": "clv BG/NBD + Gamma-Gamma fit on the RFM",
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, __file__, "--child", "prepare", "--customers", str(args.customers)],
        check=True,
    )
    for method, label in labels.items():
        cmd = [sys.executable, __file__, "--child", method, "--customers", str(args.customers)]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        print(
            f"| {label} | {r['transactions']:,} | {r['customers']:,} | {r['columns']} | "
            f"{r['seconds']:.2f} | {r['peak_rss_gb']:.2f} | {r['input_rss_gb']:.2f} |"
        )


if __name__ == "__main__":
    main()
