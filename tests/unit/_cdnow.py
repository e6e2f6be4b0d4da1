"""The CDNOW sample of Fader, Hardie & Lee (2005), fetched for tests, never committed.

2,357 customers who first bought from CDNOW in the first quarter of 1997, observed for 39 weeks
(``T`` and ``recency`` in weeks). The data ship inside the ``lifetimes`` 0.11.3 wheel on PyPI, in
two files that describe the same customers in the same order:

- ``lifetimes/datasets/cdnow_customers_summary.csv``: ``ID, frequency, recency, T``;
- ``lifetimes/datasets/cdnow_customers_summary_with_transactions.csv``: ``ID, x, t_x, T, zbar``, the
  same three columns under the papers' names plus ``zbar``, the mean value of the repeat purchases
  (``lifetimes`` renames them ``frequency, recency, T, monetary_value``).

The wheel is downloaded once by :mod:`clv.data.datasets` into a git-ignored cache:
``$CLV_TEST_CACHE`` if set, else ``<repo>/.clv/test-cache``. ``lifetimes`` is never installed.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pandas as pd

from clv.data.datasets import CdnowUnavailableError, load_cdnow_summary

__all__ = ["CdnowUnavailableError", "cache_dir", "load_cdnow"]

_REPO_ROOT = Path(__file__).resolve().parents[2]
# Read when the test modules are collected: tests/conftest.py resets CLV_* settings while each
# test runs (it keeps CLV_TEST_CACHE, but reading it here too costs nothing).
_CACHE_AT_COLLECTION = os.environ.get("CLV_TEST_CACHE")


def cache_dir() -> Path:
    """Where downloaded test data live: ``$CLV_TEST_CACHE`` or ``<repo>/.clv/test-cache``."""
    configured = os.environ.get("CLV_TEST_CACHE") or _CACHE_AT_COLLECTION
    return Path(configured) if configured else _REPO_ROOT / ".clv" / "test-cache"


@functools.cache
def load_cdnow() -> pd.DataFrame:
    """The CDNOW sample (see :func:`clv.data.datasets.load_cdnow_summary`); cached, read-only.

    Tests that need it fail rather than skip when it cannot be downloaded: CI has PyPI access.
    """
    return load_cdnow_summary(cache_dir())
