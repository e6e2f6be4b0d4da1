"""How the real-data target cells move with the models' seed: several runs of one variant.

Each input is the JSON that ``cdnow_accuracy.py --seed N --out PATH`` (or
``online_retail_accuracy.py``) writes, for the same data, grid and options and different seeds.
Per as-of point and target (Gini by >= 0.02 over the better reference, decile MAPE and
|aggregate error| below it), the table gives the best learnt model's value as mean [min, max]
over the runs, the better reference (seed-independent), and in how many runs the cell is met;
then, per run, the cells met and the points where one model meets all three.

Usage::

    python benchmarks/cdnow_accuracy.py --seed 0 --out benchmarks/.cache/cdnow_seed0.json
    python benchmarks/cdnow_accuracy.py --seed 1000 --out benchmarks/.cache/cdnow_seed1000.json
    python benchmarks/seed_spread.py benchmarks/.cache/cdnow_seed0.json \\
        benchmarks/.cache/cdnow_seed1000.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

CRITERIA = ("normalized_gini", "decile_mape", "abs_aggregate_error")


def load(paths: list[Path]) -> list[dict[str, Any]]:
    """The runs, checked to share one grid and one set of options."""
    runs = [json.loads(path.read_text(encoding="utf-8")) for path in paths]
    shared = (
        "data",
        "families",
        "windows",
        "step_days",
        "trials",
        "no_refit_final",
        "max_extrapolated_share",
        "ziln_members",
        "ziln_sigma_cap",
    )
    for path, run in zip(paths[1:], runs[1:], strict=True):
        for key in shared:
            if run.get(key) != runs[0].get(key):
                raise SystemExit(f"{path}: {key} differs from {paths[0]}; compare like with like")
        grid = [(r["as_of_day"], r["horizon_days"]) for r in run["runs"]]
        if grid != [(r["as_of_day"], r["horizon_days"]) for r in runs[0]["runs"]]:
            raise SystemExit(f"{path}: the grid differs from {paths[0]}")
    return runs


def table(runs: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: the per-cell spread, then the per-run counts."""
    seeds = [str(run.get("seed")) for run in runs]
    lines = [
        f"Seeds: {', '.join(seeds)}. Best learnt value: mean [min, max] over the runs; "
        "reference: the better of BG/NBD + Gamma-Gamma and the run rate.",
        "",
        "| horizon | as-of | Gini: learnt vs ref | met | decile MAPE: learnt vs ref | met "
        "| abs agg. error: learnt vs ref | met |",
        "|---:|---|---|---|---|---|---|---|",
    ]
    for i, first in enumerate(runs[0]["runs"]):
        if "error" in first:
            continue
        cells = []
        for key in CRITERIA:
            verdicts = [run["runs"][i]["verdict"][key] for run in runs]
            values = [v["value"] for v in verdicts]
            met = sum(v["met"] for v in verdicts)
            cells.append(
                f"{sum(values) / len(values):.4f} [{min(values):.4f}, {max(values):.4f}] vs "
                f"{verdicts[0]['reference_value']:.4f}"
            )
            cells.append(f"{met} of {len(runs)}")
        point = f"| {first['horizon_days']} | {first['as_of_day']} | "
        lines.append(point + " | ".join(cells) + " |")
    lines += ["", "| seed | cells met | points where one model meets all |", "|---:|---:|---|"]
    for run, seed in zip(runs, seeds, strict=True):
        done = [r for r in run["runs"] if "error" not in r]
        met = sum(r["verdict"][key]["met"] for r in done for key in CRITERIA)
        alone = [
            f"{r['horizon_days']}d from {r['as_of_day']}: {', '.join(r['verdict']['all_three'])}"
            for r in done
            if r["verdict"]["all_three"]
        ]
        lines.append(f"| {seed} | {met} of {3 * len(done)} | {'; '.join(alone) or 'none'} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "results",
        type=Path,
        nargs="+",
        help="JSON files of cdnow_accuracy.py or online_retail_accuracy.py",
    )
    args = parser.parse_args()
    print("\n".join(table(load(args.results))))


if __name__ == "__main__":
    main()
