"""Smoke test of ``benchmarks/campaign_targeting.py`` on a tiny population (no timing asserted).

What the benchmark measures is in docs/benchmarks.md; here only its plumbing: one row per
strategy and seed, and the baselines spend exactly what our targeting spent on treated customers.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "campaign_targeting.py"


@pytest.fixture(scope="module")
def benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("campaign_targeting", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results(benchmark: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    # 1,500 customers, oracle scores (no model fit): a few seconds.
    return benchmark.run_benchmark(
        1_500,
        1,
        budget=5.0,
        scores_from="truth",
        work_dir=tmp_path_factory.mktemp("targeting"),
    )


def test_one_row_per_strategy_and_seed(benchmark: ModuleType, results: tuple) -> None:
    rows, segments, seconds = results
    assert list(rows.columns) == list(benchmark.RESULT_COLUMNS)
    assert list(rows["strategy"]) == list(benchmark.STRATEGIES)
    assert set(rows["seed"]) == {0}
    assert (rows["true_incremental_revenue"] >= 0).all()
    assert {"segment", "true_uplift", "measured", "shrunk", "ours", "highest_clv"} <= set(
        segments.columns
    )
    assert set(seconds) == {"generate", "scores", "exploration", "targeting"}
    table = benchmark.summary_table(rows)
    assert list(table["strategy"]) == list(benchmark.STRATEGIES)
    assert table.shape == (len(benchmark.STRATEGIES), 10)
    highest = table.set_index("strategy").loc["highest CLV first"]
    assert highest["ratio_mean"] == pytest.approx(1.0)


def test_baselines_spend_what_ours_spent(results: tuple) -> None:
    rows, _, _ = results
    spend = rows.set_index("strategy")
    ours = spend.loc["ours", "cost"]
    assert 0 < ours <= 5.0 + 1e-9
    assert spend.loc["highest CLV first", "cost"] == pytest.approx(ours, abs=1e-9)
    assert spend.loc["random", "cost"] == pytest.approx(ours, abs=1e-9)
    assert spend.loc["highest CLV first", "messages"] == spend.loc["ours", "messages"]
    assert spend.loc["random", "messages"] == spend.loc["ours", "messages"]
