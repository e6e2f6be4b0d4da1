"""Benchmark: spend-prediction accuracy on UCI Online Retail, learnt models against BTYD.

The second real data set of the step 2 accuracy benchmark, beside CDNOW. CDNOW's customers were
all acquired in one quarter, so every customer scored is older than any the models learnt from;
here customers arrive every month (Chen, Sain & Guo 2012: a UK online retailer, mostly
wholesale buyers, 2010-12-01..2011-12-09). It spans one year only, and its spend rises by half
from September to November, a season no model here has seen before (the history starts in
December 2010).

Data: ``Online Retail.xlsx`` from https://archive.ics.uci.edu/dataset/352/online+retail
(CC BY 4.0), or the identical CC0 copy in the CRAN package ``onlineretail`` (``data/
onlineretail.rda``, 541,909 lines). Pass it with ``--data`` as CSV, Parquet or ``.xlsx`` (the
latter needs ``openpyxl``); nothing is committed. How lines become transactions (one per
customer invoice; cancellations as returns; lines without a customer dropped):
:func:`_data.load_online_retail`.

Protocol, targets, options and output: those of ``cdnow_accuracy.py`` (its
:func:`run_grid`), on the grid below; ``seed_spread.py`` summarises several seeds' JSON files.

Usage: python benchmarks/online_retail_accuracy.py --data PATH [--quick] [--seed 0] [--out PATH]
       [any option of cdnow_accuracy.py]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _data import CACHE_DIR, load_online_retail  # benchmarks/ is on sys.path
from cdnow_accuracy import grid_main

#: (as-of day, horizon in days): summer horizons, the autumn ramp, and the last 60 and 30 days
#: before the data end (2011-12-09). A 180-day horizon leaves no training window in one year.
GRID: tuple[tuple[str, int], ...] = (
    ("2011-05-31", 90),
    ("2011-06-30", 90),
    ("2011-08-31", 90),
    ("2011-09-30", 60),
    ("2011-10-31", 30),
)
QUICK_GRID: tuple[tuple[str, int], ...] = (("2011-06-30", 90), ("2011-08-31", 90))
RESULTS_PATH = CACHE_DIR / "online_retail_results.json"
DEFAULT_DATA = CACHE_DIR / "online_retail.parquet"


def _add_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="UCI Online Retail lines (CSV, Parquet or .xlsx); see the module docstring",
    )


def main() -> None:
    grid_main(
        "online_retail_accuracy",
        __doc__,
        RESULTS_PATH,
        GRID,
        QUICK_GRID,
        lambda args: load_online_retail(args.data),
        describe="UCI Online Retail, one transaction per customer invoice: ",
        add_arguments=_add_data_argument,
    )


if __name__ == "__main__":
    main()
