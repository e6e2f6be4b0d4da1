"""Segment profiles, migration between versions and the business rules, on hand-made tables."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from clv.segmentation.profiles import (
    NONE_LABEL,
    RuleResult,
    check_segments,
    migration_matrix,
    migration_share,
    profile_segments,
    rules_passed,
)
from clv.segmentation.rfm import segment_rfm

# --- a table small enough to compute by hand --------------------------------------------------


@pytest.fixture
def tiny() -> pd.DataFrame:
    index = pd.Index([f"c{i}" for i in range(1, 7)], name="customer_id")
    return pd.DataFrame(
        {
            "predicted_clv": [10.0, 20.0, 30.0, 100.0, 0.0, 40.0],
            "churn_probability": [0.1, 0.2, 0.3, 0.5, 0.7, 0.9],
            "eco_spend_share": [0.0, 0.5, 1.0, np.nan, 0.2, 0.4],
            "r_score": [5, 4, 3, 1, 2, 3],
            "f_score": [1, 2, 3, 4, 5, 1],
            "m_score": [2, 2, 2, 5, 5, 1],
            "segment": ["Champions", "Champions", "Loyal", "At risk", "Lost", "New"],
        },
        index=index,
    )


@pytest.fixture
def current() -> pd.Series:
    return pd.Series(
        ["A", "A", "A", "B", "B", "C"],
        index=pd.Index([f"c{i}" for i in range(1, 7)], name="customer_id"),
    )


@pytest.fixture
def previous() -> pd.Series:
    # c5 is new; c7 has gone; c6 was in a segment that no longer exists.
    return pd.Series(
        ["A", "B", "A", "B", "D", "B"],
        index=pd.Index(["c1", "c2", "c3", "c4", "c6", "c7"], name="customer_id"),
    )


def test_profiles_hold_sizes_value_shares_and_means_sorted_by_clv_share(
    tiny: pd.DataFrame, current: pd.Series
) -> None:
    profiles = profile_segments(tiny, current)
    assert profiles.index.tolist() == ["B", "A", "C"]  # CLV 100, 60 and 40 of 200
    assert profiles["customers"].tolist() == [2, 3, 1]
    np.testing.assert_allclose(profiles["share"], [2 / 6, 3 / 6, 1 / 6])
    np.testing.assert_allclose(profiles["clv_share"], [0.5, 0.3, 0.2])
    np.testing.assert_allclose(profiles["mean_clv"], [50.0, 20.0, 40.0])
    np.testing.assert_allclose(profiles["median_clv"], [50.0, 20.0, 40.0])
    np.testing.assert_allclose(profiles["mean_churn"], [0.6, 0.2, 0.9])
    np.testing.assert_allclose(profiles["eco_share"], [0.2, 0.5, 0.4])  # c4's NaN is skipped
    np.testing.assert_allclose(profiles["mean_r"], [1.5, 4.0, 3.0])
    np.testing.assert_allclose(profiles["mean_f"], [4.5, 2.0, 1.0])
    np.testing.assert_allclose(profiles["mean_m"], [5.0, 2.0, 1.0])
    assert profiles["rfm_mix"].tolist() == [
        "At risk 50%, Lost 50%",
        "Champions 67%, Loyal 33%",
        "New 100%",
    ]
    assert "customers_before" not in profiles.columns


def test_profiles_compare_each_segment_with_the_previous_version(
    tiny: pd.DataFrame, current: pd.Series, previous: pd.Series
) -> None:
    profiles = profile_segments(tiny, current, previous=previous)
    assert profiles.loc[["A", "B", "C"], "customers_before"].tolist() == [2, 3, 0]
    assert profiles.loc[["A", "B", "C"], "change"].tolist() == [1, -1, 1]


def test_rfm_mix_lists_the_top_three_and_sums_up_the_rest(tiny: pd.DataFrame) -> None:
    frame = tiny.assign(segment=["Champions", "Loyal", "New", "Lost", "At risk", "Champions"])
    one = pd.Series("X", index=frame.index)
    (mix,) = profile_segments(frame, one)["rfm_mix"]
    assert mix == "Champions 33%, At risk 17%, Lost 17%, 2 others 33%"


def test_profiles_without_eco_or_rfm_columns_leave_them_empty(
    tiny: pd.DataFrame, current: pd.Series
) -> None:
    profiles = profile_segments(tiny.drop(columns=["eco_spend_share", "segment"]), current)
    assert profiles["eco_share"].isna().all()
    assert profiles["rfm_mix"].isna().all()


def test_profiles_accept_categorical_labels(tiny: pd.DataFrame, current: pd.Series) -> None:
    profiles = profile_segments(tiny, current.astype("category"))
    assert profiles["customers"].to_dict() == {"B": 2, "A": 3, "C": 1}


# --- migration --------------------------------------------------------------------------------


def test_migration_matrix_counts_moves_and_customers_on_one_side_only(
    current: pd.Series, previous: pd.Series
) -> None:
    matrix = migration_matrix(previous, current)
    assert matrix.index.tolist() == ["A", "B", "D", NONE_LABEL]
    assert matrix.columns.tolist() == ["A", "B", "C", NONE_LABEL]
    assert matrix.to_numpy().tolist() == [
        [2, 0, 0, 0],  # c1, c3 stay in A
        [1, 1, 0, 1],  # c2 B → A, c4 stays, c7 gone
        [0, 0, 1, 0],  # c6 D → C
        [0, 1, 0, 0],  # c5 new, in B
    ]
    assert int(matrix.to_numpy().sum()) == 7


def test_migration_share_is_the_changed_share_of_customers_in_both(
    current: pd.Series, previous: pd.Series
) -> None:
    # In both: c1, c2, c3, c4, c6; changed: c2 (B → A) and c6 (D → C).
    assert migration_share(previous, current) == pytest.approx(2 / 5)
    assert migration_share(current, current) == 0.0
    assert np.isnan(migration_share(previous.iloc[:0], current))


def test_migration_refuses_a_customer_labelled_twice(current: pd.Series) -> None:
    with pytest.raises(ValueError, match=re.escape("1 customer(s) more than once (e.g. 'c1')")):
        migration_matrix(pd.concat([current, current.iloc[:1]]), current)


# --- business rules -------------------------------------------------------------------------


def good_inputs(per_group: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Three groups far apart on every value feature, with RFM segments from their purchases."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(3), per_group)
    n = len(groups)
    log_clv = np.array([6.0, 4.0, 1.5])[groups] + rng.normal(0, 0.3, n)
    frame = pd.DataFrame(
        {
            "predicted_clv": np.expm1(log_clv),
            "churn_probability": np.clip(
                np.array([0.1, 0.5, 0.9])[groups] + rng.normal(0, 0.05, n), 0, 1
            ),
            "eco_spend_share": np.clip(
                np.array([0.8, 0.1, 0.2])[groups] + rng.normal(0, 0.05, n), 0, 1
            ),
            "days_since_last_purchase": rng.exponential(np.array([10.0, 90.0, 400.0])[groups]),
            "purchase_days": 1 + rng.poisson(np.array([12.0, 4.0, 0.5])[groups]),
            "avg_purchase_day_value": rng.lognormal(np.array([4.5, 3.5, 2.5])[groups], 0.2),
        },
        index=pd.Index([f"C{i:05d}" for i in range(n)], name="customer_id"),
    )
    frame = segment_rfm(frame)
    labels = pd.Series(np.array(["gold", "silver", "bronze"])[groups], index=frame.index)
    return frame, labels


def by_rule(results: list[RuleResult], rule: str) -> dict[str | None, RuleResult]:
    return {r.segment: r for r in results if r.rule == rule}


def test_a_good_segmentation_passes_every_rule() -> None:
    inputs, labels = good_inputs()
    results = check_segments(inputs, labels, expected_ids=["gold", "silver", "bronze"])
    assert rules_passed(results), [r.message for r in results if not r.passed]
    assert [r.rule for r in results[:1]] == ["assigned_once"]
    assert results[0].segment is None and results[0].value == 0.0
    for rule in ("min_size", "distinct_profile", "not_outlier_driven"):
        assert set(by_rule(results, rule)) == {"gold", "silver", "bronze"}
    assert by_rule(results, "min_size")["gold"].value == 400
    assert by_rule(results, "distinct_profile")["gold"].value > 1.0


def test_a_tiny_segment_fails_min_size_with_the_numbers() -> None:
    inputs, labels = good_inputs()
    labels.iloc[:12] = "platinum"
    result = by_rule(check_segments(inputs, labels), "min_size")["platinum"]
    assert not result.passed
    assert result.value == 12 and result.threshold == 30
    assert result.message.startswith(
        "segment 'platinum' holds 12 customers (1.0%), below the minimum 30 / 1%"
    )
    assert by_rule(check_segments(inputs, labels), "min_size")["gold"].passed


def test_min_size_also_applies_the_share() -> None:
    inputs, labels = good_inputs()
    labels.iloc[:40] = "platinum"  # 40 customers pass 30, but 3.3% of 1,200 fails 5%
    result = by_rule(check_segments(inputs, labels, min_share=0.05), "min_size")["platinum"]
    assert not result.passed and result.threshold == pytest.approx(60.0)


def test_a_one_customer_segment_fails_not_outlier_driven() -> None:
    inputs, labels = good_inputs()
    labels.iloc[0] = "solo"
    result = by_rule(check_segments(inputs, labels), "not_outlier_driven")["solo"]
    assert not result.passed
    assert "single customer ('C00000')" in result.message


def test_a_segment_whose_value_rests_on_one_customer_fails_not_outlier_driven() -> None:
    inputs, labels = good_inputs()
    inputs.iloc[400, inputs.columns.get_loc("predicted_clv")] = 1e7  # in 'silver'
    result = by_rule(check_segments(inputs, labels), "not_outlier_driven")["silver"]
    assert not result.passed and result.value > 0.99
    assert "one customer ('C00400') holds 100% of the segment's predicted CLV" in result.message
    assert by_rule(check_segments(inputs, labels), "not_outlier_driven")["gold"].passed


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("duplicate", "2 customer(s) are assigned more than once (e.g. 'C00000', 'C00001')"),
        ("missing", "3 customer(s) have no assignment (e.g. 'C01197', 'C01198', 'C01199')"),
        ("empty", "1 customer(s) have an empty segment (e.g. 'C00005')"),
        ("unknown", "customer(s) are in segment(s) 'tin' that the segmentation does not define"),
        ("extra", "1 assignment(s) are for customers not in the scores (e.g. 'X1')"),
    ],
    ids=["duplicate", "missing", "empty", "unknown", "extra"],
)
def test_customers_not_assigned_exactly_once_fail_assigned_once(change: str, expected: str) -> None:
    inputs, labels = good_inputs()
    if change == "duplicate":
        labels = pd.concat([labels, labels.iloc[:2]])
    elif change == "missing":
        labels = labels.iloc[:-3]
    elif change == "empty":
        labels = labels.astype(object)
        labels.iloc[5] = None
    elif change == "unknown":
        labels.iloc[:50] = "tin"
    else:
        labels = pd.concat([labels, pd.Series(["gold"], index=["X1"])])
    results = check_segments(inputs, labels, expected_ids=["gold", "silver", "bronze"])
    (result,) = [r for r in results if r.rule == "assigned_once"]
    assert not result.passed and result.value > 0
    assert expected in result.message
    assert not rules_passed(results)


def test_two_segments_with_the_same_profile_fail_distinct_profile() -> None:
    inputs, labels = good_inputs()
    gold = np.flatnonzero((labels == "gold").to_numpy())
    labels.iloc[gold[1::2]] = "gold twin"  # every other gold customer: the same profile
    results = by_rule(check_segments(inputs, labels), "distinct_profile")
    for segment in ("gold", "gold twin"):
        assert not results[segment].passed
        assert results[segment].value < 0.25
    assert "have almost the same profile" in results["gold"].message
    assert results["silver"].passed and results["bronze"].passed


def test_the_rules_check_rfm_segments_by_name_too() -> None:
    inputs, _ = good_inputs()
    names = inputs["segment"].astype(str)
    results = check_segments(inputs, names)
    assert results[0].passed
    assert set(by_rule(results, "min_size")) == set(names.unique())
    profiles = profile_segments(inputs, names)
    assert profiles["customers"].sum() == len(inputs)
    assert all(mix.startswith(name) for name, mix in profiles["rfm_mix"].items())


def test_kmeans_segments_of_well_separated_groups_pass_the_rules() -> None:
    from clv.segmentation.values import fit_value_segments

    inputs, truth = good_inputs()
    model = fit_value_segments(inputs)
    ids = model.assign(inputs)
    assert model.k == 3
    assert pd.crosstab(ids, truth).gt(0).sum(axis=1).eq(1).all()  # each cluster is one group
    results = check_segments(inputs, ids, expected_ids=model.segment_ids)
    assert rules_passed(results), [r.message for r in results if not r.passed]


def test_an_expected_segment_nobody_is_in_fails_min_size() -> None:
    inputs, labels = good_inputs()
    results = check_segments(inputs, labels, expected_ids=["gold", "silver", "bronze", "tin"])
    tin = by_rule(results, "min_size")["tin"]
    assert not tin.passed and tin.value == 0
    assert "holds no customers" in tin.message
