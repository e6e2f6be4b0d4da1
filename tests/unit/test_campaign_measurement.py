"""Campaign measurement: attribution windows, incremental revenue and ROI against the holdout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clv.campaigns.definition import HOLDOUT, load_campaign
from clv.campaigns.errors import CampaignError
from clv.campaigns.measurement import analyze_campaign, attributed_metrics
from clv.experiments.assignment import assign

EXAMPLE = Path(__file__).parents[2] / "examples" / "campaign.yaml"
SEND = pd.Timestamp("2026-03-02 10:00")


def _world(n: int, lift: dict[str, float], seed: int) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """A plan and transactions in which each treated variant adds a known mean revenue."""
    rng = np.random.default_rng(seed)
    ids = [f"c{i}" for i in range(n)]
    groups = assign(ids, f"sim-{seed}", variants={"classic": 1, "eco": 1}, holdout_share=0.2)
    plan = pd.DataFrame(
        {
            "customer_id": ids,
            "group": groups.to_numpy(),
            "segment": rng.choice(["loyal", "at risk"], n),
            "channel": "email",
            "send_at": SEND,
            "predicted_clv": rng.gamma(2, 100, n),
            "expected_incremental_value": 1.0,
            "cost": np.where(groups.to_numpy() == HOLDOUT, 0.0, 0.05),
        }
    )
    habit = rng.gamma(0.8, 40, n)
    rows = []
    truth = 0.0
    for i, (customer, group) in enumerate(zip(ids, plan["group"], strict=True)):
        for _ in range(rng.poisson(1.0)):  # the pre-period
            rows.append((customer, SEND - pd.Timedelta(days=rng.uniform(0.1, 13.9)), habit[i]))
        extra = lift.get(group, 0.0)
        truth += extra
        spend = habit[i] + (rng.exponential(extra) if extra else 0.0)
        for _ in range(rng.poisson(1.0)):
            rows.append((customer, SEND + pd.Timedelta(days=rng.uniform(0, 13.9)), spend))
    tx = pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])
    return plan, tx, truth


def _definition():  # type: ignore[no-untyped-def]
    # The simulated plans hold out 20%: the SRM check compares with the definition's share.
    return load_campaign(EXAMPLE).model_copy(update={"holdout_share": 0.2})


def test_each_customer_is_followed_from_their_own_send_time() -> None:
    plan = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "group": ["eco", HOLDOUT],
            "segment": ["s", "s"],
            "channel": ["email", "email"],
            "send_at": [pd.Timestamp("2026-03-02"), pd.Timestamp("2026-03-10")],
        }
    )
    tx = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "b", "a"],
            "timestamp": pd.to_datetime(
                ["2026-03-01", "2026-03-05", "2026-03-05", "2026-03-12", "2026-03-20"]
            ),
            "amount": [5.0, 10.0, 20.0, 40.0, 80.0],
            "is_eco_product": [False, True, False, False, False],
        }
    )

    metrics = attributed_metrics(plan, tx, window_days=7).set_index("customer_id")

    assert metrics.loc["a", "revenue"] == 10.0 and metrics.loc["a", "pre_spend"] == 5.0
    assert metrics.loc["b", "revenue"] == 40.0 and metrics.loc["b", "pre_spend"] == 20.0
    assert metrics.loc["a", "eco_adopted"] == 1 and metrics.loc["b", "eco_adopted"] == 0
    assert metrics.loc["a", "retained"] == 1  # 2026-03-20 is within twice the window


def test_an_aa_campaign_has_no_winner_and_its_interval_covers_zero() -> None:
    plan, tx, _ = _world(4000, {}, seed=1)

    result = analyze_campaign("aa", _definition(), plan, tx)

    assert result.winner is None
    assert result.incremental_revenue["ci_low"] <= 0 <= result.incremental_revenue["ci_high"]
    assert result.roi["estimate"] is not None and result.roi["estimate"] < 1


def test_incremental_revenue_and_roi_recover_a_known_effect() -> None:
    plan, tx, truth = _world(6000, {"classic": 8.0, "eco": 8.0}, seed=2)

    result = analyze_campaign("known", _definition(), plan, tx)
    payload = result.to_dict()

    low, high = result.incremental_revenue["ci_low"], result.incremental_revenue["ci_high"]
    assert low <= truth <= high
    assert low > 0
    cost = plan["cost"].sum()
    assert result.roi["estimate"] == pytest.approx(
        (0.3 * result.incremental_revenue["estimate"] - cost) / cost
    )
    assert {"campaign_id", "incremental_revenue", "roi", "srm", "variants", "segments"} <= set(
        payload
    )
    assert {s["segment"] for s in payload["segments"]} == {"loyal", "at risk"}
    assert not payload["srm"]["mismatch"]


def test_the_right_variant_wins_when_the_difference_is_large() -> None:
    plan, tx, _ = _world(6000, {"eco": 25.0}, seed=3)

    result = analyze_campaign("eco-wins", _definition(), plan, tx)

    assert result.winner == "eco"


def test_a_plan_without_holdout_cannot_be_measured() -> None:
    plan, tx, _ = _world(200, {}, seed=4)

    with pytest.raises(CampaignError, match="no holdout"):
        analyze_campaign("x", _definition(), plan[plan["group"] != HOLDOUT], tx)


def test_a_holdout_smaller_than_planned_is_a_sample_ratio_mismatch() -> None:
    plan, tx, _ = _world(6000, {"eco": 25.0}, seed=3)

    result = analyze_campaign("srm", load_campaign(EXAMPLE), plan, tx)  # plans 10%, got 20%

    assert result.to_dict()["srm"]["mismatch"]
    assert result.winner is None
