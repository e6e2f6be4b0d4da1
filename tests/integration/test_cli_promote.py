"""``clv promote`` as a reviewer uses it, against a real MLflow server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clv import tracking
from clv.cli import app
from tests.integration.test_tracking import _bundle, _register, _unique

runner = CliRunner(env={"COLUMNS": "240", "TERMINAL_WIDTH": "240"})  # no wrapped table
GINI = "metric.holdout_normalized_gini"
REFS = {
    "reference_metric.bgnbd_gamma_gamma.holdout_normalized_gini": "0.5",
    "reference_metric.run_rate.holdout_normalized_gini": "0.4",
}


@pytest.fixture
def run(mlflow_tracking: str) -> Iterator[tracking.RunHandle]:
    with tracking.training_run("clv-cli-tests", "train", tags={}) as handle:
        yield handle


def _promote(*args: str, answer: str = "") -> tuple[int, str]:
    result = runner.invoke(app, ["promote", *args], input=answer)
    return result.exit_code, result.output


def _champion(name: str) -> int | None:
    info = tracking.get_version(name, alias=tracking.CHAMPION)
    return None if info is None else info.version


def test_promote_asks_first_and_does_nothing_when_the_reviewer_says_no(
    run: tracking.RunHandle, tmp_path: Path
) -> None:
    name = _unique(tracking.SPEND_MODEL)
    _register(run, name, _bundle(tmp_path / "a"), tags={**REFS, GINI: "0.7"})
    code, output = _promote("--model", name, "--latest", answer="n\n")
    assert code == 1 and "not promoted" in output
    assert _champion(name) is None
    code, output = _promote("--model", name, "--latest", answer="y\n")
    assert code == 0 and "is now the champion" in output
    assert _champion(name) == 1


def test_a_worse_challenger_is_refused_unless_forced_and_the_reviewer_is_recorded(
    run: tracking.RunHandle, tmp_path: Path
) -> None:
    name = _unique(tracking.SPEND_MODEL)
    _register(run, name, _bundle(tmp_path / "a", "one"), tags={**REFS, GINI: "0.8"})
    assert _promote("--model", name, "--version", "1", "--yes")[0] == 0
    same_holdout = {"champion_metric.holdout_normalized_gini": "0.8", "champion_version": "1"}
    _register(run, name, _bundle(tmp_path / "b", "two"), tags={**REFS, GINI: "0.7", **same_holdout})

    code, output = _promote("--model", name, "--version", "2", "--yes")
    assert code == 1 and "--force" in output and "worse by 0.1000" in output
    assert "champion v1" in output and "BG/NBD + Gamma-Gamma" in output and "run rate" in output
    assert "0.8000" in output and "0.7000" in output and "0.5000" in output  # the table
    assert _champion(name) == 1

    code, output = _promote(
        "--model", name, "--version", "2", "--yes", "--force",
        "--reviewer", "ada", "--reason", "rollback drill",
    )  # fmt: skip
    assert code == 0, output
    promoted = tracking.get_version(name, version=2)
    assert promoted is not None and tracking.CHAMPION in promoted.aliases
    assert promoted.tags["promoted_by"] == "ada"
    assert promoted.tags["promotion_reason"] == "rollback drill"
    assert promoted.tags["promotion_forced"] == "true"
    assert promoted.tags["previous_champion"] == "1"


def test_a_first_model_that_loses_to_bgnbd_is_refused_naming_it(
    run: tracking.RunHandle, tmp_path: Path
) -> None:
    name = _unique(tracking.SPEND_MODEL)
    _register(run, name, _bundle(tmp_path / "a"), tags={**REFS, GINI: "0.45"})
    code, output = _promote("--model", name, "--latest", "--yes")
    flat = " ".join(output.split())
    assert code == 1 and "loses to BG/NBD + Gamma-Gamma" in flat and "worse by 0.0500" in flat
    assert "loses to run rate" not in flat
    assert _champion(name) is None


def test_promoting_the_champion_again_changes_nothing(
    run: tracking.RunHandle, tmp_path: Path
) -> None:
    name = _unique(tracking.SPEND_MODEL)
    _register(run, name, _bundle(tmp_path / "a"), tags={**REFS, GINI: "0.8"})
    assert _promote("--model", name, "--latest", "--yes")[0] == 0
    code, output = _promote("--model", name, "--latest", "--yes")
    assert code == 0 and "already the champion" in output


def test_promote_needs_exactly_one_of_version_or_latest(mlflow_tracking: str) -> None:
    assert _promote("--model", "clv-spend-x")[0] == 2
    assert _promote("--model", "clv-spend-x", "--version", "1", "--latest")[0] == 2


def test_promoting_a_version_that_does_not_exist_names_clv_train(mlflow_tracking: str) -> None:
    name = _unique(tracking.SPEND_MODEL)
    code, output = _promote("--model", name, "--version", "3", "--yes")
    assert code == 1
    assert f"{name} has no version 3; train one with `clv train`" in " ".join(output.split())
