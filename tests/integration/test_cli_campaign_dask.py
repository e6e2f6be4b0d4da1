"""``clv campaign plan --dask-address``: a folder of transactions planned on a real cluster."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clv.cli import app
from clv.settings import get_settings
from tests.integration.test_cli_campaign import inputs  # noqa: F401 (the shared fixture)


def _plan(args: list[str], home: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, pd.DataFrame]:
    """Plan in a data home of its own (each plan is a first campaign); its id and plan rows."""
    monkeypatch.setenv("CLV_HOME", str(home))
    get_settings.cache_clear()
    out = home / "plan"
    done = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert done.exit_code == 0, done.output
    campaign_id = json.loads((out / "summary.json").read_text())["campaign_id"]
    return campaign_id, pd.read_parquet(out / "plan.parquet")


def test_a_plan_on_the_cluster_from_a_folder_is_the_one_machine_plan(
    inputs: dict[str, Path],  # noqa: F811
    dask_cluster: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "transactions"
    folder.mkdir()
    tx = pd.read_parquet(inputs["transactions"]).sort_values("timestamp", kind="stable")
    for i, part in enumerate(np.array_split(np.arange(len(tx)), 4)):
        tx.iloc[part].to_parquet(folder / f"part-{i}.parquet", index=False)
    common = [
        "campaign", "plan", str(inputs["campaign"]),
        "--customers", str(inputs["customers"]),
        "--scores", str(inputs["scores"]),
        "--contacts", str(inputs["contacts"]),
    ]  # fmt: skip

    _, one_machine = _plan(
        [*common, "--transactions", str(inputs["transactions"])], tmp_path / "a", monkeypatch
    )
    on_cluster_args = [*common, "--transactions", str(folder), "--dask-address", dask_cluster]
    campaign_id, on_cluster = _plan(on_cluster_args, tmp_path / "b", monkeypatch)
    again = CliRunner().invoke(app, [*on_cluster_args, "--out", str(tmp_path / "b" / "again")])

    pd.testing.assert_frame_equal(on_cluster, one_machine)
    assert again.exit_code == 0 and campaign_id in again.output  # the same inputs: one campaign


def test_a_scheduler_that_does_not_answer_is_one_line(
    inputs: dict[str, Path],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import clv.distributed.cluster

    monkeypatch.setattr(clv.distributed.cluster, "CONNECT_TIMEOUT_S", 1.0)
    done = CliRunner().invoke(
        app,
        [
            "campaign", "plan", str(inputs["campaign"]),
            "--transactions", str(inputs["transactions"]),
            "--customers", str(inputs["customers"]),
            "--scores", str(inputs["scores"]),
            "--out", str(tmp_path / "plan"),
            "--dask-address", "tcp://127.0.0.1:1",
        ],
    )  # fmt: skip

    assert done.exit_code == 1
    assert "tcp://127.0.0.1:1" in done.output
    assert "Traceback" not in done.output
    assert not (tmp_path / "plan").exists()
