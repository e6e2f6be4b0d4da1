"""Benchmark: the Dask path beside the single-machine path on 10M+ generated transactions.

Goal (issue: step 10): with 2 worker processes on this 2-core machine the Dask path is no slower
than the single-machine path at 10M transactions, and per-worker memory stays under 2 GB.

Three steps, each timed on one machine and on a ``distributed.LocalCluster`` of 1 worker process
(2 threads) and of 2 worker processes (1 thread each), with the functions the platform runs:

- **features**: read the partitioned Parquet folder, validate it against the data contract,
  compute every feature family with the BTYD fit at the cut-off and write the result to Parquet:
  :func:`clv.features.build_features` on one machine,
  :func:`clv.distributed.io.read_transactions` + :func:`clv.distributed.features.dask_features`
  + ``to_parquet`` on Dask;
- **training** (trees): the final refit that ``clv train`` runs for XGBoost and LightGBM with
  their default parameters on one training table (features at 2025-06-30 and the spend of the
  90 days after it), :func:`clv.training.hpo.fit_best` without and with ``dask_client``;
- **scoring**: read, validate, compute features and score with the model ``clv train`` registered
  (trained here beforehand on a 50k-customer generated set), then write Parquet:
  :func:`clv.training.scoring.score_customers` on one machine,
  :func:`clv.distributed.scoring.score_customers_dask` + ``to_parquet`` on Dask.

Every (path, step) runs in a fresh process; the cluster is started before the clock starts (a
cluster exists before a job runs) and its start-up is reported apart. Peak memory is each process's
own ``ru_maxrss``: the one-machine process, each Dask worker (asked at the end of the step) and the
Dask client. The task stream gives the per-partition compute cost from which the projection to a
10-node cluster is made (a projection, not a measurement: it assumes the per-partition cost stays
as measured and ignores the network).

Usage: python benchmarks/dask_scale.py [--customers 1000000] [--files 20]
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
from typing import Any

CACHE = Path(__file__).resolve().parent / ".cache"
AS_OF = "2025-09-30 23:59:59"
#: The registered model's own home (one for every data size).
MODEL = CACHE / "dask-scale-model"
TRAIN_CUTOFF = "2025-06-30 23:59:59"
HORIZON_DAYS = 90
MODES = ("single", "dask-1", "dask-2")
STEPS = ("features", "training", "scoring")
#: One worker process with both cores, or two with one core each.
CLUSTERS = {"dask-1": (1, 2), "dask-2": (2, 1)}
#: The projection's cluster: 10 nodes of 2 cores, as k8s/base/dask.yaml's workers.
PROJECTED_NODES, PROJECTED_THREADS = 10, 2


def _home(n: int) -> Path:
    return CACHE / f"dask-scale-{n}"


def _maxrss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


# --------------------------------------------------------------------------------------- inputs


def _prepare(n: int, files: int) -> None:
    """Generate once: partitioned transactions, the training table, a registered model."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from clv.data.generator import GeneratorConfig, generate
    from clv.features import build_features

    home = _home(n)
    tx_dir = home / "transactions"
    if not (home / "prepared.json").exists():
        home.mkdir(parents=True, exist_ok=True)
        transactions = generate(GeneratorConfig(n_customers=n), seed=1).frame("transactions")
        seen = transactions[transactions["timestamp"] <= pd.Timestamp(AS_OF)]
        # Files by time, as an export of a sales table is cut: every customer's rows cross files.
        seen = seen.sort_values("timestamp", kind="stable").reset_index(drop=True)
        tx_dir.mkdir(exist_ok=True)
        for i, part in enumerate(np.array_split(np.arange(len(seen)), files)):
            table = pa.Table.from_pandas(seen.iloc[part], preserve_index=False)
            pq.write_table(table, tx_dir / f"part-{i:03d}.parquet")
        cutoff = pd.Timestamp(TRAIN_CUTOFF)
        features = build_features(seen, cutoff=cutoff, horizon_days=HORIZON_DAYS)
        end = cutoff + pd.Timedelta(days=HORIZON_DAYS)
        window = seen[(seen["timestamp"] > cutoff) & (seen["timestamp"] <= end)]
        spend = window.groupby("customer_id", observed=True)["amount"].sum().clip(lower=0.0)
        features["target"] = spend.reindex(features.index).fillna(0.0).to_numpy()
        # 80/20 by a hash of the id: the same split whatever the row order.
        hashed = pd.util.hash_pandas_object(features.index.to_series(), index=False) % 5
        features["validation"] = (hashed == 0).to_numpy()
        features.to_parquet(home / "training.parquet")
        meta = {"transactions": len(seen), "customers": int(seen["customer_id"].nunique())}
        (home / "prepared.json").write_text(json.dumps(meta))
    if not (MODEL / "model" / "spend" / "bundle").exists():
        _register_model(MODEL)


def _register_model(home: Path) -> None:
    """``clv train`` on a 50k-customer generated set, in a throwaway ``CLV_HOME``."""
    from clv.data.generator import GeneratorConfig, generate, write_synthetic

    clv_home = home / "clv-home"
    data = generate(GeneratorConfig(n_customers=50_000), seed=2)
    data.tables = ("transactions",)
    write_synthetic(data, clv_home / "data")
    env = {
        **os.environ,
        "CLV_HOME": str(clv_home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{clv_home}/mlflow.db",
        "PREFECT_HOME": str(clv_home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    args = [
        "train",
        "--transactions",
        str(clv_home / "data" / "transactions.parquet"),
        "--horizon-days",
        str(HORIZON_DAYS),
        "--as-of",
        AS_OF[:10],
        "--trials",
        "2",
        "--windows",
        "4",
        "--families",
        "xgboost,lightgbm",
    ]
    # The gate is not what is measured here: a refusal would only stop the benchmark.
    promote = ["--latest", "--yes", "--force", "--reason", "benchmarks/dask_scale.py"]
    for cli in (args, ["promote", *promote], ["promote", "--model", "clv-churn", *promote]):
        done = subprocess.run(
            [sys.executable, "-m", "clv", *cli], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"clv {' '.join(cli)} failed:\n{done.stdout}\n{done.stderr}")
    script = (
        "from pathlib import Path; from clv.training.scoring import load_registered; "
        f"load_registered('champion', Path({str(home / 'model')!r}))"
    )
    subprocess.run([sys.executable, "-c", script], env=env, check=True)


# ---------------------------------------------------------------------------------------- steps


def _read_validated(tx_dir: Path) -> Any:
    import pandas as pd

    from clv.data.validation import validate_frame

    return validate_frame(pd.read_parquet(tx_dir), "transactions", source=str(tx_dir))


def _training_table(home: Path) -> tuple[Any, Any, Any, Any]:
    import pandas as pd

    table = pd.read_parquet(home / "training.parquet")
    val = table.pop("validation").to_numpy()
    y = table.pop("target")
    return table[~val], y[~val], table[val], y[val]


def _bundles() -> tuple[Any, Any]:
    from clv.training.bundle import load_bundle

    spend = load_bundle(MODEL / "model" / "spend" / "bundle")
    churn_dir = MODEL / "model" / "churn" / "bundle"
    return spend, (load_bundle(churn_dir) if churn_dir.exists() else None)


def _single(step: str, home: Path, out: Path) -> dict[str, Any]:
    import pandas as pd

    from clv.features import build_features
    from clv.training.hpo import fit_best
    from clv.training.scoring import score_customers

    result: dict[str, Any] = {}
    if step == "features":
        start = time.perf_counter()
        frame = _read_validated(home / "transactions")
        features = build_features(frame, cutoff=pd.Timestamp(AS_OF), horizon_days=HORIZON_DAYS)
        features.to_parquet(out / "features.parquet")
        result.update(seconds=time.perf_counter() - start, rows=len(features))
    elif step == "training":
        X_fit, y_fit, X_val, y_val = _training_table(home)
        for family in ("xgboost", "lightgbm"):
            start = time.perf_counter()
            fit_best(family, {}, X_fit=X_fit, y_fit=y_fit, X_val=X_val, y_val=y_val)
            result[f"{family}_seconds"] = time.perf_counter() - start
        result.update(seconds=sum(result.values()), rows=len(X_fit))
    else:
        spend, churn = _bundles()
        start = time.perf_counter()
        frame = _read_validated(home / "transactions")
        scores = score_customers(
            frame, spend=spend, churn=churn, horizon_days=HORIZON_DAYS, as_of=pd.Timestamp(AS_OF)
        )
        scores.to_parquet(out / "scores.parquet")
        result.update(seconds=time.perf_counter() - start, rows=len(scores))
    result["peak_rss_gb"] = _maxrss_gb()
    return result


def _compute_seconds(stream: list[dict[str, Any]]) -> tuple[float, int]:
    """Seconds the workers computed, and how many tasks, from a task stream."""
    total, tasks = 0.0, 0
    for record in stream:
        for part in record.get("startstops", ()):
            if part.get("action") == "compute":
                total += float(part["stop"]) - float(part["start"])
        tasks += 1
    return total, tasks


def _dask(
    step: str, mode: str, home: Path, out: Path, memory_limit: str, persist: bool
) -> dict[str, Any]:
    import pandas as pd
    from distributed import Client, LocalCluster, get_task_stream

    from clv.distributed.features import dask_features
    from clv.distributed.io import read_transactions
    from clv.distributed.scoring import score_customers_dask
    from clv.training.hpo import fit_best

    n_workers, threads = CLUSTERS[mode]
    started = time.perf_counter()
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=threads,
        processes=True,
        memory_limit=memory_limit,
        dashboard_address=":0",
        local_directory=str(out / "dask-spill"),
        silence_logs=40,
    )
    client = Client(cluster)
    client.wait_for_workers(n_workers)
    result: dict[str, Any] = {"cluster_start_seconds": time.perf_counter() - started}
    try:
        with get_task_stream(client) as stream:
            if step == "features":
                start = time.perf_counter()
                with client.as_current():
                    frame = read_transactions(home / "transactions")
                    features = dask_features(
                        frame,
                        cutoff=pd.Timestamp(AS_OF),
                        horizon_days=HORIZON_DAYS,
                        persist=persist,
                    )
                    features.to_parquet(out / "features", write_index=True)
                result.update(seconds=time.perf_counter() - start, partitions=frame.npartitions)
            elif step == "training":
                X_fit, y_fit, X_val, y_val = _training_table(home)
                for family in ("xgboost", "lightgbm"):
                    start = time.perf_counter()
                    fit_best(
                        family,
                        {},
                        X_fit=X_fit,
                        y_fit=y_fit,
                        X_val=X_val,
                        y_val=y_val,
                        dask_client=client,
                    )
                    result[f"{family}_seconds"] = time.perf_counter() - start
                result.update(
                    seconds=result["xgboost_seconds"] + result["lightgbm_seconds"],
                    rows=len(X_fit),
                )
            else:
                spend, churn = _bundles()
                start = time.perf_counter()
                with client.as_current():
                    frame = read_transactions(home / "transactions")
                    scores = score_customers_dask(
                        frame,
                        spend=spend,
                        churn=churn,
                        horizon_days=HORIZON_DAYS,
                        as_of=pd.Timestamp(AS_OF),
                        persist=persist,
                    )
                    scores.to_parquet(out / "scores", write_index=False)
                result.update(seconds=time.perf_counter() - start, partitions=frame.npartitions)
        compute, tasks = _compute_seconds(stream.data)
        rss = client.run(_maxrss_gb)
        result.update(
            compute_seconds=compute,
            tasks=tasks,
            worker_peak_rss_gb=max(rss.values()),
            workers=n_workers,
            threads=n_workers * threads,
        )
    finally:
        client.close()
        cluster.close()
    result["client_peak_rss_gb"] = _maxrss_gb()
    return result


# ----------------------------------------------------------------------------------------- main


def _run(args: argparse.Namespace) -> None:
    import shutil

    mode, step = args.run
    home = _home(args.customers)
    out = home / "out" / f"{mode}-{step}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if mode == "single":
        result = _single(step, home, out)
    else:
        result = _dask(step, mode, home, out, args.memory_limit, not args.no_persist)
    shutil.rmtree(out, ignore_errors=True)
    print(json.dumps(result))


def _child(args: argparse.Namespace, mode: str, step: str) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--customers",
            str(args.customers),
            "--memory-limit",
            args.memory_limit,
            *(["--no-persist"] if args.no_persist else []),
            "--run",
            mode,
            step,
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        return {"error": f"exit {done.returncode}: {tail}"}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _projection(row: dict[str, Any], transactions: int) -> str:
    """Projected seconds on 10 nodes of 2 threads, at this size and at 10× and 100× the data."""
    compute = float(row["compute_seconds"])
    threads = int(row["threads"])
    # What did not overlap with the workers' computing: the client's own work, the scheduler,
    # the reading of the footers, the training table's hand-over.
    serial = max(0.0, float(row["seconds"]) - compute / threads)
    cells = []
    for factor in (1, 10, 100):
        seconds = serial + factor * compute / (PROJECTED_NODES * PROJECTED_THREADS)
        cells.append(f"{seconds:,.0f} s at {transactions * factor / 1e6:,.0f}M")
    return "; ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=20, help="Parquet files of transactions")
    parser.add_argument("--memory-limit", default="2GiB", help="each Dask worker's limit")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument(
        "--no-persist", action="store_true", help="read the transactions for each pass"
    )
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--run", nargs=2, metavar=("MODE", "STEP"), help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        _prepare(args.customers, args.files)
        return
    if args.run:
        _run(args)
        return

    modes = [m for m in args.modes.split(",") if m]
    steps = [s for s in args.steps.split(",") if s]
    unknown = sorted(set(modes) - set(MODES)) + sorted(set(steps) - set(STEPS))
    if unknown:
        parser.error(f"unknown mode or step: {', '.join(unknown)}")
    start = time.perf_counter()
    prepared = subprocess.run(
        [
            sys.executable,
            __file__,
            "--customers",
            str(args.customers),
            "--files",
            str(args.files),
            "--prepare",
        ],
        check=False,
    )
    if prepared.returncode != 0:
        raise SystemExit("preparing the inputs failed (output above)")
    meta = json.loads((_home(args.customers) / "prepared.json").read_text())
    print(
        f"# dask_scale on {platform.node()} ({platform.machine()}, {os.cpu_count()} cores), "
        f"{date.today()}: {meta['transactions']:,} transactions, {meta['customers']:,} "
        f"customers in {args.files} files; inputs ready in {time.perf_counter() - start:.0f} s; "
        f"worker memory limit {args.memory_limit}; "
        f"{'transactions read for each pass' if args.no_persist else 'transactions persisted'}"
    )
    rows: list[tuple[str, str, dict[str, Any]]] = []
    for step in steps:
        for mode in modes:
            row = _child(args, mode, step)
            rows.append((step, mode, row))
            print(f"{step:9s} {mode:7s} {json.dumps(row)}", flush=True)

    print()
    print(
        "| step | path | seconds | vs one machine | peak RSS per worker (GB) | client / process "
        "peak RSS (GB) | tasks | worker compute (s) | projection, 10 nodes × 2 threads |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for step, mode, row in rows:
        if "error" in row:
            print(f"| {step} | {mode} | failed: {row['error'].splitlines()[-1]} | | | | | | |")
            continue
        single = next((r for s, m, r in rows if s == step and m == "single" and "seconds" in r), {})
        ratio = f"{row['seconds'] / single['seconds']:.2f}×" if single else "–"
        if mode == "single":
            print(
                f"| {step} | one machine | {row['seconds']:.1f} | 1.00× | – | "
                f"{row['peak_rss_gb']:.2f} | – | – | – |"
            )
            continue
        print(
            f"| {step} | {mode} ({row['workers']} process(es), {row['threads']} threads) | "
            f"{row['seconds']:.1f} | {ratio} | {row['worker_peak_rss_gb']:.2f} | "
            f"{row['client_peak_rss_gb']:.2f} | {row['tasks']} | {row['compute_seconds']:.1f} | "
            f"{_projection(row, meta['transactions'])} |"
        )
    extra = [(s, m, r) for s, m, r in rows if s == "training" and "xgboost_seconds" in r]
    if extra:
        print()
        for _, mode, row in extra:
            print(
                f"training {mode}: xgboost {row['xgboost_seconds']:.1f} s, "
                f"lightgbm {row['lightgbm_seconds']:.1f} s, {row['rows']:,} fit rows"
            )


if __name__ == "__main__":
    main()
