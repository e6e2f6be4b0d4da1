"""Benchmark: spend-prediction accuracy on generated data, where the truth is known.

Targets (issue: modelling core, step 2, generated data): decile MAPE <= 0.15, top-20% precision
>= 0.85, and 80% prediction intervals covering 75-85% of customers.

Protocol: the generator simulates the window after its observation end (``future_transactions``);
it is appended to the observed transactions to make one validated history, and
:func:`clv.evaluation.backtest.backtest` trains on windows before ``end`` and scores
``(end, end + 90 days]``. Besides the backtest's own models and references, the ORACLE is scored:
the truth's ``expected_spend_90d``, each customer's expected spend given their latent parameters
and whether they are still alive. It knows what no model can observe (the latent parameters), so
it is a bound, not a goal; its scores against realised spend show how much of a target the noise
of a single 90-day window allows.

Every model is scored twice: against realised spend (the backtest's ``actual``) and against the
oracle expectation (e.g. precision of the predicted top 20% against the true expected-value top
20%). Only customers with a purchase on or before the as-of are scored (the backtest's customers).

The optional customers and sustainability tables are passed too, without ``carbon_saved_kg``:
the generator computes it over the whole observed period, so at the earlier training cut-offs it
would carry eco purchases made inside the training targets' windows (a leak into training).
``--transactions-only`` drops both tables.

The learnt-model options of ``cdnow_accuracy.py`` (``--exclude-features``, ``--age-ratio``,
``--tune-trials``, ``--tune-families``) apply here too, so a change can be measured on both.

Usage: python benchmarks/generated_accuracy.py [--customers 20000] [--seed 1] [--model-seed 0]
       [--windows 12] [--step-days 30] [--families ...]
       [--exclude-features T,days_since_signup] [--age-ratio] [--tune-trials 10]
       [--tune-families xgboost,lightgbm]
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
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from _data import CACHE_DIR, generated_history, git_revision  # benchmarks/ is on sys.path
from cdnow_accuracy import (
    add_learnt_model_arguments,
    bgnbd_no_purchase_probability,
    describe_options,
    end_of_day,
    learnt_model_options,
)

logger = logging.getLogger("generated_accuracy")

END = date(2025, 9, 30)
HORIZON_DAYS = 90
ORACLE = "oracle_expected_spend"
MAX_DECILE_MAPE = 0.15
MIN_TOP20_PRECISION = 0.85
COVERAGE_BAND = (0.75, 0.85)
RESULTS_PATH = CACHE_DIR / "generated_results.json"


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "–" if value is None or math.isnan(value) else format(value, spec)


def _mark(met: bool | None) -> str:
    return "" if met is None else (" ✓" if met else " ✗")


def score(
    predictions: pd.DataFrame, expected: pd.Series, models: list[str]
) -> dict[str, dict[str, Any]]:
    """Every model against realised spend and against the oracle expectation.

    Returns
    -------
    dict
        ``{model: {"realised": report, "expected": report, "decile_ratio_realised": [...],
        "decile_ratio_expected": [...], "warnings": [...]}}``: the reports are
        :func:`clv.evaluation.metrics.regression_report`; the realised one carries
        ``interval_coverage`` (and ``interval_coverage_buyers``, among customers who bought) for
        models with intervals; the decile ratios are predicted over true total per decile of
        prediction (1 = lowest).
    """
    from clv.evaluation.metrics import decile_table, interval_coverage, regression_report

    actual = predictions["actual"]
    out: dict[str, dict[str, Any]] = {}
    for name in models:
        pred = expected if name == ORACLE else predictions[name]
        lower = predictions.get(f"{name}_lower")
        upper = predictions.get(f"{name}_upper")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            realised = regression_report(actual, pred, lower, upper)
            against_expected = regression_report(expected, pred)
        if lower is not None and upper is not None:
            bought = (actual > 0).to_numpy()
            realised["interval_coverage_buyers"] = interval_coverage(
                actual[bought], lower[bought], upper[bought]
            )
        ratios = {}
        for label, truth in (("realised", actual), ("expected", expected)):
            table = decile_table(truth, pred)
            ratios[label] = table["sum_pred"] / table["sum_true"].where(table["sum_true"] != 0)
        out[name] = {
            "realised": realised,
            "expected": against_expected,
            "decile_ratio_realised": ratios["realised"].tolist(),
            "decile_ratio_expected": ratios["expected"].tolist(),
            "warnings": sorted({f"{w.category.__name__}: {w.message}" for w in caught}),
        }
    return out


def main() -> None:
    from clv.evaluation.backtest import backtest
    from clv.evaluation.metrics import churn_report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    parser.add_argument("--model-seed", type=int, default=0, help="seed of the learnt models")
    parser.add_argument("--windows", type=int, default=12, help="training cut-offs at most")
    parser.add_argument("--step-days", type=int, default=30, help="days between cut-offs")
    parser.add_argument("--families", default="xgboost,lightgbm,keras_ziln")
    parser.add_argument("--transactions-only", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS_PATH, help="JSON results")
    add_learnt_model_arguments(parser)
    args = parser.parse_args()
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    args.families = families
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    started = time.perf_counter()
    logger.info("generating %d customers", args.customers)
    transactions, customers, sustainability, truth = generated_history(
        args.customers, seed=args.seed, end=END, horizon_days=HORIZON_DAYS
    )
    optional: dict[str, Any] = {}
    if not args.transactions_only:
        optional = {
            "customers": customers,
            "sustainability": sustainability.drop(columns=["carbon_saved_kg"]),
        }
    as_of = end_of_day(END.isoformat())
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(
        f"# generated_accuracy — {date.today()} — {machine} — commit {git_revision()}\n\n"
        f"Generator: {args.customers:,} customers, seed {args.seed} (models: seed "
        f"{args.model_seed}), 2023-01-01..{END}, "
        f"{len(transactions):,} transactions including the {HORIZON_DAYS}-day future window. "
        f"Backtest as of {END}, horizon {HORIZON_DAYS} days, "
        f"at most {args.windows} training cut-offs {args.step_days} days apart, families "
        f"{', '.join(families)}, tables: "
        + ("transactions only" if args.transactions_only else "all (without carbon_saved_kg)")
        + "."
        + describe_options(args)
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = backtest(
            transactions,
            horizon_days=HORIZON_DAYS,
            as_of=as_of,
            n_windows=args.windows,
            step_days=args.step_days,
            families=families,
            seed=args.model_seed,
            progress=lambda message: logger.info("backtest: %s", message),
            **learnt_model_options(args),
            **optional,
        )
        seconds = time.perf_counter() - t0
    warned = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    predictions = result.predictions
    expected = truth[f"expected_spend_{HORIZON_DAYS}d"].reindex(predictions.index)
    if expected.isna().any():
        raise RuntimeError(f"{int(expected.isna().sum())} scored customers lack a truth row")
    models = [*result.metrics, ORACLE]
    scores = score(predictions, expected, models)
    quiet = bgnbd_no_purchase_probability(
        transactions, as_of=as_of, horizon_days=HORIZON_DAYS
    ).reindex(predictions.index)
    result.churn_metrics["bgnbd_p_no_purchase_in_horizon"] = churn_report(
        predictions["churned"], quiet
    )

    # The backtest's realised metrics and ours must agree: same function, same inputs.
    for name, reported in result.metrics.items():
        ours = scores[name]["realised"]["normalized_gini"]
        if not math.isclose(reported["normalized_gini"], ours, rel_tol=1e-9, abs_tol=1e-12):
            raise RuntimeError(f"{name}: Gini {ours} here but {reported['normalized_gini']}")

    n_scored = len(predictions)
    print(
        f"\n{n_scored:,} customers scored ({args.customers - n_scored:,} of the generated ones "
        f"had no purchase by {END}); {int((predictions['actual'] > 0).sum()):,} bought in the "
        f"horizon; realised spend {predictions['actual'].sum():,.0f}, oracle expectation "
        f"{expected.sum():,.0f}. Training cut-offs: "
        + ", ".join(f"{c:%Y-%m-%d}" for c in result.train_cutoffs)
        + f" ({result.n_train_rows:,} rows). Backtest {seconds:.0f} s."
    )
    print(
        "\n| model | Gini | decile MAPE | aggregate error | top-20% precision | 80% coverage "
        "| coverage, buyers | Gini vs E | decile MAPE vs E | aggregate error vs E "
        "| top-20% precision vs E |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    order = sorted(models, key=lambda m: -scores[m]["realised"]["normalized_gini"])
    for name in order:
        r, e = scores[name]["realised"], scores[name]["expected"]
        print(
            f"| {name} | {_fmt(r['normalized_gini'])} | {_fmt(r['decile_mape'])} | "
            f"{_fmt(r['aggregate_error'], '+.4f')} | {_fmt(r['top20_precision'])} | "
            f"{_fmt(r.get('interval_coverage'), '.3f')} | "
            f"{_fmt(r.get('interval_coverage_buyers'), '.3f')} | "
            f"{_fmt(e['normalized_gini'])} | {_fmt(e['decile_mape'])} | "
            f"{_fmt(e['aggregate_error'], '+.4f')} | {_fmt(e['top20_precision'])} |"
        )

    low, high = COVERAGE_BAND
    print(
        f"\nTargets: decile MAPE <= {MAX_DECILE_MAPE}, top-20% precision >= "
        f"{MIN_TOP20_PRECISION}, 80% interval coverage in [{low}, {high}]; "
        "against realised spend / against the oracle expectation (E)."
    )
    print(
        "\n| model | decile MAPE (realised) | decile MAPE (E) | top-20% precision (realised) "
        "| top-20% precision (E) | coverage (realised) |"
    )
    print("|---|---|---|---|---|---|")
    verdicts: dict[str, dict[str, bool | None]] = {}
    for name in order:
        r, e = scores[name]["realised"], scores[name]["expected"]
        coverage = r.get("interval_coverage")
        v: dict[str, bool | None] = {
            "decile_mape_realised": r["decile_mape"] <= MAX_DECILE_MAPE,
            "decile_mape_expected": e["decile_mape"] <= MAX_DECILE_MAPE,
            "top20_realised": r["top20_precision"] >= MIN_TOP20_PRECISION,
            "top20_expected": e["top20_precision"] >= MIN_TOP20_PRECISION,
            "coverage_realised": None if coverage is None else bool(low <= coverage <= high),
        }
        verdicts[name] = v
        print(
            f"| {name} | {_fmt(r['decile_mape'])}{_mark(v['decile_mape_realised'])} | "
            f"{_fmt(e['decile_mape'])}{_mark(v['decile_mape_expected'])} | "
            f"{_fmt(r['top20_precision'])}{_mark(v['top20_realised'])} | "
            f"{_fmt(e['top20_precision'])}{_mark(v['top20_expected'])} | "
            f"{_fmt(coverage, '.3f')}{_mark(v['coverage_realised'])} |"
        )

    print(
        "\nPredicted over true total per decile of prediction (1 = lowest; – where the true "
        "total is 0): where the decile MAPE comes from."
    )
    print("\n| model | against | " + " | ".join(f"d{i}" for i in range(1, 11)) + " |")
    print("|---|---|" + "---:|" * 10)
    for name in order:
        for label in ("realised", "expected"):
            ratios = scores[name][f"decile_ratio_{label}"]
            cells = " | ".join(_fmt(x, ".2f") for x in ratios)
            print(f"| {name} | {'E' if label == 'expected' else label} | {cells} |")

    print("\nChurn = no purchase in the horizon.")
    print("\n| model | AUC | Brier | calibration error | base rate |")
    print("|---|---:|---:|---:|---:|")
    for name, m in result.churn_metrics.items():
        print(
            f"| {name} | {_fmt(m['auc'])} | {_fmt(m['brier'])} | "
            f"{_fmt(m['calibration_error'])} | {_fmt(m['base_rate'])} |"
        )
    weights = ", ".join(f"{k} {v:.3f}" for k, v in result.ensemble_weights.items()) or "–"
    timings = ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items())
    print(f"\nEnsemble weights: {weights}. Seconds: {timings}.")
    outside = ", ".join(f"{k} {v:.0%}" for k, v in result.out_of_range.items())
    left_out = ", ".join(result.extrapolated_features)
    print(f"Out of the fit windows' range: {outside or 'none'}; left out: {left_out or 'none'}.")
    for w in warned:
        print(f"\nwarning in the backtest: {w}")
    for name in order:
        for w in scores[name]["warnings"]:
            print(f"\nwarning scoring {name} (realised or E): {w}")
    total = time.perf_counter() - started
    print(f"\nTotal: {total:.0f} s.")

    payload: dict[str, Any] = {
        "date": str(date.today()),
        "machine": machine,
        "commit": git_revision(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "backtest": result.to_dict(),
        "scores": scores,
        "verdicts": verdicts,
        "oracle_total": float(expected.sum()),
        "warnings": warned,
        "total_seconds": total,
    }
    from clv.data.io import write_atomic, write_table

    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_table(
        predictions.assign(**{ORACLE: expected}).reset_index(),
        args.out.with_name(f"{args.out.stem}_predictions.parquet"),
    )
    text = json.dumps(payload, indent=2, default=float)
    write_atomic(args.out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    logger.info("raw results: %s", args.out)


if __name__ == "__main__":
    main()
