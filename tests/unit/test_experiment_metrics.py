"""Per-unit experiment metrics from transactions: windows, zeros, returns and CUPED's covariate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clv.experiments import ExperimentInputError, analyze, assign
from clv.experiments.metrics import METRIC_COLUMNS, unit_metrics


def _transactions(rows: list[tuple[str, str, float, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount", "order_id"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], format="ISO8601")
    return frame


ASSIGNED = pd.Series({"a": "control", "b": "treatment", "c": "treatment"}, name="variant")
START, END = "2026-03-01", "2026-03-31"


def test_spend_is_split_into_the_window_and_the_pre_period() -> None:
    transactions = _transactions(
        [
            ("a", "2026-01-15", 99.0, "o0"),  # before the 29-day pre-period: ignored
            ("a", "2026-02-10", 20.0, "o1"),  # pre-period
            ("a", "2026-03-01 00:00", 30.0, "o2"),  # window starts inclusive
            ("a", "2026-03-31 00:00", 50.0, "o3"),  # window ends exclusive
            ("b", "2026-03-15", 10.0, "o4"),
            ("z", "2026-03-15", 500.0, "o5"),  # not assigned: ignored
        ]
    )

    metrics = unit_metrics(ASSIGNED, transactions, start=START, end=END).set_index("customer_id")

    assert list(metrics.reset_index().columns) == list(METRIC_COLUMNS)
    assert metrics.loc["a", "revenue"] == 30.0 and metrics.loc["a", "pre_spend"] == 20.0
    assert metrics.loc["b", "revenue"] == 10.0 and metrics.loc["b", "converted"] == 1
    assert "z" not in metrics.index


def test_customers_without_purchases_count_as_zeros() -> None:
    transactions = _transactions([("a", "2026-03-05", 12.0, "o1")])

    metrics = unit_metrics(ASSIGNED, transactions, start=START, end=END).set_index("customer_id")

    assert metrics.loc["c"].tolist()[1:] == [0.0, 0, 0, 0.0, 0]
    assert len(metrics) == 3


def test_a_fully_returned_order_is_net_zero_and_not_an_order() -> None:
    transactions = _transactions(
        [
            ("b", "2026-03-05", 40.0, "o1"),
            ("b", "2026-03-09", -40.0, "o1"),
            ("b", "2026-03-10", 15.0, "o2"),
        ]
    )

    row = (
        unit_metrics(ASSIGNED, transactions, start=START, end=END).set_index("customer_id").loc["b"]
    )

    assert row["revenue"] == 15.0
    assert row["orders"] == 1


def test_the_pre_period_length_can_be_set() -> None:
    transactions = _transactions([("a", "2025-12-15", 7.0, "o1"), ("a", "2026-02-20", 3.0, "o2")])

    short = unit_metrics(ASSIGNED, transactions, start=START, end=END)
    long = unit_metrics(ASSIGNED, transactions, start=START, end=END, pre_period_days=90)

    assert short.set_index("customer_id").loc["a", "pre_spend"] == 3.0
    assert long.set_index("customer_id").loc["a", "pre_spend"] == 10.0


def test_metrics_from_assigned_customers_feed_a_cuped_analysis() -> None:
    rng = np.random.default_rng(0)
    customers = [f"c{i:05d}" for i in range(6000)]
    variants = assign(customers, "spring-email")
    rows = []
    for customer, variant in variants.items():
        habit = rng.gamma(0.7, 30)
        for _ in range(rng.poisson(2)):
            rows.append((customer, f"2026-02-{rng.integers(1, 28):02d}", habit, f"p{len(rows)}"))
        lift = 1.2 if variant == "treatment" else 1.0
        for _ in range(rng.poisson(2)):
            rows.append(
                (customer, f"2026-03-{rng.integers(1, 28):02d}", habit * lift, f"w{len(rows)}")
            )
    metrics = unit_metrics(variants, _transactions(rows), start=START, end=END)

    result = analyze(metrics, covariate="pre_spend")

    assert result.cuped is not None and result.cuped["variance_reduction"] > 0.1
    assert result.winner == "treatment"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": "2026-03-31", "end": "2026-03-01"}, "the window is empty"),
        ({"start": "yesterday-ish", "end": END}, "is not a date"),
        ({"start": START, "end": END, "pre_period_days": 0}, "must be positive"),
    ],
    ids=["reversed-window", "unparseable-date", "empty-pre-period"],
)
def test_bad_windows_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ExperimentInputError, match=message):
        unit_metrics(ASSIGNED, _transactions([]), **kwargs)  # type: ignore[arg-type]


def test_a_customer_assigned_twice_is_refused() -> None:
    twice = pd.DataFrame({"customer_id": ["a", "a"], "variant": ["control", "treatment"]})

    with pytest.raises(ExperimentInputError, match="'a' is assigned more than once"):
        unit_metrics(twice, _transactions([]), start=START, end=END)


def test_the_readme_experiment_example_runs() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("from clv.experiments import analyze, assign", 1)[1].split("```", 1)[0]
    code = "from clv.experiments import analyze, assign" + block
    rng = np.random.default_rng(3)
    customer_ids = [f"c{i}" for i in range(2000)]
    transactions = _transactions(
        [
            (c, f"2026-{month:02d}-{rng.integers(1, 28):02d}", float(rng.gamma(1, 30)), f"o{i}")
            for i, c in enumerate(rng.choice(customer_ids, 6000))
            for month in [int(rng.integers(1, 4))]
        ]
    )
    namespace = {"customer_ids": customer_ids, "transactions": transactions}

    exec(compile(code.replace("print(", "(lambda *a: None)("), "README.md", "exec"), namespace)

    assert namespace["result"].winner is None  # nothing differs between the arms
