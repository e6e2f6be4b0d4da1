"""Public reference data: the CDNOW purchases used throughout the CLV literature.

CDNOW ships inside the ``lifetimes`` 0.11.3 wheel on PyPI (the archived reference implementation
of BG/NBD + Gamma-Gamma). This module downloads that wheel once with pip (``--no-deps``: nothing is
installed) into a cache folder and reads the data straight from the zip archive:

* :func:`load_cdnow_transactions`: ``CDNOW_master.txt``, 69,659 purchases by 23,570 customers who
  first bought in the first quarter of 1997, observed until June 1998; validated by the contract;
* :func:`load_cdnow_summary`: the 2,357-customer sample of Fader, Hardie & Lee (2005) summarised
  over a 39-week calibration period (weeks), the data of the papers' published parameters.

The data are never committed to this repository.
"""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd

logger = logging.getLogger(__name__)

LIFETIMES_VERSION = "0.11.3"
TRANSACTIONS_MEMBER = "lifetimes/datasets/CDNOW_master.txt"
SUMMARY_MEMBER = "lifetimes/datasets/cdnow_customers_summary_with_transactions.csv"
CDNOW_CUSTOMERS = 23_570
CDNOW_LINES = 69_659


class CdnowUnavailableError(RuntimeError):
    """The CDNOW data could not be fetched, or do not look as documented."""


def default_cache_dir() -> Path:
    """``$CLV_HOME/datasets``."""
    from clv.settings import get_settings

    return get_settings().home / "datasets"


def _find_wheel(directory: Path) -> Path | None:
    # PyPI names the file ``Lifetimes-0.11.3-py3-none-any.whl`` (capital L).
    for path in sorted(directory.glob("*.whl")):
        if path.name.lower().startswith(f"lifetimes-{LIFETIMES_VERSION}-"):
            return path
    return None


def lifetimes_wheel(cache_dir: Path | None = None) -> Path:
    """The ``lifetimes`` wheel in ``cache_dir``, downloaded with pip on first use.

    Raises
    ------
    CdnowUnavailableError
        When pip cannot download it; the message carries pip's own output and what to do.
    """
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
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
    logger.info("downloading the CDNOW data: %s", " ".join(command))
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=300, check=False
        )
        output = completed.stdout + completed.stderr
        failed = completed.returncode != 0
    except (OSError, subprocess.TimeoutExpired) as error:
        output, failed = str(error), True
    wheel = _find_wheel(directory)
    if failed or wheel is None:
        raise CdnowUnavailableError(
            f"could not download lifetimes=={LIFETIMES_VERSION}, which carries the CDNOW data. "
            f"Ran:\n  {' '.join(command)}\n{output.strip()}\n"
            f"Fix access to PyPI, or put the wheel in {directory}."
        )
    return wheel


def _read_member(wheel: Path, member: str) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(member)
    except (KeyError, zipfile.BadZipFile) as error:
        raise CdnowUnavailableError(f"{wheel} does not hold {member}: {error}") from error


def parse_cdnow(raw: bytes) -> pd.DataFrame:
    """``CDNOW_master.txt`` bytes as an unvalidated transactions frame.

    The file has a header line and whitespace-separated columns: customer id (with leading
    zeros), date (``yyyymmdd``), number of CDs and dollars.

    Returns
    -------
    DataFrame
        ``customer_id`` (string), ``timestamp`` (midnight of the day), ``amount`` (dollars) and
        ``order_id`` (``L`` + the line number). 255 lines repeat another line exactly (two
        identical purchases on one day); the line number keeps them distinct, as the data
        contract asks of real duplicates.
    """
    frame = pd.read_csv(
        io.BytesIO(raw),
        sep=r"\s+",
        skiprows=1,
        header=None,
        names=["customer_id", "date", "cds", "amount"],
        dtype={"customer_id": str, "date": str, "cds": "int64", "amount": "float64"},
    )
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"],
            "timestamp": pd.to_datetime(frame["date"], format="%Y%m%d"),
            "amount": frame["amount"],
            "order_id": [f"L{line:05d}" for line in range(2, len(frame) + 2)],
        }
    )


def load_cdnow_transactions(cache_dir: Path | None = None) -> pd.DataFrame:
    """The CDNOW purchases, validated by the data contract.

    Raises
    ------
    CdnowUnavailableError
        When the data cannot be fetched or do not have the documented size.
    clv.data.validation.ContractError
        When the parsed frame breaks the data contract.
    """
    from clv.data.validation import validate_frame

    frame = parse_cdnow(_read_member(lifetimes_wheel(cache_dir), TRANSACTIONS_MEMBER))
    customers = frame["customer_id"].nunique()
    if len(frame) != CDNOW_LINES or customers != CDNOW_CUSTOMERS:
        raise CdnowUnavailableError(
            f"{TRANSACTIONS_MEMBER}: {len(frame):,} lines and {customers:,} customers, expected "
            f"{CDNOW_LINES:,} and {CDNOW_CUSTOMERS:,}"
        )
    return validate_frame(frame, "transactions", source=TRANSACTIONS_MEMBER)


def load_cdnow_summary(cache_dir: Path | None = None) -> pd.DataFrame:
    """The 2,357-customer CDNOW sample summarised over 39 weeks, one row per customer.

    Returns
    -------
    DataFrame
        Indexed by ``customer_id``; ``frequency`` (repeat purchases), ``recency`` and ``T``
        (weeks) and ``monetary_value`` (mean value of the repeat purchases, 0 without any).
    """
    frame = pd.read_csv(io.BytesIO(_read_member(lifetimes_wheel(cache_dir), SUMMARY_MEMBER)))
    expected = ["ID", "x", "t_x", "T", "zbar"]
    if list(frame.columns) != expected:
        raise CdnowUnavailableError(
            f"{SUMMARY_MEMBER} has columns {list(frame.columns)}, not {expected}"
        )
    frame.columns = pd.Index(["customer_id", "frequency", "recency", "T", "monetary_value"])
    return frame.set_index("customer_id")
