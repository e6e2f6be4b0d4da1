"""Configuration files: every setting of a command, flags override them, bad files name the line."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from clv.cli import app
from clv.config import (
    ConfigError,
    MonitoringFileConfig,
    TrainingFileConfig,
    load_monitoring_config,
    load_training_config,
)
from clv.training.pipeline import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
INPUT_KEYS = {
    "transactions",
    "customers",
    "sustainability",
    "as_of",
    "on_duplicate",
    "future_tolerance_days",
    "columns",
}


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CLV_HOME", str(tmp_path / "home"))
    return CliRunner(env={"COLUMNS": "240", "TERMINAL_WIDTH": "240"})


@pytest.fixture
def flow_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record what the CLI hands the training and monitoring flows (the flows are tested apart)."""
    import flows.drift_monitoring
    import flows.training

    calls: list[dict[str, Any]] = []

    def refuse(**kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs)
        raise ValueError("recorded")

    monkeypatch.setattr(flows.training, "training_flow", refuse)
    monkeypatch.setattr(flows.drift_monitoring, "monitoring_flow", refuse)
    return calls


def _write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_training_file_sets_every_train_config_field_to_its_default() -> None:
    raw = yaml.safe_load((ROOT / "config" / "training.yaml").read_text())
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"as_of"}
    assert fields <= set(raw), f"config/training.yaml lacks {sorted(fields - set(raw))}"
    assert set(raw) <= fields | INPUT_KEYS
    defaults = TrainConfig(horizon_days=int(raw["horizon_days"])).to_dict()
    for name in fields - {"horizon_days"}:
        value = tuple(raw[name]) if name == "families" else raw[name]
        expected = tuple(defaults[name]) if name == "families" else defaults[name]
        assert value == expected, f"config/training.yaml says {name}: {value}, default {expected}"


def test_the_shipped_monitoring_file_matches_the_command_defaults() -> None:
    config = load_monitoring_config(ROOT / "config" / "monitoring.yaml")
    assert config == MonitoringFileConfig()


def test_the_shipped_segmentation_file_lists_every_setting_at_its_default() -> None:
    from clv.config import SegmentationConfig, load_segmentation_config

    config = load_segmentation_config(ROOT / "config" / "segmentation.yaml")
    assert config == SegmentationConfig()
    assert config.model_fields_set == set(SegmentationConfig.model_fields)


def test_a_segmentation_file_with_k_max_below_k_min_is_refused_with_the_line(
    tmp_path: Path,
) -> None:
    from clv.config import ConfigError, load_segmentation_config

    path = tmp_path / "segmentation.yaml"
    path.write_text("method: both\nk_min: 6\nk_max: 4\nmethod_x: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_segmentation_config(path)
    message = str(caught.value)
    assert "line 3, k_max: must be at least k_min (6), got 4" in message
    assert "line 4: unknown setting 'method_x'" in message


def test_every_problem_in_a_file_is_reported_with_its_line(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = _write(
        tmp_path,
        "horizon_days: 90\n"
        "n_trials: 0\n"
        "seeds: 3\n"
        "families: [xgboost, catboost]\n"
        "on_duplicate: maybe\n"
        "columns:\n"
        "  amont: Sales\n"
        'refit_final: "yes"\n'
        "step_days: 30\n"
        "step_days: 7\n",
    )
    result = runner.invoke(app, ["train", "--config", str(path), "--transactions", "x.csv"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines == [
        f"{path}, line 2, n_trials: must be at least 1 (got 0)",
        f"{path}, line 3: unknown setting 'seeds' (did you mean 'seed'?)",
        f"{path}, line 4, families: unknown families ['catboost']; choose from xgboost, "
        "lightgbm, keras_ziln",
        f"{path}, line 5, on_duplicate: must be one of 'warn', 'error' or 'drop' (got 'maybe')",
        f"{path}, line 7: unknown setting 'columns.amont' (did you mean 'amount'?)",
        f"{path}, line 8, refit_final: must be true or false (got 'yes')",
        f"{path}, line 10: 'step_days' is set twice",
    ]


def test_a_file_that_is_not_yaml_mappings_is_refused_with_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"c\.yaml, line 2: not valid YAML"):
        load_training_config(_write(tmp_path, "seed: [1,\n"))
    with pytest.raises(ConfigError, match="expected 'setting: value' lines"):
        load_training_config(_write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(FileNotFoundError, match="no such configuration file"):
        load_training_config(tmp_path / "missing.yaml")


def test_a_whole_number_setting_refuses_a_fraction_and_a_boolean(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="n_windows: must be a whole number"):
        load_training_config(_write(tmp_path, "n_windows: 2.5\n"))
    with pytest.raises(ConfigError, match="seed: must be a whole number"):
        load_training_config(_write(tmp_path, "seed: true\n"))


def test_the_file_supplies_what_no_flag_gives_and_flags_override_it(
    runner: CliRunner, tmp_path: Path, flow_calls: list[dict[str, Any]]
) -> None:
    path = _write(
        tmp_path,
        "transactions: from-file.csv\n"
        "horizon_days: 30\n"
        "as_of: 1997-12-31\n"
        "n_trials: 4\n"
        "families: [lightgbm]\n"
        "seed: 9\n"
        "coverage: 0.9\n"
        "max_fit_rows: null\n"
        "refit_final: false\n"
        "max_extrapolated_share: null\n"
        "ziln_sigma_cap: null\n"
        "columns:\n"
        "  customer_id: CustomerID\n"
        "  amount: Sales\n",
    )
    result = runner.invoke(
        app,
        ["train", "--config", str(path), "--trials", "2", "--amount-col", "Revenue"],
    )
    assert result.exit_code == 1 and "recorded" in result.output
    (call,) = flow_calls
    assert call["transactions"] == "from-file.csv"
    assert call["horizon_days"] == 30
    assert pd.Timestamp(call["as_of"]) == pd.Timestamp("1997-12-31 23:59:59.999999")
    assert call["trials"] == 2  # the flag, not the file's 4
    assert call["families"] == ["lightgbm"]
    assert call["seed"] == 9
    assert call["n_windows"] == 12  # neither file nor flag: the default
    assert call["coverage"] == 0.9
    assert call["max_fit_rows"] is None
    assert call["refit_final"] is False
    assert call["max_extrapolated_share"] == 1.0  # null: keep every feature
    assert call["ziln_sigma_cap"] is None
    assert call["columns"] == {"customer_id": "CustomerID", "amount": "Revenue"}


def test_a_flag_equal_to_its_default_still_overrides_the_file(
    runner: CliRunner, tmp_path: Path, flow_calls: list[dict[str, Any]]
) -> None:
    path = _write(tmp_path, "transactions: t.csv\nhorizon_days: 30\nn_windows: 6\n")
    runner.invoke(app, ["train", "--config", str(path), "--windows", "12"])
    assert flow_calls[0]["n_windows"] == 12


def test_without_a_file_transactions_and_horizon_are_required(runner: CliRunner) -> None:
    result = runner.invoke(app, ["train", "--transactions", "t.csv"])
    assert result.exit_code == 2
    assert "--horizon-days" in result.output and "--config" in result.output


def test_the_monitoring_file_sets_the_threshold_unless_the_flag_does(
    runner: CliRunner, tmp_path: Path, flow_calls: list[dict[str, Any]]
) -> None:
    path = _write(tmp_path, "transactions: now.parquet\nthreshold: 0.5\non_duplicate: drop\n")
    runner.invoke(app, ["monitor", "--config", str(path)])
    runner.invoke(app, ["monitor", "--config", str(path), "--threshold", "0.2"])
    assert [c["threshold"] for c in flow_calls] == [0.5, 0.2]
    assert flow_calls[0]["transactions"] == "now.parquet"
    assert flow_calls[0]["on_duplicate"] == "drop"


def test_every_training_setting_is_a_train_config_field_or_an_input() -> None:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(TrainingFileConfig.model_fields) == fields | INPUT_KEYS
