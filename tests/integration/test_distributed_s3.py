"""Partitioned transactions on S3 (a real moto server) read into Dask with the settings' endpoint.

Computed with Dask's synchronous scheduler: the shared cluster's workers started before the
``s3_bucket`` fixture set the dummy credentials, and tests must not change their environment.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import dask
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clv.data.generator import SyntheticData
from clv.data.validation import ContractError, validate_frame
from clv.distributed.features import dask_features
from clv.distributed.io import read_transactions
from clv.features import build_features

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

S3Bucket = tuple[str, "S3Client"]
CUTOFF = pd.Timestamp("2025-09-30 23:59:59")


def _put(
    client: S3Client, bucket: str, key: str, table: pa.Table, row_group_size: int | None = None
) -> None:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=row_group_size)
    client.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())


def test_a_folder_on_s3_with_renamed_columns_gives_the_single_machine_features(
    s3_bucket: S3Bucket, small_data: SyntheticData
) -> None:
    bucket, client = s3_bucket
    table = small_data.transactions.rename_columns(
        ["CustomerID" if n == "customer_id" else n for n in small_data.transactions.column_names]
    )
    half = table.num_rows // 2
    _put(client, bucket, "tx/part-0.parquet", table.slice(0, half))
    _put(client, bucket, "tx/part-1.parquet", table.slice(half))
    _put(client, bucket, "elsewhere/part-9.parquet", table.slice(0, 10))

    transactions = read_transactions(
        f"s3://{bucket}/tx/", npartitions=2, columns={"customer_id": "CustomerID"}
    )
    with dask.config.set(scheduler="synchronous"):
        got = dask_features(transactions, cutoff=CUTOFF, horizon_days=90).compute()

    expected = build_features(
        validate_frame(small_data.frame("transactions")), cutoff=CUTOFF, horizon_days=90
    )
    got = got.sort_index()
    got.index = got.index.astype(object)
    pd.testing.assert_frame_equal(got, expected.sort_index(), rtol=1e-9)


def test_a_bad_amount_in_an_s3_object_is_located(
    s3_bucket: S3Bucket, small_data: SyntheticData
) -> None:
    bucket, client = s3_bucket
    frame = small_data.frame("transactions").head(60)
    frame["amount"] = frame["amount"].astype(str)
    frame.loc[30, "amount"] = "12,50 EUR"  # in the second row group, read by a ranged GET
    _put(client, bucket, "tx/2025/part-0.parquet", pa.Table.from_pandas(frame), 25)

    transactions = read_transactions(f"s3://{bucket}/tx/*/part-*.parquet")
    assert transactions.npartitions == 3  # one per row group
    with (
        dask.config.set(scheduler="synchronous"),
        pytest.raises(ContractError, match=r"part-0\.parquet row 31, column 'amount': '12,50 EUR'"),
    ):
        transactions.compute()
