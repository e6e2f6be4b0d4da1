"""The ``clv`` command line: thin wrappers over library functions.

Exit codes: 0 success, 1 the input breaks the data contract (or another user-fixable problem),
2 wrong usage.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

app = typer.Typer(
    name="clv",
    help="Customer lifetime value platform: generate, validate and ingest data (more to come).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
console = Console()
err_console = Console(stderr=True)


class Kind(StrEnum):
    """Table kinds of the data contract."""

    transactions = "transactions"
    customers = "customers"
    sustainability = "sustainability"


class FileFormat(StrEnum):
    """Output formats of ``clv generate``."""

    parquet = "parquet"
    csv = "csv"


def _fail(message: str) -> typer.Exit:
    err_console.print(Text(message, style="bold red"))
    return typer.Exit(code=1)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


def _parse_mix(text: str | None, option: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    from clv.data.generator import CHANNELS

    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: give {len(CHANNELS)} comma-separated shares for {', '.join(CHANNELS)}",
            param_hint=option,
        ) from None
    if len(values) != len(CHANNELS) or abs(sum(values) - 1) > 1e-6 or min(values) < 0:
        raise typer.BadParameter(
            f"{text!r}: give {len(CHANNELS)} non-negative shares for {', '.join(CHANNELS)} "
            "that sum to 1",
            param_hint=option,
        )
    return values


@app.command()
def generate(
    out: Annotated[str, typer.Option("--out", help="Output folder (local path or s3://...).")],
    customers: Annotated[
        int, typer.Option("--customers", min=1, help="Number of customers acquired.")
    ] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same bytes.")] = 0,
    fmt: Annotated[FileFormat, typer.Option("--format", help="File format.")] = (
        FileFormat.parquet
    ),
    start: Annotated[
        str, typer.Option(help="First day of the observation period (YYYY-MM-DD).")
    ] = "2023-01-01",
    end: Annotated[
        str, typer.Option(help="Last observed day (YYYY-MM-DD); the truth looks beyond it.")
    ] = "2025-12-31",
    horizon_days: Annotated[
        int, typer.Option(min=1, help="Days after --end covered by the ground truth.")
    ] = 90,
    seasonality: Annotated[
        float, typer.Option(min=0.0, max=3.0, help="Strength of weekly/yearly/holiday effects.")
    ] = 1.0,
    drift_start: Annotated[
        str | None, typer.Option(help="Start of a drifted regime (YYYY-MM-DD).")
    ] = None,
    price_level: Annotated[
        float, typer.Option(min=0.01, help="Price multiplier from --drift-start on.")
    ] = 1.0,
    eco_shift: Annotated[
        float, typer.Option(min=-1.0, max=1.0, help="Eco-share shift from --drift-start on.")
    ] = 0.0,
    channel_mix: Annotated[
        str | None,
        typer.Option(help="Channel mix from --drift-start on: web,app,store,marketplace shares."),
    ] = None,
) -> None:
    """Generate customers, transactions, sustainability scores and the ground truth.

    Behaviour follows BG/NBD purchase and dropout processes with Gamma-Gamma order values,
    cohorts, seasonality, channels, eco products and returns; truth.parquet holds each customer's
    latent parameters and expected and realised spend over the horizon after --end.
    """
    from clv.data.generator import DriftScenario, GeneratorConfig, generate, write_synthetic

    try:
        start_d, end_d = date.fromisoformat(start), date.fromisoformat(end)
        drift = None
        mix = _parse_mix(channel_mix, "--channel-mix")
        if drift_start is not None:
            drift = DriftScenario(
                start=date.fromisoformat(drift_start),
                price_level=price_level,
                eco_share_shift=eco_shift,
                channel_mix=mix,
            )
        elif price_level != 1.0 or eco_shift != 0.0 or mix is not None:
            raise typer.BadParameter("drift options need --drift-start", param_hint="--drift-start")
        config = GeneratorConfig(
            n_customers=customers,
            start=start_d,
            end=end_d,
            horizon_days=horizon_days,
            seasonality=seasonality,
            drift=drift,
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None

    with _progress() as progress:
        task = progress.add_task(f"simulating {customers:,} customers", total=1)
        data = generate(config, seed=seed)
        progress.advance(task)
        task = progress.add_task(f"writing {fmt.value} files", total=1)
        written = write_synthetic(data, out, fmt=fmt.value)
        progress.advance(task)

    table = Table(title=f"Generated data (seed {seed})")
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column("file")
    for name, path in written.items():
        rows = getattr(data, name).num_rows if name in data.tables else None
        table.add_row(name, "" if rows is None else f"{rows:,}", str(path))
    console.print(table)


@app.command()
def validate(
    paths: Annotated[list[str], typer.Argument(help="Files to check (local or s3://).")],
    kind: Annotated[Kind, typer.Option("--kind", help="Which table the files hold.")] = (
        Kind.transactions
    ),
    allow_extra_columns: Annotated[
        bool, typer.Option(help="Ignore columns that are not in the contract.")
    ] = False,
    max_errors: Annotated[
        int | None, typer.Option(min=1, help="How many problems to list per file.")
    ] = None,
) -> None:
    """Check files against the data contract; list every problem with file, line, column, value.

    Exit code 1 when any file breaks the contract.
    """
    from clv.data.io import display_name, local_copy
    from clv.data.validation import validate_file

    failed = 0
    for uri in paths:
        try:
            with err_console.status(f"validating {uri} ..."), local_copy(uri) as path:
                report = validate_file(
                    path,
                    kind.value,
                    allow_extra_columns=allow_extra_columns,
                    max_problems=max_errors,
                    source=display_name(uri),
                )
        except (FileNotFoundError, ValueError) as err:  # ValueError: malformed s3:// URI
            err_console.print(Text(f"{uri}: {err}", style="red"))
            failed += 1
            continue
        if report.ok:
            console.print(
                Text(f"OK {uri}: {report.n_rows:,} rows satisfy the {kind.value} contract")
            )
        else:
            failed += 1
            err_console.print(Text(report.summary(), style="red"))
    if failed:
        raise _fail(f"{failed} of {len(paths)} file(s) break the {kind.value} contract")


@app.command()
def ingest(
    paths: Annotated[list[str], typer.Argument(help="Files to ingest (local or s3://).")],
    kind: Annotated[Kind, typer.Option("--kind", help="Which table the files hold.")] = (
        Kind.transactions
    ),
    allow_extra_columns: Annotated[
        bool, typer.Option(help="Drop columns that are not in the contract.")
    ] = False,
    warehouse: Annotated[
        Path | None, typer.Option(help="Warehouse folder (default: $CLV_HOME/warehouse).")
    ] = None,
) -> None:
    """Validate files and store typed copies in the warehouse, once per content (idempotent)."""
    from clv.data.ingest import ingest as ingest_file
    from clv.data.validation import ContractError

    failed = 0
    for uri in paths:
        try:
            with err_console.status(f"ingesting {uri} ..."):
                record, added = ingest_file(
                    uri, kind.value, warehouse=warehouse, allow_extra_columns=allow_extra_columns
                )
        except (ContractError, FileNotFoundError, ValueError) as err:
            failed += 1
            err_console.print(Text(str(err), style="red"))
            continue
        state = "ingested" if added else "already ingested (same content), nothing to do"
        console.print(Text(f"{uri}: {state}: {record.rows:,} rows, sha256 {record.sha256[:12]}…"))
    if failed:
        raise _fail(f"{failed} of {len(paths)} file(s) were not ingested")


@app.command()
def summary(
    folder: Annotated[Path, typer.Argument(help="Folder written by `clv generate`.")],
) -> None:
    """Summarise a generated data set: customers, orders, revenue, returns, eco share, truth."""
    from clv.data.summary import summarise_folder

    try:
        rows = summarise_folder(folder)
    except (FileNotFoundError, ValueError) as err:
        raise _fail(str(err)) from None
    table = Table(title=f"Summary of {folder}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


def _parse_as_of(text: str | None) -> object:
    """A YYYY-MM-DD as-of date means "data up to the end of that day"."""
    import pandas as pd

    if text is None:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a date like 2025-06-30", param_hint="--as-of"
        ) from None
    return pd.Timestamp(day) + pd.Timedelta(days=1) - pd.Timedelta(1, "us")


@app.command()
def backtest(
    transactions: Annotated[
        str, typer.Option("--transactions", help="Transactions file (local or s3://).")
    ],
    horizon_days: Annotated[
        int, typer.Option("--horizon-days", min=1, help="Prediction horizon in days.")
    ],
    as_of: Annotated[
        str | None,
        typer.Option(help="Score from this date (YYYY-MM-DD); default: last date - horizon."),
    ] = None,
    customers_path: Annotated[
        str | None, typer.Option("--customers", help="Optional customers table.")
    ] = None,
    sustainability_path: Annotated[
        str | None, typer.Option("--sustainability", help="Optional sustainability table.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Report folder (default: $CLV_HOME/backtests/<as-of>-<h>d)."),
    ] = None,
    windows: Annotated[int, typer.Option(min=1, help="Training cut-offs stacked.")] = 12,
    step_days: Annotated[int, typer.Option(min=1, help="Days between training cut-offs.")] = 30,
    families: Annotated[
        str, typer.Option(help="Comma-separated model families to train.")
    ] = "xgboost,lightgbm,keras_ziln",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    refit: Annotated[
        bool,
        typer.Option(
            help="Refit every family on all windows, validation included, after early stopping "
            "(helps on multi-cohort data; see docs/benchmarks.md)."
        ),
    ] = False,
    allow_extra_columns: Annotated[
        bool, typer.Option(help="Ignore columns that are not in the contract.")
    ] = False,
) -> None:
    """Train every model family on data up to --as-of and score the following horizon.

    Compares XGBoost, LightGBM, the Keras ZILN net and their stacked ensemble with BG/NBD +
    Gamma-Gamma and the naive run-rate model, plus the churn model against BG/NBD; writes
    backtest.json, backtest.md, predictions.parquet and PNG plots.
    """
    from clv.data.io import read_table
    from clv.data.validation import ContractError
    from clv.evaluation.backtest import backtest as run_backtest
    from clv.evaluation.backtest import write_backtest_report
    from clv.models.registry import SPEND_FAMILIES

    chosen = [f.strip() for f in families.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in SPEND_FAMILIES]
    if unknown or not chosen:
        raise typer.BadParameter(
            f"unknown families {unknown}; choose from {', '.join(SPEND_FAMILIES)}",
            param_hint="--families",
        )
    cutoff = _parse_as_of(as_of)
    try:
        with err_console.status("reading and validating inputs ..."):
            tx = read_table(transactions, "transactions", allow_extra_columns=allow_extra_columns)
            customers = (
                read_table(customers_path, "customers", allow_extra_columns=allow_extra_columns)
                if customers_path
                else None
            )
            sustainability = (
                read_table(
                    sustainability_path,
                    "sustainability",
                    allow_extra_columns=allow_extra_columns,
                )
                if sustainability_path
                else None
            )
        with err_console.status("backtesting ...") as status:
            result = run_backtest(
                tx,
                horizon_days=horizon_days,
                as_of=cutoff,  # type: ignore[arg-type]
                customers=customers,
                sustainability=sustainability,
                n_windows=windows,
                step_days=step_days,
                families=chosen,
                seed=seed,
                refit=refit,
                progress=lambda message: status.update(f"backtesting: {message} ..."),
            )
    except (ContractError, FileNotFoundError, ValueError) as err:
        raise _fail(str(err)) from None

    from clv.settings import get_settings

    folder = out or get_settings().home / "backtests" / f"{result.as_of:%Y-%m-%d}-{horizon_days}d"
    written = write_backtest_report(result, folder)
    table = Table(
        title=f"Backtest as of {result.as_of:%Y-%m-%d}, {horizon_days}-day horizon, "
        f"{len(result.predictions):,} customers"
    )
    for column in ("model", "Gini", "decile MAPE", "aggregate error", "top-20% precision", "MAE"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name in sorted(result.metrics, key=lambda m: -result.metrics[m]["normalized_gini"]):
        m = result.metrics[name]
        table.add_row(
            name,
            f"{m['normalized_gini']:.4f}",
            f"{m['decile_mape']:.4f}",
            f"{m['aggregate_error']:+.4f}",
            f"{m['top20_precision']:.4f}",
            f"{m['mae']:.2f}",
        )
    console.print(table)
    for name, m in result.churn_metrics.items():
        console.print(
            Text(
                f"churn {name}: AUC {m['auc']:.4f}, Brier {m['brier']:.4f}, "
                f"calibration error {m['calibration_error']:.4f}"
            )
        )
    console.print(Text(f"report: {written['markdown']}  (json, predictions, plots beside it)"))


def main() -> None:
    """Entry point for ``python -m clv``."""
    app()
