"""``analyze``: the contract users and campaigns rely on, the winner rule and bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from clv.experiments import ExperimentInputError, analyze
from clv.experiments.analysis import parse_shares

VARIANT_KEYS = {
    "variant",
    "n",
    "mean",
    "absolute",
    "relative",
    "p_value_adjusted",
    "significant",
    "chance_to_win",
    "expected_loss",
}


def _experiment(
    sizes: dict[str, int],
    lifts: dict[str, float] | None = None,
    *,
    seed: int = 0,
    zeros: float = 0.7,
) -> pd.DataFrame:
    """One row per unit: skewed revenue (many zeros), a correlated pre-period spend, a 0/1."""
    rng = np.random.default_rng(seed)
    lifts = lifts or {}
    parts = []
    for name, n in sizes.items():
        pre = rng.lognormal(np.log(30), 1.0, n) * (rng.random(n) > 0.5)
        revenue = 0.8 * pre + rng.lognormal(np.log(40), 1.1, n) * (rng.random(n) > zeros)
        revenue *= 1 + lifts.get(name, 0.0)
        parts.append(
            pd.DataFrame(
                {
                    "variant": name,
                    "revenue": revenue,
                    "pre_spend": pre,
                    "converted": (revenue > 0).astype(int),
                    "unsubscribed": (rng.random(n) < 0.02).astype(int),
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    frame["customer_id"] = [f"c{i}" for i in range(len(frame))]
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _arm(frame: pd.DataFrame, name: str, column: str = "revenue") -> np.ndarray:
    return frame.loc[frame["variant"] == name, column].to_numpy(dtype=float)


THREE = {"control": 4000, "a": 2600, "b": 3100}


def test_to_dict_is_the_documented_json_contract_with_no_nan() -> None:
    frame = _experiment(THREE, {"b": 0.1})

    result = analyze(frame, covariate="pre_spend", guardrails={"unsubscribed": "lower"})
    payload = json.loads(json.dumps(result.to_dict(), allow_nan=False))

    assert {"metric", "control", "method", "alpha", "srm", "variants", "control_stats"} <= set(
        payload
    )
    assert {"cuped", "winner", "reason"} <= set(payload)
    assert {"p_value", "mismatch"} <= set(payload["srm"])
    assert set(payload["control_stats"]) == {"n", "mean"}
    assert set(payload["cuped"]) >= {"theta", "variance_reduction"}
    assert [v["variant"] for v in payload["variants"]] == ["a", "b"]
    for variant in payload["variants"]:
        assert set(variant) == VARIANT_KEYS
        for part in ("absolute", "relative"):
            assert set(variant[part]) == {"estimate", "ci_low", "ci_high", "p_value"}
    assert payload["control_stats"]["n"] == THREE["control"]


def test_variants_are_compared_with_welch_and_holm_as_scipy_and_statsmodels_do() -> None:
    frame = _experiment({"control": 3000, "a": 1200, "b": 2200, "c": 900}, {"b": 0.15, "c": 0.05})

    result = analyze(frame)

    control = _arm(frame, "control")
    raw = []
    for name in ("a", "b", "c"):
        treated = _arm(frame, name)
        reference = stats.ttest_ind(treated, control, equal_var=False)
        got = result.variant(name)
        assert got.absolute.p_value == pytest.approx(reference.pvalue, rel=1e-9)
        assert got.absolute.ci_low == pytest.approx(reference.confidence_interval().low, rel=1e-9)
        assert got.mean == pytest.approx(treated.mean(), rel=1e-12)
        raw.append(reference.pvalue)
    holm = multipletests(raw, method="holm")[1]
    assert [result.variant(n).p_value_adjusted for n in "abc"] == pytest.approx(holm, rel=1e-9)


def test_benjamini_hochberg_is_applied_when_asked() -> None:
    frame = _experiment({"control": 3000, "a": 1200, "b": 2200}, {"b": 0.1})

    result = analyze(frame, correction="bh")

    raw = [result.variant(n).absolute.p_value for n in "ab"]
    assert [result.variant(n).p_value_adjusted for n in "ab"] == pytest.approx(
        multipletests(raw, method="fdr_bh")[1], rel=1e-12
    )


def test_a_zero_one_metric_gets_the_two_proportion_z_test() -> None:
    frame = _experiment({"control": 5000, "treatment": 4000}, {"treatment": 0.0}, zeros=0.6)
    control, treated = _arm(frame, "control", "converted"), _arm(frame, "treatment", "converted")

    result = analyze(frame, metric="converted")

    _, p_reference = proportions_ztest([treated.sum(), control.sum()], [len(treated), len(control)])
    assert result.metric_type == "proportion"
    assert result.variant("treatment").absolute.p_value == pytest.approx(p_reference, rel=1e-9)


def test_cuped_runs_the_tests_on_the_explicitly_adjusted_metric() -> None:
    frame = _experiment({"control": 3000, "treatment": 2500}, {"treatment": 0.08})
    y, x = frame["revenue"].to_numpy(), frame["pre_spend"].to_numpy()
    theta = np.cov(y, x)[0, 1] / np.var(x, ddof=1)
    adjusted = frame.assign(revenue=y - theta * (x - x.mean()))

    with_cuped = analyze(frame, covariate="pre_spend")
    by_hand = stats.ttest_ind(
        _arm(adjusted, "treatment"), _arm(adjusted, "control"), equal_var=False
    )

    assert with_cuped.cuped is not None
    assert with_cuped.cuped["theta"] == pytest.approx(theta, rel=1e-10)
    got = with_cuped.variant("treatment").absolute
    assert got.p_value == pytest.approx(by_hand.pvalue, rel=1e-8)
    assert got.ci_high == pytest.approx(by_hand.confidence_interval().high, rel=1e-8)
    within = sum(
        np.var(_arm(frame, v), ddof=1) * (THREE_SIZES - 1)
        for v, THREE_SIZES in (("control", 3000), ("treatment", 2500))
    )
    within_adjusted = sum(
        np.var(_arm(adjusted, v), ddof=1) * (n - 1)
        for v, n in (("control", 3000), ("treatment", 2500))
    )
    assert with_cuped.cuped["variance_reduction"] == pytest.approx(
        1 - within_adjusted / within, rel=1e-8
    )
    assert with_cuped.cuped["variance_reduction"] > 0.2  # the pre-period spend explains a lot


def test_a_sample_ratio_mismatch_blocks_the_winner_however_large_the_effect() -> None:
    frame = _experiment({"control": 5000, "treatment": 4400}, {"treatment": 1.0})

    result = analyze(frame)

    assert result.srm_mismatch
    assert result.variant("treatment").significant
    assert result.winner is None
    assert "sample ratio mismatch" in result.reason


def test_planned_unequal_shares_are_not_a_mismatch() -> None:
    frame = _experiment({"control": 2000, "treatment": 8000}, {"treatment": 0.5})

    result = analyze(frame, expected_shares={"control": 0.2, "treatment": 0.8})

    assert not result.srm_mismatch
    assert result.srm_p_value == pytest.approx(1.0)
    assert result.winner == "treatment"


def test_a_clear_lift_wins_and_the_best_of_several_is_chosen() -> None:
    frame = _experiment(THREE, {"a": 0.3, "b": 0.6}, seed=3)

    result = analyze(frame, expected_shares={n: s / sum(THREE.values()) for n, s in THREE.items()})

    assert result.winner == "b"
    assert "'b' beats the control" in result.reason
    assert result.remaining_n_per_variant is None


def test_an_aa_test_has_no_winner_and_says_how_many_more_units_are_needed() -> None:
    frame = _experiment({"control": 3000, "treatment": 3000}, {"treatment": 0.04}, seed=8)

    result = analyze(frame)

    assert result.winner is None
    assert "no winner yet" in result.reason
    assert result.remaining_n_per_variant is not None and result.remaining_n_per_variant > 0


def test_the_remaining_sample_is_enough_to_detect_the_observed_effect() -> None:
    control = _arm(_experiment({"control": 2000}, seed=5), "control")
    # The treatment is the control's values, shuffled, 5% higher: a small positive effect.
    treatment = np.random.default_rng(1).permutation(control) * 1.05
    frame = pd.DataFrame(
        {"variant": ["control"] * 2000 + ["treatment"] * 2000, "revenue": [*control, *treatment]}
    )
    first = analyze(frame)
    assert first.winner is None and first.remaining_n_per_variant is not None
    # More of the same data: means and variances stay, the standard error shrinks as 1/sqrt(n).
    per_arm = 2000 + first.remaining_n_per_variant
    grown = pd.DataFrame(
        {
            "variant": ["control"] * per_arm + ["treatment"] * per_arm,
            "revenue": [*np.resize(control, per_arm), *np.resize(treatment, per_arm)],
        }
    )
    grown_result = analyze(grown)

    # 80% power at the observed effect: z = z(0.975) + z(0.8) = 2.80, p = 0.0051.
    assert grown_result.winner == "treatment"
    assert 0.004 < (grown_result.variant("treatment").absolute.p_value or 0) < 0.0065


def test_a_harmed_guardrail_blocks_an_otherwise_winning_variant() -> None:
    frame = _experiment({"control": 5000, "treatment": 5000}, {"treatment": 0.5}, seed=2)
    treated = frame["variant"] == "treatment"
    rng = np.random.default_rng(0)
    frame.loc[treated, "unsubscribed"] = (rng.random(int(treated.sum())) < 0.06).astype(int)

    result = analyze(frame, guardrails={"unsubscribed": "lower"})

    assert result.variant("treatment").significant
    assert result.guardrails[0].harmed
    assert result.winner is None
    assert "harms guardrail 'unsubscribed'" in result.reason


def test_an_untouched_guardrail_does_not_block_the_winner() -> None:
    frame = _experiment({"control": 5000, "treatment": 5000}, {"treatment": 0.5}, seed=2)

    result = analyze(frame, guardrails=["converted"], metric="revenue")

    assert result.winner == "treatment"
    assert not any(g.harmed for g in result.guardrails)


def test_lower_is_better_makes_a_decrease_the_winner() -> None:
    frame = _experiment({"control": 5000, "treatment": 5000}, {"treatment": -0.4}, seed=4)

    assert analyze(frame).winner is None
    assert analyze(frame, lower_is_better=True).winner == "treatment"


def test_bayesian_mode_reports_chance_to_win_and_uses_its_threshold() -> None:
    frame = _experiment({"control": 3000, "treatment": 3000}, {"treatment": 0.12}, seed=6)

    result = analyze(frame, method="bayesian")
    treated = result.variant("treatment")

    assert treated.chance_to_win == pytest.approx(
        stats.norm.cdf(analyze(frame).variant("treatment").relative.estimate / _rel_se(frame))
    )
    assert treated.expected_loss is not None and treated.expected_loss >= 0
    strict = analyze(frame, method="bayesian", chance_to_win_threshold=0.999_999)
    assert (result.winner == "treatment") == (treated.chance_to_win >= 0.95)
    assert strict.winner is None and "chance to beat the control" in strict.reason


def _rel_se(frame: pd.DataFrame) -> float:
    c, t = _arm(frame, "control"), _arm(frame, "treatment")
    mc, mt = c.mean(), t.mean()
    return float(np.sqrt(t.var(ddof=1) / len(t) / mc**2 + mt**2 * c.var(ddof=1) / len(c) / mc**4))


def test_sequential_mode_is_more_conservative_than_a_single_look() -> None:
    frame = _experiment({"control": 3000, "treatment": 3000}, {"treatment": 0.1}, seed=9)

    fixed = analyze(frame).variant("treatment")
    sequential = analyze(frame, method="sequential").variant("treatment")

    assert sequential.absolute.p_value is not None and fixed.absolute.p_value is not None
    assert sequential.absolute.p_value >= fixed.absolute.p_value
    assert sequential.absolute.ci_high - sequential.absolute.ci_low > (  # type: ignore[operator]
        fixed.absolute.ci_high - fixed.absolute.ci_low  # type: ignore[operator]
    )


def test_a_control_without_revenue_leaves_the_relative_lift_undefined_not_nan() -> None:
    frame = pd.DataFrame(
        {"variant": ["control"] * 50 + ["treatment"] * 50, "revenue": [0.0] * 50 + [0.0, 5.0] * 25}
    )

    result = analyze(frame)

    assert result.variant("treatment").relative.estimate is None
    json.dumps(result.to_dict(), allow_nan=False)


def test_the_verdict_does_not_depend_on_row_order() -> None:
    frame = _experiment(THREE, {"b": 0.2}, seed=10)
    shuffled = frame.sample(frac=1.0, random_state=99)

    assert _close(
        analyze(shuffled, covariate="pre_spend").to_dict(),
        analyze(frame, covariate="pre_spend").to_dict(),
    )


def _close(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return bool(np.isclose(a, b, rtol=1e-9, atol=1e-12))
    return a == b


def test_a_categorical_variant_column_gives_the_same_result_as_strings() -> None:
    frame = _experiment(THREE, {"b": 0.2}, seed=12)
    categorical = frame.assign(variant=pd.Categorical(frame["variant"], ["x", *THREE]))

    assert _close(analyze(categorical).to_dict(), analyze(frame).to_dict())


# --------------------------------------------------------------------------- bad input


def _small() -> pd.DataFrame:
    return _experiment({"control": 60, "treatment": 50}, seed=1)


@pytest.mark.parametrize(
    ("mutate", "kwargs", "message"),
    [
        (lambda f: f, {"control": "baseline"}, "control 'baseline' is not a value"),
        (lambda f: f[f["variant"] == "control"], {}, "only one variant"),
        (
            lambda f: pd.concat([f, f.head(1).assign(variant="lonely")]),
            {},
            "'lonely' (1) have fewer than 2 units",
        ),
        (lambda f: f.assign(revenue=f["revenue"].astype(object)).pipe(_text_cell), {}, "row 4"),
        (lambda f: f.assign(revenue=f["revenue"].where(f.index != 7)), {}, "missing (NaN)"),
        (lambda f: f.assign(revenue=f["revenue"].replace(f["revenue"].iloc[2], np.inf)), {}, "inf"),
        (lambda f: f.assign(pre_spend=3.0), {"covariate": "pre_spend"}, "has no variance"),
        (lambda f: f, {"metric": "margin"}, "metric column 'margin' is not in the data"),
        (lambda f: f, {"variant_col": "arm"}, "variant column 'arm'"),
        (
            lambda f: f,
            {"expected_shares": {"control": 0.5, "treatment": 0.4}},
            "must sum to 1",
        ),
        (
            lambda f: f,
            {"expected_shares": {"control": 0.5, "treatment": 0.25, "ghost": 0.25}},
            "'ghost'",
        ),
        (lambda f: f, {"expected_shares": {"control": 1.0}}, "no expected share"),
        (lambda f: f, {"method": "magic"}, "method must be one of"),
        (lambda f: f, {"correction": "tukey"}, "correction must be one of"),
        (lambda f: f, {"alpha": 1.5}, "alpha must be between 0 and 1"),
        (lambda f: f.assign(revenue=3.0), {}, "is 3 for every unit in every variant"),
        (lambda f: f.assign(variant=f["variant"].where(f.index != 3)), {}, "variant is missing"),
        (
            lambda f: pd.concat([f, f.head(1)]),
            {"unit_col": "customer_id"},
            "appears more than once",
        ),
        (lambda f: f, {"guardrails": {"unsubscribed": "down"}}, "'higher' or 'lower'"),
        (lambda f: f, {"metric": "revenue", "metric_type": "proportion"}, "other than 0 and 1"),
        (lambda f: f.head(0), {}, "no rows"),
    ],
    ids=[
        "absent-control",
        "single-variant",
        "one-unit-variant",
        "text-in-metric",
        "nan-in-metric",
        "inf-in-metric",
        "constant-covariate",
        "absent-metric",
        "absent-variant-column",
        "shares-not-summing-to-one",
        "share-for-absent-variant",
        "variant-without-share",
        "unknown-method",
        "unknown-correction",
        "alpha-out-of-range",
        "constant-metric",
        "missing-variant",
        "duplicate-unit",
        "bad-guardrail-direction",
        "proportion-declared-wrongly",
        "empty",
    ],
)
def test_bad_input_gets_a_message_naming_the_problem(mutate, kwargs, message) -> None:  # type: ignore[no-untyped-def]
    frame = mutate(_small())

    with pytest.raises(ExperimentInputError) as caught:
        analyze(frame, **kwargs)

    assert message in str(caught.value)


def _text_cell(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.iloc[3, frame.columns.get_loc("revenue")] = "abc"
    return frame


def test_parse_shares_reads_the_cli_syntax_and_rejects_garbage() -> None:
    assert parse_shares("control=0.5, treatment=0.5") == {"control": 0.5, "treatment": 0.5}
    for text, message in [
        ("control=half", "is not a number"),
        ("control", "is not name=share"),
        ("a=0.5,a=0.5", "given twice"),
        ("", "none given"),
    ]:
        with pytest.raises(ExperimentInputError, match=message):
            parse_shares(text)


def test_a_ratio_metric_compares_revenue_per_order() -> None:
    rng = np.random.default_rng(20)
    parts = []
    for name, aov in (("control", 50.0), ("treatment", 60.0)):
        orders = rng.poisson(1.1, 4000)
        revenue = np.array([rng.gamma(2.0, aov / 2.0, k).sum() for k in orders])
        parts.append(pd.DataFrame({"variant": name, "revenue": revenue, "orders": orders}))
    frame = pd.concat(parts, ignore_index=True)

    result = analyze(frame, metric="revenue", denominator="orders")

    sums = frame.groupby("variant")[["revenue", "orders"]].sum()
    aov = sums["revenue"] / sums["orders"]
    treated = result.variant("treatment")
    assert result.metric_type == "ratio" and result.to_dict()["denominator"] == "orders"
    assert treated.mean == pytest.approx(aov["treatment"], rel=1e-12)
    assert result.control_mean == pytest.approx(aov["control"], rel=1e-12)
    assert treated.relative.estimate == pytest.approx(aov["treatment"] / aov["control"] - 1)
    assert result.winner == "treatment"


def test_a_ratio_with_no_denominator_in_a_variant_is_refused() -> None:
    frame = pd.DataFrame(
        {
            "variant": ["control"] * 4 + ["treatment"] * 4,
            "revenue": [1.0] * 8,
            "orders": [1] * 4 + [0] * 4,
        }
    )

    with pytest.raises(ExperimentInputError, match="sums to 0 in variant"):
        analyze(frame, denominator="orders")
    with pytest.raises(ExperimentInputError, match="not both"):
        analyze(frame, denominator="orders", covariate="orders")


def test_two_variants_without_any_conversion_compare_exactly_not_as_nan() -> None:
    frame = pd.DataFrame(
        {
            "variant": ["control"] * 200 + ["a"] * 200 + ["b"] * 200,
            "converted": [0] * 400 + [0, 1] * 100,
        }
    )

    for method in ("frequentist", "sequential"):
        result = analyze(frame, metric="converted", method=method)  # type: ignore[arg-type]
        json.dumps(result.to_dict(), allow_nan=False)
        a = result.variant("a")
        assert a.absolute.p_value == 1.0 and a.absolute.ci_low == a.absolute.ci_high == 0.0
        assert a.relative.estimate is None  # the control's rate is 0
        assert result.variant("b").absolute.estimate == pytest.approx(0.5)
    with pytest.raises(ExperimentInputError, match="needs a control mean above 0"):
        analyze(frame, metric="converted", method="bayesian")


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(2, 12), min_size=2, max_size=4),
    values=st.lists(
        st.one_of(
            st.just(0.0), st.just(1.0), st.floats(0, 1e6, allow_nan=False, allow_subnormal=False)
        ),
        min_size=48,
        max_size=48,
    ),
    method=st.sampled_from(["frequentist", "sequential", "bayesian"]),
    with_covariate=st.booleans(),
)
def test_analyze_either_refuses_clearly_or_answers_without_nan(
    sizes: list[int], values: list[float], method: str, with_covariate: bool
) -> None:
    names = ["control", *[f"v{i}" for i in range(1, len(sizes))]]
    variant = [name for name, size in zip(names, sizes, strict=True) for _ in range(size)]
    n = len(variant)
    frame = pd.DataFrame({"variant": variant, "revenue": values[:n], "pre": values[::-1][:n]})

    try:
        result = analyze(
            frame,
            method=method,  # type: ignore[arg-type]
            covariate="pre" if with_covariate else None,
            guardrails=["pre"] if not with_covariate else None,
        )
    except ExperimentInputError as err:
        assert str(err)
        return
    json.dumps(result.to_dict(), allow_nan=False)
    assert result.reason


# --------------------------------------------------------------------------- review findings


def test_a_negative_control_mean_leaves_the_lift_undefined_and_bayes_refuses() -> None:
    rng = np.random.default_rng(40)
    frame = pd.DataFrame(
        {
            "variant": ["control"] * 500 + ["treatment"] * 500,
            "profit": [*rng.normal(-10, 2, 500), *rng.normal(-9.5, 2, 500)],
        }
    )

    result = analyze(frame, metric="profit")

    assert result.variant("treatment").relative.estimate is None
    assert result.winner == "treatment"  # the difference (+0.5) is what counts
    with pytest.raises(ExperimentInputError, match="needs a control mean above 0"):
        analyze(frame, metric="profit", method="bayesian")


def test_bayesian_direction_comes_from_the_posterior_not_the_raw_estimate() -> None:
    frame = _experiment({"control": 3000, "treatment": 3000}, {"treatment": -0.3}, seed=41)

    # A strong prior of +20% overrules a worse observed result: whichever way the posterior
    # points, the verdict and the reason must agree with it.
    result = analyze(frame, method="bayesian", prior_mean=0.2, prior_sd=0.01)
    chance = result.variant("treatment").chance_to_win

    assert chance is not None and chance > 0.95
    assert result.winner == "treatment"
    assert "significantly worse" not in result.reason


def test_values_too_large_to_square_are_refused_not_reported_as_certain() -> None:
    frame = pd.DataFrame(
        {"variant": ["control"] * 3 + ["t"] * 3, "y": [1.0, 2.0, 3.0, 1.5e308, 1.5e308, 1.0]}
    )

    with pytest.raises(ExperimentInputError, match="too large to analyse"):
        analyze(frame, metric="y", control="control")


def test_a_covariate_constant_up_to_rounding_is_refused() -> None:
    frame = _experiment({"control": 5000, "treatment": 4000}, {"treatment": 0.1}, seed=42)

    with pytest.raises(ExperimentInputError, match="no variance within the variants"):
        analyze(frame.assign(pre_spend=9.99), covariate="pre_spend")
    per_variant = np.where(frame["variant"] == "control", 1.0, 2.0)
    with pytest.raises(ExperimentInputError, match="no variance within the variants"):
        analyze(frame.assign(pre_spend=per_variant), covariate="pre_spend")


def test_a_guardrail_that_moves_from_all_zero_to_all_one_is_harmed() -> None:
    frame = _experiment({"control": 3000, "treatment": 3000}, {"treatment": 0.5}, seed=43)
    frame["complaint"] = (frame["variant"] == "treatment").astype(int)

    result = analyze(frame, guardrails={"complaint": "lower"})

    assert [g.harmed for g in result.guardrails] == [True]
    assert result.winner is None


def test_a_metric_constant_within_but_different_between_variants_is_an_exact_difference() -> None:
    frame = pd.DataFrame({"variant": ["control"] * 20 + ["t"] * 20, "y": [0] * 20 + [1] * 20})

    result = analyze(frame, metric="y", control="control")

    assert result.variant("t").absolute.p_value == 0.0
    assert result.winner == "t"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"power": 1.0}, "power must be between 0 and 1"),
        ({"power": float("nan")}, "power must be between 0 and 1"),
        ({"method": "bayesian", "prior_mean": float("nan"), "prior_sd": 0.1}, "prior_mean"),
        ({"method": "bayesian", "prior_mean": float("inf"), "prior_sd": 0.1}, "prior_mean"),
    ],
    ids=["power-one", "power-nan", "prior-mean-nan", "prior-mean-inf"],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ExperimentInputError, match=message):
        analyze(_small(), **kwargs)  # type: ignore[arg-type]


def test_alpha_may_be_any_real_number_type() -> None:
    assert analyze(_small(), alpha=np.float32(0.05)).alpha == pytest.approx(0.05)  # type: ignore[arg-type]


def test_the_remaining_sample_uses_t_quantiles_for_small_samples() -> None:
    frame = pd.DataFrame(
        {"variant": ["control"] * 3 + ["t"] * 3, "y": [1.0, 2.0, 3.0, 4.5, 5.0, 9.0]}
    )

    result = analyze(frame, metric="y", control="control")
    extra = result.remaining_n_per_variant
    assert extra is not None
    c, t = np.array([1.0, 2.0, 3.0]), np.array([4.5, 5.0, 9.0])
    n = 3 + extra
    # At the recommended size, with the same means and variances, Welch's test has 80% power.
    se = np.sqrt(c.var(ddof=1) / n + t.var(ddof=1) / n)
    df = 2 * n - 2
    achieved = stats.nct.sf(stats.t.ppf(0.975, df), df, (t.mean() - c.mean()) / se)
    assert achieved >= 0.8 - 1e-3
