"""The CDNOW loaders give the documented data, validated by the contract."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from clv.data.datasets import (
    CdnowUnavailableError,
    load_cdnow_summary,
    load_cdnow_transactions,
    parse_cdnow,
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
