"""``clv train --dask-address`` / ``clv backtest --dask-address`` against a real LocalCluster."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from clv.cli import app
from clv.data.generator import SyntheticData
from clv.distributed.cluster import connect

runner = CliRunner(env={"COLUMNS": "240", "TERMINAL_WIDTH": "240"})  # no wrapped table


@pytest.fixture
def transactions(small_data: SyntheticData, tmp_path: Path) -> Path:
    path = tmp_path / "transactions.parquet"
    small_data.frame("transactions").to_parquet(path, index=False)
    return path


def _tasks_of(dask_cluster: str, args: list[str]) -> tuple[int, str, list[str]]:
    """Exit code, output and the keys of the tasks the cluster ran for ``clv ARGS``."""
    from distributed import get_task_stream

    with connect(dask_cluster) as client, get_task_stream(client=client) as stream:
        result = runner.invoke(app, [*args, "--dask-address", dask_cluster])
    return result.exit_code, result.output, [str(t["key"]) for t in stream.data]


@pytest.mark.slow
def test_backtest_on_the_cluster_tunes_and_refits_the_trees_on_its_workers(
    dask_cluster: str, transactions: Path, tmp_path: Path
) -> None:
    code, output, keys = _tasks_of(
        dask_cluster,
        [
            "backtest",
            "--transactions",
            str(transactions),
            "--horizon-days",
            "60",
            "--windows",
            "3",
            "--step-days",
            "45",
            "--families",
            "xgboost",
            "--out",
            str(tmp_path / "report"),
        ],
    )
    assert code == 0, output
    assert (tmp_path / "report" / "backtest.md").is_file()
    assert any(k.startswith("clv-optuna-") for k in keys), "the trial ran on a worker"
    # xgboost.dask's training tasks: the final refit after the holdout ran on the cluster.
    # xgboost.dask's per-worker training gathers through "first_valid" tasks.
    assert any("first_valid" in k for k in keys), sorted({k.split("-")[0] for k in keys})


@pytest.mark.slow
def test_train_on_the_cluster_tunes_on_its_workers_and_registers_as_usual(
    mlflow_tracking: str, dask_cluster: str, transactions: Path
) -> None:
    from distributed import get_task_stream

    with connect(dask_cluster) as client, get_task_stream(client=client) as stream:
        result = runner.invoke(
            app,
            [
                "train",
                "--transactions",
                str(transactions),
                "--horizon-days",
                "60",
                "--windows",
                "3",
                "--step-days",
                "45",
                "--families",
                "xgboost",
                "--trials",
                "1",
                "--dask-address",
                dask_cluster,
            ],
        )
    assert result.exit_code == 0, result.output
    assert "registered as challenger" in result.output
    keys = [str(t["key"]) for t in stream.data]
    assert any(k.startswith("clv-optuna-") for k in keys), "the trial ran on a worker"
    # xgboost.dask's per-worker training gathers through "first_valid" tasks.
    assert any("first_valid" in k for k in keys), sorted({k.split("-")[0] for k in keys})


@pytest.mark.parametrize("command", ["train", "backtest"], ids=["train", "backtest"])
def test_a_wrong_dask_address_is_one_line_without_a_traceback(
    command: str, transactions: Path
) -> None:
    result = runner.invoke(
        app,
        [
            command,
            "--transactions",
            str(transactions),
            "--horizon-days",
            "60",
            "--families",
            "xgboost",
            "--dask-address",
            "127.0.0.1:8786",
        ],
    )
    assert result.exit_code == 1, result.output
    assert "'127.0.0.1:8786' is not a Dask scheduler address: use tcp://HOST:PORT" in result.output
    assert "Traceback" not in result.output
