"""CLVPredictor: the training pipeline in-process, scoring, and a SHA-256-checked folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import clv
from clv.data.validation import ContractError
from clv.models.base import IntegrityError
from clv.predictor import NotFittedError
from clv.segmentation import RFM_INPUT_COLUMNS
from clv.training.scoring import SCORE_COLUMNS, score_customers

FAST = {"families": ("lightgbm",), "trials": 1}


@pytest.fixture(scope="module")
def data() -> clv.GeneratedData:
    return clv.generate(customers=1_200, seed=7)


@pytest.fixture(scope="module")
def fitted(data: clv.GeneratedData) -> clv.CLVPredictor:
    return clv.CLVPredictor(horizon_days=90, **FAST).fit(data.transactions)  # type: ignore[arg-type]


def test_predicting_before_fit_says_to_fit_or_load(data: clv.GeneratedData) -> None:
    model = clv.CLVPredictor(horizon_days=30)
    assert "not fitted" in repr(model)
    with pytest.raises(NotFittedError, match=r"call \.fit\(transactions\) first.*clv\.load"):
        model.predict(data.transactions)
    with pytest.raises(NotFittedError):
        model.save(Path("never-written"))


def test_unknown_options_and_families_are_refused_when_built() -> None:
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['n_trails'\].*step_days"):
        clv.CLVPredictor(n_trails=3)
    with pytest.raises(ValueError, match="unknown model families"):
        clv.CLVPredictor(families=("catboost",))
    assert clv.CLVPredictor(families="xgboost").config.families == ("xgboost",)


def test_a_bad_frame_is_refused_with_row_and_column() -> None:
    tx = pd.DataFrame(
        {"customer_id": ["a", "b"], "timestamp": ["2024-01-01", "yesterday"], "amount": [1.0, 2.0]}
    )
    with pytest.raises(ContractError, match=r"row 2, column 'timestamp': 'yesterday'"):
        clv.CLVPredictor(**FAST).fit(tx)  # type: ignore[arg-type]


def test_fit_records_the_winner_and_holdout_metrics_of_every_candidate(
    fitted: clv.CLVPredictor,
) -> None:
    metrics = fitted.holdout_metrics_
    assert metrics is not None and fitted.winner_ in metrics.index
    assert {"bgnbd_gamma_gamma", "run_rate"} <= set(metrics.index)
    assert "normalized_gini" in metrics.columns
    assert fitted.report_ is not None and fitted.report_.winner == fitted.winner_
    assert f"winner {fitted.winner_}" in repr(fitted)


def test_predict_is_the_scoring_of_clv_score_plus_the_rfm_columns(
    fitted: clv.CLVPredictor, data: clv.GeneratedData
) -> None:
    scores = fitted.predict(data.transactions)
    assert fitted.spend_ is not None
    expected = score_customers(
        clv.shortcuts.validated(data.transactions),
        spend=fitted.spend_,
        churn=fitted.churn_,
        horizon_days=90,
    )
    pd.testing.assert_frame_equal(scores[list(expected.columns)], expected)
    assert list(scores.columns[: len(SCORE_COLUMNS)]) == list(SCORE_COLUMNS)
    assert (scores["predicted_clv"] >= 0).all()
    # The interval is one of the realised spend, not of its mean: for customers who most likely
    # buy nothing it is [0, 0] while the expectation is small but positive.
    assert (scores["predicted_clv_lower"] <= scores["predicted_clv_upper"]).all()
    assert scores["churn_probability"].between(0, 1).all()
    assert scores[list(RFM_INPUT_COLUMNS)].notna().all().all()
    segments = clv.segment(scores)
    assert len(segments) == len(scores) and segments["segment"].notna().all()


def test_predict_as_of_a_date_ignores_later_transactions(
    fitted: clv.CLVPredictor, data: clv.GeneratedData
) -> None:
    tx = data.transactions
    early = fitted.predict(tx, as_of="2025-10-31")
    truncated = fitted.predict(tx[tx["timestamp"] <= pd.Timestamp("2025-10-31 23:59:59")])
    pd.testing.assert_frame_equal(early, truncated)
    # A bare date is the end of that day.
    assert (early["as_of"].dt.normalize() == pd.Timestamp("2025-10-31")).all()
    assert (early["as_of"] >= pd.Timestamp("2025-10-31 23:59:59")).all()


def test_save_and_load_give_the_same_predictions(
    fitted: clv.CLVPredictor, data: clv.GeneratedData, tmp_path: Path
) -> None:
    folder = fitted.save(tmp_path / "model")
    assert {p.name for p in folder.iterdir()} >= {"spend", "churn", "predictor.json"}
    loaded = clv.load(folder)
    assert loaded.winner_ == fitted.winner_ and loaded.config == fitted.config
    assert loaded.report_ is None
    pd.testing.assert_frame_equal(
        loaded.predict(data.transactions), fitted.predict(data.transactions)
    )
    assert loaded.holdout_metrics_ is not None and fitted.holdout_metrics_ is not None
    np.testing.assert_allclose(
        loaded.holdout_metrics_.to_numpy(dtype=float), fitted.holdout_metrics_.to_numpy(dtype=float)
    )


def test_a_tampered_or_missing_folder_is_refused(fitted: clv.CLVPredictor, tmp_path: Path) -> None:
    folder = fitted.save(tmp_path / "model")
    settings = folder / "predictor.json"
    settings.write_text(settings.read_text().replace('"seed": 0', '"seed": 1'))
    with pytest.raises(IntegrityError, match=r"predictor\.json: SHA-256 does not match"):
        clv.CLVPredictor.load(folder)
    again = fitted.save(tmp_path / "again")
    (again / "spend" / "bundle.json").write_text("{}")
    with pytest.raises(IntegrityError, match=r"bundle\.json: SHA-256 does not match"):
        clv.load(again)
    with pytest.raises(FileNotFoundError, match="no saved CLVPredictor"):
        clv.load(tmp_path / "nothing-here")


def test_a_model_trained_with_the_customers_table_needs_it_to_predict(
    data: clv.GeneratedData,
) -> None:
    model = clv.CLVPredictor(horizon_days=90, **FAST).fit(  # type: ignore[arg-type]
        data.transactions, customers=data.customers
    )
    with pytest.raises(ValueError, match=r"trained with the customers table.*customers=\.\.\."):
        model.predict(data.transactions)
    scores = model.predict(data.transactions, customers=data.customers)
    assert len(scores) == data.transactions["customer_id"].nunique()


def test_segmenting_the_predictions_gives_each_customer_one_named_value_and_rfm_segment(
    fitted: clv.CLVPredictor, data: clv.GeneratedData
) -> None:
    scores = fitted.predict(data.transactions)
    segments = clv.segment(scores)
    assert segments["customer_id"].tolist() == scores["customer_id"].tolist()
    assert segments["segment"].notna().all() and segments["rfm_segment"].notna().all()
    names = segments.groupby("segment_id")["segment"].nunique()
    assert (names == 1).all()  # one name per id
    # Segments differ in value: the best segment's mean predicted CLV is far above the worst's.
    means = segments.groupby("segment")["predicted_clv"].mean()
    assert means.max() > 2 * means.min()
