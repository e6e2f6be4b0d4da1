"""Features on Dask equal the single-machine features, on the session's two-worker LocalCluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dask
import dask.dataframe as dd
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import Client

from clv.data.generator import SyntheticData
from clv.data.validation import ContractError, validate_frame
from clv.distributed.cluster import connect
from clv.distributed.features import (
    dask_customer_features,
    dask_features,
    fit_btyd_from_counts,
    population_summary,
)
from clv.distributed.io import read_transactions
from clv.features import build_features
from clv.features.btyd import fit_btyd
from clv.features.rfm import rfm_features
from clv.training.scoring import customer_features

#: Late enough for a year of history before last year's window (the seasonal lift is defined).
CUTOFF = pd.Timestamp("2025-09-30 23:59:59")
HORIZON_DAYS = 90


@pytest.fixture(scope="module")
def client(dask_cluster: str) -> Iterator[Client]:
    """A client of the shared cluster, used by every ``compute`` in this module."""
    with connect(dask_cluster) as client, dask.config.set(scheduler=client):
        yield client


@pytest.fixture(scope="module")
def tables(small_data: SyntheticData) -> dict[str, pd.DataFrame]:
    return {
        kind: validate_frame(small_data.frame(kind), kind)
        for kind in ("transactions", "customers", "sustainability")
    }


@pytest.fixture(scope="module")
def split_files(small_data: SyntheticData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The transactions in time order as three files (the first in row groups of 400 rows)."""
    folder = tmp_path_factory.mktemp("split")
    table = small_data.transactions
    third = table.num_rows // 3
    pq.write_table(table.slice(0, third), folder / "part-0.parquet", row_group_size=400)
    pq.write_table(table.slice(third, third), folder / "part-1.parquet")
    pq.write_table(table.slice(2 * third), folder / "part-2.parquet")
    return folder


def assert_same_features(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal to float tolerance, whatever the partitions' order (rows sorted by customer)."""
    got = got.sort_index()
    got.index = got.index.astype(object)
    expected = expected.sort_index()
    assert list(got.columns) == list(expected.columns)
    assert got.dtypes.to_dict() == expected.dtypes.to_dict()
    pd.testing.assert_frame_equal(got, expected, rtol=1e-9)


def test_features_from_files_that_split_a_customer_equal_the_single_machine_ones(
    client: Client, split_files: Path, tables: dict[str, pd.DataFrame]
) -> None:
    first = pq.read_table(split_files / "part-0.parquet")["customer_id"].to_pylist()
    second = pq.read_table(split_files / "part-1.parquet")["customer_id"].to_pylist()
    assert set(first) & set(second), "some customer's rows must cross two files"

    transactions = read_transactions(split_files, npartitions=3)
    features = dask_features(transactions, cutoff=CUTOFF, horizon_days=HORIZON_DAYS)

    expected = build_features(tables["transactions"], cutoff=CUTOFF, horizon_days=HORIZON_DAYS)
    assert_same_features(client.compute(features).result(), expected)


def test_features_with_the_customers_and_sustainability_tables(
    client: Client, split_files: Path, tables: dict[str, pd.DataFrame]
) -> None:
    customers, sustainability = tables["customers"], tables["sustainability"]
    transactions = read_transactions(split_files, npartitions=2)

    features = dask_features(
        transactions,
        cutoff=CUTOFF,
        horizon_days=HORIZON_DAYS,
        customers=customers,
        sustainability=sustainability,
    )

    expected = build_features(
        tables["transactions"],
        cutoff=CUTOFF,
        horizon_days=HORIZON_DAYS,
        customers=customers,
        sustainability=sustainability,
    )
    assert "days_since_signup" in expected and "eco_engagement_score" in expected
    assert_same_features(client.compute(features).result(), expected)


def test_cross_customer_features_use_the_whole_population(
    client: Client, tables: dict[str, pd.DataFrame]
) -> None:
    """Seasonal lift and channel columns are population-wide: a partition that alone has no
    year of history and no marketplace sale still gets the single machine's values."""
    transactions = tables["transactions"]
    before_start = CUTOFF - pd.Timedelta(days=365 + HORIZON_DAYS)
    first_seen = transactions.groupby("customer_id")["timestamp"].min()
    young = first_seen.index[first_seen > before_start]
    is_young = transactions["customer_id"].isin(young)
    recent = transactions[is_young & (transactions["channel"] != "marketplace")]
    rest = transactions[~is_young]
    assert len(recent) and (rest["channel"] == "marketplace").any()
    frames = dd.from_delayed(
        [dask.delayed(recent), dask.delayed(rest)], meta=transactions.iloc[:0], verify_meta=False
    )

    got = client.compute(dask_features(frames, cutoff=CUTOFF, horizon_days=HORIZON_DAYS)).result()

    expected = build_features(pd.concat([recent, rest]), cutoff=CUTOFF, horizon_days=HORIZON_DAYS)
    assert expected["base_seasonal_lift_last_year"].notna().all()
    assert (expected.loc[expected.index.isin(young), "channel_share_marketplace"] == 0).any()
    assert_same_features(got, expected)


@pytest.mark.parametrize(
    "cutoff", [CUTOFF, pd.Timestamp("2024-06-30 23:59:59")], ids=["2025-09", "2024-06"]
)
def test_btyd_parameters_from_sufficient_statistics_equal_the_single_machine_fit(
    client: Client, split_files: Path, tables: dict[str, pd.DataFrame], cutoff: pd.Timestamp
) -> None:
    transactions = read_transactions(split_files, npartitions=3)
    summary = population_summary(transactions, cutoff=cutoff, horizon_days=HORIZON_DAYS)

    rfm = rfm_features(tables["transactions"], cutoff=cutoff)
    # Both fitters merge identical rows before optimising, so the value counts gathered from
    # the partitions reach the optimiser as the very arrays of the single-machine fit.
    assert fit_btyd_from_counts(summary) == fit_btyd(rfm)
    assert summary.customers == len(rfm)


def test_customer_features_for_scoring_equal_the_single_machine_ones(
    client: Client, split_files: Path, tables: dict[str, pd.DataFrame]
) -> None:
    transactions = read_transactions(split_files)

    got = dask_customer_features(transactions, as_of=CUTOFF, horizon_days=HORIZON_DAYS)

    expected = customer_features(tables["transactions"], as_of=CUTOFF, horizon_days=HORIZON_DAYS)
    assert_same_features(client.compute(got).result(), expected)
    with pytest.raises(ValueError, match="no transaction on or before the as-of date 2020-01-01"):
        dask_customer_features(
            transactions, as_of=pd.Timestamp("2020-01-01"), horizon_days=HORIZON_DAYS
        )


def _two_files(folder: Path, small_data: SyntheticData) -> tuple[pa.Table, pa.Table]:
    table = small_data.transactions
    half = table.num_rows // 2
    pq.write_table(table.slice(0, half), folder / "a.parquet")
    return table.slice(0, half), table.slice(half)


def test_a_file_without_a_required_column_is_named_with_the_column(
    tmp_path: Path, small_data: SyntheticData
) -> None:
    _, second = _two_files(tmp_path, small_data)
    pq.write_table(second.drop_columns(["amount"]), tmp_path / "b.parquet")

    with pytest.raises(ContractError, match=r"b\.parquet, column 'amount': required column"):
        read_transactions(tmp_path)


def test_a_timestamp_that_is_not_a_date_in_the_second_file_is_located(
    client: Client, tmp_path: Path, small_data: SyntheticData
) -> None:
    _, second = _two_files(tmp_path, small_data)
    stamps = [str(t) for t in second["timestamp"].to_pylist()]
    stamps[450] = "last tuesday"  # in the second row group: rows count from the file's top
    second = second.set_column(
        second.schema.get_field_index("timestamp"), "timestamp", pa.array(stamps)
    )
    pq.write_table(second, tmp_path / "b.parquet", row_group_size=400)

    transactions = read_transactions(tmp_path, npartitions=2)
    with pytest.raises(
        ContractError, match=r"b\.parquet row 451, column 'timestamp': 'last tuesday'"
    ):
        client.compute(transactions).result()


def test_a_glob_or_one_file_selects_the_pieces_read(split_files: Path) -> None:
    # part-0 has 3 row groups (one piece each); part-1 and part-2 one each.
    assert read_transactions(split_files).npartitions == 5
    assert read_transactions(split_files / "part-[12].parquet").npartitions == 2
    assert read_transactions(split_files / "part-1.parquet", npartitions=4).npartitions == 4
    with pytest.raises(FileNotFoundError, match="no Parquet file"):
        read_transactions(split_files / "*.csv")
