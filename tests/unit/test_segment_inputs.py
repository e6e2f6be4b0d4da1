"""Scores that segmentation refuses are named by file, column and rows; good ones become inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clv.segmentation.inputs import SegmentInputError, read_scores, segment_inputs


def _scores(n: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "predicted_clv": rng.gamma(2.0, 50.0, n),
            "churn_probability": rng.uniform(0, 1, n),
            "days_since_last_purchase": rng.integers(0, 300, n),
            "purchase_days": rng.integers(1, 9, n),
            "avg_purchase_day_value": rng.gamma(2.0, 20.0, n),
            "as_of": pd.Timestamp("2025-06-30 23:59:59.999999"),
        }
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="churn_probability"), r"missing column\(s\) churn_probability"),
        (lambda f: f.assign(predicted_clv=[1.0, np.nan, 2, 3, 4, 5]), r"predicted_clv .*row 2"),
        (lambda f: f.assign(predicted_clv=[1.0, 2, -3, 3, 4, 5]), r"predicted_clv must be.*row 3"),
        (
            lambda f: f.assign(churn_probability=[0.1, 0.2, 0.3, 1.5, 0.2, 7]),
            r"churn_probability must be finite and between 0 and 1; rows 4, 6",
        ),
        (
            lambda f: f.assign(customer_id=["a", "b", "a", "c", "d", "e"]),
            r"customer_id repeats customers in rows 1, 3",
        ),
        (lambda f: f.iloc[:0], r"the scores hold no rows"),
        (
            lambda f: f.drop(columns="purchase_days"),
            r"missing column\(s\) purchase_days \(the RFM inputs",
        ),
        (lambda f: f.assign(purchase_days=[1, 0, 2, 2, 2, 2]), r"purchase_days must be .*row 2"),
        (
            lambda f: f.assign(predicted_clv=["1", "x", "2", "3", "4", "5"]),
            r"predicted_clv is not a number in row 2",
        ),
    ],
    ids=[
        "no-churn",
        "nan-clv",
        "negative-clv",
        "churn-outside-0-1",
        "duplicate-ids",
        "empty",
        "no-rfm",
        "zero-purchases",
        "text-clv",
    ],
)
def test_bad_scores_are_refused_naming_the_file_column_and_rows(change, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SegmentInputError, match=r"^scores\.csv: (column )?" + message):
        segment_inputs(change(_scores()), source="scores.csv")


def test_scores_of_two_scoring_runs_are_refused() -> None:
    frame = _scores()
    frame.loc[0, "as_of"] = pd.Timestamp("2025-05-31")
    with pytest.raises(SegmentInputError, match="as_of holds 2 different dates"):
        segment_inputs(frame, source="scores.csv")


def test_inputs_carry_the_value_features_rfm_scores_and_rfm_segment_sorted_by_customer() -> None:
    frame = _scores().iloc[::-1]
    inputs = segment_inputs(frame, source="scores.csv")
    assert inputs.index.tolist() == sorted(frame["customer_id"])
    assert {
        "predicted_clv",
        "churn_probability",
        "r_score",
        "f_score",
        "m_score",
        "segment",
    } <= set(inputs.columns)
    one = inputs.loc["c3"]
    assert one["predicted_clv"] == pytest.approx(
        frame.set_index("customer_id").loc["c3", "predicted_clv"]
    )


def test_rfm_inputs_are_computed_from_transactions_when_the_scores_lack_them() -> None:
    scores = _scores(2).drop(columns=["days_since_last_purchase", "purchase_days"])
    scores = scores.drop(columns="avg_purchase_day_value")
    tx = pd.DataFrame(
        {
            "customer_id": ["c0", "c0", "c1", "c1"],
            "timestamp": pd.to_datetime(["2025-06-01", "2025-06-20", "2025-03-01", "2025-08-01"]),
            "amount": [10.0, 30.0, 5.0, 99.0],
        }
    )
    inputs = segment_inputs(scores, source="s.csv", transactions=tx)
    # c0 bought on two days (mean 20), last on Jun 20, 10 days before the as-of; c1's August
    # purchase is after the scores' as-of and unseen.
    assert inputs.loc["c0", "purchase_days"] == 2
    assert inputs.loc["c0", "avg_purchase_day_value"] == pytest.approx(20.0)
    assert inputs.loc["c0", "days_since_last_purchase"] == 10
    assert inputs.loc["c1", "purchase_days"] == 1


def test_a_scored_customer_without_purchases_in_the_transactions_is_named() -> None:
    scores = _scores(2)[["customer_id", "predicted_clv", "churn_probability", "as_of"]]
    tx = pd.DataFrame(
        {"customer_id": ["c0"], "timestamp": pd.to_datetime(["2025-06-01"]), "amount": [10.0]}
    )
    with pytest.raises(SegmentInputError, match=r"1 scored customer\(s\) have no purchase.*'c1'"):
        segment_inputs(scores, source="s.csv", transactions=tx)


def test_scores_files_are_read_as_csv_or_parquet_and_other_files_are_refused(
    tmp_path: Path,
) -> None:
    frame = _scores()
    frame.to_parquet(tmp_path / "s.parquet")
    frame.to_csv(tmp_path / "s.csv", index=False)
    for name in ("s.parquet", "s.csv"):
        read = read_scores(tmp_path / name)
        assert read["customer_id"].tolist() == frame["customer_id"].tolist()
    (tmp_path / "s.json").write_text("{}")
    with pytest.raises(SegmentInputError, match=r"s\.json: use a \.csv"):
        read_scores(tmp_path / "s.json")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(SegmentInputError, match=r"broken\.parquet: cannot be read as a table"):
        read_scores(tmp_path / "broken.parquet")
