"""Local atomic writes, deterministic Parquet, and the idempotent, content-addressed ingest."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from clv.data.generator import SyntheticData
from clv.data.ingest import MANIFEST, ingest, read_manifest
from clv.data.io import local_copy, read_table, sha256_of, write_atomic, write_table
from clv.data.validation import ContractError, validate_frame

BAD_TRANSACTIONS_CSV = "customer_id,timestamp,amount\nC1,2024-01-01,10.5\nC2,2024-01-02,abc\n"


class WriterFailedError(RuntimeError):
    """Raised by the test writers half-way through a file."""


def _write_half_then_fail(path: Path) -> None:
    path.write_text("customer_id,timestamp,amount\nC1,2024-", encoding="utf-8")
    raise WriterFailedError("disk full, say")


def _transactions_csv(data: SyntheticData, path: Path) -> Path:
    write_table(data.frame("transactions"), path)
    return path


# --------------------------------------------------------------------------------------------
# write_atomic / write_table / local_copy
# --------------------------------------------------------------------------------------------


def test_writer_that_raises_midway_leaves_neither_destination_nor_temp_file(tmp_path: Path):
    folder = tmp_path / "out"
    destination = folder / "transactions.csv"

    with pytest.raises(WriterFailedError):
        write_atomic(destination, _write_half_then_fail)

    assert not destination.exists()
    assert list(folder.iterdir()) == []


def test_writer_that_raises_keeps_the_old_content_of_an_existing_destination(tmp_path: Path):
    destination = tmp_path / "transactions.csv"
    destination.write_text("old,content\n1,2\n", encoding="utf-8")

    with pytest.raises(WriterFailedError):
        write_atomic(destination, _write_half_then_fail)

    assert destination.read_text(encoding="utf-8") == "old,content\n1,2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["transactions.csv"]


def test_successful_atomic_write_replaces_the_destination_and_leaves_no_temp_file(
    tmp_path: Path,
):
    destination = tmp_path / "notes.txt"
    destination.write_text("old", encoding="utf-8")

    write_atomic(destination, lambda p: p.write_text("new", encoding="utf-8"))

    assert destination.read_text(encoding="utf-8") == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_write_table_parquet_is_byte_identical_for_the_same_frame(
    tmp_path: Path, small_data: SyntheticData
):
    frame = small_data.frame("transactions")

    write_table(frame, tmp_path / "first.parquet")
    write_table(frame.copy(), tmp_path / "second.parquet")

    first = (tmp_path / "first.parquet").read_bytes()
    assert first == (tmp_path / "second.parquet").read_bytes()


@pytest.mark.parametrize(
    "suffix", [".csv", ".csv.gz", ".parquet"], ids=["csv", "csv.gz", "parquet"]
)
def test_write_table_then_read_table_gives_the_validated_frame(
    tmp_path: Path, small_data: SyntheticData, suffix: str
):
    frame = small_data.frame("transactions")

    write_table(frame, tmp_path / f"transactions{suffix}")
    back = read_table(tmp_path / f"transactions{suffix}", "transactions")

    pd.testing.assert_frame_equal(back, validate_frame(frame, "transactions"))


def test_write_table_rejects_an_unknown_extension_and_writes_nothing(
    tmp_path: Path, small_data: SyntheticData
):
    with pytest.raises(ValueError, match=r"use a \.csv, \.csv\.gz or \.parquet name"):
        write_table(small_data.frame("customers"), tmp_path / "customers.xlsx")

    assert list(tmp_path.iterdir()) == []


def test_local_copy_of_a_missing_file_raises_file_not_found_naming_it(tmp_path: Path):
    missing = tmp_path / "nowhere.csv"

    with pytest.raises(FileNotFoundError, match=r"nowhere\.csv"), local_copy(missing):
        pass


def test_sha256_of_a_local_file_matches_hashlib(tmp_path: Path):
    path = tmp_path / "blob.bin"
    payload = bytes(range(256)) * 10_000  # several read chunks
    path.write_bytes(payload)

    assert sha256_of(path) == hashlib.sha256(payload).hexdigest()


# --------------------------------------------------------------------------------------------
# ingest
# --------------------------------------------------------------------------------------------


def test_manifest_records_rows_and_the_sha256_of_the_source_bytes(
    tmp_path: Path, small_data: SyntheticData
):
    source = _transactions_csv(small_data, tmp_path / "in" / "transactions.csv")
    warehouse = tmp_path / "warehouse"

    record, added = ingest(source, "transactions", warehouse=warehouse)

    assert added
    assert read_manifest(warehouse) == [record]
    assert record.rows == small_data.transactions.num_rows
    assert record.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert record.kind == "transactions"
    assert record.source == str(source.resolve())
    assert record.path == f"transactions/{record.sha256}.parquet"
    typed_copy = read_table(warehouse / record.path, "transactions")
    expected = validate_frame(small_data.frame("transactions"), "transactions")
    pd.testing.assert_frame_equal(typed_copy, expected)


def test_reingesting_same_content_is_a_noop(tmp_path: Path, small_data: SyntheticData):
    source = _transactions_csv(small_data, tmp_path / "transactions.csv")
    warehouse = tmp_path / "warehouse"
    first, _ = ingest(source, "transactions", warehouse=warehouse)
    manifest_before = (warehouse / MANIFEST).read_bytes()

    again, added = ingest(source, "transactions", warehouse=warehouse)

    assert not added
    assert again == first
    assert (warehouse / MANIFEST).read_bytes() == manifest_before


def test_same_bytes_from_a_copy_at_another_path_is_a_noop(
    tmp_path: Path, small_data: SyntheticData
):
    original = _transactions_csv(small_data, tmp_path / "a" / "transactions.csv")
    copy = tmp_path / "b" / "renamed-export.csv"
    copy.parent.mkdir()
    shutil.copyfile(original, copy)
    warehouse = tmp_path / "warehouse"
    first, first_added = ingest(original, "transactions", warehouse=warehouse)

    second, second_added = ingest(copy, "transactions", warehouse=warehouse)

    assert (first_added, second_added) == (True, False)
    assert second == first  # the record still names where the content was first seen
    assert len(read_manifest(warehouse)) == 1
    assert sorted(p.name for p in (warehouse / "transactions").iterdir()) == [
        f"{first.sha256}.parquet"
    ]


def test_different_content_is_added_beside_the_first(tmp_path: Path, small_data: SyntheticData):
    frame = small_data.frame("transactions")
    first_source = tmp_path / "first.csv"
    second_source = tmp_path / "second.csv"
    write_table(frame, first_source)
    write_table(frame.iloc[:100], second_source)
    warehouse = tmp_path / "warehouse"

    first, _ = ingest(first_source, "transactions", warehouse=warehouse)
    second, added = ingest(second_source, "transactions", warehouse=warehouse)

    assert added
    assert second.sha256 != first.sha256
    assert [r.rows for r in read_manifest(warehouse)] == [len(frame), 100]


def test_bad_file_ingests_nothing(tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD_TRANSACTIONS_CSV, encoding="utf-8")
    warehouse = tmp_path / "warehouse"

    with pytest.raises(ContractError, match=r"bad\.csv line 3, column 'amount': 'abc'"):
        ingest(bad, "transactions", warehouse=warehouse)

    leftovers = list(warehouse.rglob("*")) if warehouse.exists() else []
    assert leftovers == []  # no manifest, no parquet
    assert read_manifest(warehouse) == []


def test_bad_file_after_a_good_one_leaves_the_manifest_unchanged(
    tmp_path: Path, small_data: SyntheticData
):
    good = _transactions_csv(small_data, tmp_path / "good.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD_TRANSACTIONS_CSV, encoding="utf-8")
    warehouse = tmp_path / "warehouse"
    ingest(good, "transactions", warehouse=warehouse)
    manifest_before = (warehouse / MANIFEST).read_bytes()

    with pytest.raises(ContractError):
        ingest(bad, "transactions", warehouse=warehouse)

    assert (warehouse / MANIFEST).read_bytes() == manifest_before
    assert len(list(warehouse.rglob("*.parquet"))) == 1


def test_missing_typed_copy_is_ingested_again(tmp_path: Path, small_data: SyntheticData):
    source = _transactions_csv(small_data, tmp_path / "transactions.csv")
    warehouse = tmp_path / "warehouse"
    first, _ = ingest(source, "transactions", warehouse=warehouse)
    (warehouse / first.path).unlink()

    again, added = ingest(source, "transactions", warehouse=warehouse)

    assert added
    assert (warehouse / again.path).exists()
    assert [r.sha256 for r in read_manifest(warehouse)] == [first.sha256]


def test_ingest_defaults_to_the_warehouse_under_clv_home(
    tmp_path: Path, small_data: SyntheticData, isolated_settings: Path
):
    source = _transactions_csv(small_data, tmp_path / "transactions.csv")

    record, _ = ingest(source, "transactions")

    manifest = json.loads((isolated_settings / "warehouse" / MANIFEST).read_text("utf-8"))
    assert [item["sha256"] for item in manifest] == [record.sha256]
    assert (isolated_settings / "warehouse" / record.path).is_file()
