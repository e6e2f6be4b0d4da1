"""Point-in-time features: lifetimes' RFM definitions, optional families, and no leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clv.data.generator import GeneratorConfig, generate
from clv.data.validation import validate_frame
from clv.features import build_features, future_targets, rolling_cutoffs, training_set
from clv.features.behaviour import behaviour_features
from clv.features.rfm import VisibleHistory, rfm_features
from clv.features.seasonal import seasonal_features
from clv.features.sustainability import sustainability_features

CUTOFF = pd.Timestamp("2025-06-30 23:59:59")


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    data = generate(GeneratorConfig(n_customers=400), seed=21)
    return {
        kind: validate_frame(data.frame(kind), kind)  # type: ignore[arg-type]
        for kind in ("transactions", "customers", "sustainability")
    }


def _tx(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])
    return validate_frame(frame)


def test_rfm_follows_lifetimes_definitions() -> None:
    # Customer a: purchase days Jan 1 (two orders: 10 + 5), Jan 11 (20), Jan 31 (40) and a
    # refund of 8 on Feb 2; cut-off Feb 10.
    #   frequency = 3 purchase days - 1 = 2; recency = Jan 31 - Jan 1 = 30; T = Feb 10 - Jan 1 = 40
    #   monetary_value = mean of repeat days = (20 + 40) / 2 = 30
    #   gross 75, returned 8, net 67; days since last purchase = Feb 10 - Jan 31 = 10
    # Customer b: one purchase on Feb 5 -> frequency 0, recency 0, T 5, monetary 0.
    tx = _tx(
        [
            ("a", "2024-01-01 09:00", 10.0),
            ("a", "2024-01-01 18:00", 5.0),
            ("a", "2024-01-11", 20.0),
            ("a", "2024-01-31", 40.0),
            ("a", "2024-02-02", -8.0),
            ("b", "2024-02-05", 12.0),
            ("a", "2024-03-01", 99.0),  # after the cut-off: invisible
        ]
    )
    rfm = rfm_features(tx, cutoff=pd.Timestamp("2024-02-10 23:59"))
    a, b = rfm.loc["a"], rfm.loc["b"]
    assert (a.frequency, a.recency, a["T"], a.monetary_value) == (2, 30, 40, 30)
    assert (a.gross_total, a.return_total, a.net_total) == (75, 8, 67)
    assert a.days_since_last_purchase == 10
    assert a.return_rate == pytest.approx(8 / 75)
    assert (b.frequency, b.recency, b["T"], b.monetary_value) == (0, 0, 5, 0)


def test_customers_without_sales_before_the_cutoff_are_absent() -> None:
    tx = _tx([("a", "2024-01-01", 10.0), ("b", "2024-03-01", 10.0)])
    assert rfm_features(tx, cutoff=pd.Timestamp("2024-02-01")).index.tolist() == ["a"]


def test_sustainability_features_exist_only_when_the_input_has_them() -> None:
    bare = _tx([("a", "2024-01-01", 10.0), ("a", "2024-01-05", 5.0)])
    assert sustainability_features(bare, cutoff=pd.Timestamp("2024-02-01")).columns.empty


def test_rich_input_gives_every_family(tables: dict[str, pd.DataFrame]) -> None:
    features = build_features(
        tables["transactions"],
        cutoff=CUTOFF,
        horizon_days=90,
        customers=tables["customers"],
        sustainability=tables["sustainability"],
    )
    for column in (
        "frequency",
        "gap_mean",
        "spend_90d",
        "category_entropy",
        "channel_share_web",
        "eco_spend_share",
        "carbon_kg_per_purchase",
        "eco_preference",
        "eco_engagement_score",
        "btyd_p_alive",
        "btyd_expected_spend",
    ):
        assert column in features.columns, column
    assert features.index.is_unique
    assert (features["btyd_expected_spend"] >= 0).all()
    assert features["btyd_p_alive"].between(0, 1).all()
    # customers missing from the sustainability table stay missing: never silently filled
    assert features["eco_engagement_score"].isna().any()


def test_more_recent_buyer_has_fewer_days_since_last_purchase_and_higher_p_alive(
    tables: dict[str, pd.DataFrame],
) -> None:
    # Two extra customers identical but for the date of their second purchase.
    extra = _tx(
        [
            ("early", "2025-01-02", 20.0),
            ("early", "2025-01-20", 20.0),
            ("late", "2025-01-02", 20.0),
            ("late", "2025-06-20", 20.0),
        ]
    )
    tx = pd.concat([tables["transactions"], extra], ignore_index=True)
    features = build_features(tx, cutoff=CUTOFF, horizon_days=90)
    early, late = features.loc["early"], features.loc["late"]
    assert late.days_since_last_purchase < early.days_since_last_purchase
    assert late.btyd_p_alive > early.btyd_p_alive
    assert late.btyd_expected_spend > early.btyd_expected_spend


def test_targets_come_only_from_the_horizon_window() -> None:
    tx = _tx(
        [
            ("a", "2024-01-31 23:59:59", 100.0),  # at the cut-off: history
            ("a", "2024-02-01 00:00:01", 10.0),  # first second of the window
            ("a", "2024-03-01 23:59:59", 5.0),  # last day of a 30-day window
            ("a", "2024-03-02 00:00:01", 1000.0),  # after the window
            ("b", "2024-02-10", 20.0),
            ("b", "2024-02-12", -30.0),  # refund larger than the window's purchases
        ]
    )
    targets = future_targets(tx, cutoff=pd.Timestamp("2024-01-31 23:59:59"), horizon_days=30)
    assert targets.loc["a"].tolist() == [15.0, 2.0]
    assert targets.loc["b"].tolist() == [0.0, 1.0]  # spend floored at zero


def test_training_set_stacks_cutoffs_and_refuses_incomplete_horizons(
    tables: dict[str, pd.DataFrame],
) -> None:
    tx = tables["transactions"]
    cutoffs = rolling_cutoffs(tx["timestamp"].max(), horizon_days=90, n_windows=3, step_days=60)
    assert cutoffs == sorted(cutoffs, reverse=True)
    stacked = training_set(tx, cutoffs=cutoffs, horizon_days=90, include_btyd=False)
    assert stacked["cutoff"].nunique() == 3
    assert (stacked["future_spend"] >= 0).all()
    assert not stacked.duplicated(["cutoff", "customer_id"]).any()
    with pytest.raises(ValueError, match="reaches past the last transaction"):
        training_set(tx, cutoffs=[tx["timestamp"].max()], horizon_days=90)


_late_rows = st.lists(
    st.tuples(
        st.integers(0, 450),  # customer index (some new, some known)
        st.integers(1, 200 * 86_400),  # seconds after the cut-off
        st.floats(-500, 5000, allow_nan=False).map(lambda x: round(x, 2)),
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(late=_late_rows, drop_share=st.floats(0, 1))
def test_transactions_after_the_cutoff_never_change_features(
    tables: dict[str, pd.DataFrame], late: list[tuple[int, int, float]], drop_share: float
) -> None:
    tx = tables["transactions"]
    before = build_features(tx, cutoff=CUTOFF, horizon_days=90, customers=tables["customers"])
    after_rows = tx[tx["timestamp"] > CUTOFF]
    kept = after_rows.iloc[: int(len(after_rows) * drop_share)]  # remove some future rows
    added = pd.DataFrame(
        {
            "customer_id": [f"C{i + 1:08d}" for i, _, _ in late],
            "timestamp": [CUTOFF + pd.Timedelta(seconds=s) for _, s, _ in late],
            "amount": [a for _, _, a in late],
        }
    )
    changed = pd.concat([tx[tx["timestamp"] <= CUTOFF], kept, added], ignore_index=True)
    after = build_features(changed, cutoff=CUTOFF, horizon_days=90, customers=tables["customers"])
    pd.testing.assert_frame_equal(before, after)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(shift_days=st.integers(1, 400), outside=st.booleans())
def test_targets_ignore_rows_outside_the_window(
    tables: dict[str, pd.DataFrame], shift_days: int, outside: bool
) -> None:
    tx = tables["transactions"]
    cutoff = pd.Timestamp("2025-03-31 23:59:59")
    base = future_targets(tx, cutoff=cutoff, horizon_days=60)
    # a large purchase placed before the cut-off or after the window end changes nothing
    when = (
        cutoff - pd.Timedelta(days=shift_days)
        if outside
        else cutoff + pd.Timedelta(days=60 + shift_days)
    )
    extra = pd.DataFrame({"customer_id": ["C00000001"], "timestamp": [when], "amount": [1e5]})
    moved = future_targets(
        pd.concat([tx, extra], ignore_index=True), cutoff=cutoff, horizon_days=60
    )
    pd.testing.assert_frame_equal(base, moved)
    assert np.isfinite(base.to_numpy()).all()


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1))
def test_row_order_never_changes_features_bit_for_bit(
    tables: dict[str, pd.DataFrame], seed: int
) -> None:
    tx = tables["transactions"]
    shuffled = tx.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    first = build_features(tx, cutoff=CUTOFF, horizon_days=90)
    second = build_features(shuffled, cutoff=CUTOFF, horizon_days=90)
    assert pd.util.hash_pandas_object(first).equals(pd.util.hash_pandas_object(second))


def test_shared_history_gives_every_family_the_features_of_its_own_history(
    tables: dict[str, pd.DataFrame],
) -> None:
    tx = tables["transactions"]
    shared = VisibleHistory(tx, CUTOFF)
    for family in (
        lambda data: rfm_features(data, cutoff=CUTOFF),
        lambda data: behaviour_features(data, cutoff=CUTOFF),
        lambda data: sustainability_features(data, cutoff=CUTOFF),
        lambda data: seasonal_features(data, cutoff=CUTOFF, horizon_days=90),
    ):
        own, from_shared = family(tx), family(shared)
        pd.testing.assert_frame_equal(own, from_shared, check_exact=True)
    assert shared.frame["timestamp"].max() <= CUTOFF.to_pydatetime()
    assert shared.frame["customer_id"].flags["SORTED_ASC"]  # the families' sums rely on it


def test_a_history_of_another_cutoff_is_refused(tables: dict[str, pd.DataFrame]) -> None:
    shared = VisibleHistory(tables["transactions"], CUTOFF)
    with pytest.raises(ValueError, match="built for the cut-off"):
        rfm_features(shared, cutoff=CUTOFF - pd.Timedelta(days=1))
