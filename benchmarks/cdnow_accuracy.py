"""Benchmark: spend-prediction accuracy on the CDNOW purchases, learnt models against BTYD.

Targets (issue: modelling core, step 2): the best learnt model (the stacked ensemble or any
family) beats the better of the two references, BG/NBD + Gamma-Gamma and the naive run rate, by
at least 0.02 normalised Gini, and also on decile MAPE and on |aggregate error|.

Protocol: :func:`clv.evaluation.backtest.backtest` at each (as-of, horizon). Models see nothing
after their cut-off: the learnt models train on windows whose targets end on or before the as-of,
BG/NBD + Gamma-Gamma and the run rate are fitted on the history up to the as-of, and everyone is
scored on the customers' spend in ``(as_of, as_of + horizon]``. As-of dates are end of day.
CDNOW covers 1997-01-01..1998-06-30 and every customer was acquired in Q1 1997, so long horizons
leave little or no room for training windows; the backtest's own error is printed for a
combination the data cannot support.

Churn (no purchase in the horizon): the calibrated churn model against BG/NBD's 1 - P(alive), as
the backtest reports it, and against BG/NBD's probability of no purchase in the horizon, computed
here from the same fit (``1 - P(alive) + P(alive) * ((alpha + T) / (alpha + T + h)) ** (r + x)``),
which is the BTYD answer to the question the churn model is asked.

Each point is :func:`clv.evaluation.backtest.backtest`: the training pipeline of ``clv train``
at the as-of date, scored by the bundles it packages. ``--trials N`` runs N Optuna trials per
family (default 1: the defaults), ``--no-refit-final`` registers the evaluated models instead of
the recipe refitted one holdout later (the behaviour before step 5).
``--max-extrapolated-share`` is the library's option, with the library's default (0.5; 1 keeps
every feature), ``--ziln-members N`` is the number of networks in Keras ZILN's deep ensemble
(the library's default, 3; 1 for a single network) and ``--ziln-sigma-cap C`` its ``sigma_cap``
(the library's default; ``none`` for the network's own sigma in the expected spend).

Usage: python benchmarks/cdnow_accuracy.py [--quick]
       [--windows 12] [--step-days 30] [--families xgboost,lightgbm,keras_ziln]
       [--trials 1] [--no-refit-final]
       [--max-extrapolated-share 0.5] [--ziln-members 1] [--ziln-sigma-cap none] [--seed 0]
       [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _data import CACHE_DIR, git_revision, load_cdnow  # benchmarks/ is on sys.path

from clv.features.support import MAX_EXTRAPOLATED_SHARE
from clv.models.keras_ziln import DEFAULT_PARAMS as ZILN_DEFAULTS
from clv.models.keras_ziln import check_sigma_cap

logger = logging.getLogger("cdnow_accuracy")

#: (as-of day, horizon in days) scored by default, and with ``--quick``.
GRID: tuple[tuple[str, int], ...] = (
    ("1997-09-30", 90),
    ("1997-09-30", 180),
    ("1997-09-30", 270),
    ("1997-10-31", 240),
    ("1997-12-31", 90),
    ("1997-12-31", 180),
    ("1998-03-31", 90),
)
QUICK_GRID: tuple[tuple[str, int], ...] = (("1997-09-30", 90), ("1997-12-31", 180))
REFERENCES = ("bgnbd_gamma_gamma", "run_rate")
GINI_MARGIN = 0.02
RESULTS_PATH = CACHE_DIR / "cdnow_results.json"


def end_of_day(day: str) -> pd.Timestamp:
    """The last instant of ``day`` (the as-of convention of the backtest's default)."""
    return pd.Timestamp(day) + pd.Timedelta(days=1) - pd.Timedelta(1, "us")


def learnt_model_options(args: argparse.Namespace) -> dict[str, Any]:
    """The backtest keywords (the training run's configuration) on the command line."""
    return {
        "trials": args.trials,
        "max_extrapolated_share": args.max_extrapolated_share,
        "ziln_members": args.ziln_members,
        "ziln_sigma_cap": args.ziln_sigma_cap,
        "refit_final": not args.no_refit_final,
    }


def add_learnt_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--trials``, ``--no-refit-final`` and the learnt models' options of ``clv train``."""
    parser.add_argument("--trials", type=int, default=1, help="Optuna trials per family")
    parser.add_argument(
        "--no-refit-final",
        action="store_true",
        help="register the evaluated models instead of the recipe refitted one holdout later",
    )
    parser.add_argument(
        "--max-extrapolated-share",
        type=float,
        default=MAX_EXTRAPOLATED_SHARE,
        help="leave out unconstrained features with more of the scored customers outside "
        "their learnt range (clv.features.support); default: the library's "
        f"{MAX_EXTRAPOLATED_SHARE}; 1 keeps every feature",
    )
    parser.add_argument(
        "--ziln-members",
        type=int,
        default=ZILN_DEFAULTS["n_members"],
        help="networks in Keras ZILN's deep ensemble (its n_members parameter); default: the "
        f"library's {ZILN_DEFAULTS['n_members']}",
    )
    parser.add_argument(
        "--ziln-sigma-cap",
        type=_sigma_cap,
        default=ZILN_DEFAULTS["sigma_cap"],
        help="Keras ZILN's sigma_cap: the expected spend uses sigma at most this multiple of the "
        "training labels' log-spread; 'none' for the network's own sigma; default: the "
        f"library's {ZILN_DEFAULTS['sigma_cap']}",
    )


def _sigma_cap(text: str) -> float | None:
    """``--ziln-sigma-cap``: a positive number, or ``none``."""
    if text.strip().lower() == "none":
        return None
    try:
        return check_sigma_cap(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive number or 'none', got {text!r}"
        ) from None


def bgnbd_no_purchase_probability(
    transactions: pd.DataFrame, *, as_of: pd.Timestamp, horizon_days: int
) -> pd.Series:
    """BG/NBD probability of no purchase in ``(as_of, as_of + horizon]``, fitted up to ``as_of``.

    Under BG/NBD a customer drops out only just after a purchase, so a customer alive at the
    cut-off with rate ``lambda`` makes no purchase in ``h`` days with probability
    ``exp(-lambda h)``; averaging over the posterior ``Gamma(r + x, alpha + T)`` of ``lambda``
    gives ``((alpha + T) / (alpha + T + h)) ** (r + x)``.
    """
    from clv.features.btyd import fit_btyd
    from clv.features.rfm import rfm_features
    from clv.models.btyd import bgnbd_probability_alive

    rfm = rfm_features(transactions, cutoff=as_of)
    params = fit_btyd(rfm).bgnbd
    x, age = rfm["frequency"].to_numpy(float), rfm["T"].to_numpy(float)
    p_alive = np.asarray(bgnbd_probability_alive(params, x, rfm["recency"].to_numpy(float), age))
    quiet_if_alive = ((params.alpha + age) / (params.alpha + age + horizon_days)) ** (params.r + x)
    return pd.Series(1.0 - p_alive + p_alive * quiet_if_alive, index=rfm.index)


def verdict(metrics: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Whether the best learnt model beats the better reference on each target.

    Each criterion takes the best learnt model *on that criterion* and the better reference on
    it; ``all_three`` lists the learnt models that meet all three targets on their own.
    """
    learnt = [m for m in metrics if m not in REFERENCES]

    def best(names: list[str], key: str, higher: bool) -> tuple[str, float]:
        def score(name: str) -> float:
            value = metrics[name][key]
            return -math.inf if math.isnan(value) else (value if higher else -value)

        name = max(names, key=score)
        return name, metrics[name][key]

    out: dict[str, Any] = {}
    for key, higher, margin in (
        ("normalized_gini", True, GINI_MARGIN),
        ("decile_mape", False, 0.0),
        ("abs_aggregate_error", False, 0.0),
    ):
        model, value = best(learnt, key, higher)
        reference, ref_value = best(list(REFERENCES), key, higher)
        met = value >= ref_value + margin if higher else value < ref_value
        out[key] = {
            "best_learnt": model,
            "value": value,
            "best_reference": reference,
            "reference_value": ref_value,
            "met": bool(met),
        }
    ref = {k: out[k]["reference_value"] for k in out}
    out["all_three"] = [
        m
        for m in learnt
        if metrics[m]["normalized_gini"] >= ref["normalized_gini"] + GINI_MARGIN
        and metrics[m]["decile_mape"] < ref["decile_mape"]
        and metrics[m]["abs_aggregate_error"] < ref["abs_aggregate_error"]
    ]
    return out


def run_one(
    transactions: pd.DataFrame,
    day: str,
    horizon_days: int,
    args: argparse.Namespace,
    predictions: list[pd.DataFrame] | None = None,
) -> dict[str, Any]:
    """One backtest; the JSON-ready summary, or the reason it cannot run.

    With ``predictions``, the backtest's per-customer predictions (every model, the actual
    spend) are appended to it, with ``as_of_day`` and ``horizon_days`` columns.
    """
    from clv.evaluation.backtest import backtest
    from clv.evaluation.metrics import churn_report

    as_of = end_of_day(day)
    record: dict[str, Any] = {"as_of_day": day, "horizon_days": horizon_days}
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = backtest(
                transactions,
                horizon_days=horizon_days,
                as_of=as_of,
                n_windows=args.windows,
                step_days=args.step_days,
                families=args.families,
                seed=args.seed,
                **learnt_model_options(args),
                progress=lambda message: logger.info("%s +%dd: %s", day, horizon_days, message),
            )
        except ValueError as error:
            record["error"] = str(error)
            logger.warning("%s +%dd cannot run: %s", day, horizon_days, error)
            return record
        quiet = bgnbd_no_purchase_probability(
            transactions, as_of=as_of, horizon_days=horizon_days
        ).reindex(result.predictions.index)
        churned = result.predictions["churned"]
        result.churn_metrics["bgnbd_p_no_purchase_in_horizon"] = churn_report(churned, quiet)
    record.update(result.to_dict())
    if predictions is not None:
        predictions.append(
            result.predictions.reset_index().assign(as_of_day=day, horizon_days=horizon_days)
        )
    record["seconds"] = time.perf_counter() - t0
    record["verdict"] = verdict(result.metrics)
    record["customers_buying_in_horizon"] = int((result.predictions["actual"] > 0).sum())
    record["warnings"] = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    return record


def describe_options(args: argparse.Namespace) -> str:
    """The learnt-model options in a sentence (empty when none is on)."""
    parts = []
    if args.trials != 1:
        parts.append(f"{args.trials} Optuna trials per family")
    if args.no_refit_final:
        parts.append("the evaluated models registered, not refitted one holdout later")
    if args.max_extrapolated_share >= 1.0:
        parts.append("every feature kept, however many customers lie outside its learnt range")
    elif args.max_extrapolated_share != MAX_EXTRAPOLATED_SHARE:
        parts.append(
            "features with more than "
            f"{args.max_extrapolated_share:.0%} of the customers outside their learnt range "
            "left out"
        )
    if args.ziln_members != ZILN_DEFAULTS["n_members"]:
        parts.append(f"Keras ZILN {args.ziln_members} network(s) instead of the library's default")
    if args.ziln_sigma_cap != ZILN_DEFAULTS["sigma_cap"]:
        parts.append(
            "Keras ZILN's expected spend with the network's own sigma"
            if args.ziln_sigma_cap is None
            else f"Keras ZILN's sigma_cap {args.ziln_sigma_cap} instead of the library's default"
        )
    return (" Options: " + "; ".join(parts) + ".") if parts else ""


def _fmt(value: float, spec: str = ".4f") -> str:
    return "nan" if value is None or math.isnan(value) else format(value, spec)


def print_tables(records: list[dict[str, Any]]) -> None:
    """The markdown tables of the docs: metrics, targets, churn, weights and timings."""
    done = [r for r in records if "error" not in r]
    print(
        "\n| horizon | as-of | model | Gini | decile MAPE | aggregate error | |aggregate error| "
        "| Spearman | top-20% precision | MAE |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in done:
        order = sorted(r["metrics"], key=lambda m: -r["metrics"][m]["normalized_gini"])
        for name in order:
            m = r["metrics"][name]
            print(
                f"| {r['horizon_days']} | {r['as_of_day']} | {name} | {_fmt(m['normalized_gini'])}"
                f" | {_fmt(m['decile_mape'])} | {_fmt(m['aggregate_error'], '+.4f')}"
                f" | {_fmt(m['abs_aggregate_error'])} | {_fmt(m['spearman'])}"
                f" | {_fmt(m['top20_precision'])} | {_fmt(m['mae'], '.2f')} |"
            )
    for r in records:
        if "error" in r:
            print(f"\n{r['as_of_day']} +{r['horizon_days']}d not run: {r['error']}")

    print(
        "\nTargets: best learnt model vs the better reference "
        f"(Gini by >= {GINI_MARGIN}; decile MAPE and |aggregate error| lower)."
    )
    print(
        "\n| horizon | as-of | Gini: learnt vs ref | met | decile MAPE: learnt vs ref | met "
        "| abs agg. error: learnt vs ref | met | one model meets all |"
    )
    print("|---:|---|---|---|---|---|---|---|---|")
    for r in done:
        cells = []
        for key in ("normalized_gini", "decile_mape", "abs_aggregate_error"):
            v = r["verdict"][key]
            cells.append(
                f"{v['best_learnt']} {_fmt(v['value'])} vs {v['best_reference']} "
                f"{_fmt(v['reference_value'])}"
            )
            cells.append("**yes**" if v["met"] else "no")
        everyone = ", ".join(r["verdict"]["all_three"]) or "none"
        print(
            f"| {r['horizon_days']} | {r['as_of_day']} | " + " | ".join(cells) + f" | {everyone} |"
        )

    print("\nChurn = no purchase in the horizon.")
    print("\n| horizon | as-of | model | AUC | Brier | calibration error | base rate |")
    print("|---:|---|---|---:|---:|---:|---:|")
    for r in done:
        for name, m in r["churn_metrics"].items():
            print(
                f"| {r['horizon_days']} | {r['as_of_day']} | {name} | {_fmt(m['auc'])} | "
                f"{_fmt(m['brier'])} | {_fmt(m['calibration_error'])} | {_fmt(m['base_rate'])} |"
            )

    print(
        "\n| horizon | as-of | customers | buying in horizon | training cut-offs | train rows "
        "| ensemble weights | seconds (features / xgb / lgbm / ziln / churn / total) |"
    )
    print("|---:|---|---:|---:|---|---:|---|---|")
    for r in done:
        t = r["timings_s"]
        cutoffs = ", ".join(c[:10] for c in r["train_cutoffs"])
        weights = ", ".join(f"{k} {v:.2f}" for k, v in r["ensemble_weights"].items()) or "–"
        seconds = " / ".join(
            _fmt(t.get(k, math.nan), ".1f")
            for k in ("training_features", "xgboost", "lightgbm", "keras_ziln", "churn")
        )
        print(
            f"| {r['horizon_days']} | {r['as_of_day']} | {r['customers_scored']:,} | "
            f"{r['customers_buying_in_horizon']:,} | {cutoffs} | {r['train_rows']:,} | "
            f"{weights} | {seconds} / {r['seconds']:.1f} |"
        )
    print(
        "\nFeatures for which more than half of the customers scored lie outside the fit "
        "windows' values (share of customers), and those left out of the learnt models:"
    )
    print("\n| horizon | as-of | out of range | left out |")
    print("|---:|---|---|---|")
    for r in done:
        outside = r.get("out_of_range", {})
        shares = ", ".join(f"{k} {v:.0%}" for k, v in outside.items()) or "none"
        left_out = ", ".join(r.get("extrapolated_features", {})) or "none"
        print(f"| {r['horizon_days']} | {r['as_of_day']} | {shares} | {left_out} |")
    for r in done:
        for w in r["warnings"]:
            print(f"\nwarning at {r['as_of_day']} +{r['horizon_days']}d: {w}")


def grid_parser(description: str, results_path: Path, quick_grid: Any) -> argparse.ArgumentParser:
    """The options every real-data accuracy grid takes (this script's and its siblings')."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--windows", type=int, default=12, help="training cut-offs at most")
    parser.add_argument("--step-days", type=int, default=30, help="days between cut-offs")
    parser.add_argument("--families", default="xgboost,lightgbm,keras_ziln")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help=f"only {quick_grid}")
    parser.add_argument("--out", type=Path, default=results_path, help="JSON results")
    add_learnt_model_arguments(parser)
    return parser


def run_grid(
    name: str,
    transactions: pd.DataFrame,
    grid: tuple[tuple[str, int], ...],
    args: argparse.Namespace,
    *,
    describe: str = "",
) -> None:
    """Backtest every (as-of, horizon) of ``grid``; print the tables and write the JSON.

    ``name`` heads the output (the script's name); ``describe`` is a sentence about the data.
    Beside the JSON, ``<stem>_predictions.parquet`` keeps every run's per-customer predictions,
    for analyses that need more than the summary metrics (blends, deciles).
    """
    started = time.perf_counter()
    header = {
        "date": str(date.today()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "commit": git_revision(),
        "data": name,
        "transactions": len(transactions),
        "customers": int(transactions["customer_id"].nunique()),
        "windows": args.windows,
        "step_days": args.step_days,
        "families": args.families,
        "seed": args.seed,
        "trials": args.trials,
        "no_refit_final": args.no_refit_final,
        "max_extrapolated_share": args.max_extrapolated_share,
        "ziln_members": args.ziln_members,
        "ziln_sigma_cap": args.ziln_sigma_cap,
    }
    print(
        f"# {name} — {header['date']} — {header['machine']} — commit {header['commit']}\n\n"
        f"{describe}{header['transactions']:,} transactions, {header['customers']:,} customers, "
        f"{transactions['timestamp'].min():%Y-%m-%d}..{transactions['timestamp'].max():%Y-%m-%d}."
        f" At most {args.windows} training cut-offs "
        f"{args.step_days} days apart; families: {', '.join(args.families)}; seed {args.seed}."
        f"{describe_options(args)}"
    )
    predictions: list[pd.DataFrame] = []
    records = [run_one(transactions, day, horizon, args, predictions) for day, horizon in grid]
    print_tables(records)
    total = time.perf_counter() - started
    print(f"\nTotal: {total:.0f} s.")
    from clv.data.io import write_atomic, write_table

    if predictions:
        path = args.out.with_name(f"{args.out.stem}_predictions.parquet")
        write_table(pd.concat(predictions, ignore_index=True), path)
        logger.info("predictions: %s", path)
    text = json.dumps({**header, "total_seconds": total, "runs": records}, indent=2, default=float)
    write_atomic(args.out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    logger.info("raw results: %s", args.out)


def grid_main(
    name: str,
    doc: str,
    results_path: Path,
    grid: tuple[tuple[str, int], ...],
    quick_grid: tuple[tuple[str, int], ...],
    load: Callable[[argparse.Namespace], pd.DataFrame],
    *,
    describe: str,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """The command line of a real-data accuracy grid: parse the options, load the data, run.

    ``doc`` is the script's docstring (its first line describes the command), ``load`` reads the
    data from the parsed options and ``add_arguments`` adds the script's own options.
    """
    parser = grid_parser(doc.splitlines()[0], results_path, quick_grid)
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args()
    args.families = [f.strip() for f in args.families.split(",") if f.strip()]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    run_grid(name, load(args), quick_grid if args.quick else grid, args, describe=describe)


def main() -> None:
    grid_main(
        "cdnow_accuracy",
        __doc__,
        RESULTS_PATH,
        GRID,
        QUICK_GRID,
        lambda args: load_cdnow(),
        describe="CDNOW: ",
    )


if __name__ == "__main__":
    main()
