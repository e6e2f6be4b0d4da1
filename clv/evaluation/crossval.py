"""Time-series cross-validation: the backtest repeated at rolling origins.

One backtest scores one horizon, and one horizon can flatter or sink a model (a season, a
promotion, a single cohort ageing). Rolling-origin evaluation, the time-series form of
cross-validation (Tashman 2000; Hyndman & Athanasopoulos, *Forecasting: Principles and
Practice*, "time series cross-validation"), repeats it: fold ``k`` of ``n`` scores
``(A_k, A_k + h]`` with ``A_k = A - (n - 1 - k) * step``, and every fold is a complete
:func:`clv.evaluation.backtest.backtest`: its models, ensemble weights, references and feature
windows see nothing after ``A_k``. With the default step (the horizon) the scored windows are
disjoint and together cover the last ``n * h`` days.

The summary gives, per model and metric, the mean, standard deviation, minimum and maximum over
the folds, and for each learnt model the folds in which it beats *both* references (BG/NBD +
Gamma-Gamma and the run rate) on Gini, decile MAPE and absolute aggregate error. A model that
wins on average but in one fold of three is not a model to ship.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean, stdev
from typing import Any

import pandas as pd

from clv.evaluation.backtest import (
    BTYD,
    RUN_RATE,
    BacktestResult,
    backtest,
    default_as_of,
    write_backtest_report,
)

#: Metrics summarised over the folds, in report order.
SUMMARY_METRICS = (
    "normalized_gini",
    "decile_mape",
    "aggregate_error",
    "abs_aggregate_error",
    "spearman",
    "top20_precision",
    "mae",
)

#: Criteria of "beats both references": metric and whether higher is better.
WIN_CRITERIA = {"normalized_gini": True, "decile_mape": False, "abs_aggregate_error": False}

REFERENCES = (BTYD, RUN_RATE)


def rolling_origins(
    transactions: pd.DataFrame,
    *,
    horizon_days: int,
    folds: int,
    fold_step_days: int | None = None,
    as_of: pd.Timestamp | None = None,
) -> list[pd.Timestamp]:
    """The folds' as-of dates, oldest first; the latest is ``as_of``.

    Parameters
    ----------
    transactions : DataFrame
        Validated transactions (only ``timestamp`` is read).
    horizon_days : int
        Prediction horizon.
    folds : int
        Number of folds (at least 2).
    fold_step_days : int, optional
        Days between consecutive origins (default: the horizon, so the scored windows are
        disjoint).
    as_of : Timestamp, optional
        The latest fold's as-of (default: the last day with data minus the horizon).

    Returns
    -------
    list of Timestamp
        ``folds`` dates, ``fold_step_days`` apart.

    Raises
    ------
    ValueError
        When ``folds`` < 2 or ``fold_step_days`` < 1.
    """
    if folds < 2:
        raise ValueError(f"folds must be at least 2 for cross-validation, got {folds}")
    step = horizon_days if fold_step_days is None else fold_step_days
    if step < 1:
        raise ValueError(f"fold_step_days must be at least 1, got {fold_step_days}")
    latest = default_as_of(transactions, horizon_days) if as_of is None else pd.Timestamp(as_of)
    return [latest - pd.Timedelta(days=step * k) for k in range(folds - 1, -1, -1)]


@dataclass
class CrossValidationResult:
    """Every fold's backtest, and summaries over them.

    Attributes
    ----------
    horizon_days : int
        Prediction horizon of every fold.
    folds : list of BacktestResult
        One backtest per origin, oldest first.
    """

    horizon_days: int
    folds: list[BacktestResult]

    @property
    def origins(self) -> list[pd.Timestamp]:
        """The folds' as-of dates, oldest first."""
        return [fold.as_of for fold in self.folds]

    def statistics(self) -> dict[str, dict[str, dict[str, float]]]:
        """Model → metric → ``mean``, ``std`` (n - 1), ``min``, ``max`` and ``folds``.

        A fold where a metric is undefined (``nan``, e.g. decile MAPE with no buyer) is left out
        of that metric's statistics; ``folds`` counts the folds that defined it (``nan``
        statistics when none did; ``std`` needs two). Only models scored in every fold, and
        only :data:`SUMMARY_METRICS`.
        """
        out: dict[str, dict[str, dict[str, float]]] = {}
        for model in self.common_models():
            out[model] = {}
            for metric in SUMMARY_METRICS:
                values = [fold.metrics[model].get(metric, math.nan) for fold in self.folds]
                defined = [float(v) for v in values if not math.isnan(v)]
                out[model][metric] = {
                    "mean": fmean(defined) if defined else math.nan,
                    "std": stdev(defined) if len(defined) > 1 else math.nan,
                    "min": min(defined, default=math.nan),
                    "max": max(defined, default=math.nan),
                    "folds": float(len(defined)),
                }
        return out

    def summary(self) -> pd.DataFrame:
        """:meth:`statistics` as a table indexed by ``(model, metric)``."""
        rows = {
            (model, metric): stats
            for model, metrics in self.statistics().items()
            for metric, stats in metrics.items()
        }
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis(["model", "metric"])

    def ranked_models(self) -> list[str]:
        """Models scored in every fold, by decreasing mean Gini (undefined Gini last)."""
        stats = self.statistics()
        gini = {m: stats[m]["normalized_gini"]["mean"] for m in stats}
        return sorted(gini, key=lambda m: 2.0 if math.isnan(gini[m]) else -gini[m])

    def common_models(self) -> list[str]:
        """Models scored in every fold, in the first fold's order."""
        first = list(self.folds[0].metrics)
        return [m for m in first if all(m in fold.metrics for fold in self.folds)]

    def wins(self) -> dict[str, dict[str, int]]:
        """Per learnt model and criterion: folds in which it beats both references.

        Gini must be higher than both references' (no margin), decile MAPE and absolute
        aggregate error lower; a ``nan`` on either side is not a win.
        """
        out: dict[str, dict[str, int]] = {}
        for model in self.common_models():
            if model in REFERENCES:
                continue
            out[model] = {}
            for metric, higher in WIN_CRITERIA.items():
                won = 0
                for fold in self.folds:
                    value = fold.metrics[model][metric]
                    refs = [fold.metrics[r][metric] for r in REFERENCES if r in fold.metrics]
                    if math.isnan(value) or not refs or any(math.isnan(r) for r in refs):
                        continue
                    best = max(refs) if higher else min(refs)
                    won += int(value > best if higher else value < best)
                out[model][metric] = won
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable: the origins, the summary, the wins and every fold's summary."""
        return {
            "horizon_days": self.horizon_days,
            "origins": [o.isoformat() for o in self.origins],
            "summary": {
                model: {
                    metric: {k: _json_float(v) for k, v in stats.items()}
                    for metric, stats in metrics.items()
                }
                for model, metrics in self.statistics().items()
            },
            "wins_over_both_references": self.wins(),
            "folds": [fold.to_dict() for fold in self.folds],
        }

    def to_markdown(self) -> str:
        """Mean ± standard deviation per model, and the folds each learnt model wins."""
        n = len(self.folds)
        stats = self.statistics()
        lines = [
            f"# Time-series cross-validation: {n} folds, horizon {self.horizon_days} days",
            "",
            "Origins (each fold trains on data up to its origin and scores the "
            f"{self.horizon_days} days after it): "
            + ", ".join(f"{o:%Y-%m-%d}" for o in self.origins)
            + ".",
            "",
            "Mean ± standard deviation over the folds:",
            "",
            "| model | " + " | ".join(SUMMARY_METRICS) + " |",
            "|---|" + "---:|" * len(SUMMARY_METRICS),
        ]
        for model in self.ranked_models():
            cells = [mean_sd(stats[model][metric]) for metric in SUMMARY_METRICS]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        lines += [
            "",
            f"Folds (of {n}) in which each learnt model beats both BG/NBD + Gamma-Gamma and the "
            "run rate:",
            "",
            "| model | " + " | ".join(WIN_CRITERIA) + " |",
            "|---|" + "---:|" * len(WIN_CRITERIA),
        ]
        wins = self.wins()
        for model in (m for m in self.ranked_models() if m in wins):
            row = " | ".join(str(wins[model][c]) for c in WIN_CRITERIA)
            lines.append(f"| {model} | {row} |")
        return "\n".join(lines) + "\n"


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else value


def mean_sd(stats: Mapping[str, float]) -> str:
    """``"0.7012 ± 0.0123"`` from one entry of :meth:`CrossValidationResult.statistics`.

    ``–`` stands for a statistic no fold defined (the deviation of a single defined fold).
    """
    if math.isnan(stats["mean"]):
        return "–"
    sd = "–" if math.isnan(stats["std"]) else f"{stats['std']:.4f}"
    return f"{stats['mean']:.4f} ± {sd}"


def cross_validate(
    transactions: pd.DataFrame,
    *,
    horizon_days: int,
    folds: int = 3,
    fold_step_days: int | None = None,
    as_of: pd.Timestamp | None = None,
    progress: Callable[[str], None] | None = None,
    **backtest_options: Any,
) -> CrossValidationResult:
    """Run :func:`clv.evaluation.backtest.backtest` at ``folds`` rolling origins.

    Parameters
    ----------
    transactions : DataFrame
        Validated transactions; they must cover the horizon after the latest origin.
    horizon_days : int
        Prediction horizon of every fold.
    folds : int
        Number of origins (at least 2). Default 3.
    fold_step_days : int, optional
        Days between origins (default: the horizon, so the scored windows are disjoint; a
        smaller step overlaps them, and overlapping folds are not independent evidence).
    as_of : Timestamp, optional
        The latest origin (default: the last day with data minus the horizon).
    progress : callable, optional
        Called with a short description before each stage, prefixed with the fold.
    **backtest_options
        Passed to every fold's backtest (``families``, ``n_windows``, ``step_days``, ``seed``,
        ``customers``, ...).

    Returns
    -------
    CrossValidationResult
        Every fold's backtest, oldest first.

    Raises
    ------
    ValueError
        When the options are invalid, or a fold cannot run; the message names the fold and its
        origin (too early an origin leaves no training window: use fewer folds or a shorter
        step).
    """
    origins = rolling_origins(
        transactions,
        horizon_days=horizon_days,
        folds=folds,
        fold_step_days=fold_step_days,
        as_of=as_of,
    )
    say = progress or (lambda message: None)
    results = []
    for k, origin in enumerate(origins, start=1):
        label = f"fold {k} of {folds} (as of {origin:%Y-%m-%d})"

        def fold_progress(message: str, label: str = label) -> None:
            say(f"{label}: {message}")

        try:
            results.append(
                backtest(
                    transactions,
                    horizon_days=horizon_days,
                    as_of=origin,
                    progress=fold_progress,
                    **backtest_options,
                )
            )
        except ValueError as error:
            hint = "" if k > 1 else "; use fewer folds or a shorter fold step"
            raise ValueError(f"{label}: {error}{hint}") from error
    return CrossValidationResult(horizon_days=horizon_days, folds=results)


def write_cross_validation_report(
    result: CrossValidationResult, out_dir: str | Path
) -> dict[str, Path]:
    """Write ``cv.json``, ``cv.md`` and every fold's backtest report in ``fold-<k>-<as-of>/``.

    Returns
    -------
    dict of str to Path
        What was written (``json``, ``markdown`` and ``fold_<k>`` folders).
    """
    from clv.data.io import write_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for k, fold in enumerate(result.folds, start=1):
        folder = out / f"fold-{k}-{fold.as_of:%Y-%m-%d}"
        write_backtest_report(fold, folder)
        written[f"fold_{k}"] = folder
    payload = json.dumps(result.to_dict(), indent=2, sort_keys=True)
    written["json"] = out / "cv.json"
    write_atomic(written["json"], lambda p: p.write_text(payload, encoding="utf-8"))
    markdown = result.to_markdown()
    written["markdown"] = out / "cv.md"
    write_atomic(written["markdown"], lambda p: p.write_text(markdown, encoding="utf-8"))
    return written
