"""Behaviour of the zero-inflated lognormal Keras model in ``clv.models.keras_ziln``.

Recovery tests fit data generated from a known ZILN structure (P(spend > 0) logistic in the
features, log-spend linear plus Gaussian noise), so the true expected spend of every customer is
known in closed form. One network is fitted per module and shared; the seed test fits two more,
smaller ones.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, log_expit
from scipy.stats import lognorm, spearmanr

from clv.models.base import MODELS, IntegrityError, read_manifest, write_manifest
from clv.models.keras_ziln import (
    SIGMA_FLOOR,
    KerasZILNModel,
    search_space,
    sigma_limit,
    ziln_interval,
    ziln_loss,
    ziln_mean,
    ziln_mixture_quantile,
    ziln_quantile,
)

SIGMA = 0.5
# One network: the default is a deep ensemble of three (see the ``deep_ensemble`` fixture).
FAST = {"hidden_units": [32, 16], "epochs": 40, "batch_size": 256, "seed": 7, "n_members": 1}


def make_ziln_data(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """Features, observed spend and the true expected spend ``p * exp(mu + sigma² / 2)``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    p = expit(0.3 + 1.2 * X[:, 0] - 0.8 * X[:, 1])
    mu = 3.0 + 0.6 * X[:, 2] + 0.4 * X[:, 0]  # x3 is noise
    spend = np.where(rng.random(n) < p, np.exp(mu + SIGMA * rng.normal(size=n)), 0.0)
    frame = pd.DataFrame(X, columns=["x0", "x1", "x2", "x3"])
    return frame, pd.Series(spend, name="spend_90d"), p * np.exp(mu + SIGMA**2 / 2)


@pytest.fixture(scope="module")
def data() -> dict[str, tuple[pd.DataFrame, pd.Series, np.ndarray]]:
    return {
        "train": make_ziln_data(4000, 1),
        "val": make_ziln_data(1000, 2),
        "test": make_ziln_data(3000, 3),
    }


@pytest.fixture(scope="module")
def fitted(data: dict[str, tuple[pd.DataFrame, pd.Series, np.ndarray]]) -> KerasZILNModel:
    X, y, _ = data["train"]
    X_val, y_val, _ = data["val"]
    return KerasZILNModel(FAST).fit(X, y, X_val=X_val, y_val=y_val)


# -- recovery on data with known truth ---------------------------------------------------------


def test_predicted_mean_recovers_true_expected_spend(fitted, data) -> None:
    X, _, expected = data["test"]
    predicted = fitted.predict(X)
    assert spearmanr(predicted, expected).statistic > 0.6
    assert predicted.sum() == pytest.approx(expected.sum(), rel=0.15)


def test_80_percent_intervals_cover_about_80_percent(fitted, data) -> None:
    X, y, _ = data["test"]
    lower, upper = fitted.predict_interval(X, coverage=0.8)
    assert np.all(lower <= upper)
    covered = np.mean((y.to_numpy() >= lower) & (y.to_numpy() <= upper))
    assert 0.70 <= covered <= 0.90


def test_predictions_are_never_negative(fitted, data) -> None:
    X, _, _ = data["test"]
    extreme = X * 50.0  # far outside the training range
    for frame in (X, extreme):
        assert np.all(fitted.predict(frame) >= 0.0)
        lower, _ = fitted.predict_interval(frame)
        assert np.all(lower >= 0.0)


def test_distribution_columns_and_ranges(fitted, data) -> None:
    X, _, _ = data["test"]
    d = fitted.predict_distribution(X)
    assert list(d.columns) == ["p_positive", "mu", "sigma"]
    assert d.index.equals(X.index)
    assert d["p_positive"].between(0, 1).all()
    assert (d["sigma"] >= SIGMA_FLOOR).all()


def test_same_seed_gives_same_predictions(data) -> None:
    X, y, _ = data["train"]
    X_small, y_small = X.iloc[:800], y.iloc[:800]
    params = {"hidden_units": [8], "epochs": 5, "seed": 11}
    first = KerasZILNModel(params).fit(X_small, y_small).predict(X)
    second = KerasZILNModel(params).fit(X_small, y_small).predict(X)
    assert np.allclose(first, second)


def test_missing_values_get_indicators_and_unseen_columns_are_tolerated(data) -> None:
    X, y, _ = data["train"]
    X_small, y_small = X.iloc[:500].copy(), y.iloc[:500]
    X_small.loc[X_small.index[::5], "x1"] = np.nan
    model = KerasZILNModel({"hidden_units": [8], "epochs": 2}).fit(X_small, y_small)
    assert model.missing_indicators == ["x1"]
    # means are learnt on sign(x) log1p(|x|), the scale the network sees
    x1 = X_small["x1"].to_numpy()
    assert model.means["x1"] == pytest.approx(np.nanmean(np.sign(x1) * np.log1p(np.abs(x1))))
    # Column order does not matter and a column absent at prediction time counts as missing.
    predicted = model.predict(X_small[["x3", "x2", "x0"]])
    assert predicted.shape == (500,)
    assert np.all(np.isfinite(predicted)) and np.all(predicted >= 0)


# -- the loss and the mixture quantiles --------------------------------------------------------


def test_ziln_loss_matches_hand_computation() -> None:
    labels = np.array([[0.0], [2.5], [10.0]])
    outputs = np.array([[0.4, 1.0, -0.3], [-1.2, 0.5, 0.7], [2.0, 2.1, 0.0]])
    logit, mu, raw_scale = outputs.T
    positive = (labels[:, 0] > 0).astype(float)
    # BCE from logits: -(z log σ(l) + (1 - z) log(1 - σ(l))), with log(1 - σ(l)) = log σ(-l).
    bce = -(positive * log_expit(logit) + (1 - positive) * log_expit(-logit))
    sigma = np.logaddexp(0.0, raw_scale) + SIGMA_FLOOR
    log_density = lognorm.logpdf(
        np.where(positive > 0, labels[:, 0], 1.0), s=sigma, scale=np.exp(mu)
    )
    expected = bce - positive * log_density

    actual = np.asarray(ziln_loss(labels.astype(np.float32), outputs.astype(np.float32)))
    np.testing.assert_allclose(actual, expected, rtol=1e-5)
    # Hand-checked magnitudes: example 0 is a zero (BCE only) ...
    assert expected[0] == pytest.approx(np.log1p(np.exp(0.4)))


def test_ziln_quantiles_match_the_mixture() -> None:
    p, mu, sigma = np.array([0.3, 0.3, 0.95]), np.array([1.0, 1.0, 2.0]), np.array([0.5, 0.5, 1.0])
    # q below the atom at zero -> 0; above it -> lognormal quantile at (q - (1 - p)) / p.
    assert ziln_quantile(0.5, p[:1], mu[:1], sigma[:1])[0] == 0.0
    expected = lognorm.ppf((0.9 - 0.7) / 0.3, s=0.5, scale=np.exp(1.0))
    assert ziln_quantile(0.9, p[:1], mu[:1], sigma[:1])[0] == pytest.approx(expected)
    lower, upper = ziln_interval(p, mu, sigma, 0.8)
    # Lower end in the atom: [0, Q(0.8)], which covers exactly 80 %.
    assert lower[0] == 0.0
    assert upper[0] == pytest.approx(lognorm.ppf((0.8 - 0.7) / 0.3, s=0.5, scale=np.exp(1.0)))
    # Lower end positive (p > 0.9): equal tails.
    assert lower[2] == pytest.approx(lognorm.ppf((0.1 - 0.05) / 0.95, s=1.0, scale=np.exp(2.0)))
    assert upper[2] == pytest.approx(lognorm.ppf((0.9 - 0.05) / 0.95, s=1.0, scale=np.exp(2.0)))


def test_mixture_quantile_inverts_the_mixture_cdf() -> None:
    rng = np.random.default_rng(0)
    rows, members = 200, 3
    p = rng.uniform(0.05, 0.99, size=(rows, members))
    mu = rng.normal(3.0, 1.0, size=(rows, members))
    sigma = rng.uniform(0.2, 1.5, size=(rows, members))
    q = rng.uniform(0.01, 0.99, size=rows)

    quantile = ziln_mixture_quantile(q, p, mu, sigma)

    zero_mass = (1 - p).mean(axis=1)
    assert np.all(quantile[q <= zero_mass] == 0.0)
    positive = q > zero_mass
    with np.errstate(divide="ignore"):
        cdf = ((1 - p) + p * lognorm.cdf(quantile[:, None], s=sigma, scale=np.exp(mu))).mean(axis=1)
    np.testing.assert_allclose(cdf[positive], q[positive], atol=1e-9)


def test_a_mixture_of_identical_members_is_that_member() -> None:
    p, mu, sigma = np.array([0.3, 0.95]), np.array([1.0, 2.0]), np.array([0.5, 1.0])
    same = [np.repeat(a[:, None], 3, axis=1) for a in (p, mu, sigma)]
    for q in (0.1, 0.5, 0.9):
        np.testing.assert_allclose(
            ziln_mixture_quantile(q, *same), ziln_quantile(q, p, mu, sigma), rtol=1e-9
        )
    for mixture, single in zip(
        ziln_interval(*same, 0.8), ziln_interval(p, mu, sigma, 0.8), strict=True
    ):
        np.testing.assert_allclose(mixture, single, rtol=1e-9)


def test_ziln_loss_of_a_deep_ensemble_is_the_mean_of_its_members() -> None:
    labels = np.array([[0.0], [2.5], [10.0]], dtype=np.float32)
    first = np.array([[0.4, 1.0, -0.3], [-1.2, 0.5, 0.7], [2.0, 2.1, 0.0]], dtype=np.float32)
    second = np.array([[-0.4, 2.0, 0.3], [1.2, 1.5, -0.7], [0.0, 1.1, 0.5]], dtype=np.float32)

    together = np.asarray(ziln_loss(labels, np.hstack([first, second])))

    each = [np.asarray(ziln_loss(labels, member)) for member in (first, second)]
    np.testing.assert_allclose(together, (each[0] + each[1]) / 2, rtol=1e-6)


@pytest.fixture(scope="module")
def deep_ensemble(data) -> KerasZILNModel:
    """The default: no ``n_members`` given."""
    X, y, _ = data["train"]
    X_val, y_val, _ = data["val"]
    params = {k: v for k, v in FAST.items() if k != "n_members"}
    return KerasZILNModel(params).fit(X, y, X_val=X_val, y_val=y_val)


def test_without_n_members_three_networks_are_fitted_each_with_its_own_distribution(
    deep_ensemble, data
) -> None:
    # That trials tune one network and the best is refitted as this ensemble: test_training_library.
    X, _, _ = data["test"]
    d = deep_ensemble.predict_distribution(X)
    members = [[f"p_positive_{k}", f"mu_{k}", f"sigma_{k}"] for k in range(3)]
    assert list(d.columns) == ["p_positive", *(column for m in members for column in m)]
    for columns in members:
        assert d[columns].notna().all().all()
    assert (d[[f"sigma_{k}" for k in range(3)]] >= SIGMA_FLOOR).all().all()


def test_a_deep_ensemble_predicts_the_mean_of_its_members(deep_ensemble, data) -> None:
    X, _, expected = data["test"]
    d = deep_ensemble.predict_distribution(X)
    limit = deep_ensemble.sigma_limit
    members = [
        ziln_mean(
            d[f"p_positive_{k}"].to_numpy(),
            d[f"mu_{k}"].to_numpy(),
            np.minimum(d[f"sigma_{k}"].to_numpy(), limit),
        )
        for k in range(3)
    ]
    predicted = deep_ensemble.predict(X)

    np.testing.assert_allclose(predicted, np.mean(members, axis=0), rtol=1e-12)
    np.testing.assert_allclose(
        d["p_positive"], d[[f"p_positive_{k}" for k in range(3)]].mean(axis=1)
    )
    # The members are trained from different seeds, so they differ; together they recover the truth.
    assert not np.allclose(members[0], members[1])
    assert spearmanr(predicted, expected).statistic > 0.6
    assert predicted.sum() == pytest.approx(expected.sum(), rel=0.15)
    assert np.all(predicted >= 0.0)


def test_each_member_of_a_deep_ensemble_is_the_network_its_own_seed_trains(data) -> None:
    X, y, _ = data["train"]
    X_small, y_small = X.iloc[:800], y.iloc[:800]
    small = {**FAST, "hidden_units": [8], "epochs": 5}
    ensemble = KerasZILNModel({**small, "n_members": 2}).fit(X_small, y_small)
    d = ensemble.predict_distribution(X_small)

    for k in range(2):
        single = KerasZILNModel({**small, "seed": small["seed"] + 1000 * k}).fit(X_small, y_small)
        alone = single.predict_distribution(X_small)
        for name in ("p_positive", "mu", "sigma"):
            np.testing.assert_allclose(d[f"{name}_{k}"], alone[name], rtol=1e-5, atol=1e-6)


def test_a_deep_ensembles_intervals_are_the_mixtures_and_cover_about_80_percent(
    deep_ensemble, data
) -> None:
    X, y, _ = data["test"]
    lower, upper = deep_ensemble.predict_interval(X, coverage=0.8)
    d = deep_ensemble.predict_distribution(X)
    parameters = [
        d[[f"{name}_{k}" for k in range(3)]].to_numpy() for name in ("p_positive", "mu", "sigma")
    ]
    expected_lower, expected_upper = ziln_interval(*parameters, 0.8)

    np.testing.assert_allclose(lower, expected_lower, rtol=1e-6)
    np.testing.assert_allclose(upper, expected_upper, rtol=1e-6)
    assert np.all((lower >= 0.0) & (lower <= upper))
    covered = np.mean((y.to_numpy() >= lower) & (y.to_numpy() <= upper))
    assert 0.70 <= covered <= 0.90


def test_a_deep_ensemble_round_trips_through_its_native_file(deep_ensemble, data, tmp_path) -> None:
    X, _, _ = data["test"]
    deep_ensemble.save(tmp_path / "ziln")
    loaded = KerasZILNModel.load(tmp_path / "ziln")
    assert loaded.params["n_members"] == 3
    np.testing.assert_array_equal(loaded.predict(X), deep_ensemble.predict(X))


# -- sigma in the expected spend ---------------------------------------------------------------


def test_sigma_limit_is_the_cap_times_the_log_spread_of_the_positive_labels() -> None:
    labels = np.array([0.0, np.e, 0.0, np.e**3])  # log positives 1 and 3: std 1
    assert sigma_limit(labels, 1.5) == pytest.approx(1.5)
    assert sigma_limit(labels, 0.5) == pytest.approx(0.5)
    assert sigma_limit(labels, None) is None
    assert sigma_limit(np.array([0.0, 0.0, 5.0]), 1.5) is None  # one buyer: no spread to measure
    assert sigma_limit(np.array([2.0, 2.0, 0.0]), 1.5) == SIGMA_FLOOR  # no spread at all


@pytest.fixture(scope="module")
def heavy_tailed() -> tuple[pd.DataFrame, pd.Series]:
    """Few rows, log-spend spread 2: a network puts large sigmas on some customers."""
    rng = np.random.default_rng(11)
    X = pd.DataFrame(rng.normal(size=(600, 3)), columns=["a", "b", "c"])
    buys = rng.random(600) < expit(X["a"].to_numpy())
    spend = np.where(buys, np.exp(3.0 + X["b"].to_numpy() + 2.0 * rng.normal(size=600)), 0.0)
    return X, pd.Series(spend)


def test_expected_spend_uses_sigma_at_most_the_limit_and_intervals_keep_the_networks_sigma(
    heavy_tailed,
) -> None:
    X, y = heavy_tailed
    params = {"hidden_units": [8], "epochs": 10, "seed": 3, "n_members": 2}
    capped = KerasZILNModel({**params, "sigma_cap": 0.5}).fit(X, y)
    free = KerasZILNModel({**params, "sigma_cap": None}).fit(X, y)
    logs = np.log(y[y > 0].to_numpy())
    assert capped.sigma_limit == pytest.approx(0.5 * logs.std())
    assert free.sigma_limit is None

    d = capped.predict_distribution(X)
    p, mu, sigma = (
        d[[f"{n}_{k}" for k in range(2)]].to_numpy() for n in ("p_positive", "mu", "sigma")
    )
    assert (sigma > capped.sigma_limit).any()  # the limit binds somewhere
    np.testing.assert_allclose(
        capped.predict(X), ziln_mean(p, mu, np.minimum(sigma, capped.sigma_limit)).mean(axis=1)
    )
    # The same networks (same seeds, same data): only the expected spend differs.
    np.testing.assert_allclose(free.predict(X), ziln_mean(p, mu, sigma).mean(axis=1), rtol=1e-6)
    assert np.all(capped.predict(X) <= free.predict(X) * (1 + 1e-9))
    for got, want in zip(capped.predict_interval(X), free.predict_interval(X), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_the_sigma_limit_is_saved_and_a_model_saved_before_it_existed_has_none(
    heavy_tailed, tmp_path: Path
) -> None:
    X, y = heavy_tailed
    model = KerasZILNModel({"hidden_units": [8], "epochs": 3, "n_members": 1}).fit(X, y)
    folder = tmp_path / "ziln"
    model.save(folder)
    loaded = KerasZILNModel.load(folder)
    assert loaded.sigma_limit == model.sigma_limit is not None
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))

    preprocessing = json.loads((folder / "preprocessing.json").read_text())
    del preprocessing["sigma_limit"]
    del preprocessing["params"]["sigma_cap"]
    (folder / "preprocessing.json").write_text(json.dumps(preprocessing))
    write_manifest(folder, name="keras_ziln", files=["model.keras", "preprocessing.json"], meta={})
    old = KerasZILNModel.load(folder)
    assert old.sigma_limit is None and old.params["sigma_cap"] is None
    d = old.predict_distribution(X)
    np.testing.assert_allclose(
        old.predict(X), ziln_mean(d["p_positive"], d["mu"], d["sigma"]), rtol=1e-12
    )


# -- persistence -------------------------------------------------------------------------------


def test_save_load_round_trip(fitted, data, tmp_path: Path) -> None:
    X, _, _ = data["test"]
    fitted.save(tmp_path / "ziln")
    manifest = read_manifest(tmp_path / "ziln", expected_model="keras_ziln")
    assert manifest["model"] == "keras_ziln"
    assert set(manifest["files"]) == {"model.keras", "preprocessing.json"}
    loaded = KerasZILNModel.load(tmp_path / "ziln")
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    assert loaded.feature_names == fitted.feature_names


def test_tampered_model_file_is_refused(fitted, tmp_path: Path) -> None:
    fitted.save(tmp_path / "ziln")
    with (tmp_path / "ziln" / "model.keras").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(IntegrityError, match=r"model\.keras"):
        KerasZILNModel.load(tmp_path / "ziln")


def test_the_family_named_keras_ziln_fits_predicts_non_negative_spend_and_loads_back(
    tmp_path: Path,
) -> None:
    # Studies create models and bundles load them by family name (clv.models.base.MODELS).
    X, y, _ = make_ziln_data(100, 4)
    model = MODELS["keras_ziln"]({"hidden_units": [4], "epochs": 1, "n_members": 1}).fit(X, y)
    predicted = model.predict(X)
    assert predicted.shape == (len(X),)
    assert np.all(np.isfinite(predicted)) and np.all(predicted >= 0.0)
    model.save(tmp_path / "ziln")
    loaded = MODELS["keras_ziln"].load(tmp_path / "ziln")  # type: ignore[attr-defined]
    np.testing.assert_array_equal(loaded.predict(X), predicted)


def test_import_does_not_load_tensorflow() -> None:
    code = (
        "import sys, clv.models.keras_ziln\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_search_space_layers_halve_in_width_and_the_model_keeps_them() -> None:
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(8):
        trial = study.ask()
        params = search_space(trial)
        units = params["hidden_units"]
        assert len(units) == trial.params["n_layers"]
        assert units[0] == trial.params["first_units"]
        assert all(b == max(a // 2, 4) for a, b in itertools.pairwise(units))
        assert 0.0 <= params["dropout"] <= 0.3
        # The model accepts every sampled point and trains with exactly those settings.
        model = KerasZILNModel(params)
        assert {k: model.params[k] for k in params} == params


# -- validation at the boundary ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (pd.DataFrame({"a": [1.0, 2.0]}), [1.0], "has 1 rows but X has 2"),
        (pd.DataFrame({"a": [1.0, 2.0]}), [1.0, -3.0], "negative"),
        (pd.DataFrame({"a": [1.0, 2.0]}), [1.0, np.nan], "not finite"),
        (pd.DataFrame({"a": [1.0, 2.0]}), [np.inf, 1.0], "not finite"),
        (pd.DataFrame({"a": [1.0, np.inf]}), [1.0, 2.0], "column 'a': infinite"),
        (pd.DataFrame({"a": ["x", "y"]}), [1.0, 2.0], r"\['a'\] are not numeric"),
        (np.ones((2, 1)), [1.0, 2.0], "must be a pandas DataFrame"),
    ],
    ids=["length", "negative-y", "nan-y", "inf-y", "inf-X", "text-X", "array-X"],
)
def test_bad_inputs_raise_value_error(X, y, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KerasZILNModel({"epochs": 1}).fit(X, y)


@pytest.mark.parametrize(
    "params",
    [
        {"epochs": 0},
        {"hidden_units": 32},
        {"dropout": 1.0},
        {"learning_rate": 0},
        {"typo": 1},
        {"n_members": 0},
        {"sigma_cap": 0},
        {"sigma_cap": -1.0},
        {"sigma_cap": float("nan")},
        {"sigma_cap": "1.5"},
        {"sigma_cap": True},
    ],
    ids=[
        "epochs",
        "units",
        "dropout",
        "lr",
        "unknown",
        "members",
        "cap-zero",
        "cap-negative",
        "cap-nan",
        "cap-text",
        "cap-bool",
    ],
)
def test_bad_params_raise_value_error(params) -> None:
    with pytest.raises(ValueError, match="keras_ziln"):
        KerasZILNModel(params)


def test_predict_before_fit_and_bad_coverage(fitted, data) -> None:
    X, _, _ = data["test"]
    with pytest.raises(RuntimeError, match="not fitted"):
        KerasZILNModel().predict(X)
    with pytest.raises(ValueError, match="coverage"):
        fitted.predict_interval(X, coverage=1.5)
    with pytest.raises(ValueError, match="infinite"):
        fitted.predict(X.assign(x0=np.inf))
