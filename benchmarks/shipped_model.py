"""What ships, scored as a new user would: ``clv train`` → ``clv promote`` → ``clv score``.

The CLI runs in subprocesses on a file that holds CDNOW up to the as-of date only (nothing after
it is ever on disk for them), with a throwaway ``CLV_HOME`` (its own MLflow registry and Prefect
store). This script then reads the scores file and the truth of the horizon after the as-of date
and scores the registered model against BG/NBD + Gamma-Gamma and the run rate, computed here from
the same history (:func:`clv.features.build_features` at the as-of date, which is what ``clv
score`` reads). It also runs :func:`clv.evaluation.backtest.backtest` at the same point with the
same configuration, so the two paths can be set side by side: they must agree on the registered
model's predictions.

Usage::

    python benchmarks/shipped_model.py [--as-of 1997-12-31] [--horizon-days 91] [--trials 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from _data import load_cdnow  # benchmarks/ is on sys.path

from clv.evaluation.metrics import regression_report
from clv.features import build_features, future_targets
from clv.models.baselines import RunRateBaseline
from clv.training.windows import end_of_day

COLUMNS = ("normalized_gini", "decile_mape", "aggregate_error", "top20_precision", "mae")


def _clv(args: list[str], env: dict[str, str]) -> None:
    """Run ``clv ARGS`` as a user would; stop with its output if it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "clv", *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"clv {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of", default="1997-12-31")
    parser.add_argument("--horizon-days", type=int, default=91)
    parser.add_argument("--trials", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-backtest", action="store_true", help="only the CLI path")
    args = parser.parse_args()

    transactions = load_cdnow()
    as_of = end_of_day(pd.Timestamp(args.as_of))
    horizon = args.horizon_days
    seen = transactions[transactions["timestamp"] <= as_of]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="clv-shipped-") as tmp:
        home = Path(tmp) / "home"
        orders = Path(tmp) / "cdnow_to_as_of.parquet"
        seen.to_parquet(orders, index=False)
        env = {**os.environ, "CLV_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2"}
        common = ["--transactions", str(orders), "--horizon-days", str(horizon)]
        _clv(["train", *common, "--trials", str(args.trials), "--seed", str(args.seed)], env)
        for model in ("clv-spend", "clv-churn"):
            # --force: this measures what training registers, whatever the gate says of it
            _clv(["promote", "--model", model, "--latest", "--yes", "--force"], env)
        scores_path = Path(tmp) / "scores.parquet"
        _clv(["score", *common, "--out", str(scores_path)], env)
        scores = pd.read_parquet(scores_path).set_index("customer_id")
    cli_seconds = time.perf_counter() - started

    features = build_features(seen, cutoff=as_of, horizon_days=horizon)
    truth = future_targets(transactions, cutoff=as_of, horizon_days=horizon)
    actual = truth["future_spend"].reindex(features.index).fillna(0.0)
    shipped = scores["predicted_clv"].reindex(features.index)
    if shipped.isna().any():
        raise SystemExit(f"{int(shipped.isna().sum())} customers have no score")
    rows = {
        "registered model (clv score)": regression_report(
            actual,
            shipped,
            scores["predicted_clv_lower"].reindex(features.index),
            scores["predicted_clv_upper"].reindex(features.index),
        ),
        "bgnbd_gamma_gamma": regression_report(
            actual, features["btyd_expected_spend"].clip(lower=0).fillna(0)
        ),
        "run_rate": regression_report(
            actual, RunRateBaseline({"horizon_days": horizon}).predict(features)
        ),
    }

    gap, backtest_seconds = float("nan"), 0.0
    if not args.no_backtest:
        from clv.evaluation.backtest import backtest

        started = time.perf_counter()
        result = backtest(
            transactions, horizon_days=horizon, as_of=as_of, trials=args.trials, seed=args.seed
        )
        backtest_seconds = time.perf_counter() - started
        same = result.predictions[result.winner].reindex(features.index)
        gap = float((same - shipped).abs().max())
        rows[f"backtest: {result.winner} (registered)"] = result.metrics[result.winner]

    print(
        f"# shipped_model — CDNOW, as of {as_of:%Y-%m-%d}, {horizon} days, "
        f"{len(features):,} customers; trials {args.trials}, seed {args.seed}\n"
    )
    print("| model | " + " | ".join(COLUMNS) + " | interval coverage |")
    print("|---|" + "---:|" * (len(COLUMNS) + 1))
    for name, m in rows.items():
        coverage = m.get("interval_coverage")
        cells = " | ".join(f"{m[c]:.4f}" for c in COLUMNS)
        print(f"| {name} | {cells} | {'' if coverage is None else f'{coverage:.3f}'} |")
    print(
        f"\nLargest gap between the backtest's and clv score's predictions of the registered "
        f"model: {gap:.3g}. clv train + promote + score: {cli_seconds:.0f} s; backtest: "
        f"{backtest_seconds:.0f} s."
    )
    print(json.dumps({"rows": rows, "gap": gap}, default=float))


if __name__ == "__main__":
    main()
