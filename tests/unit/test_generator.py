"""The synthetic generator is deterministic, satisfies the contract and its truth is recoverable."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clv.data.generator import (
    DEFAULT_SEGMENTS,
    CampaignUplift,
    DriftScenario,
    GeneratorConfig,
    SyntheticData,
    generate,
    operational_time,
    write_synthetic,
)
from clv.data.validation import validate_frame
from clv.models.btyd import fit_bgnbd, fit_gamma_gamma


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _rfm_days(data: SyntheticData) -> pd.DataFrame:
    """Per customer: repeat purchases, recency, age T (days) and mean repeat order value."""
    cfg = data.config
    tx = data.frame("transactions")
    orders = tx[tx["amount"] > 0]
    days = (orders["timestamp"] - pd.Timestamp(cfg.start)).dt.total_seconds() / 86_400
    orders = orders.assign(t=days).sort_values(["customer_id", "t"])
    grouped = orders.groupby("customer_id")
    first = grouped["t"].transform("min")
    repeat = orders[orders["t"] > first]
    out = pd.DataFrame(
        {
            "frequency": grouped.size() - 1,
            "recency": grouped["t"].max() - grouped["t"].min(),
            "T": (cfg.end - cfg.start).days + 1 - grouped["t"].min(),
            "monetary": repeat.groupby("customer_id")["amount"].mean(),
        }
    )
    return out


@pytest.fixture(scope="module")
def default_data() -> SyntheticData:
    return generate(GeneratorConfig(n_customers=4000), seed=5)


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    cfg = GeneratorConfig(n_customers=500)
    for fmt in ("parquet", "csv"):
        write_synthetic(generate(cfg, seed=3), tmp_path / f"a-{fmt}", fmt=fmt)  # type: ignore[arg-type]
        write_synthetic(generate(cfg, seed=3), tmp_path / f"b-{fmt}", fmt=fmt)  # type: ignore[arg-type]
        assert _digests(tmp_path / f"a-{fmt}") == _digests(tmp_path / f"b-{fmt}")


def test_different_seeds_give_different_data() -> None:
    cfg = GeneratorConfig(n_customers=300)
    assert not generate(cfg, seed=1).transactions.equals(generate(cfg, seed=2).transactions)


@pytest.mark.parametrize("table", ["transactions", "customers", "sustainability"])
def test_generated_tables_satisfy_the_contract(default_data: SyntheticData, table: str) -> None:
    frame = validate_frame(default_data.frame(table), table, source=table)  # type: ignore[arg-type]
    assert len(frame) == getattr(default_data, table).num_rows


def test_every_customer_buys_at_signup_and_ids_keep_leading_zeros(
    default_data: SyntheticData,
) -> None:
    tx = default_data.frame("transactions")
    customers = default_data.frame("customers")
    first = tx[tx["amount"] > 0].groupby("customer_id")["timestamp"].min().dt.normalize()
    signup = customers.set_index("customer_id")["signup_date"]
    assert set(first.index) == set(signup.index)
    assert (first.sort_index() == pd.to_datetime(signup.sort_index())).all()
    assert customers["customer_id"].str.match(r"^C\d{8}$").all()


def test_transactions_stay_inside_the_observation_period(default_data: SyntheticData) -> None:
    cfg = default_data.config
    tx = default_data.frame("transactions")
    future = default_data.frame("future_transactions")
    end = pd.Timestamp(cfg.end) + pd.Timedelta(days=1)
    assert tx["timestamp"].min() >= pd.Timestamp(cfg.start)
    assert tx["timestamp"].max() < end
    assert future["timestamp"].min() >= end
    assert future["timestamp"].max() < end + pd.Timedelta(days=cfg.horizon_days)


def test_returns_are_negative_and_follow_their_order(default_data: SyntheticData) -> None:
    tx = pd.concat([default_data.frame("transactions"), default_data.frame("future_transactions")])
    returns = tx[tx["amount"] < 0]
    orders = tx[tx["amount"] > 0].set_index("order_id")
    assert 0.01 < len(returns) / len(orders) < 0.15
    matched = orders.loc[returns["order_id"]]
    assert (returns["timestamp"].to_numpy() > matched["timestamp"].to_numpy()).all()
    assert (-returns["amount"].to_numpy() <= matched["amount"].to_numpy() + 1e-9).all()
    assert (returns["customer_id"].to_numpy() == matched["customer_id"].to_numpy()).all()


def test_holiday_season_is_busier_than_spring(default_data: SyntheticData) -> None:
    tx = default_data.frame("transactions")
    tx = tx[(tx["amount"] > 0) & (tx["timestamp"].dt.year == 2025)]
    per_month = tx.groupby(tx["timestamp"].dt.month).size()
    assert per_month[12] > 1.3 * per_month[4]
    weekday = tx.groupby(tx["timestamp"].dt.dayofweek).size()
    assert weekday[5] > weekday[1]  # Saturday busier than Tuesday


def test_eco_conscious_segment_buys_more_eco_products(default_data: SyntheticData) -> None:
    tx = default_data.frame("transactions")
    truth = default_data.frame("truth").set_index("customer_id")
    tx = tx[tx["amount"] > 0].join(truth["segment"], on="customer_id")
    eco_share = tx.groupby("segment")["is_eco_product"].mean()
    assert eco_share["eco_conscious"] > 0.5 > 0.2 > eco_share["mainstream"]
    sust = default_data.frame("sustainability").join(truth["segment"], on="customer_id")
    score = sust.groupby("segment")["eco_engagement_score"].mean()
    assert score["eco_conscious"] > score["mainstream"] + 10


def test_truth_expected_spend_matches_realised_spend_in_aggregate() -> None:
    data = generate(GeneratorConfig(n_customers=20_000), seed=9)
    truth = data.frame("truth")
    h = data.config.horizon_days
    expected, actual = truth[f"expected_spend_{h}d"].sum(), truth[f"actual_spend_{h}d"].sum()
    # 20k customers: the sampling error of the realised total is about 2%; 5% leaves room.
    assert abs(expected / actual - 1) < 0.05
    orders = truth[f"expected_orders_{h}d"].sum() / truth[f"actual_orders_{h}d"].sum()
    assert abs(orders - 1) < 0.05
    assert (truth.loc[~truth["alive_at_end"], f"actual_orders_{h}d"] == 0).all()
    assert (truth[f"expected_spend_{h}d"] >= 0).all()


@pytest.mark.parametrize("seasonality", [0.0, 1.0], ids=["flat", "seasonal"])
def test_fitting_bgnbd_recovers_the_true_population_parameters(seasonality: float) -> None:
    segment = replace(DEFAULT_SEGMENTS[0], share=1.0)
    cfg = GeneratorConfig(
        n_customers=20_000,
        seasonality=seasonality,
        segments=(segment,),
        return_probability_scale=0.0,
    )
    rfm = _rfm_days(generate(cfg, seed=11))
    fitted = fit_bgnbd(rfm["frequency"], rfm["recency"], rfm["T"])
    # Tolerances: with 20k customers the MLE's standard errors are ~3% for r and alpha and ~8%
    # for a and b (which trade off against each other); seasonality adds a small bias since
    # BG/NBD assumes a flat clock. 10% / 20% hold across seeds.
    assert fitted.r == pytest.approx(segment.r, rel=0.10)
    assert fitted.alpha == pytest.approx(segment.alpha, rel=0.10)
    assert fitted.a == pytest.approx(segment.a, rel=0.20)
    assert fitted.b == pytest.approx(segment.b, rel=0.20)
    assert fitted.a / (fitted.a + fitted.b) == pytest.approx(
        segment.a / (segment.a + segment.b), rel=0.10
    )
    repeaters = rfm[rfm["frequency"] > 0]
    gg = fit_gamma_gamma(repeaters["frequency"], repeaters["monetary"])
    # Gamma-Gamma's p, q and v are weakly identified individually; the mean order value
    # p * v / (q - 1) is pinned down tightly.
    assert gg.p == pytest.approx(segment.p, rel=0.15)
    assert gg.q == pytest.approx(segment.q, rel=0.15)
    assert gg.p * gg.v / (gg.q - 1) == pytest.approx(
        segment.p * segment.gamma / (segment.q - 1), rel=0.05
    )


def test_each_segment_keeps_its_own_parameters() -> None:
    data = generate(GeneratorConfig(n_customers=30_000, return_probability_scale=0.0), seed=2)
    rfm = _rfm_days(data).join(data.frame("truth").set_index("customer_id")["segment"])
    for segment in DEFAULT_SEGMENTS:
        part = rfm[rfm["segment"] == segment.name]
        fitted = fit_bgnbd(part["frequency"], part["recency"], part["T"])
        assert fitted.r / fitted.alpha == pytest.approx(segment.r / segment.alpha, rel=0.10)


def test_price_drift_raises_order_values_after_its_start() -> None:
    base = GeneratorConfig(n_customers=3000)
    drift = DriftScenario(start=date(2025, 7, 1), price_level=1.5)
    before = generate(base, seed=4).frame("transactions")
    after = generate(replace(base, drift=drift), seed=4).frame("transactions")
    cut = pd.Timestamp(drift.start)
    for frame in (before, after):
        assert len(frame) > 0
    late_ratio = (
        after.loc[(after.timestamp >= cut) & (after.amount > 0), "amount"].mean()
        / before.loc[(before.timestamp >= cut) & (before.amount > 0), "amount"].mean()
    )
    early_ratio = (
        after.loc[(after.timestamp < cut) & (after.amount > 0), "amount"].mean()
        / before.loc[(before.timestamp < cut) & (before.amount > 0), "amount"].mean()
    )
    assert late_ratio == pytest.approx(1.5, rel=0.02)
    assert early_ratio == pytest.approx(1.0, abs=1e-9)


def test_eco_and_channel_drift_change_the_mix_after_start() -> None:
    drift = DriftScenario(
        start=date(2025, 7, 1), eco_share_shift=0.3, channel_mix=(0.1, 0.7, 0.1, 0.1)
    )
    tx = generate(GeneratorConfig(n_customers=3000, drift=drift), seed=4).frame("transactions")
    late = tx["timestamp"] >= pd.Timestamp(drift.start)
    assert tx.loc[late, "is_eco_product"].mean() > tx.loc[~late, "is_eco_product"].mean() + 0.2
    assert (tx.loc[late, "channel"] == "app").mean() == pytest.approx(0.7, abs=0.03)
    assert (tx.loc[~late, "channel"] == "app").mean() < 0.35


def test_campaign_uplift_makes_treated_customers_buy_more_during_the_window() -> None:
    campaign = CampaignUplift(
        start=date(2025, 9, 1), end=date(2025, 11, 1), treated_share=0.5, rate_multiplier=2.0
    )
    data = generate(GeneratorConfig(n_customers=8000, campaign=campaign), seed=6)
    tx = data.frame("transactions")
    truth = data.frame("truth").set_index("customer_id")
    window = (tx["timestamp"] >= pd.Timestamp(campaign.start)) & (
        tx["timestamp"] < pd.Timestamp(campaign.end)
    )
    old = truth["signup_day"] < (campaign.start - data.config.start).days
    per_customer = (
        tx[window & (tx["amount"] > 0)].groupby("customer_id").size().reindex(truth.index).fillna(0)
    )
    treated = per_customer[old & truth["treated"]].mean()
    control = per_customer[old & ~truth["treated"]].mean()
    assert treated / control > 1.5
    before = (tx["timestamp"] < pd.Timestamp(campaign.start)) & (tx["amount"] > 0)
    pre = tx[before].groupby("customer_id").size().reindex(truth.index).fillna(0)
    assert pre[old & truth["treated"]].mean() == pytest.approx(
        pre[old & ~truth["treated"]].mean(), rel=0.08
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_customers": 0}, "n_customers must be at least 1"),
        ({"end": date(2020, 1, 1)}, "must be after start"),
        ({"horizon_days": 0}, "horizon_days must be at least 1"),
        ({"channel_mix": (0.5, 0.5)}, "channel_mix must have 4 non-negative shares"),
    ],
    ids=["no-customers", "end-before-start", "no-horizon", "bad-channel-mix"],
)
def test_invalid_config_is_rejected_with_the_reason(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GeneratorConfig(**changes)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 60))
def test_any_seed_gives_consistent_tables(seed: int, n: int) -> None:
    data = generate(GeneratorConfig(n_customers=n), seed=seed)
    tx = data.frame("transactions")
    truth = data.frame("truth")
    assert data.customers.num_rows == n == len(truth)
    assert tx["timestamp"].is_monotonic_increasing
    assert (tx.loc[tx["amount"] > 0, "amount"] >= 0.5).all()
    assert set(tx["customer_id"]) <= set(truth["customer_id"])
    assert (truth["expected_spend_90d"] >= 0).all()
    assert np.isfinite(truth.select_dtypes("number").to_numpy(dtype=float)).all()


def test_operational_time_is_calendar_time_without_seasonality_and_faster_on_black_friday() -> None:
    flat = GeneratorConfig(n_customers=1, start=date(2024, 1, 1), end=date(2024, 12, 31))
    days = np.array([0.0, 10.5, 200.25, 365.0])
    np.testing.assert_allclose(operational_time(replace(flat, seasonality=0.0), days), days)
    clock = operational_time(flat, np.arange(0.0, 366.0))
    rate = np.diff(clock)
    assert (rate > 0).all()
    # the clock's mean speed is 1 over the generated span (a year and the horizon): a year of
    # it is a calendar year within 1%
    assert abs(clock[-1] - 365.0) < 3.65
    black_friday = (date(2024, 11, 29) - date(2024, 1, 1)).days
    assert rate[black_friday] > 2 * np.median(rate)
