"""Benchmark: ``clv.experiments.analyze`` at 10M units, against pandas group-bys + SciPy.

Goal (issue: experiments): ``analyze`` on 10M units x 3 variants with CUPED in <= 5 s (sufficient
statistics, one pass), next to the same analysis written by hand with pandas and SciPy, in the
same run.

Data (generated in each process from ``--seed``, not timed): ``--units`` units assigned uniformly
to ``control``, ``a`` and ``b``; ``revenue`` is 0 for about 70% of units and lognormal otherwise,
with a true +1% lift in ``b`` (``a`` is an A/A arm); ``pre_spend``, the pre-period covariate,
shares a per-unit latent value with the revenue. The variant column is stored once as a pandas
``Categorical`` and once as Python strings (object dtype), which is what a CSV read gives.

Measured, each row in a fresh process (so that its memory is its own):

* ours: ``analyze(frame, "revenue", covariate="pre_spend")`` (Welch, delta-method relative lift,
  CUPED with θ pooled over all units, Holm, SRM), and the same with ``method="sequential"`` and
  ``method="bayesian"``;
* baseline, what a careful analyst writes by hand: θ from ``np.cov`` over all rows, the adjusted
  revenue ``y - θ (x - x̄)`` as a new column, ``frame.groupby("variant")`` to split it, then per
  treatment ``scipy.stats.ttest_ind(treatment, control, equal_var=False)`` and its
  ``confidence_interval()``, the relative lift and its delta-method interval from the group means
  and variances, ``statsmodels``' ``multipletests(method="holm")`` and ``scipy.stats.chisquare``
  on the counts.

Wall time is the best of ``--repeats`` calls (``time.perf_counter``). Peak extra RSS is the
process's high-water mark over those calls (reset through ``/proc/self/clear_refs`` just before
them) minus its resident size just before them; the tracemalloc peak comes from one more call,
untimed, under ``tracemalloc``. (At small sizes the RSS figure can be the lower one: arrays under
glibc's 32 MB mmap threshold reuse heap memory the generation freed.)

Agreement: each baseline row's p-values (raw, Holm-adjusted, SRM), θ and interval ends are
compared with ours on the same frame; the discrepancy of two numbers is ``|a - b| / max(|a|, |b|)``
(for an interval end the denominator is never less than the interval's half-width, so an end that
happens to fall near 0 is not judged against 0). The script exits with status 1 when any
discrepancy exceeds 1e-8.

Usage: python benchmarks/experiments.py [--units 10000000] [--seed 1] [--repeats 3] [--profile]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
CACHE = BENCH_DIR / ".cache"
RESULTS_PATH = CACHE / "experiments.json"
GOAL_SECONDS = 5.0
TOLERANCE = 1e-8
VARIANTS = ("control", "a", "b")
TRUE_LIFT_B = 0.01
ALPHA = 0.05

#: (row key, implementation, method, variant dtype, label)
ROWS: tuple[tuple[str, str, str, str, str], ...] = (
    ("ours-cat", "ours", "frequentist", "category", "ours: `analyze`, CUPED"),
    ("ours-obj", "ours", "frequentist", "object", "ours: `analyze`, CUPED"),
    ("base-cat", "baseline", "frequentist", "category", "baseline: pandas group-bys + SciPy"),
    ("base-obj", "baseline", "frequentist", "object", "baseline: pandas group-bys + SciPy"),
    ("seq-cat", "ours", "sequential", "category", 'ours: `analyze(method="sequential")`, CUPED'),
    ("bayes-cat", "ours", "bayesian", "category", 'ours: `analyze(method="bayesian")`, CUPED'),
)
#: baseline row -> the row of ours it must agree with (same frame, same dtype)
AGREES_WITH = {"base-cat": "ours-cat", "base-obj": "ours-obj"}


def make_frame(units: int, seed: int, variant_dtype: str) -> Any:
    """The experiment table: one row per unit, seeded; the variant as ``variant_dtype``."""
    import numpy as np
    import pandas as pd
    from scipy.special import ndtri

    rng = np.random.default_rng(seed)
    codes = rng.integers(0, len(VARIANTS), units)
    value = rng.standard_normal(units)  # the unit's latent value, seen before and during the test
    # A unit buys when value + noise clears the 70th percentile of that sum: 70% zeros, and the
    # more valuable units buy more often. Together with the shared value in both amounts, CUPED
    # removes about a quarter of the variance.
    buys = value + 0.5 * rng.standard_normal(units) > ndtri(0.7) * np.sqrt(1.25)
    lift = np.where(codes == VARIANTS.index("b"), 1.0 + TRUE_LIFT_B, 1.0)
    revenue = buys * lift * np.exp(3.0 + 0.6 * value + 0.8 * rng.standard_normal(units))
    pre_spend = np.exp(3.0 + 0.5 * value + 0.3 * rng.standard_normal(units))
    if variant_dtype == "category":
        variant: Any = pd.Categorical.from_codes(codes, categories=list(VARIANTS))
    elif variant_dtype == "object":
        variant = np.array(VARIANTS, dtype=object)[codes]
    else:
        raise ValueError(variant_dtype)
    return pd.DataFrame({"variant": variant, "revenue": revenue, "pre_spend": pre_spend})


def ours(frame: Any, method: str) -> dict[str, Any]:
    """``clv.experiments.analyze`` with CUPED; the numbers the baseline is checked against."""
    from clv.experiments import analyze

    result = analyze(frame, "revenue", covariate="pre_spend", method=method, alpha=ALPHA)
    numbers: dict[str, Any] = {
        "srm_p": result.srm_p_value,
        "theta": result.cuped["theta"] if result.cuped else None,
        "variance_reduction": result.cuped["variance_reduction"] if result.cuped else None,
        "winner": result.winner,
    }
    for v in result.variants:
        numbers[v.variant] = {
            "p": v.absolute.p_value,
            "ci": [v.absolute.ci_low, v.absolute.ci_high],
            "lift": v.relative.estimate,
            "lift_ci": [v.relative.ci_low, v.relative.ci_high],
            "lift_p": v.relative.p_value,
            "p_holm": v.p_value_adjusted,
        }
    return numbers


def baseline(frame: Any) -> dict[str, Any]:
    """The same analysis written by hand: pandas group-bys, SciPy tests, statsmodels' Holm."""
    import numpy as np
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    y = frame["revenue"].to_numpy()
    x = frame["pre_spend"].to_numpy()
    cov = np.cov(x, y)
    theta = cov[0, 1] / cov[0, 0]
    frame["revenue_cuped"] = y - theta * (x - x.mean())
    try:
        grouped = frame.groupby("variant", observed=True)["revenue_cuped"]
        arms = {str(name): values.to_numpy() for name, values in grouped}
        summary = grouped.agg(["count", "mean", "var"])
    finally:
        del frame["revenue_cuped"]
    summary.index = summary.index.astype(str)
    control = arms["control"]
    treatments = [name for name in arms if name != "control"]
    z = stats.norm.ppf(1 - ALPHA / 2)
    numbers: dict[str, Any] = {"theta": float(theta)}
    p_values = []
    for name in treatments:
        test = stats.ttest_ind(arms[name], control, equal_var=False)
        ci = test.confidence_interval(confidence_level=1 - ALPHA)
        mc, vc, nc = summary.loc["control", ["mean", "var", "count"]]
        mt, vt, nt = summary.loc[name, ["mean", "var", "count"]]
        lift = mt / mc - 1
        se = np.sqrt(vt / nt / mc**2 + mt**2 * (vc / nc) / mc**4)
        numbers[name] = {
            "p": float(test.pvalue),
            "ci": [float(ci.low), float(ci.high)],
            "lift": float(lift),
            "lift_ci": [float(lift - z * se), float(lift + z * se)],
            "lift_p": float(2 * stats.norm.sf(abs(lift / se))),
        }
        p_values.append(test.pvalue)
    adjusted = multipletests(p_values, alpha=ALPHA, method="holm")[1]
    for name, p_adj in zip(treatments, adjusted, strict=True):
        numbers[name]["p_holm"] = float(p_adj)
    numbers["srm_p"] = float(stats.chisquare(summary["count"].to_numpy()).pvalue)
    return numbers


def _status_kb(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field}")
    return int(match.group(1))


def _child(args: argparse.Namespace) -> dict[str, Any]:
    import tracemalloc

    _, implementation, method, dtype, _ = next(r for r in ROWS if r[0] == args.child)
    # Imports are not timed: a session has them loaded already.
    import scipy.stats  # noqa: F401
    import statsmodels.stats.multitest  # noqa: F401

    import clv.experiments  # noqa: F401

    frame = make_frame(args.units, args.seed, dtype)

    def run() -> dict[str, Any]:
        return ours(frame, method) if implementation == "ours" else baseline(frame)

    gc.collect()
    rss_before_kb = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak RSS, to the current RSS
    seconds = []
    numbers: dict[str, Any] = {}
    for _ in range(args.repeats):
        start = time.perf_counter()
        numbers = run()
        seconds.append(time.perf_counter() - start)
    peak_extra_kb = _status_kb("VmHWM") - rss_before_kb
    gc.collect()
    tracemalloc.start()
    run()
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "units": len(frame),
        "frame_mb": frame.memory_usage(deep=False).sum() / 1024**2,
        "seconds": seconds,
        "peak_extra_rss_mb": peak_extra_kb / 1024,
        "tracemalloc_peak_mb": traced_peak / 1024**2,
        "numbers": numbers,
    }


def _profile(args: argparse.Namespace) -> None:
    """cProfile of one ``analyze`` call per variant dtype, the 25 costliest by cumulative time."""
    import cProfile
    import pstats

    for dtype in ("category", "object"):
        frame = make_frame(args.units, args.seed, dtype)
        ours(frame, "frequentist")  # warm-up: imports and first-call caches
        profiler = cProfile.Profile()
        profiler.enable()
        ours(frame, "frequentist")
        profiler.disable()
        print(f"## cProfile, variant as {dtype}, {args.units:,} units\n")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        del frame
        gc.collect()


def _discrepancy(ours_numbers: dict[str, Any], base: dict[str, Any]) -> tuple[float, str]:
    """Largest relative difference between the baseline's numbers and ours, and which it is."""

    def rel(a: float, b: float, floor: float = 0.0) -> float:
        scale = max(abs(a), abs(b), floor)
        return abs(a - b) / scale if scale > 0 else 0.0

    found = [(rel(ours_numbers[k], base[k]), k) for k in ("srm_p", "theta")]
    for name in VARIANTS[1:]:
        o, b = ours_numbers[name], base[name]
        found += [(rel(o[k], b[k]), f"{name} {k}") for k in ("p", "p_holm", "lift", "lift_p")]
        for key in ("ci", "lift_ci"):
            half = abs(b[key][1] - b[key][0]) / 2
            for end, oe, be in zip(("low", "high"), o[key], b[key], strict=True):
                found.append((rel(oe, be, half), f"{name} {key} {end}"))
    return max(found)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--units", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile ours and exit")
    parser.add_argument("--child", choices=[r[0] for r in ROWS])
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args)))
        return
    if args.profile:
        _profile(args)
        return

    import numpy as np
    import pandas as pd
    import scipy
    import statsmodels

    machine = _machine()
    load_start = os.getloadavg()
    print(
        f"# experiments — {date.today()} — {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['ram_gib']:.0f} GiB RAM, commit {_commit()}\n"
        f"# Python {machine['python']}, numpy {np.__version__}, pandas {pd.__version__}, "
        f"scipy {scipy.__version__}, statsmodels {statsmodels.__version__}\n"
        f"# {args.units:,} units x {len(VARIANTS)} variants, seed {args.seed}, best of "
        f"{args.repeats}; load average (1, 5, 15 min) at the start: "
        + ", ".join(f"{v:.2f}" for v in load_start),
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    for key, *_ in ROWS:
        print(f"  {key} ...", file=sys.stderr, flush=True)
        cmd = [
            sys.executable,
            __file__,
            "--child",
            key,
            "--units",
            str(args.units),
            "--seed",
            str(args.seed),
            "--repeats",
            str(args.repeats),
        ]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        results[key] = json.loads(done.stdout)

    discrepancies = {
        base: _discrepancy(results[own]["numbers"], results[base]["numbers"])
        for base, own in AGREES_WITH.items()
    }
    print()
    print(
        "| implementation | variant dtype | seconds (best) | all runs (s) | × baseline | "
        "peak extra RSS (MB) | tracemalloc peak (MB) | max rel. discrepancy | goal ≤ 5 s |"
    )
    print("|---|---|---:|---|---:|---:|---:|---:|---|")
    baseline_of = {"category": "base-cat", "object": "base-obj"}
    for key, implementation, _, dtype, label in ROWS:
        r = results[key]
        best = min(r["seconds"])
        runs = ", ".join(f"{s:.2f}" for s in r["seconds"])
        agreement = next((discrepancies[b] for b, o in AGREES_WITH.items() if key in (b, o)), None)
        if implementation == "ours":
            goal = "**met**" if best <= GOAL_SECONDS else "**not met**"
            # the baseline does the frequentist analysis only: no ratio for the other methods
            speedup = "–"
            if agreement is not None:
                speedup = f"{min(results[baseline_of[dtype]]['seconds']) / best:.1f}"
        else:
            speedup, goal = "1.0", "–"
        shown = "–" if agreement is None else f"{agreement[0]:.1e}"
        print(
            f"| {label} | {dtype} | {best:.2f} | {runs} | {speedup} | "
            f"{r['peak_extra_rss_mb']:,.0f} | {r['tracemalloc_peak_mb']:,.0f} | {shown} | {goal} |"
        )
    print()
    frame_mb = {dtype: results[baseline_of[dtype]]["frame_mb"] for dtype in baseline_of}
    own = results["ours-cat"]["numbers"]
    print(
        f"# frame in memory: {frame_mb['category']:,.0f} MB with the variant as category, "
        f"{frame_mb['object']:,.0f} MB as object strings (pointers to 3 shared str objects, "
        "as read_csv makes them)"
    )
    print(
        f"# ours: θ = {own['theta']:.6g}, "
        f"CUPED variance reduction {own['variance_reduction']:.1%}; "
        + "; ".join(
            f"{name}: lift {own[name]['lift']:+.3%} (CI {own[name]['lift_ci'][0]:+.3%} to "
            f"{own[name]['lift_ci'][1]:+.3%}), Holm p {own[name]['p_holm']:.3g}"
            for name in VARIANTS[1:]
        )
        + f"; winner {own['winner']!r}; true lift of b {TRUE_LIFT_B:+.0%}"
    )
    print(
        "# largest discrepancy: "
        + "; ".join(
            f"{key}: {where} ({value:.1e})" for key, (value, where) in discrepancies.items()
        )
    )
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"# load average (1, 5, 15 min) at the end: {load}; raw results: {RESULTS_PATH}")
    CACHE.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(
        json.dumps(
            {
                "date": str(date.today()),
                "machine": machine,
                "commit": _commit(),
                "args": {"units": args.units, "seed": args.seed, "repeats": args.repeats},
                "load_average": {"start": load_start, "end": os.getloadavg()},
                "results": results,
                "discrepancies": discrepancies,
            },
            indent=2,
        )
    )
    failed = {k: v for k, (v, _) in discrepancies.items() if not v <= TOLERANCE}
    if failed:
        print(
            "DISAGREE: " + ", ".join(f"{k} {v:.2e}" for k, v in failed.items()) + f" > {TOLERANCE}",
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
