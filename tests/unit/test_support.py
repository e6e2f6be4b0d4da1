"""Features that the customers to score carry outside the learnt range are found and left out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clv.features.support import extrapolated_features, outside_support


def test_share_outside_counts_values_below_the_minimum_and_above_the_maximum() -> None:
    fit = pd.DataFrame({"age": [10.0, 20.0, 30.0], "spend": [0.0, 5.0, 9.0]})
    score = pd.DataFrame({"age": [5.0, 10.0, 30.0, 31.0], "spend": [1.0, 2.0, 3.0, 9.5]})

    shares = outside_support(fit, score)

    # age: 5 is below 10, 31 above 30 (the bounds themselves are inside) -> 2 of 4.
    assert shares["age"] == pytest.approx(0.5)
    assert shares["spend"] == pytest.approx(0.25)
    assert list(shares.index) == ["age", "spend"]  # largest share first


def test_missing_values_count_neither_inside_nor_outside() -> None:
    fit = pd.DataFrame({"gap": [1.0, np.nan, 3.0]})
    score = pd.DataFrame({"gap": [np.nan, np.nan, 4.0, 2.0]})

    assert outside_support(fit, score)["gap"] == pytest.approx(0.5)


def test_columns_without_values_on_either_side_are_not_judged() -> None:
    fit = pd.DataFrame({"only_fit": [1.0], "empty": [np.nan], "both": [1.0]})
    score = pd.DataFrame({"only_score": [1.0], "empty": [2.0], "both": [np.nan]})

    assert outside_support(fit, score).empty


def test_a_feature_beyond_the_share_is_left_out_unless_exempt() -> None:
    fit = pd.DataFrame({"T": [30.0, 60.0, 90.0], "silence": [0.0, 30.0, 60.0], "x": [1.0, 2, 3]})
    score = pd.DataFrame(
        {"T": [120.0, 150.0, 180.0], "silence": [90.0, 120.0, 0.0], "x": [1.0, 2.0, 4.0]}
    )

    left_out = extrapolated_features(fit, score, max_share=0.5, exempt={"silence"})

    assert left_out == {"T": pytest.approx(1.0)}  # x: 1 of 3 outside, silence exempt


def test_the_share_must_be_exceeded_not_reached() -> None:
    fit = pd.DataFrame({"T": [1.0, 2.0]})
    score = pd.DataFrame({"T": [1.0, 3.0]})  # exactly half outside

    assert extrapolated_features(fit, score, max_share=0.5) == {}
    assert extrapolated_features(fit, score, max_share=0.49) == {"T": 0.5}


def test_the_check_can_be_turned_off_and_refuses_a_share_outside_zero_to_one() -> None:
    fit = pd.DataFrame({"T": [1.0, 2.0]})
    score = pd.DataFrame({"T": [5.0, 6.0]})

    assert extrapolated_features(fit, score) == {"T": 1.0}  # on by default
    assert extrapolated_features(fit, score, max_share=None) == {}
    assert extrapolated_features(fit, score, max_share=1.0) == {}
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"max_share must be in \(0, 1\]"):
            extrapolated_features(fit, score, max_share=bad)


@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=40),
    st.lists(st.integers(0, 10_000), min_size=1, max_size=40),
)
def test_customers_drawn_from_the_fit_rows_are_never_outside(
    values: list[float], picks: list[int]
) -> None:
    fit = pd.DataFrame({"f": values})
    score = pd.DataFrame({"f": [values[i % len(values)] for i in picks]})

    assert outside_support(fit, score)["f"] == 0.0
    assert extrapolated_features(fit, score, max_share=1e-9) == {}
