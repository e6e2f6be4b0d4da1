"""Data for the accuracy benchmarks: CDNOW transactions and generated data with known truth.

CDNOW (Fader, Hardie & Lee 2005): every purchase of the 23,570 customers who first bought from
CDNOW in the first quarter of 1997, observed until 1998-06-30 (69,659 lines). The file ships in
the ``lifetimes`` 0.11.3 wheel on PyPI as ``lifetimes/datasets/CDNOW_master.txt``: a header line,
CRLF line ends, whitespace-separated columns customer id (leading zeros), ``yyyymmdd`` date,
number of CDs and dollar value. :mod:`clv.data.datasets` downloads the wheel once with pip into
the git-ignored ``benchmarks/.cache/``; ``lifetimes`` itself is never installed or imported.

The file has 255 lines that repeat another line exactly (same customer, day and dollars: two
identical purchases on one day). The data contract rejects exact duplicate rows and asks for
distinct ``order_id`` values in that case, so each line gets ``order_id`` = its line number in the
file (``L00002`` is the first data line). No feature reads ``order_id``; spend is unchanged.
"""

from __future__ import annotations

import logging
import os
import subprocess
from datetime import date
from pathlib import Path

import pandas as pd

from clv.data import datasets
from clv.data.validation import validate_frame

logger = logging.getLogger(__name__)

CACHE_DIR = Path(__file__).resolve().parent / ".cache"


def lifetimes_wheel(cache_dir: Path = CACHE_DIR) -> Path:
    """The ``lifetimes`` wheel (it carries CDNOW) in the benchmarks' cache, fetched on first use."""
    return datasets.lifetimes_wheel(cache_dir)


def load_cdnow(cache_dir: Path = CACHE_DIR) -> pd.DataFrame:
    """The CDNOW transactions, validated by the platform's gate (see clv.data.datasets)."""
    return datasets.load_cdnow_transactions(cache_dir)


def load_complete_journey(cache_dir: Path = CACHE_DIR) -> pd.DataFrame:
    """dunnhumby's Complete Journey (2017), validated (see clv.data.datasets)."""
    return datasets.load_complete_journey_transactions(cache_dir)


def generated_history(
    n_customers: int, *, seed: int, end: date, horizon_days: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Generated data whose transactions run to ``end + horizon_days``, and the truth.

    The generator keeps the window after ``end`` apart (``future_transactions``); a backtest needs
    one history, so both tables are concatenated and validated.

    Returns
    -------
    tuple of DataFrame
        ``(transactions, customers, sustainability, truth)``: the first three validated by the
        platform's gate, the truth indexed by ``customer_id``.
    """
    import pyarrow as pa

    from clv.data.generator import GeneratorConfig, generate

    config = GeneratorConfig(n_customers=n_customers, end=end, horizon_days=horizon_days)
    data = generate(config, seed=seed)
    history = pa.concat_tables([data.transactions, data.future_transactions]).to_pandas()
    transactions = validate_frame(history, "transactions", source="generated transactions")
    customers = validate_frame(data.frame("customers"), "customers", source="generated customers")
    sustainability = validate_frame(
        data.frame("sustainability"), "sustainability", source="generated sustainability"
    )
    truth = data.frame("truth").set_index("customer_id")
    return transactions, customers, sustainability, truth


def git_revision() -> str:
    """The commit the benchmark ran on, and the uncommitted files outside ``benchmarks/``/``docs/``.

    Other people edit the library while benchmarks run, so a result names exactly what it ran.
    From an export without ``.git`` (``git archive HEAD``), set ``CLV_BENCH_REVISION`` to the
    exported commit.
    """
    exported = os.environ.get("CLV_BENCH_REVISION")
    if exported:
        return f"{exported} (clean export)"
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=False
        ).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip() or "unknown"
        changed = [
            line[3:]
            for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
            if not line[3:].startswith(("benchmarks/", "docs/"))
        ]
    except OSError:
        return "unknown"
    return commit + (f" (uncommitted: {', '.join(changed)})" if changed else "")


#: Columns of the UCI Online Retail file (Chen, Sain & Guo 2012), named as UCI names them.
ONLINE_RETAIL_COLUMNS = ("InvoiceNo", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID")


def load_online_retail(path: Path) -> pd.DataFrame:
    """UCI Online Retail as the platform's transactions: one row per customer invoice.

    The file (CSV, Parquet, or UCI's ``.xlsx``, which needs ``openpyxl``) has one line per
    product of an invoice. Lines without a ``CustomerID`` (guest checkouts, bad-debt
    adjustments) are dropped: they belong to no customer. Each remaining invoice becomes one
    transaction: ``order_id`` = ``InvoiceNo``, ``timestamp`` = its ``InvoiceDate``, ``amount`` =
    the sum of ``Quantity × UnitPrice`` over its lines and ``quantity`` the sum of its items.
    Cancellations (``InvoiceNo`` starting with ``C``, negative quantities) stay, as negative
    amounts: the contract's returns, which never count as purchases and lower net spend (the
    target is net spend, floored at 0). Invoices whose lines sum to exactly 0 are dropped (free
    samples and manual corrections, not purchases).

    Raises
    ------
    SystemExit
        The file is missing or lacks one of :data:`ONLINE_RETAIL_COLUMNS` (the message says which).
    """
    path = Path(path)
    if not path.is_file():
        raise SystemExit(
            f"{path}: no such file. Download 'Online Retail.xlsx' from "
            "https://archive.ics.uci.edu/dataset/352/online+retail (CC BY 4.0) or take the CC0 "
            "copy in the CRAN package 'onlineretail', and pass it with --data (CSV, Parquet or "
            ".xlsx with openpyxl installed)"
        )
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        raw = pd.read_parquet(path)
    elif suffix in (".xlsx", ".xls"):
        raw = pd.read_excel(path, dtype={"InvoiceNo": str, "StockCode": str})
    else:
        raw = pd.read_csv(
            path, dtype={"InvoiceNo": str, "StockCode": str}, encoding_errors="replace"
        )
    missing = [c for c in ONLINE_RETAIL_COLUMNS if c not in raw.columns]
    if missing:
        raise SystemExit(
            f"{path}: missing columns {missing}; expected UCI Online Retail's "
            f"{', '.join(ONLINE_RETAIL_COLUMNS)}"
        )
    lines = raw.dropna(subset=["CustomerID"])
    customer = pd.to_numeric(lines["CustomerID"], errors="raise").astype("int64").astype(str)
    lines = pd.DataFrame(
        {
            "order_id": lines["InvoiceNo"].astype(str).str.strip(),
            "customer_id": customer,
            "timestamp": pd.to_datetime(lines["InvoiceDate"]),
            "amount": lines["Quantity"].astype(float) * lines["UnitPrice"].astype(float),
            "quantity": lines["Quantity"].astype("int64"),
        }
    )
    invoices = (
        lines.groupby(["order_id", "customer_id"], sort=True)
        .agg(timestamp=("timestamp", "min"), amount=("amount", "sum"), quantity=("quantity", "sum"))
        .reset_index()
    )
    invoices["amount"] = invoices["amount"].round(2)
    invoices = invoices[invoices["amount"] != 0.0]
    invoices = invoices[["customer_id", "timestamp", "amount", "order_id", "quantity"]]
    logger.info(
        "%s: %d lines, %d with a customer, %d invoices (%d cancellations)",
        path.name,
        len(raw),
        len(lines),
        len(invoices),
        int((invoices["amount"] < 0).sum()),
    )
    return validate_frame(
        invoices.sort_values(["timestamp", "order_id"]).reset_index(drop=True),
        "transactions",
        source=str(path),
    )
