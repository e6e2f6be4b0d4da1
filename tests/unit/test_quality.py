"""The data-quality report of ``make data-quality``: one Evidently summary per table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from clv.data.generator import SyntheticData
from monitoring.quality import data_quality_report, main


def test_each_table_gets_a_report_naming_its_columns(
    small_data: SyntheticData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    transactions = tmp_path / "transactions.parquet"
    small_data.frame("transactions").to_parquet(transactions)
    customers = tmp_path / "customers.csv"
    small_data.frame("customers").to_csv(customers, index=False)

    assert main(["--out", str(tmp_path / "reports"), str(transactions), str(customers)]) == 0

    printed = capsys.readouterr().out.splitlines()
    reports = [
        tmp_path / "reports" / "quality-transactions.html",
        tmp_path / "reports" / "quality-customers.html",
    ]
    assert [line.rsplit(": ", 1)[1] for line in printed] == [str(p) for p in reports]
    assert f"{len(small_data.frame('transactions')):,} rows" in printed[0]
    assert "amount" in reports[0].read_text(encoding="utf-8")


def test_an_unreadable_table_is_named_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.parquet"
    assert main(["--out", str(tmp_path), str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
    assert not list(tmp_path.glob("*.html"))


def test_an_empty_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"quality-x\.html: the table is empty"):
        data_quality_report(pd.DataFrame({"a": []}), tmp_path / "quality-x.html")
