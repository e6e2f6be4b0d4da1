"""Full training on generated data: wall time and peak memory per stage.

Runs the training flow's own task functions in order (``prepare`` → ``tune`` per family →
``champion_scores`` → ``evaluate_and_register``), in this process, against a throwaway data home
with SQLite-backed Optuna and MLflow; Prefect's orchestration itself is not timed. Peak memory is
this process's resident set, sampled every 50 ms during each stage (TensorFlow runs in-process).

Reference measured in the same run: fitting BG/NBD + Gamma-Gamma on the same customers at the
as-of date (what the classic approach costs).

Usage::

    python benchmarks/training_speed.py --customers 100000 --trials 10 [--ziln-members 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def _rss_bytes() -> int:
    with open("/proc/self/status") as fh:  # noqa: PTH123  (a /proc file, read often)
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def measure(label: str, rows: list[tuple[str, float, float]], work: Callable[[], T]) -> T:
    """Run ``work``; append (label, seconds, peak GB) to ``rows``."""
    peak = _rss_bytes()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, _rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        result = work()
    finally:
        done.set()
        sampler.join()
    rows.append((label, time.perf_counter() - started, max(peak, _rss_bytes()) / 1e9))
    print(f"  {label}: {rows[-1][1]:.1f} s, peak {rows[-1][2]:.2f} GB", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--horizon-days", type=int, default=90)
    parser.add_argument("--families", default="xgboost,lightgbm,keras_ziln")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--ziln-members",
        type=int,
        default=None,
        help="networks in Keras ZILN's deep ensemble (default: TrainConfig's, 3)",
    )
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="clv-bench-train-"))
    os.environ["CLV_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

    from clv.data.generator import GeneratorConfig, generate, write_synthetic
    from clv.settings import get_settings

    get_settings.cache_clear()
    rows: list[tuple[str, float, float]] = []
    print(f"data home {home}", flush=True)
    data = measure(
        "generate data (not training)",
        rows,
        lambda: generate(GeneratorConfig(n_customers=args.customers), seed=args.seed),
    )
    write_synthetic(data, home / "data", fmt="parquet")
    del data
    transactions = str(home / "data" / "transactions.parquet")

    from clv import tracking
    from flows import training as flow

    families = [f.strip() for f in args.families.split(",") if f.strip()]
    parameters = flow._config(
        {
            "horizon_days": args.horizon_days,
            "as_of": None,
            "families": families,
            "n_trials": args.trials,
            "n_windows": 12,
            "step_days": 30,
            "seed": 0,
            **({} if args.ziln_members is None else {"ziln_members": args.ziln_members}),
        }
    ).to_dict()
    started = time.perf_counter()
    prepared: dict[str, Any] = measure(
        "validate + features (12 windows + holdout)",
        rows,
        lambda: flow.prepare.fn(transactions, None, None, parameters),
    )
    print(f"  training rows: {prepared['rows']}", flush=True)
    outcomes = []
    for family in families:
        outcomes.append(
            measure(
                f"Optuna {family} ({args.trials} trials)",
                rows,
                lambda family=family: flow.tune.fn(family, prepared, parameters),
            )
        )
        states = [t["state"] for t in outcomes[-1]["trials"]]
        print(f"    states: {', '.join(states)}", flush=True)
    tracking.configure()
    with tracking.training_run("benchmark", "training-speed", tags={}) as run:
        result = measure(
            "ensemble + holdout evaluation + churn + register",
            rows,
            lambda: flow.evaluate_and_register.fn(prepared, outcomes, {}, parameters, run.run_id),
        )
    total = time.perf_counter() - started

    import pandas as pd

    from clv.features.btyd import fit_btyd
    from clv.features.rfm import rfm_features

    tx = pd.read_parquet(transactions)
    tx["timestamp"] = pd.to_datetime(tx["timestamp"])
    measure(
        "reference: BG/NBD + Gamma-Gamma fit at the as-of date",
        rows,
        lambda: fit_btyd(rfm_features(tx, cutoff=tx["timestamp"].max())),
    )

    print()
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {args.customers:,} customers, {args.trials} trials x "
        f"{len(families)} families, horizon {args.horizon_days} days, Keras ZILN "
        f"{parameters['ziln_members']} network(s)"
    )
    print()
    print("| stage | wall time (s) | peak RSS (GB) |")
    print("|---|---:|---:|")
    for label, seconds, peak in rows:
        print(f"| {label} | {seconds:.1f} | {peak:.2f} |")
    print(f"| **training total** (features to registered version) | **{total:.1f}** | |")
    print()
    print(f"winner: {result['winner']}, holdout metrics:")
    for name, m in result["metrics"].items():
        print(
            f"  {name}: Gini {m['normalized_gini']:.4f}, decile MAPE {m['decile_mape']:.4f}, "
            f"aggregate error {m['aggregate_error']:+.4f}"
        )


if __name__ == "__main__":
    main()
