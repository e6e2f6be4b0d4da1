"""The promotion gate on hand-made numbers: beat the champion and every reference, or be refused."""

from __future__ import annotations

import math

import pytest

from clv.training.gates import judge

GINI = "holdout_normalized_gini"
BRIER = "holdout_brier"


def test_a_challenger_better_than_the_champion_and_both_references_passes() -> None:
    verdict = judge(
        GINI,
        higher_is_better=True,
        challenger=0.74,
        opponents={"champion v1": 0.70, "BG/NBD + Gamma-Gamma": 0.71, "run rate": 0.60},
    )
    assert verdict.passed and verdict.message() == ""
    assert [round(c.margin or 0, 6) for c in verdict.checks] == [0.04, 0.03, 0.14]


def test_losing_to_a_reference_refuses_even_without_a_champion_and_says_by_how_much() -> None:
    verdict = judge(
        GINI,
        higher_is_better=True,
        challenger=0.70,
        opponents={"BG/NBD + Gamma-Gamma": 0.716, "run rate": 0.60},
    )
    assert not verdict.passed
    assert [c.opponent for c in verdict.failures] == ["BG/NBD + Gamma-Gamma"]
    message = verdict.message()
    assert "BG/NBD + Gamma-Gamma" in message and "run rate" not in message
    assert "0.7000 vs 0.7160" in message and "worse by 0.0160" in message
    assert "higher is better" in message


def test_losing_to_the_champion_refuses_naming_it() -> None:
    verdict = judge(
        GINI,
        higher_is_better=True,
        challenger=0.72,
        opponents={"champion v3": 0.73, "BG/NBD + Gamma-Gamma": 0.70},
    )
    assert [c.opponent for c in verdict.failures] == ["champion v3"]
    assert "champion v3" in verdict.message() and "worse by 0.0100" in verdict.message()


def test_a_tie_passes() -> None:
    assert judge(GINI, higher_is_better=True, challenger=0.7, opponents={"run rate": 0.7}).passed


def test_lower_is_better_for_the_brier_score() -> None:
    better = judge(
        BRIER, higher_is_better=False, challenger=0.15, opponents={"BG/NBD P(no purchase)": 0.18}
    )
    worse = judge(
        BRIER, higher_is_better=False, challenger=0.19, opponents={"BG/NBD P(no purchase)": 0.18}
    )
    assert better.passed and better.checks[0].margin == pytest.approx(0.03)
    assert not worse.passed and worse.checks[0].margin == pytest.approx(-0.01)
    assert "lower is better" in worse.message()


@pytest.mark.parametrize("missing", [None, math.nan, math.inf], ids=["none", "nan", "inf"])
def test_a_missing_opponent_score_fails_with_the_reason(missing: float | None) -> None:
    verdict = judge(
        GINI,
        higher_is_better=True,
        challenger=0.8,
        opponents={"champion v2": missing, "run rate": 0.5},
        missing_reasons={"champion v2": "the challenger's run logged no holdout rows"},
    )
    assert [c.opponent for c in verdict.failures] == ["champion v2"]
    assert "no holdout_normalized_gini score" in verdict.message()
    assert "logged no holdout rows" in verdict.message()


@pytest.mark.parametrize("missing", [None, math.nan], ids=["none", "nan"])
def test_a_challenger_without_a_score_fails_every_check(missing: float | None) -> None:
    verdict = judge(GINI, higher_is_better=True, challenger=missing, opponents={"a": 0.1, "b": 0.2})
    assert len(verdict.failures) == 2
    assert "the challenger has no" in verdict.message()


def test_nothing_to_compare_with_passes() -> None:
    assert judge(GINI, higher_is_better=True, challenger=0.5, opponents={}).passed
