"""Benchmark: segmentation speed and peak memory on synthetic segment inputs.

Goal (issue: segmentation): RFM segments plus value segments (k-means, k 3-10 on a 50,000-customer
sample, then every customer assigned) for 1M customers in <= 30 s and <= 2 GB on 2 cores.

Measured, each in a fresh process (so that each peak RSS is its own):

* (a) ``clv.segmentation.rfm.segment_rfm``: tie-aware RFM scores and the named segments;
* (b) ``clv.segmentation.values.fit_value_segments`` + ``ValueModel.assign`` of everyone;
* (a)+(b) in one process, as a segmentation run does them;
* (c) baseline, in the same run: the plain pandas way, ``pandas.qcut`` quintiles of the ranks
  (as pymc-marketing's ``rfm_segments`` does) and a dictionary from the score string to the name.

The inputs are generated in each process with vectorised numpy from a fixed seed (not timed):
predicted CLV, churn probability, eco share of spend, engagement (30% missing) and the RFM
inputs, from two populations (22% eco-conscious) and alive / lapsed customers.

Usage: python benchmarks/segmentation_speed.py [--customers 1000000]
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
from typing import Any

SEED = 20_240_601


def _gb() -> float:
    """Peak resident set size of this process so far, in GB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def synthetic_inputs(n: int, seed: int = SEED) -> Any:
    """Segment inputs for ``n`` customers, vectorised, indexed by ``customer_id``."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    eco = rng.random(n) < 0.22
    alive = rng.random(n) < 0.55
    purchase_days = 1 + rng.negative_binomial(1, np.where(alive, 0.12, 0.4))
    days_since = np.where(alive, rng.exponential(45.0, n), rng.uniform(120.0, 1000.0, n)).round()
    avg_value = rng.lognormal(3.6 + 0.25 * eco, 0.6)
    churn = np.where(alive, rng.beta(1.5, 8.0, n), rng.beta(8.0, 1.5, n))
    predicted = (1 - churn) * purchase_days * avg_value * rng.gamma(2.0, 0.15, n)
    eco_share = np.where(eco, rng.beta(6.0, 3.0, n), rng.beta(1.2, 9.0, n))
    engagement = np.clip(100 * rng.beta(1 + 6 * eco_share, 4.0), 0, 100).round(1)
    engagement[rng.random(n) < 0.3] = np.nan
    # "C" + 8 digits, built as bytes without a Python loop
    digits = (np.arange(n)[:, None] // 10 ** np.arange(7, -1, -1)) % 10 + ord("0")
    raw = np.column_stack([np.full(n, ord("C")), digits]).astype(np.uint8)
    ids = raw.view("S9").ravel().astype("U9").astype(object)
    return pd.DataFrame(
        {
            "predicted_clv": predicted,
            "churn_probability": churn,
            "eco_spend_share": eco_share,
            "eco_engagement_score": engagement,
            "days_since_last_purchase": days_since,
            "purchase_days": purchase_days.astype("float64"),
            "avg_purchase_day_value": avg_value,
        },
        index=pd.Index(ids, name="customer_id"),
    )


def _qcut_baseline(frame: Any) -> Any:
    """Plain pandas RFM: qcut quintiles of the ranks, the rule table as a score → name dict."""
    import pandas as pd

    from clv.segmentation.rfm import load_rules

    labels = [1, 2, 3, 4, 5]
    out = pd.DataFrame(index=frame.index)
    out["r_score"] = pd.qcut(
        (-frame["days_since_last_purchase"]).rank(method="first"), 5, labels=labels
    ).astype(int)
    out["f_score"] = pd.qcut(frame["purchase_days"].rank(method="first"), 5, labels=labels).astype(
        int
    )
    out["m_score"] = pd.qcut(
        frame["avg_purchase_day_value"].rank(method="first"), 5, labels=labels
    ).astype(int)
    out["rfm_score"] = (
        out["r_score"].astype(str) + out["f_score"].astype(str) + out["m_score"].astype(str)
    )
    rules = load_rules()
    table = rules.lookup()
    names = {
        f"{r + 1}{f + 1}{m + 1}": rules.names[table[r, f, m]]
        for r in range(5)
        for f in range(5)
        for m in range(5)
    }
    out["segment"] = out["rfm_score"].map(names)
    return out


def _child(step: str, n: int) -> dict[str, Any]:
    from clv.segmentation.rfm import rfm_scores, segment_rfm
    from clv.segmentation.values import fit_value_segments

    frame = synthetic_inputs(n)
    if step == "values":  # (b) alone: the RFM scores are inputs here, computed before timing
        scores = rfm_scores(frame)
        for column in ("r_score", "f_score", "m_score"):
            frame[column] = scores[column].to_numpy()
        del scores
    rss_input = _gb()
    info: dict[str, Any] = {}
    t0 = time.perf_counter()
    if step == "qcut":
        out = _qcut_baseline(frame)
        info["segments"] = int(out["segment"].nunique())
    elif step == "rfm":
        out = segment_rfm(frame)
        info["segments"] = int(out["segment"].nunique())
    elif step in ("values", "rfm+values"):
        if step == "rfm+values":
            frame = segment_rfm(frame)
        t_fit = time.perf_counter()
        model = fit_value_segments(frame, k_min=3, k_max=10, sample_size=50_000, seed=0)
        t_assign = time.perf_counter()
        ids = model.assign(frame)
        info.update(
            segments=model.k,
            fit_seconds=t_assign - t_fit,
            assign_seconds=time.perf_counter() - t_assign,
            names=model.names,
            silhouette=model.silhouette[model.k],
            assigned=int(ids.notna().sum()),
        )
    else:
        raise ValueError(step)
    info.update(
        customers=len(frame),
        seconds=time.perf_counter() - t0,
        peak_rss_gb=_gb(),
        input_rss_gb=rss_input,
    )
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.customers)))
        return
    print(
        f"# segmentation_speed — {date.today()} — {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print()
    print("| step | customers | segments | seconds | peak RSS (GB) | RSS of input alone (GB) |")
    print("|---|---:|---:|---:|---:|---:|")
    steps = {
        "rfm": "(a) clv RFM scores + named segments (`segment_rfm`)",
        "values": "(b) clv value segments: `fit_value_segments` (k 3-10, 50k sample) + `assign`",
        "rfm+values": "(a)+(b) in one process",
        "qcut": "(c) baseline: plain pandas `qcut` RFM scores + name lookup",
    }
    details: list[str] = []
    for step, label in steps.items():
        cmd = [sys.executable, __file__, "--child", step, "--customers", str(args.customers)]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        print(
            f"| {label} | {r['customers']:,} | {r['segments']} | {r['seconds']:.2f} | "
            f"{r['peak_rss_gb']:.2f} | {r['input_rss_gb']:.2f} |"
        )
        if step == "values":
            details.append(
                f"(b): fit {r['fit_seconds']:.2f} s, assign {r['assign_seconds']:.2f} s; "
                f"k={r['segments']} (silhouette {r['silhouette']}): {', '.join(r['names'])}"
            )
    print()
    for line in details:
        print(line)


if __name__ == "__main__":
    main()
