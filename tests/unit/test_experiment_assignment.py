"""Hash assignment: reproducible from its documented recipe, uniform, independent between keys,
stable under the changes a running experiment sees, and strict about bad input."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from clv.experiments.assignment import assign, bucket
from clv.experiments.errors import ExperimentInputError

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Fixed ids: every statistical test below is one fixed draw of a deterministic hash (not a
#: random sample), so its p-value is the same number on every run and cannot flake.
IDS_100K = [f"cust-{i:06d}" for i in range(100_000)]
P_MIN = 0.001


def _recipe(unit_id: str | int, key: str, salt: str = "") -> float:
    """The module docstring's recipe, written out again with hashlib alone."""
    message = f"{salt}:{key}:{unit_id}".encode()
    digest = hashlib.blake2b(message, digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) / 2**53


# --- the recipe ---------------------------------------------------------------------------------

# Golden values computed once from the recipe with hashlib (digest hex, then u), independently
# of clv: if either the recipe in `_recipe` or the module drifts, one of the two tests fails.
GOLDEN = [
    ("", "exp-1", "cust-0001", "e8fe7a85e6a55638", 0.9101330353647843),
    ("", "exp-1", "7", "674085785ddf031b", 0.40332826794280763),
    ("s1", "retention-2024", "ünïcode-42", "b15cdd3001f58c0b", 0.692823242397898),
    ("", "exp-2", "cust-0001", "26f4c3116d2b8876", 0.15217227149439172),
]


@pytest.mark.parametrize(("salt", "key", "unit", "digest_hex", "u"), GOLDEN, ids=lambda v: str(v))
def test_recipe_written_out_with_hashlib_gives_the_golden_values(
    salt: str, key: str, unit: str, digest_hex: str, u: float
) -> None:
    message = f"{salt}:{key}:{unit}".encode()
    assert hashlib.blake2b(message, digest_size=8).hexdigest() == digest_hex
    assert _recipe(unit, key, salt) == u


@pytest.mark.parametrize(("salt", "key", "unit", "digest_hex", "u"), GOLDEN, ids=lambda v: str(v))
def test_bucket_reproduces_the_documented_recipe_exactly(
    salt: str, key: str, unit: str, digest_hex: str, u: float
) -> None:
    assert bucket([unit], key, salt=salt)[0] == u


def test_bucket_matches_the_recipe_for_many_ids_in_the_order_given() -> None:
    ids: list[str | int] = ["b", "a", 3, "ü", "x" * 300]
    expected = np.array([_recipe(i, "exp-1", "pepper") for i in ids])
    u = bucket(ids, "exp-1", salt="pepper")
    assert u.dtype == np.float64
    np.testing.assert_array_equal(u, expected)


def test_bucket_values_lie_in_the_unit_interval() -> None:
    u = bucket(IDS_100K, "exp-range")
    assert u.min() >= 0.0
    assert u.max() < 1.0


def test_assignment_follows_the_documented_edges() -> None:
    # H = 0.1, weights 0.2/0.3/0.5 -> holdout [0, 0.1), a [0.1, 0.28), b [0.28, 0.55), c [0.55, 1)
    weights = {"a": 0.2, "b": 0.3, "c": 0.5}
    result = assign(IDS_100K[:5000], "exp-edges", variants=weights, holdout_share=0.1)
    u = np.array([_recipe(i, "exp-edges") for i in IDS_100K[:5000]])
    expected = np.select(
        [u < 0.1, u < 0.1 + 0.9 * 0.2, u < 0.1 + 0.9 * 0.5], ["holdout", "a", "b"], "c"
    )
    np.testing.assert_array_equal(result.to_numpy(), expected)


# --- determinism --------------------------------------------------------------------------------


def test_same_key_and_unit_give_the_same_variant_on_every_call() -> None:
    first = assign(IDS_100K[:1000], "exp-det", holdout_share=0.2)
    second = assign(IDS_100K[:1000], "exp-det", holdout_share=0.2)
    pd.testing.assert_series_equal(first, second)


_CHILD = """
import json, sys
from clv.experiments.assignment import assign
ids = [f"cust-{i:06d}" for i in range(2000)] + list(range(500))
result = assign(ids, "exp-proc", variants={"a": 1, "b": 2, "c": 3}, holdout_share=0.1, salt="s")
json.dump(result.tolist(), sys.stdout)
"""


@pytest.mark.parametrize("hash_seed", ["0", "4242"])
def test_assignment_is_the_same_in_a_process_with_another_hash_seed(hash_seed: str) -> None:
    ids: list[str | int] = [*(f"cust-{i:06d}" for i in range(2000)), *range(500)]
    here = assign(ids, "exp-proc", variants={"a": 1, "b": 2, "c": 3}, holdout_share=0.1, salt="s")
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    child = subprocess.run(
        [sys.executable, "-c", _CHILD],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(child.stdout) == here.tolist()


# --- uniformity and independence ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("variants", "holdout_share", "expected_shares"),
    [
        (("control", "treatment"), 0.0, {"control": 0.5, "treatment": 0.5}),
        (("a", "b", "c"), 0.0, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}),
        ({"control": 0.3, "treatment": 0.7}, 0.0, {"control": 0.3, "treatment": 0.7}),
        ({"a": 0.2, "b": 0.3, "c": 0.5}, 0.0, {"a": 0.2, "b": 0.3, "c": 0.5}),
        (
            ("control", "treatment"),
            0.1,
            {"holdout": 0.1, "control": 0.45, "treatment": 0.45},
        ),
        (
            {"a": 0.2, "b": 0.3, "c": 0.5},
            0.1,
            {"holdout": 0.1, "a": 0.18, "b": 0.27, "c": 0.45},
        ),
        # weights that do not sum to 1 are normalised: 1:3 is 25 % / 75 %
        ({"small": 1, "large": 3}, 0.0, {"small": 0.25, "large": 0.75}),
    ],
    ids=[
        "2-equal",
        "3-equal",
        "2-unequal",
        "3-unequal",
        "2-equal-holdout",
        "3-unequal-holdout",
        "unnormalised-weights",
    ],
)
def test_variant_counts_match_the_expected_shares(
    variants: Any, holdout_share: float, expected_shares: dict[str, float]
) -> None:
    result = assign(IDS_100K, "exp-uniform", variants=variants, holdout_share=holdout_share)
    names = list(expected_shares)
    observed = result.value_counts().reindex(names, fill_value=0).to_numpy()
    expected = np.array([expected_shares[n] for n in names]) * len(IDS_100K)
    assert stats.chisquare(observed, expected).pvalue > P_MIN


def test_bucket_is_uniform_over_ten_bins() -> None:
    counts, _ = np.histogram(bucket(IDS_100K, "exp-bins"), bins=10, range=(0.0, 1.0))
    assert stats.chisquare(counts).pvalue > P_MIN


@pytest.mark.parametrize(
    "variants",
    [("control", "treatment"), ("a", "b", "c")],
    ids=["2x2", "3x3"],
)
def test_assignments_under_two_keys_are_independent(variants: tuple[str, ...]) -> None:
    first = assign(IDS_100K, "exp-price", variants=variants)
    second = assign(IDS_100K, "exp-email", variants=variants)
    table = pd.crosstab(first, second)
    assert table.shape == (len(variants), len(variants))
    assert stats.chi2_contingency(table.to_numpy()).pvalue > P_MIN


def test_another_salt_reassigns_about_half_the_units() -> None:
    unsalted = assign(IDS_100K, "exp-salt")
    salted = assign(IDS_100K, "exp-salt", salt="rerun-2")
    changed = float((unsalted != salted).mean())
    # Independent 50/50 draws differ for half the units; sd is 0.0016 at 100k, so ±0.01 is 6 sd.
    assert changed == pytest.approx(0.5, abs=0.01)


# --- stability under the changes a running experiment sees --------------------------------------


def test_holdout_does_not_move_when_variants_or_weights_change() -> None:
    configs: list[Any] = [
        ("control", "treatment"),
        {"control": 0.9, "treatment": 0.1},
        {"a": 0.2, "b": 0.3, "c": 0.5},
        ("only",),
    ]
    holdouts = [
        set(result[result == "holdout"].index)
        for result in (
            assign(IDS_100K[:20_000], "exp-h", variants=v, holdout_share=0.1) for v in configs
        )
    ]
    assert holdouts[0]
    assert all(h == holdouts[0] for h in holdouts[1:])


def test_raising_the_holdout_share_only_adds_units_to_the_holdout() -> None:
    small = assign(IDS_100K[:20_000], "exp-h", holdout_share=0.05)
    large = assign(IDS_100K[:20_000], "exp-h", holdout_share=0.15)
    assert set(small[small == "holdout"].index) < set(large[large == "holdout"].index)


def test_raising_the_treatment_weight_only_moves_units_from_control_to_treatment() -> None:
    before = assign(IDS_100K[:20_000], "exp-ramp", variants={"control": 0.9, "treatment": 0.1})
    after = assign(IDS_100K[:20_000], "exp-ramp", variants={"control": 0.5, "treatment": 0.5})
    moved = before != after
    assert moved.any()
    assert (before[moved] == "control").all()
    assert (after[moved] == "treatment").all()


def test_input_order_changes_nobody_s_variant_and_the_result_keeps_the_input_order() -> None:
    ids = IDS_100K[:5000]
    shuffled = list(np.random.default_rng(seed=20240611).permutation(ids))
    in_order = assign(ids, "exp-order", holdout_share=0.1)
    reordered = assign(shuffled, "exp-order", holdout_share=0.1)
    assert reordered.index.tolist() == shuffled
    pd.testing.assert_series_equal(reordered.loc[ids], in_order)


@settings(max_examples=30, deadline=None)
@given(
    ids=st.lists(
        st.one_of(st.text(min_size=1, max_size=12), st.integers(-(10**12), 10**12)),
        min_size=1,
        max_size=30,
        unique_by=str,
    )
)
def test_a_unit_s_variant_does_not_depend_on_the_other_units(ids: list[str | int]) -> None:
    together = assign(ids, "exp-alone", variants={"a": 1, "b": 2}, holdout_share=0.2)
    alone = [
        assign([i], "exp-alone", variants={"a": 1, "b": 2}, holdout_share=0.2).iloc[0] for i in ids
    ]
    assert together.tolist() == alone


# --- exclusion ----------------------------------------------------------------------------------


def test_excluded_units_are_dropped_and_nobody_else_moves() -> None:
    ids = IDS_100K[:1000]
    excluded = set(ids[::7])
    everyone = assign(ids, "exp-x")
    result = assign(ids, "exp-x", exclude=excluded)
    assert result.index.tolist() == [i for i in ids if i not in excluded]
    pd.testing.assert_series_equal(result, everyone.drop(list(excluded)))


def test_excluded_units_get_excluded_name_when_one_is_given() -> None:
    ids = IDS_100K[:1000]
    excluded = set(ids[::7])
    everyone = assign(ids, "exp-x", holdout_share=0.1)
    result = assign(ids, "exp-x", holdout_share=0.1, exclude=excluded, excluded_name="excluded")
    assert result.index.tolist() == ids
    assert (result[list(excluded)] == "excluded").all()
    kept = [i for i in ids if i not in excluded]
    pd.testing.assert_series_equal(result[kept], everyone[kept])


def test_exclude_matches_ids_as_text_and_ignores_unknown_ids() -> None:
    result = assign([1, 2, 3], "exp-x", exclude=["2", 99], excluded_name="out")
    assert result[2] == "out"
    assert (result[[1, 3]] != "out").all()


# --- unit ids as ints and strings ---------------------------------------------------------------


def test_int_ids_get_the_same_variant_as_their_string_form() -> None:
    ints = list(range(2000))
    as_int = assign(ints, "exp-int", holdout_share=0.1)
    as_numpy = assign(np.arange(2000, dtype=np.int64), "exp-int", holdout_share=0.1)
    as_str = assign([str(i) for i in ints], "exp-int", holdout_share=0.1)
    assert as_int.index.tolist() == ints
    assert as_int.tolist() == as_str.tolist() == as_numpy.tolist()
    np.testing.assert_array_equal(bucket(ints, "exp-int"), bucket(map(str, ints), "exp-int"))


def test_result_is_a_named_series_of_strings_indexed_by_the_ids() -> None:
    customers = pd.Series(["c1", "c2", "c3"], name="customer_id")
    result = assign(customers, "exp-shape")
    assert result.name == "variant"
    assert result.index.name == "customer_id"
    assert result.index.tolist() == ["c1", "c2", "c3"]
    assert all(isinstance(v, str) for v in result)
    assert assign(["c1"], "exp-shape").index.name == "unit_id"


def test_no_ids_give_an_empty_result() -> None:
    assert assign([], "exp-empty").empty
    assert bucket([], "exp-empty").shape == (0,)


# --- bad input ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """Arguments to `assign` and the words its error message must contain."""

    kwargs: dict[str, Any]
    expected: list[str]
    unit_ids: Any = field(default_factory=lambda: ["a", "b", "c"])
    key: Any = "exp-bad"


BAD_INPUTS: dict[str, Bad] = {
    "empty_key": Bad({}, ["experiment key is empty"], key=""),
    "blank_key": Bad({}, ["experiment key is empty"], key="   "),
    "non_string_key": Bad({}, ["experiment key must be a string", "int"], key=7),
    "non_string_salt": Bad({"salt": 1}, ["salt must be a string"]),
    "duplicate_id": Bad({}, ["duplicate unit id 'b'", "positions 1 and 3"], ["a", "b", "c", "b"]),
    "int_and_string_same_id": Bad({}, ["unit ids 7 and '7' both hash as '7'"], [7, "x", "7"]),
    "none_id": Bad({}, ["unit id at position 1", "missing (None)"], ["a", None]),
    "nan_id": Bad({}, ["unit id at position 2", "missing (nan)"], [1.0, 2.0, float("nan")]),
    "float_id": Bad({}, ["must be str or int", "position 1", "2.5 (float)"], [1, 2.5]),
    "bool_id": Bad({}, ["must be str or int", "True (bool)"], [True, False]),
    "bytes_id": Bad({}, ["must be str or int", "bytes"], ["a", b"b"]),
    "single_string_as_ids": Bad({}, ["collection of ids", "'abc'"], "abc"),
    "two_dimensional_ids": Bad({}, ["one-dimensional", "(2, 2)"], np.array([[1, 2], [3, 4]])),
    "no_variants": Bad({"variants": ()}, ["at least one variant is needed"]),
    "no_variants_mapping": Bad({"variants": {}}, ["at least one variant is needed"]),
    "single_string_as_variants": Bad({"variants": "control"}, ["not the single string 'control'"]),
    "variant_named_holdout": Bad(
        {"variants": ("control", "holdout")}, ["variant name 'holdout' is also the holdout's name"]
    ),
    "variant_named_custom_holdout": Bad(
        {"variants": ("control", "hold"), "holdout_name": "hold", "holdout_share": 0.1},
        ["variant name 'hold' is also the holdout's name"],
    ),
    "repeated_variant": Bad({"variants": ("a", "b", "a")}, ["variant name 'a' is given more"]),
    "empty_variant_name": Bad({"variants": ("a", "")}, ["variant name must be a non-empty"]),
    "non_string_variant_name": Bad({"variants": ("a", 2)}, ["variant name must be a non-empty"]),
    "zero_weight": Bad({"variants": {"a": 1.0, "b": 0.0}}, ["weight of variant 'b' is 0.0", "> 0"]),
    "negative_weight": Bad({"variants": {"a": 1.0, "b": -1.0}}, ["'b' is -1.0", "> 0"]),
    "nan_weight": Bad({"variants": {"a": float("nan")}}, ["'a' is nan", "finite"]),
    "infinite_weight": Bad({"variants": {"a": float("inf")}}, ["'a' is inf", "finite"]),
    "text_weight": Bad({"variants": {"a": "0.5"}}, ["weight of variant 'a' must be a number"]),
    "holdout_share_one": Bad({"holdout_share": 1.0}, ["holdout_share must be in [0, 1)", "1.0"]),
    "negative_holdout_share": Bad({"holdout_share": -0.1}, ["holdout_share must be in [0, 1)"]),
    "nan_holdout_share": Bad({"holdout_share": float("nan")}, ["holdout_share", "nan"]),
    "empty_holdout_name": Bad({"holdout_name": ""}, ["holdout_name must be a non-empty string"]),
    "excluded_name_is_a_variant": Bad(
        {"exclude": ["a"], "excluded_name": "control"}, ["excluded_name 'control' is also"]
    ),
    "excluded_name_is_the_holdout": Bad(
        {"exclude": ["a"], "excluded_name": "holdout"}, ["excluded_name 'holdout' is also"]
    ),
    "single_string_as_exclude": Bad({"exclude": "abc"}, ["exclude must be a collection"]),
    "missing_excluded_id": Bad({"exclude": ["a", None]}, ["excluded id at position 1", "missing"]),
    "non_utf8_id": Bad({}, ["unit id at position 0", "not valid UTF-8"], ["\ud800"]),
}


@pytest.mark.parametrize("case", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_raises_an_error_naming_the_problem(case: Bad) -> None:
    with pytest.raises(ExperimentInputError) as raised:
        assign(case.unit_ids, case.key, **case.kwargs)
    for words in case.expected:
        assert words in str(raised.value)


@pytest.mark.parametrize(
    ("unit_ids", "key", "expected"),
    [
        (["a"], "", "experiment key is empty"),
        (["a", None], "k", "missing"),
        ([0.5], "k", "must be str or int"),
    ],
    ids=["empty_key", "missing_id", "float_id"],
)
def test_bucket_rejects_bad_input_too(unit_ids: Any, key: str, expected: str) -> None:
    with pytest.raises(ExperimentInputError, match=expected):
        bucket(unit_ids, key)


def test_bucket_accepts_duplicates_and_gives_them_the_same_value() -> None:
    u = bucket(["a", "b", "a"], "exp-dup")
    assert u[0] == u[2]
