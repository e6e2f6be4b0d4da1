"""`clv experiment analyze` and `clv experiment size`: the JSON contract, the human verdict, and a
clear one-line message (never a traceback) for every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clv.cli import app
from clv.experiments.analysis import CORRECTIONS, analyze
from clv.experiments.power import minimum_detectable_effect, sample_size

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from typer.testing import Result

UNITS_PER_ARM = 1500


def experiment_frame(*, lift_b: float = 1.0, seed: int = 3) -> pd.DataFrame:
    """Three arms of revenue per unit: most units spend nothing, the rest a lognormal amount.

    ``pre_revenue`` is the same units' spend before the test (the CUPED covariate); ``b``'s
    spenders spend ``lift_b`` times as much; ``refunded`` (a guardrail) is the same in every arm.
    """
    rng = np.random.default_rng(seed)
    n = 3 * UNITS_PER_ARM
    variant = np.repeat(["control", "a", "b"], UNITS_PER_ARM)
    taste = rng.lognormal(3.0, 0.8, n)  # how much a unit spends when it spends
    pre = np.where(rng.random(n) < 0.35, taste * rng.lognormal(0, 0.3, n), 0.0)
    buys = rng.random(n) < 0.3
    lift = np.where(variant == "b", lift_b, 1.0)
    revenue = np.where(buys, taste * lift * rng.lognormal(0, 0.3, n), 0.0)
    return pd.DataFrame(
        {
            "unit_id": [f"u{i:05d}" for i in range(n)],
            "variant": variant,
            "revenue": revenue.round(2),
            "pre_revenue": pre.round(2),
            "converted": buys.astype(int),
            "refunded": (rng.random(n) < 0.04).astype(int),
        }
    )


@pytest.fixture(scope="module")
def with_winner() -> pd.DataFrame:
    return experiment_frame(lift_b=1.5)


@pytest.fixture(scope="module")
def without_winner() -> pd.DataFrame:
    return experiment_frame(lift_b=1.0, seed=4)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"COLUMNS": "100"})


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.name.endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return path


def _read_back(path: Path) -> pd.DataFrame:
    """The frame exactly as the command sees it (CSV floats are parsed by the same reader)."""
    return pd.read_parquet(path) if path.name.endswith(".parquet") else pd.read_csv(path)


def _ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result.stdout


def _refused(result: Result) -> str:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output and 'File "' not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return " ".join(result.output.split())  # messages may wrap at the console width


def _analyze(runner: CliRunner, path: Path | str, *args: str) -> Result:
    return runner.invoke(app, ["experiment", "analyze", str(path), *args])


# --------------------------------------------------------------------------- the JSON contract


@pytest.mark.parametrize("name", ["data.csv", "data.csv.gz", "data.parquet"])
@pytest.mark.parametrize("method", ["frequentist", "sequential", "bayesian"])
def test_json_is_exactly_analyze_to_dict(
    runner: CliRunner, with_winner: pd.DataFrame, tmp_path: Path, name: str, method: str
) -> None:
    path = _write(with_winner, tmp_path / name)
    result = _analyze(
        runner,
        path,
        "--metric",
        "revenue",
        "--covariate",
        "pre_revenue",
        "--method",
        method,
        "--guardrail",
        "refunded:lower",
        "--unit-col",
        "unit_id",
        "--json",
    )
    expected = analyze(
        _read_back(path),
        metric="revenue",
        covariate="pre_revenue",
        method=method,  # type: ignore[arg-type]
        guardrails={"refunded": "lower"},
        unit_col="unit_id",
    ).to_dict()
    stdout = _ok(result)
    assert stdout == json.dumps(expected) + "\n"  # nothing else on stdout
    assert json.loads(stdout) == expected
    assert expected["winner"] == "b"


def test_json_passes_every_option_through(
    runner: CliRunner, without_winner: pd.DataFrame, tmp_path: Path
) -> None:
    frame = without_winner.assign(variant=without_winner["variant"].replace({"control": "base"}))
    path = _write(frame, tmp_path / "data.parquet")
    options: dict[str, Any] = {
        "metric": "converted",
        "control": "base",
        "alpha": 0.1,
        "correction": "bh",
        "expected_shares": {"base": 0.34, "a": 0.33, "b": 0.33},
        "metric_type": "proportion",
        "lower_is_better": True,
        "guardrails": {"revenue": "higher"},
        "srm_threshold": 0.01,
        "method": "bayesian",
        "prior_mean": 0.01,
        "prior_sd": 0.2,
        "chance_to_win_threshold": 0.9,
    }
    args = [
        *("--metric", "converted", "--control", "base", "--alpha", "0.1", "--correction", "bh"),
        *("--expected-shares", "base=0.34,a=0.33,b=0.33", "--metric-type", "proportion"),
        *("--lower-is-better", "--guardrail", "revenue", "--srm-threshold", "0.01"),
        *("--method", "bayesian", "--prior-mean", "0.01", "--prior-sd", "0.2"),
        *("--chance-to-win", "0.9", "--json"),
    ]
    stdout = _ok(_analyze(runner, path, *args))
    assert json.loads(stdout) == analyze(frame, **options).to_dict()


@pytest.mark.parametrize("correction", CORRECTIONS)
def test_each_correction_is_passed_through(
    runner: CliRunner, with_winner: pd.DataFrame, tmp_path: Path, correction: str
) -> None:
    path = _write(with_winner, tmp_path / "data.parquet")
    stdout = _ok(
        _analyze(runner, path, "--metric", "revenue", "--correction", correction, "--json")
    )
    expected = analyze(with_winner, metric="revenue", correction=correction)  # type: ignore[arg-type]
    assert json.loads(stdout) == expected.to_dict()


# --------------------------------------------------------------------------- the human verdict


def _lines(stdout: str) -> list[str]:
    return stdout.splitlines()


def test_the_table_names_the_winner_and_fits_100_columns(
    runner: CliRunner, with_winner: pd.DataFrame, tmp_path: Path
) -> None:
    path = _write(with_winner, tmp_path / "data.csv")
    args = ["--metric", "revenue", "--covariate", "pre_revenue", "--guardrail", "refunded:lower"]
    stdout = _ok(_analyze(runner, path, *args))
    assert max(len(line) for line in _lines(stdout)) <= 100
    flat = " ".join(stdout.split())
    for header in ("variant", "n", "mean", "effect", "lift", "p", "adj. p", "sig."):
        assert f" {header} " in flat
    assert "verdict: b wins" in flat
    assert "'b' beats the control on 'revenue'" in flat
    assert "sample ratio: ok" in flat
    assert "CUPED on 'pre_revenue': θ = " in flat and "variance reduced by" in flat
    assert "guardrail 'refunded' (lower is better), b:" in flat and "not harmed" in flat
    row_b = next(line for line in _lines(stdout) if line.startswith("│ b "))
    assert "better" in row_b and "1,500" in row_b


def test_no_winner_is_said_in_words_and_exits_0(
    runner: CliRunner, without_winner: pd.DataFrame, tmp_path: Path
) -> None:
    path = _write(without_winner, tmp_path / "data.parquet")
    stdout = _ok(_analyze(runner, path, "--metric", "revenue"))
    flat = " ".join(stdout.split())
    assert "verdict: no winner" in flat
    reason = analyze(without_winner, metric="revenue").reason
    assert reason.startswith("no winner yet") and " ".join(reason.split()) in flat
    assert max(len(line) for line in _lines(stdout)) <= 100


def test_bayesian_shows_chance_to_win_and_expected_loss(
    runner: CliRunner, with_winner: pd.DataFrame, tmp_path: Path
) -> None:
    path = _write(with_winner, tmp_path / "data.parquet")
    stdout = _ok(_analyze(runner, path, "--metric", "revenue", "--method", "bayesian"))
    flat = " ".join(stdout.split())
    assert "P(win)" in flat and "exp. loss" in flat and "credible interval" in flat
    assert " adj. p " not in flat
    assert "verdict: b wins" in flat
    assert max(len(line) for line in _lines(stdout)) <= 100


def test_a_sample_ratio_mismatch_is_shown_and_there_is_no_winner(
    runner: CliRunner, with_winner: pd.DataFrame, tmp_path: Path
) -> None:
    skewed = with_winner.drop(with_winner.index[with_winner["variant"] == "b"][:400])
    path = _write(skewed, tmp_path / "data.parquet")
    stdout = _ok(_analyze(runner, path, "--metric", "revenue"))
    flat = " ".join(stdout.split())
    assert "sample ratio MISMATCH" in flat and "b 1,100 (33.3%)" in flat
    assert "verdict: no winner" in flat


def test_s3_data_is_read(
    runner: CliRunner, with_winner: pd.DataFrame, tmp_path: Path, s3_bucket: tuple[str, S3Client]
) -> None:
    bucket, client = s3_bucket
    path = _write(with_winner, tmp_path / "data.parquet")
    client.upload_file(str(path), bucket, "tests/data.parquet")
    stdout = _ok(_analyze(runner, f"s3://{bucket}/tests/data.parquet", "--metric", "revenue"))
    assert (
        json.loads(
            _ok(
                _analyze(
                    runner, f"s3://{bucket}/tests/data.parquet", "--metric", "revenue", "--json"
                )
            )
        )
        == analyze(with_winner, metric="revenue").to_dict()
    )
    assert "verdict: b wins" in " ".join(stdout.split())
    missing = _refused(_analyze(runner, f"s3://{bucket}/tests/absent.csv", "--metric", "revenue"))
    assert f"s3://{bucket}/tests/absent.csv" in missing


# --------------------------------------------------------------------------- bad input


BAD_CELL = "unit_id,variant,revenue\nu1,control,1.5\nu2,control,0\nu3,b,abc\nu4,b,2\n"


def _text_file(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "content", "args", "message"),
    [
        ("absent.csv", None, [], "no such file:"),
        ("data.xlsx", "x", [], "data.xlsx: not a CSV (.csv, .csv.gz) or Parquet (.parquet) file"),
        ("data.parquet", b"not parquet\x00\x01", [], "data.parquet: cannot be read as Parquet"),
        ("data.csv.gz", b"\x1f\x8b\x08\x00trunc", [], "data.csv.gz: cannot be read as CSV"),
        ("data.csv", "", [], "data.csv: cannot be read as CSV (No columns to parse from file)"),
        (
            "data.csv",
            BAD_CELL,
            [],
            "data.csv: row 3 (line 4 of the file), metric column 'revenue': 'abc' is not a number",
        ),
        (
            # A blank line (pandas skips it) and a quoted field over two lines: the line is
            # still the file's.
            "data.csv",
            'unit_id,variant,revenue\n\n"u\n1",control,1\nu2,control,2\nu3,b,x\nu4,b,3\n',
            [],
            "data.csv: row 3 (line 6 of the file), metric column 'revenue': 'x' is not a number",
        ),
        (
            "data.csv",
            "variant,revenue\ncontrol,1\ncontrol,\nb,3\nb,4\n",
            [],
            "data.csv: row 2 (line 3 of the file), metric column 'revenue': the value is missing",
        ),
        ("data.csv", BAD_CELL, ["--control", "ctl"], "data.csv: control 'ctl' is not a value"),
        (
            "data.csv",
            "variant,revenue\ncontrol,1\ncontrol,2\n",
            [],
            "data.csv: only one variant ('control') in column 'variant'",
        ),
        (
            "data.csv",
            "variant,revenue\ncontrol,1\ncontrol,2\nb,3\nb,5\n",
            ["--expected-shares", "control=0.5,b=0.4"],
            "data.csv: expected shares must sum to 1 (they sum to 0.9)",
        ),
        (
            "data.csv",
            "variant,revenue\ncontrol,1\ncontrol,2\nb,3\nb,5\n",
            ["--expected-shares", "control:0.5"],
            "'control:0.5' is not name=share",
        ),
        (
            "data.csv",
            "variant,revenue\ncontrol,1\ncontrol,2\nb,3\nb,5\n",
            ["--metric", "spend"],
            "data.csv: metric column 'spend' is not in the data (columns: variant, revenue)",
        ),
        ("data.csv", BAD_CELL, ["--method", "magic"], "'magic' is not one of"),
        ("data.csv", BAD_CELL, ["--guardrail", "refunded:up"], "give COLUMN, COLUMN:higher or"),
        ("data.csv", BAD_CELL, ["--guardrail", ":lower"], "give COLUMN, COLUMN:higher or"),
    ],
    ids=[
        "missing-file",
        "wrong-suffix",
        "corrupt-parquet",
        "corrupt-gzip",
        "empty-csv",
        "non-numeric-cell",
        "line-after-blank-and-multiline",
        "missing-cell",
        "absent-control",
        "single-variant",
        "shares-not-summing-to-1",
        "shares-syntax",
        "absent-metric",
        "unknown-method",
        "guardrail-direction",
        "guardrail-no-column",
    ],
)
def test_bad_input_is_one_clear_message(
    runner: CliRunner,
    tmp_path: Path,
    name: str,
    content: str | bytes | None,
    args: list[str],
    message: str,
) -> None:
    path = tmp_path / name if content is None else _text_file(tmp_path, name, content)
    if "--metric" not in args:
        args = ["--metric", "revenue", *args]
    output = _refused(_analyze(runner, path, *args))
    assert message in output
    if content is None:
        assert name in output


def test_an_input_error_exits_2_and_an_unreadable_file_1(runner: CliRunner, tmp_path: Path) -> None:
    bad_cell = _text_file(tmp_path, "data.csv", BAD_CELL)
    assert _analyze(runner, bad_cell, "--metric", "revenue").exit_code == 2
    assert _analyze(runner, tmp_path / "absent.parquet", "--metric", "revenue").exit_code == 1


def test_parquet_rows_are_not_given_file_lines(runner: CliRunner, tmp_path: Path) -> None:
    frame = pd.DataFrame({"variant": ["control", "control", "b", "b"], "revenue": [1, 2, None, 3]})
    path = _write(frame, tmp_path / "data.parquet")
    output = _refused(_analyze(runner, path, "--metric", "revenue"))
    assert "data.parquet: row 3, metric column 'revenue': the value is missing" in output
    assert "line" not in output


# --------------------------------------------------------------------------- size


@pytest.mark.parametrize(
    ("baseline", "flags"),
    [
        ({"baseline_rate": 0.05}, ["--baseline-rate", "0.05"]),
        (
            {"baseline_mean": 50.0, "baseline_sd": 80.0},
            ["--baseline-mean", "50", "--baseline-sd", "80"],
        ),
    ],
    ids=["rate", "mean"],
)
@pytest.mark.parametrize("variants", [2, 3])
def test_size_json_equals_sample_size_and_mde(
    runner: CliRunner, baseline: dict[str, float], flags: list[str], variants: int
) -> None:
    common = [*flags, "--alpha", "0.1", "--power", "0.9", "--variants", str(variants), "--json"]
    sized = _ok(runner.invoke(app, ["experiment", "size", "--mde", "0.08", *common]))
    n = sample_size(mde=0.08, alpha=0.1, power=0.9, comparisons=variants - 1, **baseline)
    assert json.loads(sized) == {"n_per_variant": n}
    assert sized == json.dumps({"n_per_variant": n}) + "\n"

    detectable = _ok(runner.invoke(app, ["experiment", "size", "--n", "4000", *common]))
    mde = minimum_detectable_effect(
        4000, alpha=0.1, power=0.9, comparisons=variants - 1, **baseline
    )
    assert json.loads(detectable) == {"mde": mde}


def test_size_in_words(runner: CliRunner) -> None:
    n = sample_size(mde=0.1, baseline_rate=0.05, comparisons=2)
    stdout = _ok(
        runner.invoke(
            app,
            ["experiment", "size", "--baseline-rate", "0.05", "--mde", "0.1", "--variants", "3"],
        )
    )
    flat = " ".join(stdout.split())
    assert f"{n:,} units per variant, {3 * n:,} in all for 3 variants" in flat
    assert "split over 2 comparisons (Bonferroni)" in flat
    mde = minimum_detectable_effect(10_000, baseline_mean=50, baseline_sd=80)
    stdout = _ok(
        runner.invoke(
            app,
            ["experiment", "size", "--baseline-mean", "50", "--baseline-sd", "80", "--n", "10000"],
        )
    )
    assert f"minimum detectable effect: {mde:+.2%} with 10,000 units per variant" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mde", "0.1"], "give --baseline-rate (a rate metric) or --baseline-mean with"),
        (
            ["--baseline-rate", "0.05", "--baseline-mean", "3", "--baseline-sd", "1", "--mde", "1"],
            "(a mean metric), not both",
        ),
        (["--baseline-mean", "3", "--mde", "0.1"], "--baseline-mean and --baseline-sd go together"),
        (["--baseline-rate", "0.05"], "give --mde (to get the units per variant) or --n"),
        (["--baseline-rate", "0.05", "--mde", "0.1", "--n", "100"], "effect), not both"),
        (["--baseline-rate", "1.5", "--mde", "0.1"], "--baseline-rate must be strictly between"),
        (["--baseline-rate", "0.05", "--n", "1"], "--n must be >= 2"),
        (["--baseline-rate", "0.05", "--mde", "0"], "mde must not be 0"),
        (["--baseline-rate", "0.05", "--mde", "0.1", "--variants", "1"], "--variants"),
    ],
    ids=[
        "no-baseline",
        "both-baselines",
        "mean-without-sd",
        "neither-mde-nor-n",
        "both-mde-and-n",
        "rate-out-of-range",
        "too-few-units",
        "zero-mde",
        "one-variant",
    ],
)
def test_size_bad_input_is_one_clear_message(
    runner: CliRunner, args: list[str], message: str
) -> None:
    assert message in _refused(runner.invoke(app, ["experiment", "size", *args]))


def test_the_choices_are_the_engines() -> None:
    from clv.cli_experiment import Correction, Method
    from clv.experiments.analysis import METHODS

    assert tuple(Method) == METHODS and tuple(Correction) == CORRECTIONS


def test_a_ratio_metric_is_analysed_per_denominator(tmp_path: Path, runner: CliRunner) -> None:
    rng = np.random.default_rng(30)
    orders = rng.poisson(1.2, 3000)
    frame = pd.DataFrame(
        {
            "variant": np.repeat(["control", "treatment"], 1500),
            "orders": orders,
            "revenue": orders * rng.gamma(2.0, 20.0, 3000),
        }
    )
    path = _write(frame, tmp_path / "aov.parquet")
    ratio = ("--metric", "revenue", "--denominator", "orders")

    as_json = _ok(_analyze(runner, path, *ratio, "--json"))
    human = _ok(_analyze(runner, path, *ratio))

    expected = analyze(_read_back(path), metric="revenue", denominator="orders").to_dict()
    assert json.loads(as_json) == expected
    assert "per 'orders'" in human and "ratio" in human


# --------------------------------------------------------------------------- assign and metrics


def _customers(path: Path, n: int = 3000) -> Path:
    frame = pd.DataFrame({"customer_id": [f"{i:06d}" for i in range(n)]})
    frame.to_csv(path, index=False)
    return path


def test_assign_writes_the_library_assignment_and_is_repeatable(
    tmp_path: Path, runner: CliRunner
) -> None:
    from clv.experiments.assignment import assign

    units = _customers(tmp_path / "customers.csv")
    out = tmp_path / "assignments.parquet"
    args = ["experiment", "assign", str(units), "--key", "spring", "--out", str(out)]
    first = _ok(
        runner.invoke(app, [*args, "--variants", "control=0.6,treatment=0.4", "--holdout", "0.1"])
    )
    content = out.read_bytes()
    _ok(runner.invoke(app, [*args, "--variants", "control=0.6,treatment=0.4", "--holdout", "0.1"]))

    written = pd.read_parquet(out)
    expected = assign(
        [f"{i:06d}" for i in range(3000)],
        "spring",
        variants={"control": 0.6, "treatment": 0.4},
        holdout_share=0.1,
    )
    assert out.read_bytes() == content
    assert written["customer_id"].tolist()[:2] == ["000000", "000001"]  # leading zeros kept
    assert written["variant"].tolist() == expected.tolist()
    assert "holdout" in first and "written" in first


def test_assign_leaves_out_the_excluded_ids(tmp_path: Path, runner: CliRunner) -> None:
    units = _customers(tmp_path / "customers.csv", 100)
    exclude = tmp_path / "suppressed.csv"
    pd.DataFrame({"customer_id": ["000003", "000007"]}).to_csv(exclude, index=False)
    out = tmp_path / "a.csv"

    _ok(
        runner.invoke(
            app,
            [
                "experiment",
                "assign",
                str(units),
                "--key",
                "k",
                "--out",
                str(out),
                "--exclude",
                str(exclude),
            ],
        )
    )

    ids = pd.read_csv(out, dtype=str)["customer_id"]
    assert len(ids) == 98 and "000003" not in set(ids)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--id-col", "user"], "id column 'user'"),
        (["--variants", "a=x"], "is not a number"),
        (["--holdout", "1.5"], "holdout"),
    ],
    ids=["absent-id-column", "bad-weights", "holdout-out-of-range"],
)
def test_assign_refuses_bad_input_with_a_message(
    tmp_path: Path, runner: CliRunner, extra: list[str], message: str
) -> None:
    units = _customers(tmp_path / "customers.csv", 50)
    args = ["experiment", "assign", str(units), "--key", "k", "--out", str(tmp_path / "o.csv")]

    assert message in _refused(runner.invoke(app, [*args, *extra]))


def test_metrics_build_the_analysis_input_from_transactions(
    tmp_path: Path, runner: CliRunner
) -> None:
    from clv.experiments.metrics import unit_metrics

    assignments = pd.DataFrame(
        {"customer_id": ["a", "b", "c", "d"], "variant": ["control", "treatment"] * 2}
    )
    assignments.to_csv(tmp_path / "assign.csv", index=False)
    tx = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "c", "d"],
            "timestamp": ["2025-05-20", "2025-06-10", "2025-06-12", "2025-06-29", "2025-04-01"],
            "amount": [10.0, 20.0, 30.0, 40.0, 50.0],
        }
    )
    tx.to_csv(tmp_path / "tx.csv", index=False)
    out = tmp_path / "units.parquet"

    _ok(
        runner.invoke(
            app,
            [
                "experiment",
                "metrics",
                str(tmp_path / "assign.csv"),
                "--transactions",
                str(tmp_path / "tx.csv"),
                "--out",
                str(out),
            ],
        )
    )

    written = pd.read_parquet(out)
    # Defaults: the window is the 30 days up to the day after the last transaction.
    expected = unit_metrics(
        assignments,
        tx.assign(timestamp=pd.to_datetime(tx["timestamp"])),
        start="2025-05-31",
        end="2025-06-30",
    )
    pd.testing.assert_frame_equal(written, expected)
    assert written.set_index("customer_id").loc["a", "pre_spend"] == 10.0


def test_metrics_refuse_transactions_that_break_the_contract(
    tmp_path: Path, runner: CliRunner
) -> None:
    pd.DataFrame({"customer_id": ["a"], "variant": ["control"]}).to_csv(
        tmp_path / "assign.csv", index=False
    )
    pd.DataFrame({"customer_id": ["a"], "timestamp": ["not a date"], "amount": [1.0]}).to_csv(
        tmp_path / "tx.csv", index=False
    )

    message = _refused(
        runner.invoke(
            app,
            [
                "experiment",
                "metrics",
                str(tmp_path / "assign.csv"),
                "--transactions",
                str(tmp_path / "tx.csv"),
                "--out",
                str(tmp_path / "o.csv"),
            ],
        )
    )

    assert "tx.csv" in message and "timestamp" in message
