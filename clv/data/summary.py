"""Summary figures of a data folder (as written by ``clv generate``), for people."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def _find(folder: Path, name: str) -> Path | None:
    for suffix in (".parquet", ".csv"):
        path = folder / f"{name}{suffix}"
        if path.exists():
            return path
    return None


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    frame = pd.read_csv(path, dtype={"customer_id": str})
    if "timestamp" in frame:
        frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    return frame


def summarise_transactions(transactions: pd.DataFrame) -> list[tuple[str, str]]:
    """Headline figures of a validated transactions table.

    Returns
    -------
    list of (str, str)
        Measure name and formatted value, in display order.
    """
    amount = transactions["amount"]
    sales = amount[amount > 0]
    returns = amount[amount < 0]
    rows: list[tuple[str, str]] = [
        ("customers with transactions", f"{transactions['customer_id'].nunique():,}"),
        ("transactions", f"{len(transactions):,}"),
        (
            "period",
            f"{transactions['timestamp'].min():%Y-%m-%d} to "
            f"{transactions['timestamp'].max():%Y-%m-%d}",
        ),
        ("gross sales", f"{sales.sum():,.2f}"),
        ("returns (share of gross)", f"{-returns.sum():,.2f} ({-returns.sum() / sales.sum():.1%})"),
        ("mean order value", f"{sales.mean():,.2f}"),
        (
            "orders per customer",
            f"{len(sales) / max(transactions['customer_id'].nunique(), 1):.2f}",
        ),
    ]
    if "is_eco_product" in transactions:
        eco = transactions.loc[amount > 0, "is_eco_product"].astype(bool)
        rows.append(("eco share of sales", f"{sales[eco].sum() / sales.sum():.1%}"))
    if "channel" in transactions:
        mix = transactions["channel"].value_counts(normalize=True)
        rows.append(("channel mix", ", ".join(f"{k} {v:.0%}" for k, v in mix.items())))
    return rows


def summarise_folder(folder: Path) -> list[tuple[str, str]]:
    """Headline figures of the tables in ``folder`` (transactions required, truth optional).

    Raises
    ------
    FileNotFoundError
        When the folder has no transactions file.
    """
    folder = Path(folder)
    tx_path = _find(folder, "transactions")
    if tx_path is None:
        raise FileNotFoundError(f"{folder}: no transactions.parquet or transactions.csv here")
    rows = summarise_transactions(_read(tx_path))
    truth_path = _find(folder, "truth")
    if truth_path is not None:
        truth = _read(truth_path)
        rows.append(("alive at end (truth)", f"{truth['alive_at_end'].mean():.1%}"))
        for seg, share in truth["segment"].value_counts(normalize=True).items():
            rows.append((f"segment {seg} (truth)", f"{share:.1%}"))
        for col in truth.columns:
            if col.startswith(("expected_spend_", "actual_spend_")):
                rows.append((f"{col} total (truth)", f"{truth[col].sum():,.2f}"))
    return rows
