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
