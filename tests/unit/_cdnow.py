"""The CDNOW sample of Fader, Hardie & Lee (2005), fetched for tests, never committed.

2,357 customers who first bought from CDNOW in the first quarter of 1997, observed for 39 weeks
(``T`` and ``recency`` in weeks). The data ship inside the ``lifetimes`` 0.11.3 wheel on PyPI, in
two files that describe the same customers in the same order:

- ``lifetimes/datasets/cdnow_customers_summary.csv``: ``ID, frequency, recency, T``;
- ``lifetimes/datasets/cdnow_customers_summary_with_transactions.csv``: ``ID, x, t_x, T, zbar``, the
  same three columns under the papers' names plus ``zbar``, the mean value of the repeat purchases
  (``lifetimes`` renames them ``frequency, recency, T, monetary_value``).

The wheel is downloaded once with pip into a git-ignored cache: ``$CLV_TEST_CACHE`` if set, else
``<repo>/.clv/test-cache``. ``lifetimes`` itself is never installed or imported.
"""

from __future__ import annotations

import functools
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd

LIFETIMES_VERSION = "0.11.3"
_MEMBER = "lifetimes/datasets/cdnow_customers_summary_with_transactions.csv"
_REPO_ROOT = Path(__file__).resolve().parents[2]
# Read when the test modules are collected: tests/conftest.py removes every CLV_* variable from
# the environment while each test runs, so reading it only then would always miss it.
_CACHE_AT_COLLECTION = os.environ.get("CLV_TEST_CACHE")


class CdnowUnavailableError(RuntimeError):
    """The CDNOW sample could not be fetched (no access to PyPI, or an unexpected wheel)."""


def cache_dir() -> Path:
    """Where downloaded test data live: ``$CLV_TEST_CACHE`` or ``<repo>/.clv/test-cache``."""
    configured = os.environ.get("CLV_TEST_CACHE") or _CACHE_AT_COLLECTION
    return Path(configured) if configured else _REPO_ROOT / ".clv" / "test-cache"


def _find_wheel(directory: Path) -> Path | None:
    # PyPI names the file ``Lifetimes-0.11.3-py3-none-any.whl`` (capital L).
    for path in sorted(directory.glob("*.whl")):
        if path.name.lower().startswith(f"lifetimes-{LIFETIMES_VERSION}-"):
            return path
    return None


def lifetimes_wheel() -> Path:
    """Path of the ``lifetimes`` wheel in the cache, downloading it on first use.

    Raises
    ------
    CdnowUnavailableError
        If pip cannot download it; the message carries pip's own output.
    """
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    wheel = _find_wheel(directory)
    if wheel is not None:
        return wheel
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        f"lifetimes=={LIFETIMES_VERSION}",
        "-d",
        str(directory),
    ]
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=300, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise CdnowUnavailableError(_explain(command, str(error))) from error
    wheel = _find_wheel(directory)
    if completed.returncode != 0 or wheel is None:
        raise CdnowUnavailableError(_explain(command, completed.stdout + completed.stderr))
    return wheel


def _explain(command: list[str], output: str) -> str:
    return (
        f"The CDNOW test data come from the lifetimes {LIFETIMES_VERSION} wheel on PyPI, and "
        f"downloading it failed. Tests that need it fail rather than skip. Ran:\n  "
        f"{' '.join(command)}\n{output.strip()}\n"
        f"Fix network access to PyPI, or put the wheel in {cache_dir()} (or set CLV_TEST_CACHE)."
    )


@functools.cache
def load_cdnow() -> pd.DataFrame:
    """The CDNOW sample: one row per customer, indexed by ``customer_id``.

    Returns
    -------
    DataFrame
        Columns ``frequency`` (repeat purchases), ``recency`` and ``T`` (weeks) and
        ``monetary_value`` (mean value of the repeat purchases, 0 when there are none).
        Cached: treat it as read-only.
    """
    wheel = lifetimes_wheel()
    try:
        with zipfile.ZipFile(wheel) as archive:
            raw = archive.read(_MEMBER)
    except (KeyError, zipfile.BadZipFile) as error:
        raise CdnowUnavailableError(f"{wheel} does not hold {_MEMBER}: {error}") from error
    frame = pd.read_csv(io.BytesIO(raw))
    expected = ["ID", "x", "t_x", "T", "zbar"]
    if list(frame.columns) != expected:
        raise CdnowUnavailableError(f"{_MEMBER} has columns {list(frame.columns)}, not {expected}")
    frame.columns = pd.Index(["customer_id", "frequency", "recency", "T", "monetary_value"])
    return frame.set_index("customer_id")
