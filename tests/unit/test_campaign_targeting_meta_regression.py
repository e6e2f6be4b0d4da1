"""The uplift the targeting uses: shrinkage towards a meta-regression on segment covariates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clv.campaigns.errors import CampaignError
from clv.campaigns.targeting import (
    Tau2Method,
    measured_for_targeting,
    meta_regression,
    segment_covariates,
    shrink_uplift,
)

PRIOR: dict[str, float] = {"prior_rate": 0.05, "prior_sd": 0.05}


def _world(n_segments: int = 40, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Segments whose true uplift is linear in a covariate, measured with known noise."""
    rng = np.random.default_rng(seed)
    names = [f"s{i:02d}" for i in range(n_segments)]
    churn = rng.uniform(0.1, 0.9, n_segments)
    # Centred on the prior's 0.05 at churn 0.5, so the intercept's prior does not bias the line.
    truth = pd.Series(0.05 + 0.6 * (churn - 0.5) + rng.normal(0, 0.02, n_segments), index=names)
    se = rng.uniform(0.05, 0.25, n_segments)
    measured = pd.DataFrame(
        {
            "segment": names,
            "channel": "sms",
            "uplift": truth.to_numpy() + rng.normal(0, se),
            "standard_error": se,
        }
    )
    covariates = pd.DataFrame({"churn_probability": churn}, index=pd.Index(names, name="segment"))
    return measured, covariates, truth


def test_meta_regression_recovers_a_known_linear_relation_from_noisy_segment_estimates() -> None:
    measured, covariates, _ = _world()

    fit = meta_regression(
        measured["uplift"].to_numpy(),
        measured["standard_error"].to_numpy() ** 2,
        covariates.to_numpy(),
        tau2_method="reml",
        **PRIOR,
    )

    assert fit is not None and fit.kept.tolist() == [True]
    at = fit.predict(np.array([[0.2], [0.8]]))
    assert at[0] == pytest.approx(0.05 - 0.6 * 0.3, abs=0.04)
    assert at[1] == pytest.approx(0.05 + 0.6 * 0.3, abs=0.04)
    # The residual spread is the 0.02 around the line (floored at (prior sd / 2)² = 0.025²).
    assert np.sqrt(fit.tau2) < 0.06


def test_shrinking_towards_the_regression_is_closer_to_the_truth_than_towards_one_mean() -> None:
    measured, covariates, truth = _world()
    segments = list(truth.index)

    towards_line = shrink_uplift(
        measured, segments, ["sms"], covariates=covariates, tau2_method="reml", **PRIOR
    ).set_index("segment")["uplift"]
    towards_mean = shrink_uplift(measured, segments, ["sms"], **PRIOR).set_index("segment")[
        "uplift"
    ]
    raw = measured.set_index("segment")["uplift"]

    def error(values: pd.Series) -> float:
        return float(np.sqrt(((values.reindex(truth.index) - truth) ** 2).mean()))

    assert error(towards_line) < 0.5 * error(raw)
    assert error(towards_line) < 0.5 * error(towards_mean)


@pytest.mark.parametrize("tau2_method", ["bayes", "reml", "dl"])
def test_a_precise_segment_keeps_its_value_under_the_regression(tau2_method: Tau2Method) -> None:
    measured, covariates, _ = _world(12)
    measured.loc[0, ["uplift", "standard_error"]] = [0.9, 0.001]  # far off the line, but sure

    shrunk = shrink_uplift(
        measured,
        list(covariates.index),
        ["sms"],
        covariates=covariates,
        tau2_method=tau2_method,
        **PRIOR,
    ).set_index("segment")

    assert shrunk.loc["s00", "uplift"] == pytest.approx(0.9, abs=0.01)
    assert shrunk.loc["s00", "source"] == "measured"


def test_without_covariates_the_shrinkage_is_the_one_towards_the_global_estimate() -> None:
    # Golden numbers from the implementation before the meta-regression (commit 62cde45):
    # DerSimonian–Laird's τ² and the fixed-effect global estimate shrunk towards the prior.
    measured = pd.DataFrame(
        {
            "segment": ["a", "b", "c", "d"],
            "channel": ["email", "email", "sms", "email"],
            "uplift": [0.01, 0.3, 0.2, -0.05],
            "standard_error": [0.02, 0.1, 0.05, 0.2],
        }
    )

    for covariates in (None, pd.DataFrame(index=["a", "b", "c", "d", "e"])):
        shrunk = shrink_uplift(
            measured, ["a", "b", "c", "d", "e"], ["email", "sms"], covariates=covariates, **PRIOR
        ).set_index(["segment", "channel"])

        assert shrunk["uplift"].to_dict() == pytest.approx(
            {
                ("a", "email"): 0.0102187,
                ("b", "email"): 0.2231885,
                ("c", "email"): 0.0243802,
                ("d", "email"): -0.0048411,
                ("e", "email"): 0.0243802,
                ("a", "sms"): 0.125,
                ("b", "sms"): 0.125,
                ("c", "sms"): 0.14,
                ("d", "sms"): 0.125,
                ("e", "sms"): 0.125,
            },
            abs=1e-6,
        )
        assert shrunk.loc[("e", "email"), "source"] == "channel"


def test_segments_never_measured_get_the_regressions_prediction_within_the_measured_range() -> None:
    measured, covariates, _ = _world(12)
    covariates.loc["new"] = 0.5
    covariates.loc["beyond"] = 5.0  # far outside what was measured: no extrapolation
    segments = list(covariates.index)
    x = covariates.loc[measured["segment"]].to_numpy()

    fit = meta_regression(
        measured["uplift"].to_numpy(), measured["standard_error"].to_numpy() ** 2, x, **PRIOR
    )
    shrunk = shrink_uplift(
        measured, segments, ["sms"], covariates=covariates, tau2_method="reml", **PRIOR
    ).set_index("segment")

    assert fit is not None
    assert shrunk.loc["new", "source"] == "regression"
    assert shrunk.loc["new", "uplift"] == pytest.approx(fit.predict(np.array([[0.5]]))[0])
    highest = fit.predict(np.array([[x.max()]]))[0]
    assert shrunk.loc["beyond", "uplift"] == pytest.approx(highest)


def test_too_few_measured_segments_for_the_covariates_fall_back_to_one_estimate() -> None:
    measured, covariates, _ = _world(12)
    two = measured.head(2)  # two segments, one covariate: no residual degree of freedom

    shrunk = shrink_uplift(
        two, list(covariates.index), ["sms"], covariates=covariates, tau2_method="reml", **PRIOR
    ).set_index("segment")

    unmeasured = shrunk.drop(index=two["segment"])
    assert set(unmeasured["source"]) == {"channel"}
    assert unmeasured["uplift"].nunique() == 1


def test_nothing_measured_is_the_prior_whatever_the_covariates() -> None:
    _, covariates, _ = _world(5)

    shrunk = shrink_uplift(
        None, list(covariates.index), ["sms"], covariates=covariates, tau2_method="reml", **PRIOR
    )

    assert (shrunk["uplift"] == 0.05).all() and set(shrunk["source"]) == {"prior"}


@pytest.mark.parametrize(
    ("covariates", "message"),
    [
        (
            pd.DataFrame({"churn_probability": [0.1, np.nan]}, index=["a", "b"]),
            "'churn_probability' is not a finite number for segment 'b'",
        ),
        (pd.DataFrame({"tier": ["gold", "silver"]}, index=["a", "b"]), "'tier' is not numeric"),
        (pd.DataFrame({"churn_probability": [0.1]}, index=["a"]), "lack segment\\(s\\) 'b'"),
    ],
    ids=["nan", "text column", "missing segment"],
)
def test_bad_covariates_are_refused_with_the_column_or_segment(
    covariates: pd.DataFrame, message: str
) -> None:
    measured = pd.DataFrame(
        {"segment": ["a"], "channel": ["sms"], "uplift": [0.1], "standard_error": [0.05]}
    )
    with pytest.raises(CampaignError, match=message):
        shrink_uplift(measured, ["a", "b"], ["sms"], covariates=covariates, **PRIOR)


def test_an_unknown_tau2_method_is_refused() -> None:
    measured, covariates, _ = _world(5)
    with pytest.raises(CampaignError, match="tau2_method"):
        shrink_uplift(
            measured,
            list(covariates.index),
            ["sms"],
            covariates=covariates,
            tau2_method="ml",  # type: ignore[arg-type]
            **PRIOR,
        )


@pytest.mark.parametrize("tau2_method", ["bayes", "reml", "dl"])
def test_the_spread_between_segments_is_recovered_from_many(tau2_method: Tau2Method) -> None:
    rng = np.random.default_rng(3)
    k, spread = 400, 0.1
    se = rng.uniform(0.02, 0.3, k)
    u = rng.normal(0.05, spread, k) + rng.normal(0, se)

    fit = meta_regression(
        u, se**2, np.empty((k, 0)), prior_rate=0.05, prior_sd=0.05, tau2_method=tau2_method
    )

    assert fit is not None and not fit.kept.any()
    assert np.sqrt(fit.tau2) == pytest.approx(spread, abs=0.02)


def test_the_spreads_posterior_keeps_part_of_each_measurement_a_point_estimate_pools() -> None:
    # Six segments that, by chance, vary less than their errors: the moment and REML estimates
    # of τ² are zero (the floor), and every segment is pulled to the mean. Larger spreads are
    # not ruled out by six noisy numbers, so the posterior keeps part of each measurement.
    u = np.array([0.02, 0.04, 0.3, 0.0, 0.35, 0.1])
    se = np.array([0.05, 0.06, 0.3, 0.3, 0.4, 0.35])
    measured = pd.DataFrame(
        {"segment": list("abcdef"), "channel": "sms", "uplift": u, "standard_error": se}
    )
    methods: tuple[Tau2Method, ...] = ("dl", "reml", "bayes")
    spread = {}
    for method in methods:
        fit = meta_regression(u, se**2, np.empty((6, 0)), tau2_method=method, **PRIOR)
        shrunk = shrink_uplift(measured, list("abcdef"), ["sms"], tau2_method=method, **PRIOR)
        spread[method] = float(shrunk["uplift"].std())
        assert fit is not None
        if method != "bayes":
            assert fit.tau2 == pytest.approx((0.05 / 2) ** 2)

    assert spread["bayes"] > 2 * max(spread["dl"], spread["reml"])
    assert spread["bayes"] < float(np.std(u, ddof=1))


def test_the_targeting_reads_orders_where_measured_and_revenue_elsewhere() -> None:
    rows = pd.DataFrame(
        {
            "segment": ["a", "a", "b", "c"],
            "channel": ["sms"] * 4,
            "metric": ["revenue", "orders", "revenue", "conversion"],
            "uplift": [0.3, 0.2, 0.1, 0.5],
            "standard_error": [0.2, 0.1, 0.05, 0.01],
        }
    )

    chosen = measured_for_targeting(rows)
    only_revenue = measured_for_targeting(rows, ("revenue",))

    assert chosen is not None and only_revenue is not None
    assert chosen.set_index("segment")["metric"].to_dict() == {"a": "orders", "b": "revenue"}
    assert only_revenue.set_index("segment")["uplift"].to_dict() == {"a": 0.3, "b": 0.1}
    without_metric = rows.drop(columns="metric")
    assert measured_for_targeting(without_metric) is without_metric


def test_segment_covariates_are_means_with_the_clv_on_a_log_scale() -> None:
    customers = pd.DataFrame(
        {
            "segment": ["a", "a", "b"],
            "predicted_clv": [0.0, np.e**2 - 1, -5.0],
            "churn_probability": [0.2, 0.4, np.nan],  # missing for all of b: left out
        }
    )

    table = segment_covariates(customers)

    assert list(table.columns) == ["predicted_clv"]
    assert table.loc["a", "predicted_clv"] == pytest.approx(1.0)
    assert table.loc["b", "predicted_clv"] == pytest.approx(0.0)  # negative CLV counts as 0
