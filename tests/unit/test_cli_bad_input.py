"""Bad input at the command line: a message naming the input and what to do, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from clv.cli import MAX_HORIZON_DAYS, app

HEADER = "customer_id,timestamp,amount\n"
REPEATS = HEADER + "001,2024-01-05,12.50\n002,2024-01-06,3\n001,2024-01-05,12.50\n"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CLV_HOME", str(tmp_path / "home"))
    from clv.settings import get_settings

    get_settings.cache_clear()
    yield CliRunner(env={"COLUMNS": "240", "TERMINAL_WIDTH": "240"})  # type: ignore[misc]
    get_settings.cache_clear()


def _file(tmp_path: Path, text: str, name: str = "t.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _no_traceback(output: str) -> None:
    assert "Traceback" not in output
    assert 'File "' not in output


def test_duplicates_are_a_warning_by_default(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", _file(tmp_path, REPEATS)])
    assert result.exit_code == 0, result.output
    assert "1 row(s) exactly repeat an earlier row and have no order_id: line 4 (= line 2)" in (
        result.output
    )
    assert "OK" in result.output


def test_on_duplicate_error_refuses_the_file(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", _file(tmp_path, REPEATS), "--on-duplicate", "error"])
    assert result.exit_code == 1
    assert "t.csv line 4: duplicates line 2 exactly" in result.output


def test_ingest_with_on_duplicate_drop_stores_the_first_of_each(
    runner: CliRunner, tmp_path: Path
) -> None:
    warehouse = tmp_path / "wh"
    result = runner.invoke(
        app,
        [
            "ingest",
            _file(tmp_path, REPEATS),
            "--on-duplicate",
            "drop",
            "--warehouse",
            str(warehouse),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "dropped (--on-duplicate drop)" in result.output
    assert "2 rows" in result.output
    (stored,) = (warehouse / "transactions").glob("*.parquet")
    assert len(pd.read_parquet(stored)) == 2


def test_dates_in_2099_are_refused(runner: CliRunner, tmp_path: Path) -> None:
    path = _file(tmp_path, HEADER + "001,2024-01-05,1\n002,2099-03-01,1\n")
    result = runner.invoke(app, ["validate", path])
    assert result.exit_code == 1
    assert "t.csv line 3, column 'timestamp': '2099-03-01' is in the future" in result.output
    relaxed = runner.invoke(app, ["validate", path, "--future-tolerance-days", "40000"])
    assert relaxed.exit_code == 0, relaxed.output


def test_the_files_column_names_are_mapped(runner: CliRunner, tmp_path: Path) -> None:
    path = _file(tmp_path, "CustomerID,InvoiceDate,Sales\n001,2024-01-05,1\n")
    options = ["--customer-id-col", "CustomerID", "--timestamp-col", "InvoiceDate"]
    result = runner.invoke(app, ["validate", path, *options, "--amount-col", "Sales"])
    assert result.exit_code == 0, result.output
    wrong = runner.invoke(app, ["validate", path, *options, "--amount-col", "Total"])
    assert wrong.exit_code == 1
    assert "column 'Total': is not in the file" in wrong.output
    assert "the file's columns are: 'CustomerID', 'InvoiceDate', 'Sales'" in wrong.output


def test_column_options_apply_to_transactions_only(runner: CliRunner, tmp_path: Path) -> None:
    path = _file(tmp_path, "customer_id,signup_date\n1,2024-01-01\n")
    result = runner.invoke(app, ["validate", path, "--kind", "customers", "--amount-col", "x"])
    assert result.exit_code == 2
    assert "apply to transactions" in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["ingest", "{folder}"], "is a folder, not a file"),
        (["ingest", "{missing}"], "no such file"),
        (["validate", "{empty}"], "the file is empty (0 bytes)"),
        (["validate", "{wrong}"], "required column 'amount' is missing"),
    ],
    ids=["folder", "missing-file", "empty-file", "wrong-columns"],
)
def test_unreadable_inputs_are_named(
    runner: CliRunner, tmp_path: Path, args: list[str], expected: str
) -> None:
    (tmp_path / "folder").mkdir()
    names = {
        "folder": str(tmp_path / "folder"),
        "missing": str(tmp_path / "nope.csv"),
        "empty": _file(tmp_path, "", "empty.csv"),
        "wrong": _file(tmp_path, "customer_id,timestamp,total\n1,2024-01-01,3\n", "wrong.csv"),
    }
    result = runner.invoke(app, [a.format(**names) for a in args])
    assert result.exit_code == 1
    assert expected in result.output
    _no_traceback(result.output)


def test_s3_without_credentials_says_what_to_set(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("CLV_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    result = runner.invoke(app, ["ingest", "s3://bucket/tx.csv"])
    assert result.exit_code == 1
    assert "s3://bucket/tx.csv: no S3 credentials found; set AWS_ACCESS_KEY_ID" in result.output
    _no_traceback(result.output)


def test_an_unreachable_s3_endpoint_is_named(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("CLV_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    result = runner.invoke(app, ["validate", "s3://bucket/tx.csv"])
    assert result.exit_code == 1
    assert "cannot reach the S3 endpoint" in result.output
    assert "CLV_S3_ENDPOINT_URL" in result.output


def test_a_huge_horizon_is_refused_with_the_largest_usable(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = _file(tmp_path, HEADER + "001,2024-01-05,1\n")
    result = runner.invoke(
        app, ["score", "--transactions", path, "--horizon-days", "100000", "--out", "s.csv"]
    )
    assert result.exit_code == 2
    assert f"less than or equal to {MAX_HORIZON_DAYS}" in result.output


def test_as_of_not_a_date_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    path = _file(tmp_path, HEADER + "001,2024-01-05,1\n")
    result = runner.invoke(
        app,
        ["score", "--transactions", path, "--horizon-days", "9", "--out", "s.csv", "--as-of", "x"],
    )
    assert result.exit_code == 2
    assert "'x' is not a date like 2025-06-30" in result.output


def test_a_tampered_model_file_is_a_message_and_debug_shows_the_traceback(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from clv.models.base import IntegrityError

    def tampered(*args: object, **kwargs: object) -> None:
        raise IntegrityError("spend/model.ubj: sha256 differs from the one recorded")

    monkeypatch.setattr("clv.data.ingest.ingest", tampered)
    path = _file(tmp_path, HEADER + "001,2024-01-05,1\n")
    result = runner.invoke(app, ["ingest", path])
    assert result.exit_code == 1
    assert "spend/model.ubj: sha256 differs" in result.output
    assert "register the model again" in result.output
    _no_traceback(result.output)
    debug = runner.invoke(app, ["--debug", "ingest", path])
    assert isinstance(debug.exception, IntegrityError)


def test_an_unexpected_error_asks_for_debug_which_then_shows_the_error(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("clv.data.ingest.ingest", broken)
    path = _file(tmp_path, HEADER + "1,2024-01-05,1\n")
    result = runner.invoke(app, ["ingest", path])
    assert result.exit_code == 1
    assert "unexpected error (RuntimeError: boom); run again with --debug" in result.output
    _no_traceback(result.output)
    # The option the message names is one the help lists, and it lets the error through.
    assert "--debug" in runner.invoke(app, ["--help"]).output
    debug = runner.invoke(app, ["--debug", "ingest", path])
    assert isinstance(debug.exception, RuntimeError) and str(debug.exception) == "boom"
