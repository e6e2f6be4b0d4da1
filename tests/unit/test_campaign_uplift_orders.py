"""The uplift a campaign stores for the next one: revenue and orders, measured per segment."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
import yaml

from clv.campaigns.definition import HOLDOUT, CampaignDefinition
from clv.campaigns.measurement import analyze_campaign, attributed_metrics
from clv.campaigns.planning import plan_campaign
from clv.campaigns.service import measured_uplift_rows
from clv.campaigns.simulation import (
    GeneratedWorld,
    UpliftRule,
    UpliftSpec,
    load_generated,
    simulate_campaign,
)
from clv.data.generator import GeneratorConfig, generate, write_synthetic

WINDOW = 28
SEND = pd.Timestamp("2025-04-07 10:00")  # a week after the generated data end
TRUE_UPLIFT = {"loyal": 0.1, "at_risk": 0.6}


def _definition() -> CampaignDefinition:
    text = f"""
name: measured
audience: {{rule: predicted_clv > 0}}
budget: 1000
channels:
  email: {{kind: email, cost_per_message: 0.01}}
variants:
  - name: offer
    templates:
      email: {{subject: "hi", body: "hello"}}
holdout_share: 0.5
attribution_window_days: {WINDOW}
start: 2025-04-07T08:00:00Z
end: 2025-04-08T20:00:00Z
"""
    return CampaignDefinition.model_validate(yaml.safe_load(text))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> GeneratedWorld:
    folder = tmp_path_factory.mktemp("generated")
    data = generate(
        GeneratorConfig(n_customers=4000, start=date(2023, 1, 1), end=date(2025, 3, 31)), seed=5
    )
    write_synthetic(data, folder)
    return load_generated(folder)


def _plan(world: GeneratedWorld, seed: int, n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = rng.choice(world.truth["customer_id"].to_numpy(), size=n, replace=False)
    treated = rng.random(n) >= 0.5
    return pd.DataFrame(
        {
            "customer_id": ids,
            "group": np.where(treated, "offer", HOLDOUT),
            "segment": np.where(rng.random(n) < 0.5, "loyal", "at_risk"),
            "channel": "email",
            "send_at": SEND,
            "cost": np.where(treated, 0.01, 0.0),
        }
    )


def _spec() -> UpliftSpec:
    return UpliftSpec(
        default=0.0, rules=[UpliftRule(segment=s, uplift=u) for s, u in TRUE_UPLIFT.items()]
    )


def test_pre_period_orders_count_the_purchases_in_the_window_before_the_send() -> None:
    plan = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "group": ["offer", HOLDOUT],
            "segment": ["s", "s"],
            "channel": ["email", "email"],
            "send_at": [pd.Timestamp("2026-03-10")] * 2,
        }
    )
    tx = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b", "b"],
            "timestamp": pd.to_datetime(
                ["2026-03-05", "2026-03-08", "2026-02-01", "2026-03-09", "2026-03-09"]
            ),
            "amount": [5.0, 7.0, 9.0, 20.0, -20.0],  # a return is not an order
        }
    )

    units = attributed_metrics(plan, tx, window_days=7).set_index("customer_id")

    assert units.loc["a", "pre_orders"] == 2  # 2026-02-01 is before the window
    assert units.loc["b", "pre_orders"] == 1


def test_each_segment_is_stored_with_its_revenue_and_orders_uplift(world: GeneratedWorld) -> None:
    definition = _definition()
    plan = _plan(world, 0)
    result = simulate_campaign(plan, world, window_days=WINDOW, spec=_spec(), seed=0)

    rows = measured_uplift_rows(
        analyze_campaign("m", definition, plan, result.transactions), definition
    )

    assert list(rows.columns) == [
        "segment", "channel", "metric", "uplift", "standard_error", "n_treated", "n_holdout",
    ]  # fmt: skip
    assert sorted(zip(rows["metric"], rows["segment"], strict=True)) == [
        ("orders", "at_risk"), ("orders", "loyal"), ("revenue", "at_risk"), ("revenue", "loyal"),
    ]  # fmt: skip
    assert set(rows["channel"]) == {"email"}
    counts = rows.groupby("segment")[["n_treated", "n_holdout"]].nunique()
    assert (counts == 1).all().all()  # the same customers behind both metrics


def test_the_orders_uplift_is_the_same_effect_as_the_revenue_uplift_measured_more_precisely(
    world: GeneratedWorld,
) -> None:
    # The true effect multiplies the purchase rate, so both metrics estimate the same relative
    # uplift; the count of orders does not carry the noise of the orders' values.
    definition = _definition()
    estimates: dict[str, list[float]] = {"revenue": [], "orders": []}
    errors: dict[str, list[float]] = {"revenue": [], "orders": []}
    covered = 0
    seeds = range(12)
    for seed in seeds:
        plan = _plan(world, seed)
        result = simulate_campaign(plan, world, window_days=WINDOW, spec=_spec(), seed=seed)
        rows = measured_uplift_rows(
            analyze_campaign("m", definition, plan, result.transactions), definition
        )
        at_risk = rows[rows["segment"] == "at_risk"].set_index("metric")
        for metric in estimates:
            estimates[metric].append(float(at_risk.loc[metric, "uplift"]))
            errors[metric].append(float(at_risk.loc[metric, "standard_error"]))
        low, high = (at_risk.loc["orders", "uplift"] + z * at_risk.loc["orders", "standard_error"]
                     for z in (-1.96, 1.96))  # fmt: skip
        covered += int(low <= TRUE_UPLIFT["at_risk"] <= high)

    assert np.mean(errors["orders"]) < 0.8 * np.mean(errors["revenue"])
    assert np.mean(estimates["orders"]) == pytest.approx(TRUE_UPLIFT["at_risk"], abs=0.15)
    assert covered >= 9  # of 12: a 95 % interval, up to sampling


def test_the_plan_reads_the_orders_rows_and_shrinks_towards_the_segments_covariates(
    world: GeneratedWorld,
) -> None:
    rng = np.random.default_rng(1)
    ids = world.customers["customer_id"].astype(str)
    names = np.array(["calm", "lapsing", "mid", "fresh"])
    segment = pd.Series(names[rng.integers(0, 4, len(ids))], index=ids.to_numpy())
    churn = {"calm": 0.1, "fresh": 0.3, "mid": 0.5, "lapsing": 0.8}
    scores = pd.DataFrame(
        {
            "customer_id": ids,
            "predicted_clv": rng.gamma(2.0, 200.0, len(ids)),
            "churn_probability": segment.map(churn).to_numpy() + rng.normal(0, 0.02, len(ids)),
        }
    )
    # Orders say the lapsing respond and the calm do not; the revenue rows say the opposite.
    measured = pd.DataFrame(
        {
            "segment": ["calm", "mid", "lapsing"] * 2,
            "channel": "email",
            "metric": ["orders"] * 3 + ["revenue"] * 3,
            "uplift": [0.0, 0.2, 0.5, 0.5, 0.2, 0.0],
            "standard_error": [0.05, 0.1, 0.3, 0.1, 0.2, 0.6],
            "n_treated": 100,
            "n_holdout": 100,
        }
    )
    definition = _definition().model_copy(update={"budget": 5.0, "holdout_share": 0.1})

    def plan(rows: pd.DataFrame | None) -> pd.Series:
        planned = plan_campaign(
            definition,
            scores=scores,
            customers=world.customers.assign(marketing_opt_in=True),
            transactions=world.transactions,
            segments=segment,
            measured_uplift=rows,
        )
        assert planned.summary["uplift_covariates"] == ["churn_probability", "predicted_clv"]
        return planned.uplift.set_index("segment")["uplift"]

    learnt = plan(measured)
    prior = plan(None)

    assert learnt["lapsing"] > learnt["mid"] > learnt["calm"]
    assert learnt["fresh"] < learnt["mid"]  # never measured: the regression, at churn 0.3
    assert (prior == float(definition.uplift_prior.rate)).all()
