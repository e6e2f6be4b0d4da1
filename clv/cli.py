"""The ``clv`` command line: thin wrappers over library functions.

Exit codes: 0 success, 1 the input breaks the data contract (or another user-fixable problem),
2 wrong usage.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.core
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    import pandas as pd

    from clv.evaluation.crossval import CrossValidationResult

from clv.config import MAX_HORIZON_DAYS


def _describe_error(err: BaseException) -> tuple[str, int]:
    """The message and exit code for an exception a user can cause (no traceback)."""
    name = type(err).__name__
    module = type(err).__module__
    if name == "IntegrityError" and module == "clv.models.base":
        return (
            f"{err}; the model file changed after it was registered: register the model again "
            "(`clv train`) or download its artifacts again",
            1,
        )
    if name == "StoreError" and module == "clv.store":
        return (str(err), 1)
    if module.startswith("sqlalchemy") and name == "OperationalError":
        return (
            f"the platform database cannot be used ({getattr(err, 'orig', err)}); check "
            "CLV_DATABASE_URL (default: SQLite under CLV_HOME) and that the server answers",
            1,
        )
    if name == "OutOfBoundsDatetime" or isinstance(err, OverflowError):
        return (
            f"dates out of range ({err}): timestamps must stay between 1677-09-22 and "
            f"2262-04-11; use a smaller --horizon-days (at most {MAX_HORIZON_DAYS:,}), "
            "--windows or --step-days",
            1,
        )
    if isinstance(err, IsADirectoryError):
        return (str(err) if not err.filename else f"{err.filename} is a folder, not a file", 1)
    if isinstance(err, PermissionError):
        return (f"cannot read {err.filename or ''}: permission denied".replace("  ", " "), 1)
    if isinstance(err, FileNotFoundError):
        return (str(err) if not err.filename else f"no such file: {err.filename}", 1)
    if module.startswith(("botocore", "boto3")):
        return (f"S3 failed: {err}; check credentials, CLV_S3_ENDPOINT_URL and the network", 1)
    if isinstance(err, (ValueError, LookupError, OSError)):
        # The library's messages (contract problems, missing models, short histories, storage)
        # name the input and what to do.
        return (str(err), 1)
    return (
        f"unexpected error ({name}: {err}); run again with --debug for the traceback and "
        "please report it",
        1,
    )


def _print_data_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """Print the validation gate's warnings (duplicates kept or dropped) without a code line."""
    if category.__name__ == "DataWarning":
        err_console.print(Text(f"warning: {message}", style="yellow"), soft_wrap=True)
    else:
        _SHOW_WARNING(message, category, filename, lineno, file, line)


class _Group(typer.core.TyperGroup):
    """The command group with one handler for every error a user can cause.

    Without ``--debug`` an exception from a command becomes its message (see
    :func:`_describe_error`) and exit code 1; with ``--debug`` the traceback is shown.
    """

    def invoke(self, ctx: Any) -> Any:
        import typer.exceptions

        debug = bool(ctx.params.get("debug"))
        with warnings.catch_warnings():
            warnings.showwarning = _print_data_warning
            try:
                return super().invoke(ctx)
            except (typer.Exit, typer.Abort, typer.exceptions.TyperException):
                raise  # usage errors and deliberate exits: typer prints and exits itself
            except KeyboardInterrupt:
                err_console.print(Text("interrupted", style="bold red"))
                raise typer.Exit(code=130) from None
            except Exception as err:
                if debug:
                    raise
                message, code = _describe_error(err)
                err_console.print(Text(message, style="bold red"), soft_wrap=True)
                raise typer.Exit(code=code) from None


app = typer.Typer(
    cls=_Group,
    name="clv",
    help="Customer lifetime value platform: data, backtests, training, promotion and scoring.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
console = Console()
err_console = Console(stderr=True)
_SHOW_WARNING = warnings.showwarning
_DEBUG = {"on": False}


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show Python tracebacks (and Prefect's run logs).")
    ] = False,
) -> None:
    """Customer lifetime value platform: data, backtests, training, promotion and scoring."""
    _DEBUG["on"] = debug


class OnDuplicate(StrEnum):
    """What to do with exact duplicate transactions that have no order_id."""

    warn = "warn"
    error = "error"
    drop = "drop"


OnDuplicateOption = Annotated[
    OnDuplicate,
    typer.Option(
        "--on-duplicate",
        help="Exact duplicate transaction rows without an order_id: keep them as separate "
        "purchases with a warning, refuse the file, or drop the repeats (with a warning). "
        "With an order_id a repeated line is always an error.",
    ),
]
FutureTolerance = Annotated[
    float | None,
    typer.Option(
        "--future-tolerance-days",
        min=0.0,
        help="Dates later than now plus this many days are refused (default 1, or "
        "CLV_FUTURE_TOLERANCE_DAYS).",
    ),
]
CustomerIdCol = Annotated[
    str | None,
    typer.Option("--customer-id-col", help="The file's name for customer_id (e.g. CustomerID)."),
]
TimestampCol = Annotated[
    str | None,
    typer.Option("--timestamp-col", help="The file's name for timestamp (e.g. InvoiceDate)."),
]
AmountCol = Annotated[
    str | None, typer.Option("--amount-col", help="The file's name for amount (e.g. Sales).")
]
HorizonDays = Annotated[
    int,
    typer.Option("--horizon-days", min=1, max=MAX_HORIZON_DAYS, help="Prediction horizon in days."),
]
OptionalHorizonDays = Annotated[
    int | None,
    typer.Option(
        "--horizon-days",
        min=1,
        max=MAX_HORIZON_DAYS,
        help="Prediction horizon in days. Required, here or in --config.",
    ),
]


ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="YAML file of this command's settings (see config/); flags given here override it.",
    ),
]


def _merge_config(
    ctx: typer.Context, file: Any, flags: dict[str, tuple[str, Any]]
) -> dict[str, Any]:
    """Settings from a configuration file, overridden by the flags the user gave.

    ``flags`` maps each setting to ``(parameter name, value already in the file's terms)``; a
    flag left at its default gives way to the file's value when the file sets that key.
    """
    given = set() if file is None else file.model_fields_set
    columns_given = set() if file is None else file.columns.model_fields_set
    merged: dict[str, Any] = {}
    for key, (param, value) in flags.items():
        source = ctx.get_parameter_source(param)
        # Compared by name: typer may vendor its own click, whose enum is not click's.
        typed = source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")
        if key.startswith("columns."):
            sub = key.removeprefix("columns.")
            in_file = "columns" in given and sub in columns_given
            merged[key] = value if typed or not in_file else getattr(file.columns, sub)
        else:
            merged[key] = value if typed or key not in given else getattr(file, key)
    return merged


def _require(settings: dict[str, Any], key: str, flag: str, config: Path | None) -> Any:
    value = settings.get(key)
    if value is None:
        where = f" or '{key}:' in {config}" if config is not None else f" (or '{key}:' in --config)"
        raise typer.BadParameter(f"required: give {flag}{where}", param_hint=flag)
    return value


def _columns(
    customer_id: str | None, timestamp: str | None, amount: str | None
) -> dict[str, str] | None:
    """The transactions' column mapping ``{contract name: file name}`` from the options."""
    given = {"customer_id": customer_id, "timestamp": timestamp, "amount": amount}
    mapping = {k: v for k, v in given.items() if v}
    return mapping or None


def _read_options(
    kind: Kind | str,
    on_duplicate: OnDuplicate,
    future_tolerance_days: float | None,
    customer_id_col: str | None,
    timestamp_col: str | None,
    amount_col: str | None,
) -> dict[str, Any]:
    """Keyword arguments of :func:`clv.data.io.read_table` from the shared options."""
    columns = _columns(customer_id_col, timestamp_col, amount_col)
    if columns and str(kind) != "transactions":
        raise typer.BadParameter(
            "--customer-id-col, --timestamp-col and --amount-col apply to transactions",
            param_hint="--kind",
        )
    return {
        "on_duplicate": on_duplicate.value,
        "columns": columns,
        "future_tolerance_days": future_tolerance_days,
    }


def _quiet_prefect_errors() -> None:
    """Keep Prefect's console from printing a failed run's traceback; the CLI prints the cause.

    Only the console handler is raised: the run's logs still reach the Prefect API.
    """
    import os

    if not _DEBUG["on"]:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")


class Kind(StrEnum):
    """Table kinds of the data contract."""

    transactions = "transactions"
    customers = "customers"
    sustainability = "sustainability"


class FileFormat(StrEnum):
    """Output formats of ``clv generate``."""

    parquet = "parquet"
    csv = "csv"


#: Options shared by the commands that read the optional tables.
CustomersTable = Annotated[
    str | None, typer.Option("--customers", help="Optional customers table (local or s3://).")
]
SustainabilityTable = Annotated[
    str | None,
    typer.Option("--sustainability", help="Optional sustainability table (local or s3://)."),
]
#: Option of the commands that fit learnt models (see clv.features.support).
ExtrapolatedShare = Annotated[
    float | None,
    typer.Option(
        "--max-extrapolated-share",
        help="Leave a feature without a monotone constraint out of the learnt models when more "
        "than this share (0-1] of the customers to score lie outside its values in the training "
        "windows, e.g. customer age when all customers were acquired together. Default 0.5 "
        "(chosen on CDNOW, see docs/benchmarks.md); 1 keeps every feature. Features out of "
        "range are reported either way.",
    ),
]
ZilnMembers = Annotated[
    int,
    typer.Option(
        "--ziln-members",
        min=1,
        help="Networks in Keras ZILN's deep ensemble, each trained on its own; its expected "
        "spend is their mean (Optuna trials tune one network). 1 is about 3x faster; 3 moves "
        "less with the seed (see docs/benchmarks.md).",
    ),
]
# Keras ZILN's DEFAULT_PARAMS["sigma_cap"] (a test keeps them equal; importing the model module
# here would slow every command's start).
ZILN_SIGMA_CAP = 1.5
ZilnSigmaCap = Annotated[
    float,
    typer.Option(
        "--ziln-sigma-cap",
        min=0.0,
        help="Keras ZILN's expected spend p*exp(mu + sigma^2/2) uses sigma at most this multiple "
        "of the training labels' log-spread, so a few uncertain customers cannot inflate the "
        "total; 0 keeps the network's own sigma. Intervals always use the network's sigma.",
    ),
]


def _print_out_of_range(out_of_range: dict[str, float], left_out: dict[str, float]) -> None:
    """Warn that the models extrapolate for the features most customers lie outside of."""
    if not out_of_range:
        return
    from clv.features.support import describe_shares

    shares = describe_shares(out_of_range)
    console.print(
        Text(
            f"customers outside the range the models learnt from (share of customers): {shares}",
            style="yellow",
        )
    )
    if left_out:
        console.print(Text(f"left out of the learnt models: {', '.join(left_out)}"))
    else:
        console.print(
            Text(
                "the models extrapolate there: those features have a monotone constraint or "
                "are within --max-extrapolated-share"
            )
        )


def _extrapolated_share(value: float | None) -> float | None:
    """The option's value checked; ``None`` (not given) stays ``None``: the library default."""
    if value is not None and not 0.0 < value <= 1.0:
        raise typer.BadParameter(
            f"must be in (0, 1], got {value}",
            param_hint="--max-extrapolated-share",
        )
    return value


def _fail(message: str) -> typer.Exit:
    err_console.print(Text(message, style="bold red"))
    return typer.Exit(code=1)


_TRAINING_DASK_HELP = (
    "Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: CLV_DASK_ADDRESS; neither: this "
    "machine alone). XGBoost and LightGBM tune and train on the cluster; Keras ZILN trains on "
    "one of its workers."
)


@contextlib.contextmanager
def _training_on_dask(explicit: str | None) -> Iterator[None]:
    """Inside, the tree families train on the Dask cluster at ``explicit`` / CLV_DASK_ADDRESS.

    An address that is malformed or does not answer ends the command with one line (exit 1).
    """
    from clv.distributed.cluster import DaskUnavailableError, connect, dask_address
    from clv.distributed.training import on_cluster

    try:
        address = dask_address(explicit)
        if address is None:
            yield
            return
        with connect(address) as client, on_cluster(client):
            yield
    except DaskUnavailableError as err:
        raise _fail(str(err)) from None


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
    on_duplicate: OnDuplicateOption = OnDuplicate.warn,
    future_tolerance_days: FutureTolerance = None,
    customer_id_col: CustomerIdCol = None,
    timestamp_col: TimestampCol = None,
    amount_col: AmountCol = None,
) -> None:
    """Check files against the data contract; list every problem with file, line, column, value.

    Exit code 1 when any file breaks the contract.
    """
    from clv.data.io import display_name, local_copy
    from clv.data.validation import validate_file

    read_options = _read_options(
        kind, on_duplicate, future_tolerance_days, customer_id_col, timestamp_col, amount_col
    )
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
                    **read_options,
                )
        except (FileNotFoundError, ValueError, OSError) as err:  # ValueError: malformed s3://
            err_console.print(Text(f"{uri}: {err}", style="red"))
            failed += 1
            continue
        for warning in report.warnings:
            err_console.print(Text(f"warning: {warning}", style="yellow"), soft_wrap=True)
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
    on_duplicate: OnDuplicateOption = OnDuplicate.warn,
    future_tolerance_days: FutureTolerance = None,
    customer_id_col: CustomerIdCol = None,
    timestamp_col: TimestampCol = None,
    amount_col: AmountCol = None,
) -> None:
    """Validate files and store typed copies in the warehouse, once per content (idempotent)."""
    from clv.data.ingest import ingest as ingest_file
    from clv.data.validation import ContractError

    read_options = _read_options(
        kind, on_duplicate, future_tolerance_days, customer_id_col, timestamp_col, amount_col
    )
    failed = 0
    for uri in paths:
        try:
            with err_console.status(f"ingesting {uri} ..."):
                record, added = ingest_file(
                    uri,
                    kind.value,
                    warehouse=warehouse,
                    allow_extra_columns=allow_extra_columns,
                    **read_options,
                )
        except (ContractError, FileNotFoundError, ValueError, OSError) as err:
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


def _parse_as_of(text: str | None) -> pd.Timestamp | None:
    """The one reading of ``--as-of``, shared by train, score, monitor and backtest.

    YYYY-MM-DD means "data up to the end of that day", the instant 23:59:59.999999, so every
    command cuts at the same instant. Flows receive it as ISO text with the time
    (``Timestamp.isoformat()``), which they keep.
    """
    import pandas as pd

    from clv.training.windows import end_of_day

    if text is None:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a date like 2025-06-30", param_hint="--as-of"
        ) from None
    return end_of_day(pd.Timestamp(day))


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
    customers_path: CustomersTable = None,
    sustainability_path: SustainabilityTable = None,
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
    trials: Annotated[
        int, typer.Option(min=1, help="Optuna trials per model family (1: the defaults).")
    ] = 1,
    max_extrapolated_share: ExtrapolatedShare = None,
    ziln_members: ZilnMembers = 3,
    ziln_sigma_cap: ZilnSigmaCap = ZILN_SIGMA_CAP,
    allow_extra_columns: Annotated[
        bool, typer.Option(help="Ignore columns that are not in the contract.")
    ] = False,
    folds: Annotated[
        int,
        typer.Option(
            min=1,
            help="Time-series cross-validation: repeat the backtest at this many origins, "
            "--fold-step-days apart, the latest at --as-of (1: one backtest).",
        ),
    ] = 1,
    fold_step_days: Annotated[
        int | None,
        typer.Option(min=1, help="Days between cross-validation origins (default: the horizon)."),
    ] = None,
    on_duplicate: OnDuplicateOption = OnDuplicate.warn,
    future_tolerance_days: FutureTolerance = None,
    customer_id_col: CustomerIdCol = None,
    timestamp_col: TimestampCol = None,
    amount_col: AmountCol = None,
    dask_address: Annotated[
        str | None, typer.Option("--dask-address", help=_TRAINING_DASK_HELP)
    ] = None,
) -> None:
    """Run the training pipeline on data up to --as-of and score the following horizon.

    The run is `clv train --as-of` in this process (nothing is registered); its bundles score
    the horizon as `clv score` would. Compares the registered candidate, every other one
    (XGBoost, LightGBM, the Keras ZILN net, their stacked ensemble) with BG/NBD +
    Gamma-Gamma and the naive run-rate model, plus the churn model against BG/NBD; writes
    backtest.json, backtest.md, predictions.parquet and PNG plots. With --folds N, repeats all
    of it at N rolling origins and writes cv.json and cv.md (mean ± sd over the folds, and the
    folds each model beats both references in) beside each fold's own report.
    """
    from clv.data.io import read_table
    from clv.data.validation import ContractError
    from clv.evaluation.backtest import backtest as run_backtest
    from clv.evaluation.backtest import write_backtest_report
    from clv.models.registry import SPEND_FAMILIES
    from clv.progress import reporting

    chosen = [f.strip() for f in families.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in SPEND_FAMILIES]
    if unknown or not chosen:
        raise typer.BadParameter(
            f"unknown families {unknown}; choose from {', '.join(SPEND_FAMILIES)}",
            param_hint="--families",
        )
    if fold_step_days is not None and folds == 1:
        raise typer.BadParameter(
            "a fold step needs cross-validation: add --folds 2 or more",
            param_hint="--fold-step-days",
        )
    cutoff = _parse_as_of(as_of)
    share = _extrapolated_share(max_extrapolated_share)
    read_options = _read_options(
        Kind.transactions,
        on_duplicate,
        future_tolerance_days,
        customer_id_col,
        timestamp_col,
        amount_col,
    )
    shared: dict[str, Any] = {
        "allow_extra_columns": allow_extra_columns,
        "future_tolerance_days": future_tolerance_days,
    }
    from clv.features.support import MAX_EXTRAPOLATED_SHARE

    try:
        with err_console.status("reading and validating inputs ..."):
            tx = read_table(
                transactions,
                "transactions",
                allow_extra_columns=allow_extra_columns,
                **read_options,
            )
            customers = (
                read_table(customers_path, "customers", **shared) if customers_path else None
            )
            sustainability = (
                read_table(sustainability_path, "sustainability", **shared)
                if sustainability_path
                else None
            )
        options: dict[str, Any] = {
            "customers": customers,
            "sustainability": sustainability,
            "n_windows": windows,
            "step_days": step_days,
            "families": chosen,
            "seed": seed,
            "trials": trials,
            "max_extrapolated_share": MAX_EXTRAPOLATED_SHARE if share is None else share,
            "ziln_members": ziln_members,
            "ziln_sigma_cap": ziln_sigma_cap or None,
        }
        with err_console.status("backtesting ...") as status:

            def progress(message: str) -> None:
                status.update(f"backtesting: {message} ...")

            with reporting(progress), _training_on_dask(dask_address):
                if folds > 1:
                    from clv.evaluation.crossval import cross_validate

                    validated = cross_validate(
                        tx,
                        horizon_days=horizon_days,
                        folds=folds,
                        fold_step_days=fold_step_days,
                        as_of=cutoff,
                        progress=progress,
                        **options,
                    )
                else:
                    result = run_backtest(
                        tx,
                        horizon_days=horizon_days,
                        as_of=cutoff,
                        progress=progress,
                        **options,
                    )
    except (ContractError, FileNotFoundError, ValueError) as err:
        raise _fail(str(err)) from None

    from clv.settings import get_settings

    if folds > 1:
        _report_cross_validation(validated, out)
        return

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
    _print_out_of_range(result.out_of_range, result.extrapolated_features)
    console.print(Text(f"report: {written['markdown']}  (json, predictions, plots beside it)"))


def _report_cross_validation(result: CrossValidationResult, out: Path | None) -> None:
    """Write a cross-validation's reports and print its summary table."""
    from clv.evaluation.crossval import mean_sd, write_cross_validation_report
    from clv.settings import get_settings

    n, horizon = len(result.folds), result.horizon_days
    latest = result.origins[-1]
    folder = out or get_settings().home / "backtests" / f"cv-{latest:%Y-%m-%d}-{horizon}d-{n}folds"
    written = write_cross_validation_report(result, folder)
    stats, wins = result.statistics(), result.wins()
    table = Table(
        title=f"Time-series cross-validation, {n} folds as of "
        + ", ".join(f"{o:%Y-%m-%d}" for o in result.origins)
        + f"; {horizon}-day horizon (mean ± sd; folds beating both references)"
    )
    for column in ("model", "Gini", "decile MAPE", "|aggregate error|", "wins G/D/A"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name in result.ranked_models():
        metrics = ("normalized_gini", "decile_mape", "abs_aggregate_error")
        cells = [mean_sd(stats[name][metric]) for metric in metrics]
        won = wins.get(name)
        cells.append("/".join(f"{v}" for v in won.values()) + f" of {n}" if won else "reference")
        table.add_row(name, *cells)
    console.print(table)
    console.print(Text(f"report: {written['markdown']}  (json and one folder per fold beside it)"))


def _local_orchestration_defaults() -> None:
    """Embedded defaults under the data home unless the user points at real servers.

    ``MLFLOW_TRACKING_URI`` and ``PREFECT_API_URL`` win when set. Otherwise MLflow uses SQLite
    under ``$CLV_HOME/mlflow`` (see :func:`clv.tracking.tracking_uri`) and Prefect runs an
    ephemeral server whose database lives in ``$CLV_HOME/prefect``. Must run before Prefect is
    imported: Prefect reads its settings at import.
    """
    import os

    from clv.settings import get_settings

    if not os.environ.get("PREFECT_API_URL"):
        home = get_settings().home.resolve() / "prefect"
        home.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("PREFECT_HOME", str(home))
        # The embedded server creates its database on first use; Prefect allows it 20 s, which a
        # busy 2-core machine can exceed on a fresh data home.
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_ROOT_LEVEL", "WARNING")


def _families(text: str) -> list[str]:
    from clv.models.registry import SPEND_FAMILIES

    chosen = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in SPEND_FAMILIES]
    if unknown or not chosen:
        raise typer.BadParameter(
            f"unknown families {unknown}; choose from {', '.join(SPEND_FAMILIES)}",
            param_hint="--families",
        )
    return chosen


@app.command()
def train(
    ctx: typer.Context,
    transactions: Annotated[
        str | None,
        typer.Option(
            "--transactions",
            help="Transactions file (local or s3://); a bare customer_id,timestamp,amount CSV "
            "is enough. Required, here or in --config.",
        ),
    ] = None,
    horizon_days: OptionalHorizonDays = None,
    config: ConfigFile = None,
    as_of: Annotated[
        str | None,
        typer.Option(help="Training cut-off YYYY-MM-DD (default: the last transaction's day)."),
    ] = None,
    trials: Annotated[int, typer.Option(min=1, help="Optuna trials per model family.")] = 10,
    families: Annotated[
        str, typer.Option(help="Comma-separated model families to tune.")
    ] = "xgboost,lightgbm,keras_ziln",
    customers_path: CustomersTable = None,
    sustainability_path: SustainabilityTable = None,
    windows: Annotated[int, typer.Option(min=2, help="Training cut-offs stacked.")] = 12,
    step_days: Annotated[int, typer.Option(min=1, help="Days between training cut-offs.")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    max_extrapolated_share: ExtrapolatedShare = None,
    ziln_members: ZilnMembers = 3,
    ziln_sigma_cap: ZilnSigmaCap = ZILN_SIGMA_CAP,
    on_duplicate: OnDuplicateOption = OnDuplicate.warn,
    future_tolerance_days: FutureTolerance = None,
    customer_id_col: CustomerIdCol = None,
    timestamp_col: TimestampCol = None,
    amount_col: AmountCol = None,
    dask_address: Annotated[
        str | None, typer.Option("--dask-address", help=_TRAINING_DASK_HELP)
    ] = None,
) -> None:
    """Run the training flow: tune every family with Optuna, register challengers in MLflow.

    A killed run resumes its Optuna studies when started again with the same arguments; the same
    data and configuration never register a second version. With ``--config FILE`` the settings
    come from the file (config/training.yaml lists them all) and the flags given override it.
    """
    from clv.config import load_training_config

    file = None if config is None else load_training_config(config)
    settings = _merge_config(
        ctx,
        file,
        {
            "transactions": ("transactions", transactions),
            "horizon_days": ("horizon_days", horizon_days),
            "as_of": ("as_of", as_of),
            "n_trials": ("trials", trials),
            "families": ("families", _families(families)),
            "customers": ("customers_path", customers_path),
            "sustainability": ("sustainability_path", sustainability_path),
            "n_windows": ("windows", windows),
            "step_days": ("step_days", step_days),
            "seed": ("seed", seed),
            "max_extrapolated_share": (
                "max_extrapolated_share",
                _extrapolated_share(max_extrapolated_share),
            ),
            "ziln_members": ("ziln_members", ziln_members),
            "ziln_sigma_cap": ("ziln_sigma_cap", ziln_sigma_cap or None),
            "on_duplicate": ("on_duplicate", on_duplicate.value),
            "future_tolerance_days": ("future_tolerance_days", future_tolerance_days),
            "columns.customer_id": ("customer_id_col", customer_id_col),
            "columns.timestamp": ("timestamp_col", timestamp_col),
            "columns.amount": ("amount_col", amount_col),
        },
    )
    source = _require(settings, "transactions", "--transactions", config)
    horizon = _require(settings, "horizon_days", "--horizon-days", config)
    cutoff = _parse_as_of(settings["as_of"])
    read_options = _read_options(
        Kind.transactions,
        OnDuplicate(settings["on_duplicate"]),
        settings["future_tolerance_days"],
        settings["columns.customer_id"],
        settings["columns.timestamp"],
        settings["columns.amount"],
    )
    extra: dict[str, Any] = {}
    if file is not None:
        # Settings only a file can give (no flag): TrainConfig's remaining fields.
        extra = {
            key: getattr(file, key)
            for key in ("coverage", "max_tune_rows", "max_fit_rows", "refit_final")
        }
        if (
            "max_extrapolated_share" in file.model_fields_set
            and settings["max_extrapolated_share"] is None
        ):
            settings["max_extrapolated_share"] = 1.0  # null in a file: keep every feature
    _local_orchestration_defaults()
    _quiet_prefect_errors()
    from clv.data.validation import ContractError
    from clv.progress import reporting

    try:
        from flows.training import training_flow

        with (
            err_console.status("training ...") as status,
            reporting(lambda message: status.update(f"training: {message} ...")),
            _training_on_dask(dask_address),
        ):
            result = training_flow(
                transactions=source,
                horizon_days=horizon,
                as_of=None if cutoff is None else cutoff.isoformat(),
                trials=settings["n_trials"],
                families=settings["families"],
                customers=settings["customers"],
                sustainability=settings["sustainability"],
                n_windows=settings["n_windows"],
                step_days=settings["step_days"],
                seed=settings["seed"],
                max_extrapolated_share=settings["max_extrapolated_share"],
                ziln_members=settings["ziln_members"],
                ziln_sigma_cap=settings["ziln_sigma_cap"],
                **extra,
                **read_options,
            )
    except (ContractError, FileNotFoundError, ValueError) as err:
        raise _fail(str(err)) from None
    table = Table(title="Holdout evaluation (the winner is registered)")
    for column in ("model", "Gini", "decile MAPE", "aggregate error", "top-20% lift"):
        table.add_column(column, justify="left" if column == "model" else "right")
    metrics = result["metrics"]
    for name in sorted(metrics, key=lambda m: -metrics[m]["normalized_gini"]):
        m = metrics[name]
        label = f"{name} (winner)" if name == result["winner"] else name
        table.add_row(
            label,
            f"{m['normalized_gini']:.4f}",
            f"{m['decile_mape']:.4f}",
            f"{m['aggregate_error']:+.4f}",
            f"{m['top20_lift']:.3f}",
        )
    console.print(table)
    how = "registered" if result["spend_created"] else "already registered (same data and config)"
    console.print(
        Text(
            f"clv-spend version {result['spend_version']} {how} as challenger; "
            f"clv-churn version {result['churn_version']}"
        )
    )
    _print_out_of_range(result["out_of_range"], result["extrapolated_features"])
    console.print(Text(f"MLflow: {result['links']['MLflow UI']}"))
    console.print(
        Text(f"promote it: clv promote --model clv-spend --version {result['spend_version']}")
    )


@app.command()
def promote(
    version: Annotated[
        int | None, typer.Option(min=1, help="Model version to promote to champion.")
    ] = None,
    latest: Annotated[bool, typer.Option("--latest", help="Promote the newest version.")] = False,
    model: Annotated[str, typer.Option(help="Registered model name.")] = "clv-spend",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            help="Promote even when the gate refuses (worse than the champion or a reference)."
        ),
    ] = False,
    reviewer: Annotated[
        str | None, typer.Option(help="Who approves (default: the current user).")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (recorded on the version).")] = "",
) -> None:
    """Move the ``champion`` alias to a version that passes the promotion gate.

    On the version's own holdout and primary metric (Gini for clv-spend, Brier score for
    clv-churn) it must be at least as good as the champion, scored on that same holdout (now,
    if the training run could not), and as BG/NBD + Gamma-Gamma and the run rate (BG/NBD's
    probability of no purchase for clv-churn). Otherwise it is refused (exit code 1) unless
    --force is given; a forced promotion is recorded as such.
    """
    if (version is None) == (not latest):
        raise typer.BadParameter("give exactly one of --version N or --latest")
    import getpass

    from clv import tracking
    from clv.models.base import IntegrityError

    tracking.configure()
    target: tracking.VersionInfo | None = None
    try:
        target = tracking.get_version(model, version=version, latest=latest)
        if target is None:
            what = f"version {version}" if version is not None else "any version"
            raise _fail(f"{model} has no {what}; train one with `clv train`")
        current = tracking.get_version(model, alias=tracking.CHAMPION)
        if current is not None and current.version == target.version:
            console.print(Text(f"v{target.version} is already the champion; nothing to do"))
            return
        with err_console.status("comparing with the champion and the references ..."):
            comparison = tracking.compare(model, target.version)
    except tracking.NoSuchModelError as err:
        raise _fail(str(err)) from None
    except (IntegrityError, ValueError) as err:
        which = f"v{target.version}" if target is not None else "the version"
        raise _fail(f"{model} {which} cannot be compared: {err}") from None
    champion = comparison.champion
    table = Table(
        title=f"{model}: challenger v{target.version} vs "
        + (f"champion v{champion.version}" if champion else "no champion yet")
        + " and the references, on the challenger's holdout"
    )
    for i, column in enumerate(comparison.columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in comparison.rows:
        table.add_row(*row)
    console.print(table)
    direction = "higher" if comparison.higher_is_better else "lower"
    console.print(
        Text(f"gate: {comparison.primary_metric} ({direction} is better), first row only")
    )
    if comparison.champion_scored_now and champion is not None:
        console.print(Text(f"champion v{champion.version} was scored on this holdout just now"))
    if not comparison.passed:
        message = comparison.verdict.message()
        if not force:
            raise _fail(
                f"v{target.version} is not promoted: {message}. "
                "Keep the champion, or override with --force and a --reason"
            )
        err_console.print(Text(f"overriding the gate (--force): {message}"))
    if not yes and not typer.confirm(f"Promote {model} v{target.version} to champion?"):
        raise _fail("not promoted")
    try:
        done = tracking.promote(
            model,
            target.version,
            reviewer=reviewer or getpass.getuser(),
            reason=reason,
            force=force,
        )
    except tracking.PromotionRefused as err:
        raise _fail(str(err)) from None
    console.print(Text(f"{model} v{done.version} is now the champion"))


_SCORING_DASK_HELP = (
    "Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: CLV_DASK_ADDRESS; neither: this "
    "machine alone). Features and predictions are computed on the cluster, partition by "
    "partition; --transactions may then be a folder of Parquet files (read on the workers, "
    "with the contract's defaults) and --out a local folder (partitioned Parquet)."
)
#: Names that make ``clv score --out`` one file; on a cluster, any other name is a folder.
_SCORE_FILE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


@app.command()
def score(
    transactions: Annotated[
        str, typer.Option("--transactions", help="Transactions file (local or s3://).")
    ],
    horizon_days: HorizonDays,
    out: Annotated[str, typer.Option(help="Scores file: .csv, .csv.gz or .parquet (or s3://).")],
    as_of: Annotated[
        str | None,
        typer.Option(help="Scoring cut-off YYYY-MM-DD (default: the last transaction's day)."),
    ] = None,
    alias: Annotated[str, typer.Option(help="Registry alias to score with.")] = "champion",
    customers_path: CustomersTable = None,
    sustainability_path: SustainabilityTable = None,
    on_duplicate: OnDuplicateOption = OnDuplicate.warn,
    future_tolerance_days: FutureTolerance = None,
    customer_id_col: CustomerIdCol = None,
    timestamp_col: TimestampCol = None,
    amount_col: AmountCol = None,
    dask_address: Annotated[
        str | None, typer.Option("--dask-address", help=_SCORING_DASK_HELP)
    ] = None,
) -> None:
    """Write predicted spend (with an interval) and churn probability for every customer.

    Loads ``models:/clv-spend@<alias>`` (and ``clv-churn@<alias>`` when it exists); every model
    file's SHA-256 is checked before loading. With a Dask scheduler (``--dask-address`` or
    ``CLV_DASK_ADDRESS``) the scoring runs on that cluster and gives the same scores.
    """
    import tempfile

    from clv import tracking
    from clv.data.io import read_table, write_table
    from clv.data.validation import ContractError
    from clv.progress import reporting
    from clv.training.scoring import load_registered, score_customers

    cutoff = _parse_as_of(as_of)
    read_options = _read_options(
        Kind.transactions,
        on_duplicate,
        future_tolerance_days,
        customer_id_col,
        timestamp_col,
        amount_col,
    )
    from clv.distributed.cluster import DaskUnavailableError, connect
    from clv.distributed.cluster import dask_address as scheduler_of

    try:
        address = scheduler_of(dask_address)
    except DaskUnavailableError as err:
        raise _fail(str(err)) from None
    suffix = out.lower()
    to_folder = address is not None and not suffix.endswith(_SCORE_FILE_SUFFIXES)
    if to_folder and "://" in out:
        raise typer.BadParameter(
            f"{out}: a scores folder is written on local disk; name a .parquet file to gather "
            "the scores there",
            param_hint="--out",
        )
    if not to_folder and not suffix.endswith(_SCORE_FILE_SUFFIXES):
        raise typer.BadParameter(f"{out}: use a .csv, .csv.gz or .parquet name", param_hint="--out")
    tracking.configure()
    from clv.distributed.campaigns import transactions_on_cluster

    with contextlib.ExitStack() as on_cluster:
        client = None
        if address is not None:
            try:
                client = on_cluster.enter_context(connect(address))
            except DaskUnavailableError as err:
                raise _fail(str(err)) from None
            on_cluster.enter_context(client.as_current())
        scores_ddf: Any = None
        try:
            with tempfile.TemporaryDirectory(prefix="clv-score-") as tmp:
                models = load_registered(alias, Path(tmp))
                if models.churn is None:
                    err_console.print(
                        f"no clv-churn@{alias}: churn_probability is left out "
                        "(promote one with `clv promote --model clv-churn`)"
                    )
                with err_console.status("reading and validating inputs ..."):
                    tx: Any = (  # a pandas frame here, a Dask one on a cluster
                        read_table(transactions, "transactions", **read_options)
                        if client is None
                        else transactions_on_cluster(transactions, client, read_options)
                    )
                    tolerance = read_options["future_tolerance_days"]
                    extra = {
                        "customers": read_table(
                            customers_path, "customers", future_tolerance_days=tolerance
                        )
                        if customers_path
                        else None,
                        "sustainability": read_table(
                            sustainability_path, "sustainability", future_tolerance_days=tolerance
                        )
                        if sustainability_path
                        else None,
                    }
                with (
                    err_console.status("scoring ...") as status,
                    reporting(lambda message: status.update(f"scoring: {message} ...")),
                ):
                    if client is None:
                        scores = score_customers(
                            tx,
                            spend=models.spend,
                            churn=models.churn,
                            horizon_days=horizon_days,
                            as_of=cutoff,
                            **extra,
                        )
                    else:
                        from clv.distributed.scoring import score_customers_dask

                        scores_ddf = score_customers_dask(
                            tx,
                            spend=models.spend,
                            churn=models.churn,
                            horizon_days=horizon_days,
                            as_of=cutoff,
                            customers=extra["customers"],
                            sustainability=extra["sustainability"],
                        )
                        if not to_folder:  # one file: gathered here, in customer order
                            gathered = scores_ddf.compute().sort_values("customer_id")
                            scores = gathered.reset_index(drop=True)
        except tracking.NoSuchModelError as err:
            raise _fail(str(err)) from None
        except (ContractError, FileNotFoundError, ValueError) as err:
            raise _fail(str(err)) from None
        from clv.store import Store

        if to_folder:
            n_scored, total = _write_score_folder(
                scores_ddf.assign(model_version=models.spend_version),
                out,
                model_version=str(models.spend_version),
            )
        else:
            scores["model_version"] = models.spend_version
            write_table(scores, out)
            Store().write_scores(
                scores, source=out, model_name="clv-spend", model_version=str(models.spend_version)
            )
            n_scored, total = len(scores), float(scores["predicted_clv"].sum())
    console.print(
        Text(
            f"{n_scored:,} customers scored with clv-spend@{alias} (v{models.spend_version})"
            + f"; total predicted {total:,.2f} over {horizon_days} days"
        )
    )
    console.print(Text(f"scores: {out}"))


def _write_score_folder(scores_ddf: Any, out: str, *, model_version: str) -> tuple[int, float]:
    """Partitioned Parquet in ``out`` and the stored run; the customers and their total CLV."""
    import dask.dataframe as dd

    from clv.data.validation import ContractError
    from clv.distributed.scoring import write_scores_dask
    from clv.store import Store

    try:
        write_scores_dask(
            scores_ddf,
            out,
            store=Store(),
            source=out,
            model_name="clv-spend",
            model_version=model_version,
        )
    except (ContractError, FileNotFoundError, ValueError) as err:
        raise _fail(str(err)) from None
    predicted = dd.read_parquet(out, columns=["predicted_clv"])["predicted_clv"]
    n_scored, total = dd.compute(predicted.size, predicted.sum())
    return int(n_scored), float(total)


@app.command()
def monitor(
    ctx: typer.Context,
    transactions: Annotated[
        str | None,
        typer.Option(
            "--transactions",
            help="Current transactions (local or s3://). Required, here or in --config.",
        ),
    ] = None,
    config: ConfigFile = None,
    as_of: Annotated[
        str | None,
        typer.Option(help="Feature cut-off YYYY-MM-DD (default: the last transaction's day)."),
    ] = None,
    threshold: Annotated[
        float,
        typer.Option(min=0.01, max=1.0, help="Share of drifted feature columns that is drift."),
    ] = 0.3,
    customers_path: CustomersTable = None,
    sustainability_path: SustainabilityTable = None,
    on_duplicate: OnDuplicateOption = OnDuplicate.warn,
    future_tolerance_days: FutureTolerance = None,
    customer_id_col: CustomerIdCol = None,
    timestamp_col: TimestampCol = None,
    amount_col: AmountCol = None,
) -> None:
    """Check current features for drift against the champion's reference (Evidently).

    On drift, emits the Prefect event ``clv.drift.detected``: the training deployment's trigger
    turns it into one retraining run. Prints the HTML report's path. With ``--config FILE`` the
    settings come from the file (see config/monitoring.yaml) and the flags given override it.
    """
    from clv.config import load_monitoring_config

    file = None if config is None else load_monitoring_config(config)
    settings = _merge_config(
        ctx,
        file,
        {
            "transactions": ("transactions", transactions),
            "as_of": ("as_of", as_of),
            "threshold": ("threshold", threshold),
            "customers": ("customers_path", customers_path),
            "sustainability": ("sustainability_path", sustainability_path),
            "on_duplicate": ("on_duplicate", on_duplicate.value),
            "future_tolerance_days": ("future_tolerance_days", future_tolerance_days),
            "columns.customer_id": ("customer_id_col", customer_id_col),
            "columns.timestamp": ("timestamp_col", timestamp_col),
            "columns.amount": ("amount_col", amount_col),
        },
    )
    source = _require(settings, "transactions", "--transactions", config)
    threshold = settings["threshold"]
    cutoff = _parse_as_of(settings["as_of"])
    read_options = _read_options(
        Kind.transactions,
        OnDuplicate(settings["on_duplicate"]),
        settings["future_tolerance_days"],
        settings["columns.customer_id"],
        settings["columns.timestamp"],
        settings["columns.amount"],
    )
    _local_orchestration_defaults()
    _quiet_prefect_errors()
    from clv import tracking
    from clv.data.validation import ContractError

    try:
        from flows.drift_monitoring import monitoring_flow

        result = monitoring_flow(
            transactions=source,
            as_of=None if cutoff is None else cutoff.isoformat(),
            threshold=threshold,
            customers=settings["customers"],
            sustainability=settings["sustainability"],
            **read_options,
        )
    except tracking.NoSuchModelError as err:
        raise _fail(str(err)) from None
    except (ContractError, FileNotFoundError, ValueError) as err:
        raise _fail(str(err)) from None
    share = result["share"]
    drifted = ", ".join(result["drifted_columns"]) or "none"
    verdict = "DRIFT" if result["detected"] else "no drift"
    console.print(
        Text(
            f"{verdict}: {share:.1%} of {len(result['columns_checked'])} feature columns drifted "
            f"(threshold {threshold:.0%}) against clv-spend v{result['champion_version']}"
        )
    )
    console.print(Text(f"drifted columns: {drifted}"), soft_wrap=True)
    if result["detected"]:
        console.print(Text("emitted clv.drift.detected (the training deployment retrains on it)"))
    console.print(Text(f"report: {result['report_path']}"), soft_wrap=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
) -> None:
    """Serve the API (predictions, segments, customers, campaigns) with uvicorn.

    Needs ``CLV_API_KEYS``; serves ``models:/clv-spend@champion`` (and the churn champion), the
    latest stored scores and the active segmentation, and picks up a new champion, new scores
    or a newly activated segmentation without a restart (every ``CLV_API_POLL_SECONDS``).
    """
    import uvicorn
    from pydantic import ValidationError

    from clv.api.settings import ApiSettings

    try:
        settings = ApiSettings()
    except ValidationError as err:
        first = err.errors()[0]
        raise _fail(f"CLV_API_{str(first['loc'][0]).upper()}: {first['msg']}") from None
    if not settings.keys:
        raise _fail("no API key configured: set CLV_API_KEYS to one or more comma-separated keys")
    uvicorn.run(
        "clv.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        proxy_headers=False,
        server_header=False,
    )


@app.command()
def status(
    scores: Annotated[
        Path | None,
        typer.Option(help="Scores file written by 'clv score' (default: none shown)."),
    ] = None,
) -> None:
    """Show what the platform holds: champions and their holdout metrics, scores, last drift."""
    from clv import status as platform
    from clv import tracking
    from clv.settings import get_settings
    from monitoring.metrics import default_textfile

    home = get_settings().home
    table = Table(title="CLV platform status", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    try:
        spend = platform.model_status(tracking.SPEND_MODEL)
        churn = platform.model_status(tracking.CHURN_MODEL)
        scored = platform.scores_status(scores) if scores is not None else None
    except (OSError, ValueError) as err:
        raise _fail(str(err)) from None
    for model in (spend, churn):
        if model is None:
            continue
        role = "champion" if model.is_champion else "newest (no champion yet)"
        family = f", {model.family}" if model.family else ""
        as_of = f", as of {model.as_of[:10]}" if model.as_of else ""
        table.add_row(model.name, f"v{model.version} {role}{family}{as_of}")
        m = model.metrics
        if platform.GINI in m:
            versus = m.get(platform.BTYD_GINI)
            reference = f" vs BG/NBD + Gamma-Gamma {versus:.3f}" if versus is not None else ""
            table.add_row("  holdout Gini", f"{m[platform.GINI]:.3f}{reference}")
        if platform.BRIER in m:
            table.add_row("  holdout Brier", f"{m[platform.BRIER]:.4f}")
    if spend is None and churn is None:
        table.add_row("models", "none registered: run 'clv train'")
    if scored is not None:
        churn_text = (
            f", mean churn probability {scored.mean_churn_probability:.1%}"
            if scored.mean_churn_probability is not None
            else ""
        )
        table.add_row(
            "scores",
            f"{scored.rows:,} customers, total predicted CLV {scored.total_predicted_clv:,.2f}"
            f"{churn_text}",
        )
        table.add_row("  file", str(scored.path))
    elif scores is not None:
        table.add_row("scores", f"{scores} does not exist: run 'clv score'")
    try:
        drift = platform.drift_status(default_textfile(), home / "monitoring" / "reports")
    except ValueError as err:
        raise _fail(f"{default_textfile()}: {err}") from None
    if drift is None:
        table.add_row("drift", "not checked yet: run 'clv monitor'")
    else:
        columns = f" ({drift.drifted_columns} columns)" if drift.drifted_columns is not None else ""
        when = f", checked {drift.checked_at:%Y-%m-%d %H:%M} UTC" if drift.checked_at else ""
        table.add_row("drift", f"{drift.share:.0%} of feature columns drifted{columns}{when}")
        if drift.report is not None:
            table.add_row("  report", str(drift.report))
        table.add_row("  metrics", str(drift.textfile))
    from clv.store import Store

    segment_store = Store()
    active = segment_store.active()
    pending = [v.version for v in segment_store.versions() if v.status == "pending"]
    if active is None:
        table.add_row(
            "segments", "no active version: 'clv segment run', then 'clv segment approve'"
        )
    else:
        how = " automatically" if active.automatic else f" by {active.decided_by}"
        table.add_row(
            "segments",
            f"version {active.version} active ({active.method}, {active.n_segments} segments, "
            f"{active.n_customers:,} customers), approved{how}",
        )
    if pending:
        table.add_row(
            "  pending", ", ".join(f"version {v}" for v in pending) + ": 'clv segment review'"
        )
    table.add_row("data home", str(home))
    table.add_row("MLflow", tracking.ui_hint())
    console.print(table)


from clv.cli_campaign import campaign_app  # noqa: E402 (it reads this module's helpers)
from clv.cli_campaign_events import events_command  # noqa: E402,F401 (registers the command)
from clv.cli_campaign_simulate import simulate_command  # noqa: E402,F401 (registers the command)
from clv.cli_experiment import experiment_app  # noqa: E402 (it reads this module's helpers)
from clv.cli_segment import segment_app  # noqa: E402 (it reads this module's helpers)

app.add_typer(segment_app, name="segment")
app.add_typer(experiment_app, name="experiment")
app.add_typer(campaign_app, name="campaign")


def main() -> None:
    """Entry point for ``python -m clv``."""
    app()
