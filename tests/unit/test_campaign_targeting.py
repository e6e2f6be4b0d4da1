"""Targeting under a budget by expected incremental value; eligibility counted by reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clv.campaigns.eligibility import REASONS, eligibility
from clv.campaigns.errors import CampaignError
from clv.campaigns.targeting import candidates, select_under_budget, shrink_uplift

SEGMENTS = ["loyal", "at risk", "new"]


def _customers(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    segment = rng.choice(SEGMENTS, n, p=[0.3, 0.4, 0.3])
    clv = np.where(segment == "loyal", rng.gamma(4, 150, n), rng.gamma(2, 60, n))
    return pd.DataFrame(
        {"customer_id": [f"c{i}" for i in range(n)], "segment": segment, "predicted_clv": clv}
    )


#: Loyal customers buy anyway; at-risk ones respond to a message; email is cheap, SMS dearer.
TRUE_UPLIFT = {
    ("loyal", "email"): 0.005,
    ("loyal", "sms"): 0.01,
    ("at risk", "email"): 0.12,
    ("at risk", "sms"): 0.2,
    ("new", "email"): 0.05,
    ("new", "sms"): 0.06,
}
COSTS = {"email": 0.5, "sms": 3.0}


def _uplift_table(values: dict[tuple[str, str], float]) -> pd.DataFrame:
    return pd.DataFrame(
        [(s, c, u, "measured") for (s, c), u in values.items()],
        columns=["segment", "channel", "uplift", "source"],
    )


def _true_incremental(selection: pd.DataFrame) -> float:
    rates = [
        TRUE_UPLIFT[(s, c)] for s, c in zip(selection["segment"], selection["channel"], strict=True)
    ]
    return float(
        (np.asarray(rates) * 0.3 * selection["predicted_clv"]).sum() - selection["cost"].sum()
    )


def test_targeting_by_incremental_value_beats_highest_clv_first_at_the_same_budget() -> None:
    pairs = candidates(_customers(), COSTS, _uplift_table(TRUE_UPLIFT), margin=0.3)

    ours = select_under_budget(pairs, 400.0)
    by_clv = select_under_budget(pairs, 400.0, strategy="highest_clv")
    random = select_under_budget(pairs, 400.0, strategy="random", seed=1)

    assert ours["cost"].sum() <= 400.0 and by_clv["cost"].sum() <= 400.0
    assert _true_incremental(ours) >= 1.25 * _true_incremental(by_clv)
    assert _true_incremental(ours) > _true_incremental(random)
    assert ours["customer_id"].is_unique


def test_nobody_is_sent_a_message_worth_less_than_it_costs() -> None:
    pairs = candidates(_customers(), COSTS, _uplift_table(TRUE_UPLIFT), margin=0.3)

    chosen = select_under_budget(pairs, 1e9)

    assert (chosen["net"] > 0).all()
    assert len(chosen) < len(_customers())  # loyal customers on SMS are not worth 3.00


def test_the_budget_is_filled_with_cheaper_messages_when_a_dear_one_does_not_fit() -> None:
    pairs = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "segment": ["s"] * 3,
            "channel": ["sms", "sms", "email"],
            "predicted_clv": [100.0, 90.0, 10.0],
            "expected_incremental_value": [40.0, 30.0, 2.0],
            "cost": [3.0, 3.0, 0.5],
        }
    ).assign(net=lambda f: f["expected_incremental_value"] - f["cost"])

    chosen = select_under_budget(pairs, 4.0)

    assert chosen["customer_id"].tolist() == ["a", "c"]
    assert chosen["cumulative_cost"].iloc[-1] == pytest.approx(3.5)


def test_uplift_without_measurements_is_the_prior_and_precise_ones_keep_their_value() -> None:
    empty = shrink_uplift(None, SEGMENTS, ["email"], prior_rate=0.02, prior_sd=0.02)
    measured = pd.DataFrame(
        {
            "segment": ["loyal", "at risk"],
            "channel": ["email", "email"],
            "uplift": [0.0, 0.15],
            "standard_error": [0.001, 0.05],
        }
    )

    shrunk = shrink_uplift(measured, SEGMENTS, ["email"], prior_rate=0.02, prior_sd=0.02)
    by = shrunk.set_index("segment")

    assert (empty["uplift"] == 0.02).all() and set(empty["source"]) == {"prior"}
    assert by.loc["loyal", "uplift"] == pytest.approx(0.0, abs=0.002)  # precise: kept
    assert 0.0 < by.loc["at risk", "uplift"] < 0.15  # noisy: pulled towards the global estimate
    assert by.loc["new", "source"] == "channel"


def test_a_segment_without_uplift_is_refused() -> None:
    with pytest.raises(CampaignError, match="no uplift for segment 'vip'"):
        candidates(
            _customers(10).assign(segment="vip"), COSTS, _uplift_table(TRUE_UPLIFT), margin=0.3
        )


def test_a_negative_budget_is_refused() -> None:
    pairs = candidates(_customers(10), COSTS, _uplift_table(TRUE_UPLIFT), margin=0.3)
    with pytest.raises(CampaignError, match="budget"):
        select_under_budget(pairs, -1.0)


def test_every_excluded_customer_is_counted_by_the_first_reason_that_applies() -> None:
    audience = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e", "f"],
            "marketing_opt_in": [True, False, True, True, True, True],
        }
    )
    contacts = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e", "f"],
            "email": ["a@x", "b@x", "c@x", "d@x", None, "f@x"],
            "phone": ["1", "2", "3", None, None, "6"],
            "opt_out_email": [False, False, False, True, False, False],
        }
    )
    history = pd.DataFrame({"customer_id": ["f", "f"], "sent_at": ["2026-03-01", "2026-03-03"]})

    result = eligibility(
        audience,
        ["email", "sms"],
        contacts=contacts,
        suppressed=["c"],
        history=history,
        max_messages=2,
        per_days=7,
        now=pd.Timestamp("2026-03-05"),
    )

    assert result.excluded == {
        "no marketing opt-in": 1,
        "suppressed": 1,
        "frequency cap": 1,
        "no reachable channel": 2,  # d opted out of email and has no phone; e has nothing
    }
    assert list(result.eligible_ids) == ["a"]
    assert result.channels.loc["a"].tolist() == [True, True]
    assert set(REASONS) == set(result.excluded)


def test_a_multi_channel_campaigns_pooled_measurement_reaches_each_channel() -> None:
    measured = pd.DataFrame(
        {
            "segment": ["loyal", "at_risk"],
            "channel": ["all", "all"],
            "uplift": [0.01, 0.4],
            "standard_error": [0.01, 0.05],
            "n_treated": [500, 500],
            "n_holdout": [100, 100],
        }
    )
    shrunk = shrink_uplift(
        measured, ["loyal", "at_risk"], ["email", "sms"], prior_rate=0.05, prior_sd=0.05
    )
    assert set(shrunk["source"]) == {"measured"}
    by_cell = shrunk.set_index(["segment", "channel"])["uplift"]
    assert by_cell[("at_risk", "sms")] > by_cell[("loyal", "sms")]
    assert by_cell[("at_risk", "email")] == by_cell[("at_risk", "sms")]


def test_the_expected_value_is_the_windows_share_of_the_predicted_clv() -> None:
    customers = pd.DataFrame({"customer_id": ["a"], "segment": ["s"], "predicted_clv": [900.0]})
    uplift = pd.DataFrame({"segment": ["s"], "channel": ["email"], "uplift": [0.1]})
    whole = candidates(customers, {"email": 0.01}, uplift, margin=0.5)
    window = candidates(customers, {"email": 0.01}, uplift, margin=0.5, window_share=14 / 90)
    assert whole["expected_incremental_value"].iloc[0] == pytest.approx(45.0)
    assert window["expected_incremental_value"].iloc[0] == pytest.approx(45.0 * 14 / 90)
