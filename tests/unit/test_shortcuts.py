"""The top-level API: a cheap ``import clv``, generated frames, the RFM summary and BTYD."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import clv
from clv.data.validation import ContractError

HEAVY = ("tensorflow", "mlflow", "prefect", "evidently")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_importing_clv_imports_no_heavy_library() -> None:
    loaded = _modules_after("import clv")
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}
    assert "clv.predictor" not in loaded  # the public names are resolved on first use


def test_generating_data_and_summaries_imports_no_heavy_library() -> None:
    loaded = _modules_after(
        "import clv\n"
        "d = clv.generate(customers=50, seed=1)\n"
        "clv.fit_btyd(clv.rfm_summary(d.transactions))"
    )
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_every_public_name_resolves_and_unknown_names_raise() -> None:
    for name in clv.__all__:
        assert getattr(clv, name) is not None
        assert name in dir(clv)
    with pytest.raises(AttributeError, match="no attribute 'predicter'"):
        _ = clv.predicter  # type: ignore[attr-defined]


def test_generate_returns_contract_frames_and_the_same_seed_the_same_data() -> None:
    first = clv.generate(customers=200, seed=3)
    again = clv.generate(customers=200, seed=3)
    other = clv.generate(customers=200, seed=4)
    assert isinstance(first.transactions, pd.DataFrame)
    assert first.customers["customer_id"].nunique() == 200
    assert set(first.truth["customer_id"]) == set(first.customers["customer_id"])
    pd.testing.assert_frame_equal(first.transactions, again.transactions)
    assert not first.transactions.equals(other.transactions)
    assert "200 customers" in repr(first)


def test_generate_names_an_unknown_setting() -> None:
    with pytest.raises(TypeError, match=r"unknown setting\(s\) \['n_custmers'\].*seasonality"):
        clv.generate(customers=10, n_custmers=5)


def test_generate_accepts_dates_as_text() -> None:
    data = clv.generate(customers=30, seed=1, start="2024-01-01", end="2024-06-30")
    assert data.transactions["timestamp"].max() <= pd.Timestamp("2024-06-30 23:59:59")
    assert data.config.end.isoformat() == "2024-06-30"


def _tx(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])


def test_rfm_summary_follows_lifetimes_definitions() -> None:
    # a: purchase days Jan 1 (10 + 5), Jan 11 (20), Jan 31 (40); a refund Feb 2 (no purchase day);
    # cut-off Feb 10 (a bare date: the end of that day, so the 15:00 purchase of b counts).
    #   frequency 2, recency 30, T 40, monetary (20 + 40) / 2 = 30. b: one purchase -> 0, 0, 0, 0.
    tx = _tx(
        [
            ("a", "2024-01-01 09:00", 10.0),
            ("a", "2024-01-01 18:00", 5.0),
            ("a", "2024-01-11", 20.0),
            ("a", "2024-01-31", 40.0),
            ("a", "2024-02-02", -8.0),
            ("b", "2024-02-10 15:00", 12.0),
            ("a", "2024-03-01", 99.0),
        ]
    )
    summary = clv.rfm_summary(tx, cutoff="2024-02-10")
    assert list(summary.columns) == ["frequency", "recency", "T", "monetary_value"]
    assert summary.loc["a"].tolist() == [2, 30, 40, 30]
    assert summary.loc["b"].tolist() == [0, 0, 0, 0]


def test_rfm_summary_maps_the_users_column_names() -> None:
    tx = pd.DataFrame(
        {"CustomerID": ["x", "x"], "InvoiceDate": ["2024-01-01", "2024-01-05"], "Sales": [3, 4]}
    )
    columns = {"CustomerID": "customer_id", "InvoiceDate": "timestamp", "Sales": "amount"}
    summary = clv.rfm_summary(tx, columns=columns)
    assert summary.loc["x"].tolist() == [1, 4, 4, 4]
    with pytest.raises(ValueError, match=r"names \['Custmer'\], which the transactions frame"):
        clv.rfm_summary(tx, columns={"Custmer": "customer_id"})


def test_a_bad_frame_is_refused_with_row_and_column() -> None:
    tx = _tx([("a", "2024-01-01", 10.0), ("b", "2024-01-02", 1.0)])
    tx["amount"] = tx["amount"].astype(object)
    tx.loc[1, "amount"] = "abc"
    with pytest.raises(ContractError, match=r"row 2, column 'amount': 'abc' is not a number"):
        clv.rfm_summary(tx)


def test_fit_btyd_predicts_non_negative_spend_that_grows_with_the_horizon() -> None:
    data = clv.generate(customers=800, seed=5)
    summary = clv.rfm_summary(data.transactions)
    model = clv.fit_btyd(summary)
    short, long = model.expected_spend(summary, 30), model.expected_spend(summary, 180)
    assert (short >= 0).all() and (long >= short - 1e-9).all()
    alive = model.probability_alive(summary)
    assert alive.between(0, 1).all()
    assert model.probability_no_purchase(summary, 90).between(0, 1).all()
    assert list(short.index) == list(summary.index)
    assert "BG/NBD" in repr(model)


def test_fit_btyd_recovers_the_generated_purchase_rate_level() -> None:
    # The generator draws purchase rates from Gamma(r, alpha) per segment; BG/NBD's mean rate
    # r / alpha should be near the population's mean rate (in operational time, so loosely).
    data = clv.generate(customers=3000, seed=11, seasonality=0.0, growth=0.0)
    model = clv.fit_btyd(clv.rfm_summary(data.transactions))
    true_mean_rate = float(data.truth["purchase_rate_per_day"].mean())
    fitted_mean_rate = model.bgnbd.r / model.bgnbd.alpha
    assert fitted_mean_rate == pytest.approx(true_mean_rate, rel=0.25)


def test_fit_btyd_names_a_missing_summary_column() -> None:
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['T'\]"):
        clv.fit_btyd(pd.DataFrame({"frequency": [1], "recency": [2], "monetary_value": [3]}))
    with pytest.raises(TypeError, match="RFM summary DataFrame"):
        clv.fit_btyd(np.zeros((3, 4)))  # type: ignore[arg-type]
