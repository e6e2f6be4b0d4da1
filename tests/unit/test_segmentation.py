"""RFM segments: tie-aware quintile scores, an exhaustive rule table, one segment per customer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clv.segmentation import segment
from clv.segmentation.rfm import (
    N_SCORES,
    RFM_INPUT_COLUMNS,
    load_rules,
    quantile_scores,
    rfm_scores,
    segment_rfm,
)

values = st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=200)


@given(values)
def test_equal_values_get_equal_scores_and_larger_never_scores_lower(raw: list[int]) -> None:
    v = np.array(raw, dtype=float)
    scores = quantile_scores(v, N_SCORES)
    assert scores.min() >= 1 and scores.max() <= N_SCORES
    for value in np.unique(v):
        assert len(np.unique(scores[v == value])) == 1
    order = np.argsort(v, kind="stable")
    assert (np.diff(scores[order]) >= 0).all()


def test_distinct_values_split_into_equal_quintiles() -> None:
    scores = quantile_scores(np.arange(100.0)[::-1], N_SCORES)
    assert np.bincount(scores)[1:].tolist() == [20, 20, 20, 20, 20]
    assert scores[0] == 5 and scores[-1] == 1  # the largest value is in the top quintile


def _rfm(days: list[float], purchases: list[float], value: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        dict(zip(RFM_INPUT_COLUMNS, (days, purchases, value), strict=True)),
        index=pd.Index([f"c{i}" for i in range(len(days))], name="customer_id"),
    )


def test_one_time_buyers_score_frequency_one_and_repeat_buyers_two_to_five() -> None:
    # 6 one-time buyers (a majority) and 4 repeat buyers with 2, 3, 5 and 9 purchase days.
    purchases = [1, 1, 1, 1, 1, 1, 2, 3, 5, 9]
    scores = rfm_scores(_rfm([10.0] * 10, purchases, [20.0] * 10))
    assert scores["f_score"].tolist() == [1, 1, 1, 1, 1, 1, 2, 3, 4, 5]


def test_recency_score_rewards_the_most_recent_purchase() -> None:
    scores = rfm_scores(_rfm([0, 5, 30, 90, 400], [2] * 5, [10.0] * 5))
    assert scores["r_score"].tolist() == [5, 4, 3, 2, 1]
    # Ties everywhere else: the middle score (3 of 1-5; 3 of the repeat buyers 2-5).
    assert scores["rfm_score"].iloc[0] == "533"


def test_default_rules_name_the_classic_segments_for_known_cells() -> None:
    rules = load_rules()
    table = rules.lookup()
    assert (table >= 0).all()

    def name(r: int, f: int, m: int) -> str:
        return rules.names[table[r - 1, f - 1, m - 1]]

    assert name(5, 5, 5) == "Champions"
    assert name(5, 5, 1) == "Loyal"
    assert name(1, 5, 5) == "Can't lose them"
    assert name(1, 5, 1) == "At risk"
    assert name(5, 2, 3) == "Potential loyalist"
    assert name(5, 1, 5) == "New"
    assert name(4, 1, 1) == "Promising"
    assert name(3, 2, 2) == "Need attention"
    assert name(3, 1, 4) == "About to sleep"
    assert name(2, 1, 1) == "Hibernating"
    assert name(1, 1, 1) == "Lost"
    assert len(rules.names) == 11


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 800),
            st.integers(1, 30),
            st.floats(0.01, 5000, allow_nan=False),
        ),
        min_size=1,
        max_size=150,
    )
)
def test_every_customer_gets_exactly_one_known_segment(rows: list[tuple[int, int, float]]) -> None:
    days, purchases, value = (list(col) for col in zip(*rows, strict=True))
    out = segment_rfm(_rfm(days, purchases, value))
    assert len(out) == len(rows)
    assert out["segment"].notna().all()
    assert set(out["segment"].astype(str)) <= set(load_rules().names)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_table_leaving_score_combinations_uncovered_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "segments:\n  - {name: Best, recency: [3, 5], frequency: [1, 5], monetary: [1, 5]}\n",
    )
    with pytest.raises(ValueError, match=r"rules\.yaml: 50 score combination\(s\) match no rule"):
        load_rules(path)


def test_a_rule_that_can_never_match_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "segments:\n"
        "  - {name: Everyone, recency: [1, 5], frequency: [1, 5], monetary: [1, 5]}\n"
        "  - {name: New, recency: [5, 5], frequency: [1, 1], monetary: [1, 5]}\n",
    )
    with pytest.raises(ValueError, match=r"rule 2 \('New'\) never matches"):
        load_rules(path)


def test_invalid_yaml_is_refused_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "segments:\n  - name: A\n    recency: [1, 5\n")
    with pytest.raises(ValueError, match=r"rules\.yaml line \d+: not valid YAML"):
        load_rules(path)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"name": "A", "recency": [0, 5], "frequency": [1, 5], "monetary": [1, 5]}, "recency"),
        ({"name": "A", "recency": [1, 5], "frequency": [1, 5]}, "missing"),
        ({"name": "A", "recency": [1, 5], "frequency": [1, 5], "monetary": "high"}, "monetary"),
        (
            {"name": "A", "recency": [1, 5], "frequency": [1, 5], "monetary": [1, 5], "x": 1},
            "unknown field",
        ),
    ],
    ids=["out-of-range", "missing-dimension", "not-a-pair", "unknown-field"],
)
def test_malformed_rules_are_refused_naming_the_rule(rule: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=rf"rule 1 \('A'\).*{message}"):
        load_rules([rule])


def test_users_rules_replace_the_default() -> None:
    rules = [
        {"name": "Recent", "recency": [4, 5], "frequency": [1, 5], "monetary": [1, 5]},
        {"name": "Others", "recency": [1, 5], "frequency": [1, 5], "monetary": [1, 5]},
    ]
    out = segment_rfm(_rfm([0, 1, 50, 60, 70], [1] * 5, [5.0] * 5), rules)
    assert out["segment"].astype(str).tolist() == ["Recent", "Recent", "Others", "Others", "Others"]


def _transactions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "c", "c", "c", "a"],
            "timestamp": pd.to_datetime(
                [
                    "2024-01-01",
                    "2024-03-01",
                    "2024-02-01",
                    "2024-01-05",
                    "2024-02-05",
                    "2024-03-05",
                    "2024-05-01",  # after the scores' as-of: not seen
                ]
            ),
            "amount": [10.0, 20.0, 5.0, 50.0, 60.0, 70.0, 999.0],
        }
    )


def test_segment_needs_transactions_when_the_scores_lack_rfm_columns() -> None:
    scores = pd.DataFrame({"customer_id": ["a", "b"], "predicted_clv": [1.0, 2.0]})
    with pytest.raises(ValueError, match=r"pass the transactions too"):
        segment(scores)


def test_segment_computes_rfm_as_of_the_scores_and_keeps_their_rows() -> None:
    as_of = pd.Timestamp("2024-03-31 23:59:59")
    scores = pd.DataFrame(
        {"customer_id": ["c", "a", "b"], "predicted_clv": [3.0, 1.0, 2.0], "as_of": as_of}
    )
    out = segment(scores, _transactions(), method="rfm")
    assert out["customer_id"].tolist() == ["c", "a", "b"]
    assert out["predicted_clv"].tolist() == [3.0, 1.0, 2.0]
    # a bought on Mar 1 (30 days before the as-of), not May 1; two purchase days, mean 15.
    a = out.set_index("customer_id").loc["a"]
    assert (a.days_since_last_purchase, a.purchase_days, a.avg_purchase_day_value) == (30, 2, 15)
    assert out.set_index("customer_id").loc["b", "f_score"] == 1


def test_segment_refuses_a_scored_customer_without_purchases() -> None:
    scores = pd.DataFrame({"customer_id": ["a", "zzz"], "as_of": pd.Timestamp("2024-03-31")})
    with pytest.raises(
        ValueError, match=r"1 customer\(s\) have no purchase to score \(e\.g\. zzz\)"
    ):
        segment(scores, _transactions())


def test_value_segments_need_churn_probability_and_say_how_to_get_rfm_alone() -> None:
    as_of = pd.Timestamp("2024-03-31 23:59:59")
    scores = pd.DataFrame({"customer_id": ["a", "b"], "predicted_clv": [1.0, 2.0], "as_of": as_of})
    with pytest.raises(ValueError, match=r"need churn_probability.*method='rfm'"):
        segment(scores, _transactions())
