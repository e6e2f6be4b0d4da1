"""The window plan keeps every training target before the holdout and the holdout before as-of."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clv.training.windows import (
    HistoryTooShortError,
    end_of_day,
    min_evaluation_days,
    plan_windows,
)

FIRST = pd.Timestamp("2023-01-01")


def test_cutoffs_of_a_small_plan_match_the_hand_computed_dates() -> None:
    # as_of 2024-01-01, horizon 30: holdout 30 days earlier (2023-12-02), validation 30 days
    # before that (2023-11-02); fit cut-offs 30, 60 and 90 days before validation
    # (2023-10-03, 2023-09-03, 2023-08-04), oldest first.
    plan = plan_windows(
        FIRST, as_of=pd.Timestamp("2024-01-01"), horizon_days=30, n_windows=4, step_days=30
    )
    assert plan.holdout == pd.Timestamp("2023-12-02")
    assert plan.validation == pd.Timestamp("2023-11-02")
    assert plan.fit == (
        pd.Timestamp("2023-08-04"),
        pd.Timestamp("2023-09-03"),
        pd.Timestamp("2023-10-03"),
    )
    assert plan.training_cutoffs == [*plan.fit, plan.validation]
    assert plan.to_dict()["fit"] == [
        "2023-08-04T00:00:00",
        "2023-09-03T00:00:00",
        "2023-10-03T00:00:00",
    ]


@settings(max_examples=200, deadline=None)
@given(
    horizon_days=st.integers(1, 180),
    n_windows=st.integers(2, 15),
    step_days=st.integers(1, 90),
    history_days=st.integers(1, 1500),
    first_second=st.integers(0, 86_399),
)
def test_every_target_window_ends_before_the_next_role_begins(
    horizon_days: int, n_windows: int, step_days: int, history_days: int, first_second: int
) -> None:
    first = FIRST + pd.Timedelta(seconds=first_second)
    as_of = end_of_day(first + pd.Timedelta(days=history_days))
    shortest = min(min_evaluation_days(horizon_days), horizon_days)
    try:
        plan = plan_windows(
            first,
            as_of=as_of,
            horizon_days=horizon_days,
            n_windows=n_windows,
            step_days=step_days,
        )
    except HistoryTooShortError as err:
        # refused only when not even the shortest evaluation windows and one fit window fit
        needed = max(2 * shortest + 2 * step_days, shortest + horizon_days + step_days)
        assert as_of - first <= pd.Timedelta(days=needed + 1)
        assert "--as-of" in str(err)
        return
    horizon = pd.Timedelta(days=horizon_days)
    window = pd.Timedelta(days=plan.evaluation_days)
    assert shortest <= plan.evaluation_days <= horizon_days
    assert plan.holdout + window == plan.as_of == as_of
    assert plan.validation + window == plan.holdout
    for cutoff in plan.fit:
        # fit targets may overlap the validation window, never the holdout
        assert cutoff < plan.validation
        assert cutoff + horizon <= plan.holdout
        assert cutoff >= first + pd.Timedelta(days=step_days)
    for cutoff in plan.final_fit:
        # the registered model's fit targets end by the as-of date; the holdout validates it
        assert cutoff < plan.holdout
        assert cutoff + horizon <= plan.as_of
        assert cutoff >= first + pd.Timedelta(days=step_days)
    assert 1 <= len(plan.fit) <= n_windows - 1
    assert len(plan.fit) <= len(plan.final_fit) <= n_windows - 1
    assert list(plan.fit) == sorted(set(plan.fit))
    assert (plan.evaluation_days < horizon_days) == any("shortened" in r for r in plan.reductions)


def test_short_history_keeps_only_the_fit_cutoffs_with_enough_history() -> None:
    # 200 days, horizon 30, step 30: validation at day 140, fit cut-offs at days 110, 80, 50, 20;
    # day 20 has fewer than 30 days of history before it and is dropped.
    plan = plan_windows(
        FIRST, as_of=FIRST + pd.Timedelta(days=200), horizon_days=30, n_windows=5, step_days=30
    )
    assert [(c - FIRST).days for c in plan.fit] == [50, 80, 110]
    # the final model's windows are one holdout later: 140, 110, 80, 50
    assert [(c - FIRST).days for c in plan.final_fit] == [50, 80, 110, 140]
    assert plan.evaluation_days == 30
    assert plan.reductions == (
        "3 fit window(s) instead of 4: the history holds no more 30 days apart",
    )


def test_nine_months_and_a_91_day_horizon_get_full_windows() -> None:
    # CDNOW's first nine months: 272 days; full windows need 2 * 91 + 2 * 30 = 242.
    plan = plan_windows(
        FIRST, as_of=FIRST + pd.Timedelta(days=272), horizon_days=91, n_windows=12, step_days=30
    )
    assert plan.evaluation_days == 91
    # validation at day 90: fit cut-offs at days 60 and 30; the final ones at 151 down to 31
    assert len(plan.fit) == 2 and len(plan.final_fit) == 5


def test_half_a_year_and_a_91_day_horizon_shorten_the_evaluation_windows() -> None:
    # 200 days: the longest evaluation window that leaves one fit cut-off 30 days before the
    # validation's, itself 30 days after the first transaction: (200 - 60) // 2 = 70 days.
    plan = plan_windows(
        FIRST, as_of=FIRST + pd.Timedelta(days=200), horizon_days=91, n_windows=12, step_days=30
    )
    assert plan.evaluation_days == 70
    assert plan.target_scale == pytest.approx(91 / 70)
    assert len(plan.fit) == 1
    assert "shortened to 70 days" in plan.reductions[0]


def test_a_year_of_history_and_a_181_day_horizon_gets_a_plan() -> None:
    plan = plan_windows(
        FIRST, as_of=FIRST + pd.Timedelta(days=364), horizon_days=181, n_windows=12, step_days=30
    )
    # min((364 - 60) // 2, 364 - 30 - 181) = min(152, 153): room for validation, holdout and one
    # fit window whose target ends by the holdout cut-off
    assert plan.evaluation_days == 152
    assert plan.fit and plan.final_fit


def test_too_short_history_names_the_days_needed_and_the_as_of_option() -> None:
    # needed: validation and holdout windows of 8 days (a quarter of 30, rounded up), a fit
    # cut-off 30 days before the validation's and 30 days of history before it = 76
    with pytest.raises(HistoryTooShortError, match=r"70 days of history") as err:
        plan_windows(
            FIRST, as_of=FIRST + pd.Timedelta(days=70), horizon_days=30, n_windows=4, step_days=30
        )
    message = str(err.value)
    assert "at least 76" in message
    assert "--as-of" in message


def test_as_of_before_the_first_transaction_is_rejected() -> None:
    with pytest.raises(ValueError, match="--as-of"):
        plan_windows(FIRST, as_of=FIRST - pd.Timedelta(days=1), horizon_days=30)


def test_history_of_exactly_the_days_the_message_asks_for_is_accepted() -> None:
    plan = plan_windows(
        FIRST, as_of=FIRST + pd.Timedelta(days=120), horizon_days=30, n_windows=2, step_days=30
    )
    assert plan.fit == (FIRST + pd.Timedelta(days=30),)


@pytest.mark.parametrize(
    ("horizon_days", "n_windows", "step_days"),
    [(0, 4, 30), (-5, 4, 30), (30, 1, 30), (30, 4, 0)],
    ids=["zero-horizon", "negative-horizon", "one-window", "zero-step"],
)
def test_bad_arguments_are_rejected_with_the_values_given(
    horizon_days: int, n_windows: int, step_days: int
) -> None:
    with pytest.raises(ValueError, match="must be at least") as err:
        plan_windows(
            FIRST,
            as_of=pd.Timestamp("2025-01-01"),
            horizon_days=horizon_days,
            n_windows=n_windows,
            step_days=step_days,
        )
    assert f"got {horizon_days}, {step_days} and {n_windows}" in str(err.value)


def test_end_of_day_includes_the_whole_day_and_nothing_of_the_next() -> None:
    cutoff = end_of_day(pd.Timestamp("2024-02-29 13:45:10"))
    assert cutoff == pd.Timestamp("2024-02-29 23:59:59.999999")
    assert pd.Timestamp("2024-02-29 23:59:59.999999") <= cutoff
    assert pd.Timestamp("2024-03-01 00:00:00") > cutoff
    assert end_of_day(cutoff) == cutoff
