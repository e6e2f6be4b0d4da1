"""Campaign planning with the transactions on a real ``LocalCluster`` (two worker processes).

The transactions are a folder of Parquet files cut by time, so every active customer's rows
cross files; the cluster summarises them per customer and the plan must be the one-machine plan.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from clv.campaigns.definition import load_campaign
from clv.campaigns.personalisation import customer_habits, purchase_summary
from clv.campaigns.planning import plan_campaign
from clv.data.generator import REGIONS
from clv.distributed.campaigns import (
    customer_habits_dask,
    purchase_summary_dask,
    transactions_fingerprint,
    transactions_on_cluster,
)
from clv.distributed.cluster import connect
from clv.distributed.io import read_transactions
from tests.unit.test_campaign_planning import data  # noqa: F401 (the shared fixture)

if TYPE_CHECKING:
    from distributed import Client

EXAMPLE = Path(__file__).parents[2] / "examples" / "campaign.yaml"
ZONES = dict(
    zip(
        REGIONS,
        ["Europe/Oslo", "Europe/Rome", "Asia/Tokyo", "America/New_York", "UTC"],
        strict=True,
    )
)
START = pd.Timestamp("2025-04-01 08:00")


@pytest.fixture(scope="module")
def folder(
    data: dict[str, pd.DataFrame],  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The transactions in three Parquet files cut by time."""
    root = tmp_path_factory.mktemp("campaign-tx")
    tx = data["transactions"].sort_values("timestamp", kind="stable").reset_index(drop=True)
    for i, part in enumerate(np.array_split(np.arange(len(tx)), 3)):
        tx.iloc[part].to_parquet(root / f"part-{i}.parquet", index=False)
    return root


@pytest.fixture
def client(dask_cluster: str) -> Iterator[Client]:
    with connect(dask_cluster) as client, client.as_current():
        yield client


def test_the_folder_splits_customers_across_files(folder: Path) -> None:
    owners = [set(pd.read_parquet(p)["customer_id"]) for p in sorted(folder.glob("*.parquet"))]
    assert len(owners[0] & owners[1] & owners[2]) > 100


def test_habits_and_history_summaries_on_the_cluster_equal_one_machines(
    data: dict[str, pd.DataFrame],  # noqa: F811
    folder: Path,
    client: Client,
) -> None:
    ids = data["customers"]["customer_id"].astype(str)
    zones = pd.Series(
        data["customers"]["region"].map(ZONES).to_numpy(), index=pd.Index(ids, name="customer_id")
    )
    tx = read_transactions(folder)

    habits = customer_habits_dask(tx, zones, START).sort_index()
    expected = customer_habits(data["transactions"], zones, START).sort_index()
    pd.testing.assert_frame_equal(habits, expected, check_dtype=False)

    summary = purchase_summary_dask(tx, pd.Index(ids), START).sort_index()
    expected_summary = purchase_summary(data["transactions"], pd.Index(ids), START).sort_index()
    pd.testing.assert_frame_equal(summary, expected_summary, check_dtype=False)
    assert len(summary) > 1000


def test_a_plan_with_transactions_on_the_cluster_is_the_one_machine_plan(
    data: dict[str, pd.DataFrame],  # noqa: F811
    folder: Path,
    client: Client,
) -> None:
    definition = load_campaign(EXAMPLE)
    # A few segments, so that customers with few purchases take their segment's habit.
    segments = pd.Series(
        np.where(data["scores"]["predicted_clv"] > 300, "high", "rest"),
        index=data["scores"]["customer_id"].astype(str),
    )
    common = {
        "scores": data["scores"],
        "customers": data["customers"],
        "segments": segments,
        "region_timezones": ZONES,
    }
    one_machine = plan_campaign(definition, transactions=data["transactions"], **common)
    on_cluster = plan_campaign(definition, transactions=read_transactions(folder), **common)

    pd.testing.assert_frame_equal(on_cluster.rows, one_machine.rows)
    pd.testing.assert_frame_equal(on_cluster.fields, one_machine.fields)
    assert on_cluster.summary == one_machine.summary
    assert on_cluster.campaign_id == one_machine.campaign_id
    assert on_cluster.rows["send_at"].notna().all()


def test_one_transactions_file_is_split_by_customer_for_the_cluster(
    data: dict[str, pd.DataFrame],  # noqa: F811
    tmp_path: Path,
    client: Client,
) -> None:
    path = tmp_path / "transactions.parquet"
    data["transactions"].to_parquet(path, index=False)

    frame = transactions_on_cluster(str(path), client)
    owners = frame.map_partitions(lambda p: p[["customer_id"]].drop_duplicates()).compute()

    assert frame.npartitions > 1
    assert not owners["customer_id"].duplicated().any()
    assert len(frame) == len(data["transactions"])


def test_a_folders_fingerprint_follows_its_content_not_its_place(
    folder: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in folder.glob("*.parquet"):
        (copy / path.name).write_bytes(path.read_bytes())
    (copy / "_SUCCESS").write_text("")  # a writer's bookkeeping is not content

    assert transactions_fingerprint(str(copy)) == transactions_fingerprint(str(folder))
    last = sorted(copy.glob("*.parquet"))[-1]
    frame = pd.read_parquet(last)
    frame.iloc[:-1].to_parquet(last, index=False)
    assert transactions_fingerprint(str(copy)) != transactions_fingerprint(str(folder))


def test_a_folder_without_parquet_files_has_no_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(FileNotFoundError, match="no Parquet file"):
        transactions_fingerprint(str(tmp_path))
