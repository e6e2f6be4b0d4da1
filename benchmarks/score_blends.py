"""Score fixed blends of the learnt models as extra candidates in the real-data target cells.

Reads the per-customer predictions that ``cdnow_accuracy.py`` and ``online_retail_accuracy.py``
save next to their JSON (``<stem>_predictions.parquet``), one file per seed of one grid. For each
blend, the blend joins the learnt models of every (as-of, horizon) cell and the benchmark's own
:func:`cdnow_accuracy.verdict` decides the cell. It prints, per blend, the cells met per seed and
under every seed, then each cell's blend metrics.

Caveat: an extra candidate can only add cells under the "best learnt model" rule. This is a
screen for what to try in the library, not a result to report as a model's.

Usage: python benchmarks/score_blends.py RUN_predictions.parquet [...]
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from cdnow_accuracy import REFERENCES, verdict  # benchmarks/ is on sys.path

LEARNT = ("xgboost", "lightgbm", "keras_ziln")
CRITERIA = ("normalized_gini", "decile_mape", "abs_aggregate_error")

#: Blend name to the blend of one cell's predictions.
BLENDS: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "mean3": lambda d: d[list(LEARNT)].mean(axis=1),
    "mean3_btyd": lambda d: d[[*LEARNT, "bgnbd_gamma_gamma"]].mean(axis=1),
}


def cell_metrics(frame: pd.DataFrame) -> dict[tuple[str, int], dict[str, dict[str, float]]]:
    """Per (as-of, horizon): the metrics of every model in ``frame`` and of every blend."""
    from clv.evaluation.metrics import regression_report

    out: dict[tuple[str, int], dict[str, dict[str, float]]] = {}
    for (day, horizon), cell in frame.groupby(["as_of_day", "horizon_days"], sort=False):
        actual = cell["actual"].to_numpy()
        models = [m for m in cell.columns if m in (*LEARNT, "ensemble", *REFERENCES)]
        predictions = {m: cell[m] for m in models} | {n: b(cell) for n, b in BLENDS.items()}
        out[(str(day), int(horizon))] = {
            name: regression_report(actual, values.to_numpy())
            for name, values in predictions.items()
        }
    return out


def met(metrics: dict[str, dict[str, float]], extra: tuple[str, ...]) -> list[bool]:
    """Whether each criterion is met with the ``extra`` blends among the candidates."""
    candidates = {n: m for n, m in metrics.items() if n not in BLENDS or n in extra}
    decided = verdict(candidates)
    return [bool(decided[k]["met"]) for k in CRITERIA]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("predictions", type=Path, nargs="+", help="one parquet file per seed")
    args = parser.parse_args()
    frames = []
    for path in args.predictions:
        if not path.is_file():
            raise SystemExit(f"{path}: no such file (run an accuracy benchmark with --out first)")
        frame = pd.read_parquet(path)
        missing = [c for c in ("as_of_day", "horizon_days", "actual", *LEARNT) if c not in frame]
        if missing:
            raise SystemExit(f"{path}: missing columns {missing}; is it a benchmark's predictions?")
        frames.append(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # metric warnings about empty deciles repeat per cell
        scored = [cell_metrics(frame) for frame in frames]
    cells = list(scored[0])
    if any(list(metrics) != cells for metrics in scored[1:]):
        raise SystemExit("the files hold different grids; compare runs of one grid")
    variants: dict[str, tuple[str, ...]] = {"as run": (), **{name: (name,) for name in BLENDS}}
    print("| candidates | cells met per run | under every run |")
    print("|---|---|---:|")
    for label, extra in variants.items():
        runs = [{c: met(metrics[c], extra) for c in cells} for metrics in scored]
        per_run = [sum(sum(run[c]) for c in cells) for run in runs]
        every = sum(all(run[c][i] for run in runs) for c in cells for i in range(len(CRITERIA)))
        total = len(cells) * len(CRITERIA)
        name = label if not extra else f"learnt + {label}"
        print(f"| {name} | {' / '.join(map(str, per_run))} of {total} | {every} |")


if __name__ == "__main__":
    main()
