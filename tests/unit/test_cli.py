"""The ``clv`` command line through Typer's test runner: exit codes, files written, messages."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

from clv.cli import app

GENERATED_FILES = [
    "customers.parquet",
    "future_transactions.parquet",
    "sustainability.parquet",
    "transactions.parquet",
    "truth.json",
    "truth.parquet",
]
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def runner() -> CliRunner:
    # Wide enough that Rich does not wrap the lines the tests look for.
    return CliRunner(env={"COLUMNS": "240", "TERMINAL_WIDTH": "240"})


def flat(text: str) -> str:
    """Output without colour codes, Rich's line wrapping or box drawing padding."""
    return " ".join(_ANSI.sub("", text).split())


def generate_into(runner: CliRunner, out: Path, *extra: str, seed: int = 3) -> Result:
    result = runner.invoke(
        app, ["generate", "--customers", "200", "--seed", str(seed), "--out", str(out), *extra]
    )
    assert result.exit_code == 0, result.output
    return result


# --------------------------------------------------------------------------------------------
# help
# --------------------------------------------------------------------------------------------


def test_bare_clv_shows_help_listing_every_subcommand(runner: CliRunner):
    result = runner.invoke(app, ["--help"])

    assert result.exit_code == 0
    for command in ("generate", "validate", "ingest", "summary"):
        assert command in result.output


@pytest.mark.parametrize(
    ("command", "options"),
    [
        (
            "generate",
            ["--out", "--customers", "--seed", "--format", "--drift-start", "--channel-mix"],
        ),
        ("validate", ["--kind", "--allow-extra-columns", "--max-errors"]),
        ("ingest", ["--kind", "--allow-extra-columns", "--warehouse"]),
        ("summary", ["Folder written by `clv generate`"]),
    ],
    ids=["generate", "validate", "ingest", "summary"],
)
def test_subcommand_help_exits_0_and_mentions_its_options_and_arguments(
    runner: CliRunner, command: str, options: list[str]
):
    result = runner.invoke(app, [command, "--help"])

    assert result.exit_code == 0, result.output
    missing = [option for option in options if option not in result.output]
    assert missing == []


# --------------------------------------------------------------------------------------------
# generate
# --------------------------------------------------------------------------------------------


def test_generate_writes_the_five_tables_and_truth_json(runner: CliRunner, tmp_path: Path):
    generate_into(runner, tmp_path / "data")

    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == GENERATED_FILES


def test_generate_twice_with_the_same_seed_gives_byte_identical_files(
    runner: CliRunner, tmp_path: Path
):
    generate_into(runner, tmp_path / "first")
    generate_into(runner, tmp_path / "second")

    for name in GENERATED_FILES:
        first = (tmp_path / "first" / name).read_bytes()
        assert first == (tmp_path / "second" / name).read_bytes(), name


def test_generate_with_another_seed_gives_other_transactions(runner: CliRunner, tmp_path: Path):
    generate_into(runner, tmp_path / "seed3", seed=3)
    generate_into(runner, tmp_path / "seed4", seed=4)

    seed3 = (tmp_path / "seed3" / "transactions.parquet").read_bytes()
    assert seed3 != (tmp_path / "seed4" / "transactions.parquet").read_bytes()


def test_generated_csvs_pass_clv_validate(runner: CliRunner, tmp_path: Path):
    out = tmp_path / "csv"
    generate_into(runner, out, "--format", "csv")

    for kind in ("transactions", "customers", "sustainability"):
        result = runner.invoke(app, ["validate", str(out / f"{kind}.csv"), "--kind", kind])
        assert result.exit_code == 0, result.output
        assert f"satisfy the {kind} contract" in flat(result.stdout)


@pytest.mark.parametrize(
    "drift_option",
    [["--price-level", "1.1"], ["--eco-shift", "0.2"], ["--channel-mix", "0.1,0.6,0.2,0.1"]],
    ids=["price-level", "eco-shift", "channel-mix"],
)
def test_drift_options_without_drift_start_exit_2_with_a_message(
    runner: CliRunner, tmp_path: Path, drift_option: list[str]
):
    result = runner.invoke(app, ["generate", "--out", str(tmp_path / "x"), *drift_option])

    assert result.exit_code == 2
    assert "drift options need --drift-start" in flat(result.stderr)
    assert not (tmp_path / "x").exists()


def test_channel_mix_with_two_shares_exits_2_naming_the_four_channels(
    runner: CliRunner, tmp_path: Path
):
    result = runner.invoke(
        app,
        [
            "generate",
            "--out",
            str(tmp_path / "x"),
            "--drift-start",
            "2025-06-01",
            "--channel-mix",
            "0.5,0.5",
        ],
    )

    assert result.exit_code == 2
    message = flat(result.stderr)
    assert "--channel-mix" in message
    assert "give 4 non-negative shares for web, app, store, marketplace that sum to 1" in message
    assert not (tmp_path / "x").exists()


def test_generate_with_drift_start_accepts_a_valid_channel_mix(runner: CliRunner, tmp_path: Path):
    generate_into(
        runner,
        tmp_path / "drift",
        "--drift-start",
        "2025-06-01",
        "--channel-mix",
        "0.1,0.6,0.2,0.1",
    )

    assert (tmp_path / "drift" / "transactions.parquet").is_file()


# --------------------------------------------------------------------------------------------
# validate
# --------------------------------------------------------------------------------------------


def test_validate_bad_csv_exits_1_and_locates_the_problem(runner: CliRunner, tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,timestamp,amount\nC1,2024-01-01,10.5\nC2,2024-01-02,abc\n")

    result = runner.invoke(app, ["validate", str(bad)])

    assert result.exit_code == 1
    message = flat(result.stderr)
    assert (
        "bad.csv line 3, column 'amount': 'abc' is not a number; write plain numbers like 12.50 "
        "(no currency symbols or thousands separators)"
    ) in message
    assert "1 of 1 file(s) break the transactions contract" in message


def test_validate_of_a_missing_file_exits_1_naming_it(runner: CliRunner, tmp_path: Path):
    result = runner.invoke(app, ["validate", str(tmp_path / "absent.csv")])

    assert result.exit_code == 1
    assert "absent.csv" in flat(result.stderr)


# --------------------------------------------------------------------------------------------
# summary and ingest
# --------------------------------------------------------------------------------------------


def test_summary_prints_the_transactions_count(runner: CliRunner, tmp_path: Path):
    out = tmp_path / "data"
    generate_into(runner, out)
    n_transactions = pq.read_metadata(out / "transactions.parquet").num_rows

    result = runner.invoke(app, ["summary", str(out)])

    assert result.exit_code == 0, result.output
    assert re.search(rf"[│|] transactions [│|] {n_transactions:,} [│|]", flat(result.stdout))


def test_summary_of_a_csv_folder_prints_the_transactions_count(runner: CliRunner, tmp_path: Path):
    out = tmp_path / "csv"
    generate_into(runner, out, "--format", "csv")

    result = runner.invoke(app, ["summary", str(out)])

    assert result.exit_code == 0, result.output
    assert "transactions" in result.stdout


def test_summary_of_a_folder_without_transactions_exits_1(runner: CliRunner, tmp_path: Path):
    result = runner.invoke(app, ["summary", str(tmp_path)])

    assert result.exit_code == 1
    assert "no transactions.parquet or transactions.csv here" in flat(result.stderr)


def test_ingest_twice_prints_already_ingested(runner: CliRunner, tmp_path: Path):
    out = tmp_path / "data"
    generate_into(runner, out)
    source = str(out / "transactions.parquet")
    warehouse = tmp_path / "warehouse"

    first = runner.invoke(app, ["ingest", source, "--warehouse", str(warehouse)])
    second = runner.invoke(app, ["ingest", source, "--warehouse", str(warehouse)])

    assert (first.exit_code, second.exit_code) == (0, 0), first.output + second.output
    assert "already ingested" not in flat(first.stdout)
    assert f"{source}: ingested:" in flat(first.stdout)
    assert "already ingested (same content), nothing to do" in flat(second.stdout)
    assert len(list(warehouse.rglob("*.parquet"))) == 1


def test_ingest_uses_the_warehouse_under_clv_home_by_default(
    runner: CliRunner, tmp_path: Path, isolated_settings: Path
):
    out = tmp_path / "data"
    generate_into(runner, out)

    result = runner.invoke(app, ["ingest", str(out / "customers.parquet"), "--kind", "customers"])

    assert result.exit_code == 0, result.output
    assert (isolated_settings / "warehouse" / "manifest.json").is_file()
    assert len(list((isolated_settings / "warehouse" / "customers").iterdir())) == 1


def test_ingest_of_a_bad_file_exits_1_and_writes_nothing(runner: CliRunner, tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,timestamp,amount\nC1,2024-01-01,10.5\nC2,2024-01-02,abc\n")
    warehouse = tmp_path / "warehouse"

    result = runner.invoke(app, ["ingest", str(bad), "--warehouse", str(warehouse)])

    assert result.exit_code == 1
    assert "bad.csv line 3, column 'amount': 'abc' is not a number" in flat(result.stderr)
    assert "1 of 1 file(s) were not ingested" in flat(result.stderr)
    assert not warehouse.exists() or list(warehouse.rglob("*")) == []


def test_the_extrapolated_share_option_documents_its_default_and_how_to_keep_everything(
    runner: CliRunner,
) -> None:
    from clv.features.support import MAX_EXTRAPOLATED_SHARE

    for command in ("train", "backtest"):
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "240"})
        text = " ".join(result.output.replace("│", " ").split())  # Rich's box, wrapped
        assert f"Default {MAX_EXTRAPOLATED_SHARE}" in text
        assert "1 keeps every feature" in text


def test_the_ziln_members_option_defaults_to_the_models_deep_ensemble(runner: CliRunner) -> None:
    from clv.models.keras_ziln import DEFAULT_PARAMS

    for command in ("train", "backtest"):
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "240"})
        text = " ".join(result.output.replace("│", " ").split())
        assert "--ziln-members" in text
        assert f"[default: {DEFAULT_PARAMS['n_members']}]" in text.split("--ziln-members")[1]


def test_the_ziln_sigma_cap_option_defaults_to_the_models(runner: CliRunner) -> None:
    from clv.models.keras_ziln import DEFAULT_PARAMS

    for command in ("train", "backtest"):
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "240"})
        text = " ".join(result.output.replace("│", " ").split())
        assert f"[default: {DEFAULT_PARAMS['sigma_cap']}]" in text.split("--ziln-sigma-cap")[1]


@pytest.mark.parametrize("command", ["train", "backtest"])
def test_without_ziln_options_the_models_default_deep_ensemble_is_trained(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    import clv.evaluation.backtest
    from clv.models.keras_ziln import DEFAULT_PARAMS

    seen: dict[str, Any] = {}

    def record(*args: Any, **kwargs: Any) -> None:
        seen.update(kwargs)
        raise ValueError("recorded")

    # What the commands hand the training flow and the backtest (both tested on their own).
    monkeypatch.setitem(sys.modules, "flows.training", SimpleNamespace(training_flow=record))
    monkeypatch.setattr(clv.evaluation.backtest, "backtest", record)
    orders = tmp_path / "orders.csv"
    orders.write_text("customer_id,timestamp,amount\nc1,2025-01-01,10.0\n")

    result = runner.invoke(app, [command, "--transactions", str(orders), "--horizon-days", "30"])

    assert result.exit_code == 1 and "recorded" in result.output
    assert seen["ziln_members"] == DEFAULT_PARAMS["n_members"]
    assert seen["ziln_sigma_cap"] == DEFAULT_PARAMS["sigma_cap"]


@pytest.mark.parametrize("command", ["train", "backtest"])
def test_a_negative_ziln_sigma_cap_exits_2(runner: CliRunner, tmp_path: Path, command: str) -> None:
    orders = tmp_path / "orders.csv"
    orders.write_text("customer_id,timestamp,amount\nc1,2025-01-01,10.0\n")
    args = [command, "--transactions", str(orders), "--horizon-days", "30"]

    result = runner.invoke(app, [*args, "--ziln-sigma-cap", "-1"])

    assert result.exit_code == 2, result.output
    assert "--ziln-sigma-cap" in result.output


@pytest.mark.parametrize("command", ["train", "backtest"])
def test_a_deep_ensemble_of_no_network_exits_2(
    runner: CliRunner, tmp_path: Path, command: str
) -> None:
    orders = tmp_path / "orders.csv"
    orders.write_text("customer_id,timestamp,amount\nc1,2025-01-01,10.0\n")
    args = [command, "--transactions", str(orders), "--horizon-days", "30", "--ziln-members", "0"]

    result = runner.invoke(app, args)

    assert result.exit_code == 2, result.output
    assert "--ziln-members" in result.output


@pytest.mark.parametrize("command", ["train", "backtest"])
@pytest.mark.parametrize("share", ["0", "1.5"])
def test_an_extrapolated_share_outside_zero_to_one_exits_2_with_a_message(
    runner: CliRunner, tmp_path: Path, command: str, share: str
) -> None:
    orders = tmp_path / "orders.csv"
    orders.write_text("customer_id,timestamp,amount\nc1,2025-01-01,10.0\n")

    result = runner.invoke(
        app,
        [
            command,
            "--transactions",
            str(orders),
            "--horizon-days",
            "30",
            "--max-extrapolated-share",
            share,
        ],
    )

    assert result.exit_code == 2, result.output
    assert "--max-extrapolated-share" in result.output
    assert "must be in (0, 1]" in result.output
