"""Real exports: duplicate rows, dates in the future and the file's own column names."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

from clv.data.io import read_table
from clv.data.validation import ContractError, DataWarning, validate_file, validate_frame

NOW = pd.Timestamp("2026-06-30 12:00")
ROWS = "001,2024-01-05,12.50\n002,2024-01-06,3\n001,2024-01-05,12.50\n001,2024-01-05,12.50\n"


def _write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_exact_duplicates_without_order_id_are_kept_with_a_warning(tmp_path: Path) -> None:
    path = _write(tmp_path, "customer_id,timestamp,amount\n" + ROWS)
    report = validate_file(path, now=NOW)
    assert report.ok and report.frame is not None
    assert len(report.frame) == 4
    assert report.warnings == [
        "t.csv: 2 row(s) exactly repeat an earlier row and have no order_id: line 4 (= line 2), "
        "line 5 (= line 2); kept as separate purchases (--on-duplicate drop removes them, "
        "--on-duplicate error refuses the file)"
    ]


def test_on_duplicate_drop_keeps_the_first_of_each_repeat(tmp_path: Path) -> None:
    path = _write(tmp_path, "customer_id,timestamp,amount\n" + ROWS)
    with pytest.warns(DataWarning, match="2 row\\(s\\) exactly repeat.*dropped"):
        frame = read_table(path, on_duplicate="drop")
    assert frame["customer_id"].tolist() == ["001", "002"]


def test_on_duplicate_error_refuses_each_repeat_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "customer_id,timestamp,amount\n" + ROWS)
    report = validate_file(path, on_duplicate="error", now=NOW)
    assert [p.row for p in report.problems] == [4, 5]
    assert "--on-duplicate warn" in str(report.problems[0])


def test_a_repeated_order_line_is_an_error_whatever_on_duplicate_says(tmp_path: Path) -> None:
    text = "customer_id,timestamp,amount,order_id\n001,2024-01-05,12.5,A\n001,2024-01-05,12.5,A\n"
    for choice in ("warn", "drop"):
        report = validate_file(_write(tmp_path, text), on_duplicate=choice, now=NOW)
        assert not report.ok
        assert "the same order line twice" in str(report.problems[0])


def test_order_lines_sharing_an_order_id_are_fine(tmp_path: Path) -> None:
    text = "customer_id,timestamp,amount,order_id\n001,2024-01-05,12.5,A\n001,2024-01-05,3,A\n"
    report = validate_file(_write(tmp_path, text), now=NOW)
    assert report.ok and not report.warnings


def test_an_unknown_on_duplicate_choice_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "customer_id,timestamp,amount\n" + ROWS)
    with pytest.raises(ValueError, match="on_duplicate must be one of warn, error, drop"):
        validate_file(path, on_duplicate="keep")  # type: ignore[arg-type]


def test_dates_after_the_present_are_refused_beyond_the_tolerance(tmp_path: Path) -> None:
    text = (
        "customer_id,timestamp,amount\n001,2026-06-30T23:00:00,1\n"
        "002,2026-07-02,1\n003,2099-01-01,1\n"
    )
    report = validate_file(_write(tmp_path, text), now=NOW)
    assert [p.row for p in report.problems] == [3, 4]
    assert "is in the future (now is 2026-06-30 12:00 UTC; tolerance 1 day(s))" in str(
        report.problems[1]
    )
    assert validate_file(_write(tmp_path, text), now=NOW, future_tolerance_days=30000).ok


def test_frames_dated_in_2099_never_pass_the_gate() -> None:
    frame = pd.DataFrame({"customer_id": ["1"], "timestamp": ["2099-05-01"], "amount": [1.0]})
    with pytest.raises(ContractError, match="2099-05-01' is in the future"):
        validate_frame(frame)


def test_the_files_own_column_names_map_onto_the_contract(tmp_path: Path) -> None:
    text = "CustomerID,InvoiceDate,Sales\n001,2024-01-05,12.5\n002,2024-01-06,x\n"
    columns = {"customer_id": "CustomerID", "timestamp": "InvoiceDate", "amount": "Sales"}
    report = validate_file(_write(tmp_path, text), columns=columns, now=NOW)
    # Messages name the user's column, not the contract's.
    assert str(report.problems[0]).startswith("t.csv line 3, column 'Sales': 'x' is not a number")
    good = _write(tmp_path, text.replace(",x", ",3"))
    frame = read_table(good, columns=columns)
    assert list(frame.columns) == ["customer_id", "timestamp", "amount"]
    assert frame["customer_id"].tolist() == ["001", "002"]


def test_a_mapping_naming_a_missing_column_lists_the_files_columns(tmp_path: Path) -> None:
    path = _write(tmp_path, "CustomerID,timestamp,amount\n001,2024-01-05,1\n")
    report = validate_file(path, columns={"customer_id": "Customer"}, now=NOW)
    assert str(report.problems[0]) == (
        "t.csv, column 'Customer': is not in the file (given for 'customer_id', e.g. "
        "--customer-id-col); the file's columns are: 'CustomerID', 'timestamp', 'amount'"
    )


def test_a_mapping_onto_a_contract_name_already_in_the_file_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "customer_id,CustomerID,timestamp,amount\n1,001,2024-01-05,1\n")
    report = validate_file(path, columns={"customer_id": "CustomerID"}, now=NOW)
    assert "map only one column onto 'customer_id'" in str(report.problems[0])


def test_a_mapping_key_outside_the_contract_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "customer_id,timestamp,amount\n001,2024-01-05,1\n")
    with pytest.raises(ValueError, match="'client' is not a transactions column"):
        validate_file(path, columns={"client": "customer_id"})


def test_a_folder_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match="is a folder, not a file"):
        read_table(tmp_path)


def test_no_warning_for_clean_files(tmp_path: Path) -> None:
    path = _write(tmp_path, "customer_id,timestamp,amount\n001,2024-01-05,1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_table(path)
