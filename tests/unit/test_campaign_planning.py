"""Planning: a holdout drawn from exactly the customers the campaign chose, within budget."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from clv.campaigns.definition import HOLDOUT, load_campaign
from clv.campaigns.errors import CampaignError
from clv.campaigns.planning import PLAN_COLUMNS, plan_campaign
from clv.data.generator import GeneratorConfig, generate
from clv.data.validation import validate_frame

EXAMPLE = Path(__file__).parents[2] / "examples" / "campaign.yaml"


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    generated = generate(
        GeneratorConfig(n_customers=4000, start=date(2023, 1, 1), end=date(2025, 3, 31)), seed=3
    )
    tables = {k: validate_frame(generated.frame(k), k) for k in ("transactions", "customers")}
    rng = np.random.default_rng(0)
    ids = tables["customers"]["customer_id"]
    tables["scores"] = pd.DataFrame(
        {
            "customer_id": ids,
            "predicted_clv": rng.gamma(1.5, 250, len(ids)),
            "churn_probability": rng.uniform(0, 1, len(ids)),
        }
    )
    tables["customers"] = tables["customers"].assign(marketing_opt_in=rng.random(len(ids)) < 0.8)
    return tables


def _plan(data: dict[str, pd.DataFrame], **changes: object):  # type: ignore[no-untyped-def]
    definition = load_campaign(EXAMPLE)
    if changes:
        definition = definition.model_copy(update=changes)
    return plan_campaign(
        definition,
        scores=data["scores"],
        customers=data["customers"],
        transactions=data["transactions"],
    )


def test_the_plan_respects_the_budget_the_audience_and_the_columns(data) -> None:  # type: ignore[no-untyped-def]
    plan = _plan(data, budget=5.0)
    rows = plan.rows

    assert list(rows.columns) == list(PLAN_COLUMNS)
    assert rows.loc[rows["group"] != HOLDOUT, "cost"].sum() <= 5.0 + 1e-9
    assert (rows.loc[rows["group"] == HOLDOUT, "cost"] == 0).all()
    scored = data["scores"].set_index("customer_id").loc[rows["customer_id"]]
    from clv.campaigns.definition import AudienceRule

    rule = load_campaign(EXAMPLE).audience.rule
    assert rule is not None
    assert AudienceRule(rule).evaluate(scored.reset_index()).all()  # all planned match the rule
    assert set(rows["group"]) == {HOLDOUT, "classic", "eco"}
    assert rows["customer_id"].is_unique
    start = pd.Timestamp(load_campaign(EXAMPLE).start).tz_convert("UTC").tz_localize(None)
    assert (rows["send_at"] >= start).all()
    assert plan.summary["excluded"]["no marketing opt-in"] > 0


def test_the_holdout_is_a_random_sample_of_the_chosen_customers(data) -> None:  # type: ignore[no-untyped-def]
    rows = _plan(data, budget=5.0).rows

    held = rows[rows["group"] == HOLDOUT]
    treated = rows[rows["group"] != HOLDOUT]
    share = len(held) / len(rows)

    assert 0.05 < share < 0.16  # the planned 10%, up to sampling
    # The same targeting rule chose both: their predicted values are alike.
    assert stats.ks_2samp(held["predicted_clv"], treated["predicted_clv"]).pvalue > 0.001
    assert held["channel"].notna().all()  # the channel they would have got, for per-channel reads


def test_the_same_inputs_give_the_same_plan_and_id(data) -> None:  # type: ignore[no-untyped-def]
    first, second = _plan(data, budget=3.0), _plan(data, budget=3.0)

    pd.testing.assert_frame_equal(first.rows, second.rows)
    assert first.campaign_id == second.campaign_id
    assert first.campaign_id != _plan(data, budget=4.0).campaign_id


def test_personalisation_fields_cover_every_chosen_customer(data) -> None:  # type: ignore[no-untyped-def]
    plan = _plan(data, budget=3.0)
    definition = load_campaign(EXAMPLE)

    definition.check_templates(plan.fields.columns)
    assert set(plan.fields["customer_id"]) == set(plan.rows["customer_id"])


def test_an_audience_nobody_matches_is_refused(data) -> None:  # type: ignore[no-untyped-def]
    definition = load_campaign(EXAMPLE)
    audience = definition.audience.model_copy(update={"rule": "predicted_clv > 1e12"})

    with pytest.raises(CampaignError, match="no customer matches the audience"):
        _plan(data, audience=audience)


def test_nobody_eligible_is_refused_with_the_reasons(data) -> None:  # type: ignore[no-untyped-def]
    opted_out = {**data, "customers": data["customers"].assign(marketing_opt_in=False)}

    with pytest.raises(CampaignError, match="no marketing opt-in"):
        _plan(opted_out)


def test_segments_in_the_audience_need_an_active_segmentation(data) -> None:  # type: ignore[no-untyped-def]
    definition = load_campaign(EXAMPLE)
    audience = definition.audience.model_copy(update={"segments": ["Champions"]})

    with pytest.raises(CampaignError, match="no active segmentation"):
        _plan(data, audience=audience)
