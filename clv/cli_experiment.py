"""``clv experiment``: analyse an A/B(/n) test from a file, and size one before it starts.

``clv experiment analyze DATA`` reads one row per unit (CSV, CSV.gz or Parquet; local or
``s3://``) and prints :func:`clv.experiments.analyze`'s verdict: a table of every variant against
the control, the sample ratio check, CUPED and guardrails, and the winner (or why there is none).
``--json`` prints exactly ``ExperimentResult.to_dict()``, the contract the API and campaigns share.

``clv experiment size`` gives the units per variant for a minimum detectable effect, or the
minimum detectable effect of a given number of units (:mod:`clv.experiments.power`).

Exit codes: 0 when the analysis (or the sizing) ran, winner or not; 1 when the file cannot be
read; 2 for input the experiments package refuses (:class:`~clv.experiments.ExperimentInputError`:
its message says what and where) and for wrong usage.
"""

from __future__ import annotations

import contextlib
import json
import re
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    import pandas as pd

    from clv.experiments.analysis import EffectSummary, ExperimentResult

experiment_app = typer.Typer(
    name="experiment",
    help="Analyse A/B tests (frequentist, sequential or Bayesian; CUPED, guardrails, SRM) and "
    "size them before they start.",
    no_args_is_help=True,
)

#: Exit status for input the experiments package refuses (see ``ExperimentInputError``).
INPUT_ERROR_EXIT = 2
_CSV_SUFFIXES = (".csv", ".csv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_ROW = re.compile(r"^row (\d+)\b")
# The power functions' argument names, as the flags a user typed.
_FLAG_NAMES = {
    "baseline_rate": "--baseline-rate",
    "baseline_mean": "--baseline-mean",
    "baseline_sd": "--baseline-sd",
    "n_per_variant": "--n",
}


class Method(StrEnum):
    """How the variants are compared (``clv.experiments.analysis.METHODS``)."""

    frequentist = "frequentist"
    sequential = "sequential"
    bayesian = "bayesian"


class Correction(StrEnum):
    """Adjustment of the p-values across variants (``clv.experiments.analysis.CORRECTIONS``)."""

    holm = "holm"
    bh = "bh"
    by = "by"
    bonferroni = "bonferroni"
    sidak = "sidak"
    holm_sidak = "holm-sidak"
    hochberg = "hochberg"
    none = "none"


class MetricType(StrEnum):
    """What the metric is; ``auto`` treats a 0/1 column as a proportion."""

    auto = "auto"
    mean = "mean"
    proportion = "proportion"


def _cli() -> Any:
    from clv import cli

    return cli


def _fail(message: str) -> typer.Exit:
    exit_: typer.Exit = _cli()._fail(message)
    return exit_


def _refused(message: str) -> typer.Exit:
    """Print a message of ``ExperimentInputError`` and return the exit to raise."""
    _cli().err_console.print(Text(message, style="bold red"), soft_wrap=True)
    return typer.Exit(code=INPUT_ERROR_EXIT)


# --------------------------------------------------------------------------- reading the data


def _format_of(name: str) -> str:
    lower = name.lower()
    if lower.endswith(_CSV_SUFFIXES):
        return "csv"
    if lower.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    raise _fail(
        f"{name}: not a CSV (.csv, .csv.gz) or Parquet (.parquet) file; give one row per unit "
        "in one of those formats"
    )


def _read(path: Path, name: str, kind: str) -> pd.DataFrame:
    import pandas as pd

    try:
        if kind == "csv":
            # low_memory=False: each column's type is inferred from the whole column, not chunks.
            return pd.read_csv(path, low_memory=False)
        return pd.read_parquet(path)
    except Exception as err:  # a corrupt file fails in many libraries' own ways
        what = "CSV" if kind == "csv" else "Parquet"
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise _fail(f"{name}: cannot be read as {what} ({detail})") from None


def _csv_line(path: Path, row: int) -> int | None:
    """The file line where data row ``row`` (1-based, as pandas counts) starts, if it can be told.

    Read only when a message names a row: pandas skips blank lines and a quoted field may span
    lines, so the line is not always ``row + 1``.
    """
    import csv
    import gzip

    try:
        with (
            gzip.open(path, "rt", newline="", encoding="utf-8", errors="replace")
            if path.name.lower().endswith(".gz")
            else path.open(newline="", encoding="utf-8", errors="replace")
        ) as handle:
            reader = csv.reader(handle)
            header_seen = False
            data_rows = 0
            while True:
                start = reader.line_num + 1
                record = next(reader, None)
                if record is None:
                    return None
                if not record or (len(record) == 1 and not record[0].strip()):
                    continue  # a blank line: pandas skips it
                if not header_seen:
                    header_seen = True
                    continue
                data_rows += 1
                if data_rows == row:
                    return start
    except (OSError, EOFError, csv.Error):
        return None


def _located(message: str, path: Path, kind: str) -> str:
    """Add the file line to a CSV message that names a row."""
    found = _ROW.match(message)
    if kind != "csv" or found is None:
        return message
    row = int(found.group(1))
    line = _csv_line(path, row)
    where = f"line {line} of the file" if line is not None else "counted from the first data row"
    return f"{message[: found.end()]} ({where}){message[found.end() :]}"


def _guardrail_map(values: list[str]) -> dict[str, str]:
    """``COL`` or ``COL:higher`` / ``COL:lower`` (which direction is better) per --guardrail."""
    guardrails: dict[str, str] = {}
    for value in values:
        name, sep, better = value.rpartition(":")
        if not sep:
            name, better = value, "higher"
        name, better = name.strip(), better.strip().lower()
        if not name or better not in ("higher", "lower"):
            raise typer.BadParameter(
                f"{value!r}: give COLUMN, COLUMN:higher or COLUMN:lower (which direction is "
                "better for the guardrail)",
                param_hint="--guardrail",
            )
        if name in guardrails:
            raise typer.BadParameter(f"{name!r} is given twice", param_hint="--guardrail")
        guardrails[name] = better
    return guardrails


# --------------------------------------------------------------------------- analyze


@experiment_app.command("analyze")
def analyze_command(
    data: Annotated[
        str,
        typer.Argument(
            help="One row per unit: .csv, .csv.gz or .parquet, local or s3://.",
            show_default=False,
        ),
    ],
    metric: Annotated[str, typer.Option(help="The primary metric's column.", show_default=False)],
    variant_col: Annotated[str, typer.Option(help="Column of each unit's variant.")] = "variant",
    control: Annotated[str, typer.Option(help="The control variant's name.")] = "control",
    covariate: Annotated[
        str | None, typer.Option(help="Pre-period column for CUPED (e.g. pre-period spend).")
    ] = None,
    denominator: Annotated[
        str | None,
        typer.Option(
            help="Make the metric a ratio of sums, e.g. --metric revenue --denominator orders "
            "for revenue per order (not with --covariate)."
        ),
    ] = None,
    method: Annotated[
        Method,
        typer.Option(
            help="Fixed-horizon tests, always-valid confidence sequences (peek any time), or a "
            "Gaussian-prior posterior (chance to win, expected loss)."
        ),
    ] = Method.frequentist,
    alpha: Annotated[float, typer.Option(help="Significance level; intervals are 1 - alpha.")] = (
        0.05
    ),
    correction: Annotated[
        Correction,
        typer.Option(
            help="Multiple-comparison correction across variants: holm, hochberg, bonferroni, "
            "sidak and holm-sidak bound the family-wise error; bh and by the false discovery rate."
        ),
    ] = Correction.holm,
    expected_shares: Annotated[
        str | None,
        typer.Option(
            help="Planned shares for the sample ratio check, e.g. control=0.5,treatment=0.5 "
            "(default: equal)."
        ),
    ] = None,
    metric_type: Annotated[
        MetricType, typer.Option(help="auto treats a 0/1 metric as a proportion.")
    ] = MetricType.auto,
    lower_is_better: Annotated[
        bool, typer.Option("--lower-is-better", help="The metric improves when it falls.")
    ] = False,
    guardrail: Annotated[
        list[str] | None,
        typer.Option(
            "--guardrail",
            help="A metric that must not be significantly harmed: COLUMN (higher is better) or "
            "COLUMN:lower. Repeat for several.",
        ),
    ] = None,
    unit_col: Annotated[
        str | None, typer.Option(help="Unit id column; a unit that appears twice is an error.")
    ] = None,
    srm_threshold: Annotated[
        float, typer.Option(help="Flag a sample ratio mismatch below this χ² p-value.")
    ] = 0.001,
    prior_sd: Annotated[
        float | None,
        typer.Option(help="Bayesian: prior sd of the relative effect (default: a flat prior)."),
    ] = None,
    prior_mean: Annotated[
        float, typer.Option(help="Bayesian: prior mean of the relative effect.")
    ] = 0.0,
    chance_to_win: Annotated[
        float, typer.Option(help="Bayesian: the chance to beat the control a winner needs.")
    ] = 0.95,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON (the API's contract).")
    ] = False,
) -> None:
    """Compare every variant with the control on one metric and say whether there is a winner.

    Exit code 0 whenever the analysis ran, with or without a winner.
    """
    from clv.data.io import display_name, local_copy
    from clv.experiments.analysis import analyze, parse_shares
    from clv.experiments.errors import ExperimentInputError

    name = display_name(data)
    kind = _format_of(name)
    guardrails = _guardrail_map(guardrail or [])
    shares = None
    if expected_shares is not None:
        try:
            shares = parse_shares(expected_shares)
        except ExperimentInputError as err:
            raise typer.BadParameter(str(err), param_hint="--expected-shares") from None
    err_console = _cli().err_console
    with contextlib.ExitStack() as stack:
        try:
            path = stack.enter_context(local_copy(data))
        except OSError as err:  # missing file, a folder, no permission, S3 unreachable
            raise _fail(str(err) if name in str(err) else f"{name}: {err}") from None
        with err_console.status(f"reading {name} ..."):
            frame = _read(path, name, kind)
        with err_console.status(f"analysing {len(frame):,} units ..."):
            try:
                result = analyze(
                    frame,
                    metric=metric,
                    variant_col=variant_col,
                    control=control,
                    covariate=covariate,
                    denominator=denominator,
                    method=method.value,
                    alpha=alpha,
                    correction=correction.value,
                    expected_shares=shares,
                    metric_type=metric_type.value,
                    lower_is_better=lower_is_better,
                    guardrails=guardrails or None,
                    unit_col=unit_col,
                    srm_threshold=srm_threshold,
                    prior_mean=prior_mean,
                    prior_sd=prior_sd,
                    chance_to_win_threshold=chance_to_win,
                )
            except ExperimentInputError as err:
                # Inside the copy's lifetime: locating a CSV row reads the file again.
                raise _refused(f"{name}: {_located(str(err), path, kind)}") from None
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
        return
    _print_result(result, source=name)


def _number(value: float | None) -> str:
    if value is None or value != value:
        return "–"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 1 or value == 0:
        return f"{value:,.2f}"
    return f"{value:.3g}"


def _decimals(*values: float | None) -> int:
    """Decimals that show the largest of ``values`` with about three significant digits."""
    import math

    scale = max((abs(v) for v in values if v is not None and math.isfinite(v)), default=0.0)
    if scale >= 100 or scale == 0:
        return 0 if scale >= 1000 else 2
    return max(2, 2 - math.floor(math.log10(scale)))


def _signed(value: float | None, decimals: int) -> str:
    if value is None or value != value:
        return "–"
    return f"{value:+,.{decimals}f}"


def _percent(value: float | None, *, signed: bool = True) -> str:
    if value is None or value != value:
        return "–"
    return f"{value:+.1%}" if signed else f"{value:.1%}"


def _p(value: float | None) -> str:
    if value is None or value != value:
        return "–"
    return "<0.0001" if value < 0.0001 else f"{value:.4f}"


def _effect_cell(summary: EffectSummary, *, proportion: bool) -> Text:
    """The absolute effect and its interval, on one scale (percentage points for a rate)."""
    if summary.estimate is None:
        return Text("–")
    scale = 100.0 if proportion else 1.0
    values = [
        None if v is None else scale * v
        for v in (summary.estimate, summary.ci_low, summary.ci_high)
    ]
    decimals = _decimals(*values)
    low, high = (_signed(v, decimals) for v in values[1:])
    return Text(f"{_signed(values[0], decimals)}\n[{low}, {high}]")


def _lift_cell(summary: EffectSummary) -> Text:
    if summary.estimate is None:
        return Text("–")
    low, high = _percent(summary.ci_low), _percent(summary.ci_high)
    return Text(f"{_percent(summary.estimate)}\n[{low}, {high}]")


def _result_table(result: ExperimentResult) -> Table:
    bayesian = result.method == "bayesian"
    proportion = result.metric_type == "proportion"
    level = f"{(1 - result.alpha) * 100:g}%"
    interval = {
        "frequentist": f"{level} confidence interval",
        "sequential": f"{level} always-valid confidence sequence",
        "bayesian": f"{level} credible interval",
    }[result.method]
    better = "lower" if result.lower_is_better else "higher"
    title = repr(result.metric)
    if result.denominator is not None:
        title += f" per {result.denominator!r}"
    table = Table(title=f"{title} by variant ({result.method}, {better} is better)")
    table.add_column("variant", overflow="fold", max_width=16)
    table.add_column("n", justify="right", no_wrap=True)
    level = "rate" if proportion else "ratio" if result.denominator is not None else "mean"
    table.add_column(level, justify="right", no_wrap=True)
    table.add_column("effect (pp)" if proportion else "effect", justify="right", no_wrap=True)
    table.add_column("lift", justify="right", no_wrap=True)
    if bayesian:
        table.add_column("P(win)", justify="right", no_wrap=True)
        table.add_column("exp. loss", justify="right", no_wrap=True)
    else:
        table.add_column("p", justify="right", no_wrap=True)
        table.add_column("adj. p", justify="right", no_wrap=True)
    table.add_column("sig.", justify="left", no_wrap=True)

    def mean_cell(value: float) -> str:
        return _percent(value, signed=False) if proportion else _number(value)

    table.add_row(
        Text(result.control),
        f"{result.control_n:,}",
        mean_cell(result.control_mean),
        "(control)",
        "",
        "",
        "",
        "",
    )
    sign = -1.0 if result.lower_is_better else 1.0
    for variant in result.variants:
        if variant.significant:
            verdict = "better" if sign * (variant.absolute.estimate or 0.0) > 0 else "worse"
        else:
            verdict = "no"
        if bayesian:
            last = (_percent(variant.chance_to_win, signed=False), _percent(variant.expected_loss))
        else:
            last = (_p(variant.absolute.p_value), _p(variant.p_value_adjusted))
        table.add_row(
            Text(variant.variant),
            f"{variant.n:,}",
            mean_cell(variant.mean),
            _effect_cell(variant.absolute, proportion=proportion),
            _lift_cell(variant.relative),
            *last,
            Text(verdict, style={"better": "green", "worse": "red"}.get(verdict, "")),
        )
    effect = "treatment − control" + (" in percentage points" if proportion else "")
    if result.cuped is not None:
        effect += f", CUPED-adjusted on {result.cuped['covariate']!r}"
    adjusted = (
        "P(win): chance to beat the control; exp. loss: expected relative loss if chosen"
        if bayesian
        else "adj. p: "
        + ("no correction" if result.correction == "none" else f"{result.correction}-adjusted")
    )
    table.caption = (
        f"effect: {effect}; lift: relative to the control; [{interval}]; {adjusted}; "
        f"sig.: significantly better / worse than the control"
    )
    return table


def _srm_line(result: ExperimentResult) -> Text:
    detail = "observed (planned): " + ", ".join(
        f"{name} {count:,} ({result.expected_shares[name]:.1%})"
        for name, count in result.observed_counts.items()
    )
    if result.srm_mismatch:
        return Text(
            f"sample ratio MISMATCH: χ² p = {result.srm_p_value:.2g} < {result.srm_threshold:g}; "
            f"{detail}",
            style="bold red",
        )
    return Text(f"sample ratio: ok, χ² p = {result.srm_p_value:.3g}; {detail}")


def _guardrail_lines(result: ExperimentResult) -> list[Text]:
    lines: list[Text] = []
    for g in result.guardrails:
        head = f"guardrail {g.metric!r} ({g.better} is better), {g.variant}: "
        if g.absolute.estimate is None:
            lines.append(Text(head + "constant in every variant, not harmed"))
            continue
        change = (
            f"lift {_percent(g.relative.estimate)} "
            f"[{_percent(g.relative.ci_low)}, {_percent(g.relative.ci_high)}]"
            if g.relative.estimate is not None
            else f"change {_signed(g.absolute.estimate, _decimals(g.absolute.estimate))}"
        )
        state = "HARMED" if g.harmed else "not harmed"
        lines.append(
            Text(
                f"{head}{change}, adj. p {_p(g.p_value_adjusted)}: {state}",
                style="bold red" if g.harmed else "",
            )
        )
    return lines


def _print_result(result: ExperimentResult, *, source: str) -> None:
    console = _cli().console
    console.print(_result_table(result))
    console.print(_srm_line(result))
    if result.cuped is not None:
        console.print(
            Text(
                f"CUPED on {result.cuped['covariate']!r}: θ = {result.cuped['theta']:.4g}, "
                f"variance reduced by {result.cuped['variance_reduction']:.1%}"
            )
        )
    for line in _guardrail_lines(result):
        console.print(line)
    if result.winner is not None:
        console.print(Text(f"verdict: {result.winner} wins", style="bold green"))
    else:
        console.print(Text("verdict: no winner", style="bold yellow"))
    console.print(Text(result.reason))
    console.print(Text(f"data: {source}", style="dim"))


# --------------------------------------------------------------------------- size


def _flag_names(message: str) -> str:
    """The power functions' argument names in a message as the flags: ``--baseline-rate 0.05``."""
    for name, flag in {"mde": "--mde", **_FLAG_NAMES}.items():
        message = re.sub(rf"\b{name}=", f"{flag} ", message)
    for name, flag in _FLAG_NAMES.items():
        message = re.sub(rf"\b{name}\b", flag, message)
    return message


@experiment_app.command("size")
def size(
    mde: Annotated[
        float | None,
        typer.Option(help="Minimum detectable effect, relative: 0.05 is +5 % on the baseline."),
    ] = None,
    n: Annotated[
        int | None,
        typer.Option("--n", help="Units per variant: print the minimum detectable effect instead."),
    ] = None,
    baseline_rate: Annotated[
        float | None, typer.Option(help="The control's rate (a conversion rate, 0-1).")
    ] = None,
    baseline_mean: Annotated[
        float | None, typer.Option(help="The control's mean (with --baseline-sd).")
    ] = None,
    baseline_sd: Annotated[
        float | None, typer.Option(help="The metric's standard deviation per unit.")
    ] = None,
    alpha: Annotated[
        float, typer.Option(help="Significance level (two-sided, shared by the comparisons).")
    ] = 0.05,
    power: Annotated[float, typer.Option(help="Chance of detecting the effect.")] = 0.8,
    variants: Annotated[
        int, typer.Option(min=2, help="Arms, the control included (comparisons: arms − 1).")
    ] = 2,
    as_json: Annotated[
        bool,
        typer.Option("--json", help='Print {"n_per_variant": N} (or {"mde": M} with --n).'),
    ] = False,
) -> None:
    """Units per variant to detect --mde, or the minimum detectable effect of --n units.

    Give --baseline-rate for a rate metric, or --baseline-mean and --baseline-sd for a mean.
    """
    from clv.experiments.errors import ExperimentInputError
    from clv.experiments.power import minimum_detectable_effect, sample_size

    rate = baseline_rate is not None
    mean = baseline_mean is not None or baseline_sd is not None
    if rate == mean:
        raise typer.BadParameter(
            "give --baseline-rate (a rate metric) or --baseline-mean with --baseline-sd "
            "(a mean metric)" + (", not both" if rate else ""),
            param_hint="--baseline-rate",
        )
    if mean and (baseline_mean is None or baseline_sd is None):
        missing = "--baseline-sd" if baseline_sd is None else "--baseline-mean"
        raise typer.BadParameter(
            "--baseline-mean and --baseline-sd go together", param_hint=missing
        )
    if (mde is None) == (n is None):
        raise typer.BadParameter(
            "give --mde (to get the units per variant) or --n (to get the minimum detectable "
            "effect)" + (", not both" if mde is not None else ""),
            param_hint="--mde",
        )
    baseline: dict[str, float | None] = {
        "baseline_rate": baseline_rate,
        "baseline_mean": baseline_mean,
        "baseline_sd": baseline_sd,
    }
    comparisons = variants - 1
    try:
        if n is None:
            needed = sample_size(
                mde=float(mde or 0.0), alpha=alpha, power=power, comparisons=comparisons, **baseline
            )
        else:
            effect = minimum_detectable_effect(
                n, alpha=alpha, power=power, comparisons=comparisons, **baseline
            )
    except ExperimentInputError as err:
        raise _refused(_flag_names(str(err))) from None
    if as_json:
        typer.echo(json.dumps({"n_per_variant": needed} if n is None else {"mde": effect}))
        return
    if baseline_rate is not None:
        base, described = baseline_rate, f"baseline rate {baseline_rate:.4g}"
    else:
        base = float(baseline_mean or 0.0)
        described = f"baseline mean {base:,.4g} (sd {baseline_sd or 0.0:,.4g})"
    test = (
        f"alpha {alpha:g} two-sided"
        + (f", split over {comparisons} comparisons (Bonferroni)" if comparisons > 1 else "")
        + f", power {power:.0%}"
    )
    console = _cli().console
    if n is None:
        relative = float(mde or 0.0)
        console.print(
            Text(
                f"{needed:,} units per variant, {needed * variants:,} in all for {variants} "
                "variants",
                style="bold",
            )
        )
        console.print(
            Text(
                f"to detect {relative:+.2%} on the {described} (→ {base * (1 + relative):,.4g}); "
                f"{test}"
            )
        )
    else:
        console.print(
            Text(f"minimum detectable effect: {effect:+.2%} with {n:,} units per variant", "bold")
        )
        console.print(
            Text(
                f"on the {described} (→ {base * (1 + effect):,.4g}), {variants} variants "
                f"({n * variants:,} units in all); {test}"
            )
        )


# --------------------------------------------------------------------------- assign and metrics


def _read_ids(uri: str, id_col: str, role: str) -> list[str]:
    """The unit ids of a CSV or Parquet file, as strings (leading zeros kept)."""
    import pandas as pd

    from clv.data.io import display_name, local_copy

    name = display_name(uri)
    kind = _format_of(name)
    try:
        with local_copy(uri) as path:
            try:
                if kind == "csv":
                    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
                else:
                    frame = pd.read_parquet(path)
            except Exception as err:  # a corrupt file fails in many libraries' own ways
                detail = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
                raise _fail(f"{name}: cannot be read ({detail})") from None
    except OSError as err:
        raise _fail(str(err) if name in str(err) else f"{name}: {err}") from None
    if id_col not in frame.columns:
        raise _fail(
            f"{name}: the {role} need an id column {id_col!r} (columns: "
            f"{', '.join(map(str, frame.columns[:20]))}); name it with --id-col"
        )
    ids = frame[id_col]
    blank = ids.isna() | (ids.astype(str).str.strip() == "")
    if blank.any():
        row = int(blank.to_numpy().argmax())
        raise _fail(f"{name}: row {row + 1}, column {id_col!r}: the id is missing")
    return [str(value) for value in ids]


def _parse_variants(text: str) -> list[str] | dict[str, float]:
    from clv.experiments.analysis import parse_shares
    from clv.experiments.errors import ExperimentInputError

    if "=" not in text:
        names = [part.strip() for part in text.split(",") if part.strip()]
        if not names:
            raise typer.BadParameter("name at least one variant", param_hint="--variants")
        return names
    try:
        return parse_shares(text)
    except ExperimentInputError as err:
        raise typer.BadParameter(
            str(err).replace("expected shares", "variants"), param_hint="--variants"
        ) from None


@experiment_app.command("assign")
def assign_command(
    units: Annotated[
        str,
        typer.Argument(
            help="Units to assign: .csv or .parquet with an id column (e.g. customers.parquet).",
            show_default=False,
        ),
    ],
    key: Annotated[
        str, typer.Option(help="The experiment's key: it seeds the hash.", show_default=False)
    ],
    out: Annotated[
        str, typer.Option(help="Where to write customer_id,variant (.csv or .parquet).")
    ],
    id_col: Annotated[str, typer.Option(help="The id column of UNITS.")] = "customer_id",
    variants: Annotated[
        str,
        typer.Option(
            help="Variant names with equal weights (control,treatment) or weights "
            "(control=0.5,treatment=0.3,bold=0.2)."
        ),
    ] = "control,treatment",
    holdout: Annotated[
        float, typer.Option(help="Share kept out of every variant first (e.g. 0.1).")
    ] = 0.0,
    salt: Annotated[str, typer.Option(help="Extra salt, to re-randomise the same key.")] = "",
    exclude: Annotated[
        str | None,
        typer.Option(help="A .csv/.parquet of ids (same --id-col) to leave out."),
    ] = None,
) -> None:
    """Assign units to variants by a salted hash: the same key and id give the same variant.

    The holdout is carved out before the variants, so changing the weights later never moves a
    unit into or out of it. Re-running writes the same file.
    """
    import pandas as pd

    from clv.data.io import write_table
    from clv.experiments.assignment import assign
    from clv.experiments.errors import ExperimentInputError

    if not out.lower().endswith((*_CSV_SUFFIXES, *_PARQUET_SUFFIXES)):
        raise typer.BadParameter(f"{out}: use a .csv or .parquet name", param_hint="--out")
    parsed = _parse_variants(variants)
    ids = _read_ids(units, id_col, "units")
    excluded = _read_ids(exclude, id_col, "exclusions") if exclude else None
    try:
        result = assign(
            ids, key, variants=parsed, holdout_share=holdout, salt=salt, exclude=excluded
        )
    except ExperimentInputError as err:
        raise _refused(f"{units}: {err}") from None
    frame = pd.DataFrame({"customer_id": result.index.astype(str), "variant": result.to_numpy()})
    write_table(frame, out)
    counts = frame["variant"].value_counts()
    table = Table(title=f"experiment {key!r}: {len(frame):,} units assigned")
    table.add_column("variant")
    table.add_column("units", justify="right")
    table.add_column("share", justify="right")
    for name, count in counts.sort_index().items():
        table.add_row(str(name), f"{count:,}", f"{count / max(len(frame), 1):.1%}")
    console = _cli().console
    console.print(table)
    if excluded:
        console.print(f"excluded: {len(ids) - len(frame):,} units")
    console.print(f"written: {out}")


@experiment_app.command("metrics")
def metrics_command(
    assignments: Annotated[
        str,
        typer.Argument(
            help="customer_id,variant (.csv or .parquet), e.g. from `clv experiment assign`.",
            show_default=False,
        ),
    ],
    transactions: Annotated[
        str, typer.Option(help="Contract transactions (.csv or .parquet, local or s3://).")
    ],
    out: Annotated[str, typer.Option(help="One row per unit (.csv or .parquet).")],
    start: Annotated[
        str | None, typer.Option(help="First day of the experiment (default: END - DAYS).")
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(help="Day after the last one (default: the day after the last transaction)."),
    ] = None,
    days: Annotated[float, typer.Option(help="Window length when --start is not given.")] = 30,
    pre_days: Annotated[
        float | None,
        typer.Option(help="Pre-period length for pre_spend (default: the window's length)."),
    ] = None,
) -> None:
    """Per-unit revenue, orders and conversion in the window, and pre-period spend for CUPED.

    The output feeds ``clv experiment analyze OUT --metric revenue --covariate pre_spend``.
    """
    import pandas as pd

    from clv.data.io import display_name, local_copy, read_table, write_table
    from clv.data.validation import ContractError
    from clv.experiments.errors import ExperimentInputError
    from clv.experiments.metrics import unit_metrics

    if not out.lower().endswith((*_CSV_SUFFIXES, *_PARQUET_SUFFIXES)):
        raise typer.BadParameter(f"{out}: use a .csv or .parquet name", param_hint="--out")
    if not days > 0:
        raise typer.BadParameter(f"must be positive (got {days})", param_hint="--days")
    name = display_name(assignments)
    kind = _format_of(name)
    try:
        with local_copy(assignments) as path:
            frame = (
                pd.read_csv(path, dtype=str, keep_default_na=False)
                if kind == "csv"
                else _read(path, name, kind)
            )
    except OSError as err:
        raise _fail(str(err) if name in str(err) else f"{name}: {err}") from None
    err_console = _cli().err_console
    try:
        with err_console.status("reading and validating transactions ..."):
            tx = read_table(transactions, "transactions")
    except (ContractError, FileNotFoundError, ValueError, OSError) as err:
        raise _fail(str(err)) from None
    try:
        finish = (
            pd.Timestamp(end)
            if end is not None
            else (tx["timestamp"].max().normalize() + pd.Timedelta(days=1))
        )
        begin = pd.Timestamp(start) if start is not None else finish - pd.Timedelta(days=days)
    except (TypeError, ValueError) as err:
        raise typer.BadParameter(f"not a date ({err})", param_hint="--start/--end") from None
    try:
        metrics = unit_metrics(frame, tx, start=begin, end=finish, pre_period_days=pre_days)
    except ExperimentInputError as err:
        raise _refused(f"{name}: {err}") from None
    write_table(metrics, out)
    console = _cli().console
    console.print(
        f"{len(metrics):,} units, window {begin:%Y-%m-%d} to {finish:%Y-%m-%d} (exclusive), "
        f"pre-period {pre_days if pre_days is not None else (finish - begin).days:g} days: "
        f"{int(metrics['converted'].sum()):,} bought, revenue {metrics['revenue'].sum():,.2f}"
    )
    console.print(f"written: {out}")
