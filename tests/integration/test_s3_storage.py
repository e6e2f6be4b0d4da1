"""Tables on S3 through a real moto server over HTTP: round trips, errors, ingest, CLI, atomicity.

The ``s3_bucket`` fixture points ``CLV_S3_ENDPOINT_URL`` at the server, so the library under test
builds its own boto3 client from the settings; the fixture's client only sets up and inspects.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from typer.testing import CliRunner

from clv.cli import app
from clv.data.generator import SyntheticData, write_synthetic
from clv.data.ingest import MANIFEST, ingest, read_manifest
from clv.data.io import read_table, sha256_of, write_atomic, write_table
from clv.data.validation import ContractError, validate_frame

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

S3Bucket = tuple[str, "S3Client"]
BAD_TRANSACTIONS_CSV = b"customer_id,timestamp,amount\nC1,2024-01-01,10.5\nC2,2024-01-02,abc\n"
BAD_AMOUNT_MESSAGE = "bad.csv line 3, column 'amount': 'abc' is not a number"


class WriterFailedError(RuntimeError):
    """Raised by the test writer half-way through a file."""


def _write_half_then_fail(path: Path) -> None:
    path.write_bytes(b"customer_id,timestamp,amount\nC1,2024-")
    raise WriterFailedError("connection lost, say")


def _keys(client: S3Client, bucket: str) -> list[str]:
    listing = client.list_objects_v2(Bucket=bucket)
    return sorted(obj["Key"] for obj in listing.get("Contents", []))


def _flat(text: str) -> str:
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", text).split())


@pytest.mark.parametrize("kind", ["transactions", "customers", "sustainability"])
@pytest.mark.parametrize("suffix", [".parquet", ".csv"], ids=["parquet", "csv"])
def test_table_round_trips_through_s3(
    s3_bucket: S3Bucket, small_data: SyntheticData, kind: str, suffix: str
):
    bucket, client = s3_bucket
    frame = small_data.frame(kind)
    uri = f"s3://{bucket}/raw/{kind}{suffix}"

    write_table(frame, uri)
    back = read_table(uri, kind)

    assert _keys(client, bucket) == [f"raw/{kind}{suffix}"]
    pd.testing.assert_frame_equal(back, validate_frame(frame, kind))


def test_parquet_on_s3_has_the_same_bytes_as_locally(
    s3_bucket: S3Bucket, small_data: SyntheticData, tmp_path: Path
):
    bucket, client = s3_bucket
    frame = small_data.frame("transactions")

    write_table(frame, f"s3://{bucket}/transactions.parquet")
    write_table(frame, tmp_path / "transactions.parquet")

    remote = client.get_object(Bucket=bucket, Key="transactions.parquet")["Body"].read()
    assert remote == (tmp_path / "transactions.parquet").read_bytes()
    assert sha256_of(f"s3://{bucket}/transactions.parquet") == hashlib.sha256(remote).hexdigest()


def test_reading_a_missing_object_raises_file_not_found_naming_the_uri(s3_bucket: S3Bucket):
    bucket, _ = s3_bucket
    uri = f"s3://{bucket}/nowhere/transactions.parquet"

    with pytest.raises(FileNotFoundError, match=re.escape(uri)):
        read_table(uri)


def test_reading_from_a_missing_bucket_raises_file_not_found_naming_the_uri(s3_bucket: S3Bucket):
    uri = f"s3://{s3_bucket[0]}-absent/transactions.csv"

    with pytest.raises(FileNotFoundError, match=re.escape(uri)):
        read_table(uri)


def test_contract_breaking_csv_on_s3_is_rejected_with_a_located_message(s3_bucket: S3Bucket):
    bucket, client = s3_bucket
    client.put_object(Bucket=bucket, Key="incoming/bad.csv", Body=BAD_TRANSACTIONS_CSV)

    with pytest.raises(ContractError) as caught:
        read_table(f"s3://{bucket}/incoming/bad.csv", "transactions")

    assert BAD_AMOUNT_MESSAGE in str(caught.value)
    [problem] = caught.value.report.problems
    assert (problem.source, problem.row, problem.column, problem.value) == (
        "bad.csv",
        3,
        "amount",
        "abc",
    )


def test_ingest_from_s3_twice_keeps_one_copy(
    s3_bucket: S3Bucket, small_data: SyntheticData, tmp_path: Path
):
    bucket, client = s3_bucket
    uri = f"s3://{bucket}/exports/transactions.csv"
    write_table(small_data.frame("transactions"), uri)
    warehouse = tmp_path / "warehouse"

    first, first_added = ingest(uri, "transactions", warehouse=warehouse)
    second, second_added = ingest(uri, "transactions", warehouse=warehouse)

    assert (first_added, second_added) == (True, False)
    assert second == first
    assert first.source == uri
    assert first.rows == small_data.transactions.num_rows
    source_bytes = client.get_object(Bucket=bucket, Key="exports/transactions.csv")["Body"].read()
    assert first.sha256 == hashlib.sha256(source_bytes).hexdigest()
    assert read_manifest(warehouse) == [first]
    assert sorted(p.relative_to(warehouse).as_posix() for p in warehouse.rglob("*.parquet")) == [
        first.path
    ]


def test_same_bytes_under_another_key_is_not_ingested_again(
    s3_bucket: S3Bucket, small_data: SyntheticData, tmp_path: Path
):
    bucket, client = s3_bucket
    write_table(small_data.frame("customers"), f"s3://{bucket}/a/customers.parquet")
    client.copy_object(
        Bucket=bucket,
        Key="b/customers-copy.parquet",
        CopySource={"Bucket": bucket, "Key": "a/customers.parquet"},
    )
    warehouse = tmp_path / "warehouse"

    first, _ = ingest(f"s3://{bucket}/a/customers.parquet", "customers", warehouse=warehouse)
    copy, added = ingest(
        f"s3://{bucket}/b/customers-copy.parquet", "customers", warehouse=warehouse
    )

    assert not added
    assert copy == first
    assert len(read_manifest(warehouse)) == 1


def test_bad_csv_on_s3_ingests_nothing(s3_bucket: S3Bucket, tmp_path: Path):
    bucket, client = s3_bucket
    client.put_object(Bucket=bucket, Key="bad.csv", Body=BAD_TRANSACTIONS_CSV)
    warehouse = tmp_path / "warehouse"

    with pytest.raises(ContractError, match=re.escape(BAD_AMOUNT_MESSAGE)):
        ingest(f"s3://{bucket}/bad.csv", "transactions", warehouse=warehouse)

    assert not (warehouse / MANIFEST).exists()
    assert not warehouse.exists() or list(warehouse.rglob("*.parquet")) == []


def test_ingesting_a_missing_object_raises_file_not_found_naming_the_uri(
    s3_bucket: S3Bucket, tmp_path: Path
):
    uri = f"s3://{s3_bucket[0]}/nowhere.csv"

    with pytest.raises(FileNotFoundError, match=re.escape(uri)):
        ingest(uri, "transactions", warehouse=tmp_path / "warehouse")


def test_clv_validate_on_s3_exits_0_for_good_data(s3_bucket: S3Bucket, small_data: SyntheticData):
    bucket, _ = s3_bucket
    uri = f"s3://{bucket}/good/customers.csv"
    write_table(small_data.frame("customers"), uri)

    result = CliRunner().invoke(app, ["validate", uri, "--kind", "customers"])

    assert result.exit_code == 0, result.output
    assert f"OK {uri}: 300 rows satisfy the customers contract" in _flat(result.stdout)


def test_clv_validate_on_s3_exits_1_for_bad_data(s3_bucket: S3Bucket):
    bucket, client = s3_bucket
    client.put_object(Bucket=bucket, Key="incoming/bad.csv", Body=BAD_TRANSACTIONS_CSV)

    result = CliRunner().invoke(app, ["validate", f"s3://{bucket}/incoming/bad.csv"])

    assert result.exit_code == 1
    assert BAD_AMOUNT_MESSAGE in _flat(result.stderr)


def test_clv_validate_on_a_missing_s3_object_exits_1_naming_it(s3_bucket: S3Bucket):
    uri = f"s3://{s3_bucket[0]}/missing.csv"

    result = CliRunner().invoke(app, ["validate", uri])

    assert result.exit_code == 1
    assert f"no such S3 object: {uri}" in _flat(result.stderr)


def test_writer_that_raises_leaves_no_object_on_s3(s3_bucket: S3Bucket):
    bucket, client = s3_bucket

    with pytest.raises(WriterFailedError):
        write_atomic(f"s3://{bucket}/out/transactions.csv", _write_half_then_fail)

    assert _keys(client, bucket) == []


def test_writer_that_raises_keeps_the_old_object_on_s3(s3_bucket: S3Bucket):
    bucket, client = s3_bucket
    client.put_object(Bucket=bucket, Key="out/transactions.csv", Body=b"old,content\n1,2\n")

    with pytest.raises(WriterFailedError):
        write_atomic(f"s3://{bucket}/out/transactions.csv", _write_half_then_fail)

    body = client.get_object(Bucket=bucket, Key="out/transactions.csv")["Body"].read()
    assert body == b"old,content\n1,2\n"


def test_write_synthetic_to_s3_writes_objects_and_nothing_locally(
    s3_bucket: S3Bucket,
    small_data: SyntheticData,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    bucket, client = s3_bucket
    monkeypatch.chdir(tmp_path)  # a Path("s3://...") mistake would create ./s3:/ here

    written = write_synthetic(small_data, f"s3://{bucket}/synthetic/", fmt="parquet")

    assert written["transactions"] == f"s3://{bucket}/synthetic/transactions.parquet"
    assert _keys(client, bucket) == [
        f"synthetic/{name}"
        for name in (
            "customers.parquet",
            "future_transactions.parquet",
            "sustainability.parquet",
            "transactions.parquet",
            "truth.json",
            "truth.parquet",
        )
    ]
    assert list(tmp_path.iterdir()) == []
    back = read_table(written["transactions"], "transactions")
    assert len(back) == small_data.transactions.num_rows
