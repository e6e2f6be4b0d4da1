"""The validation gate: every file and frame enters the platform through here.

Problems are reported the way a person fixes them: which file, which line (CSV, counting the header
as line 1) or row (Parquet and in-memory frames, 1-based), which column, the offending value and
why it is wrong, e.g.::

    transactions.csv line 1043, column 'amount': 'abc' is not a number

All problems are collected up to a limit (``CLV_MAX_REPORTED_ERRORS``); the total is always counted.
Inside the library the contract is trusted: functions downstream of this gate do not re-check.
"""

from __future__ import annotations

import csv
import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pandas as pd

from clv.data.contract import (
    MAX_TIMESTAMP,
    MIN_TIMESTAMP,
    TABLES,
    ColumnSpec,
    TableKind,
    TableSpec,
    pandera_schema,
)

#: Cell values read as "missing" in text files (compared after stripping, case-insensitively).
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none"})
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})
_TZ_SUFFIX = re.compile(
    r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE
)
_YEAR = re.compile(r"^\s*(\d{4})")
_PANDAS_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
CSV_SUFFIXES = (".csv", ".csv.gz", ".txt")
#: What to do with exact duplicate transaction rows that carry no ``order_id``.
OnDuplicate = Literal["warn", "error", "drop"]
ON_DUPLICATE_CHOICES: tuple[OnDuplicate, ...] = ("warn", "error", "drop")
#: Duplicate lines listed in a warning.
_SHOWN_DUPLICATES = 5


class DataWarning(UserWarning):
    """Something in an input is accepted but worth a look (e.g. exact duplicate rows)."""


PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, located precisely.

    Attributes
    ----------
    source : str
        File name (or ``<DataFrame>``).
    row : int or None
        1-based line (CSV, header = line 1) or row (Parquet, frames);
        ``None`` for file-level issues.
    column : str or None
        Column name, when the problem is in one column.
    value : str or None
        The offending value as it appears in the input.
    reason : str
        Why it is wrong and, where useful, what to do.
    row_label : str
        ``"line"`` for text files, ``"row"`` otherwise.
    """

    source: str
    row: int | None
    column: str | None
    value: str | None
    reason: str
    row_label: str = "row"

    def __str__(self) -> str:
        where = self.source
        if self.row is not None:
            where += f" {self.row_label} {self.row}"
        if self.column is not None:
            where += f", column '{self.column}'"
        what = self.reason if self.value is None else f"{self.value!r} {self.reason}"
        return f"{where}: {what}"


@dataclass
class ValidationReport:
    """Outcome of validating one input.

    Attributes
    ----------
    source : str
        What was validated.
    kind : str
        Table kind in the contract.
    problems : list of Problem
        The problems listed (at most ``limit``).
    total_problems : int
        All problems found, listed or not.
    n_rows : int
        Data rows read.
    frame : DataFrame or None
        The parsed, typed table when there were no problems.
    warnings : list of str
        Accepted oddities, e.g. exact duplicate rows kept or dropped (``on_duplicate``).
    """

    source: str
    kind: TableKind
    problems: list[Problem] = field(default_factory=list)
    total_problems: int = 0
    n_rows: int = 0
    frame: pd.DataFrame | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the input satisfies the contract."""
        return self.total_problems == 0

    def summary(self) -> str:
        """Human-readable multi-line description of the problems."""
        if self.ok:
            return f"{self.source}: {self.n_rows} rows satisfy the {self.kind} contract"
        lines = [f"{self.source}: {self.total_problems} problem(s) with this {self.kind} file:"]
        lines += [f"  - {p}" for p in self.problems]
        hidden = self.total_problems - len(self.problems)
        if hidden > 0:
            lines.append(f"  ... and {hidden} more (raise CLV_MAX_REPORTED_ERRORS to list more)")
        return "\n".join(lines)


class ContractError(ValueError):
    """Raised when an input breaks the data contract. ``report`` holds every problem found."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.summary())
        self.report = report


class _FileLevelError(Exception):
    """A problem that stops reading the file at all (empty, not UTF-8, corrupt Parquet...)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class _Collector:
    """Collects problems up to a limit while counting all of them."""

    def __init__(self, source: str, row_label: str, row_offset: int, limit: int) -> None:
        self.source = source
        self.row_label = row_label
        self.row_offset = row_offset
        self.limit = limit
        self.problems: list[Problem] = []
        self.total = 0
        #: Contract column name -> the file's own name, shown in messages (``columns=``).
        self.display: dict[str, str] = {}

    def add(
        self,
        reason: str,
        *,
        position: int | None = None,
        column: str | None = None,
        value: object = None,
    ) -> None:
        self.total += 1
        if len(self.problems) < self.limit:
            row = None if position is None else int(position) + self.row_offset
            shown = None if value is None else _show(value)
            if column is not None:
                column = self.display.get(column, column)
            self.problems.append(
                Problem(self.source, row, column, shown, reason, row_label=self.row_label)
            )

    def add_rows(
        self, positions: np.ndarray, column: str | None, values: pd.Series | None, reason: str
    ) -> None:
        """Add one problem per position (vectorised callers: only the first few are rendered)."""
        positions = np.asarray(positions)
        room = max(self.limit - len(self.problems), 0)
        for pos in positions[:room]:
            value = None if values is None else values.iloc[int(pos)]
            self.add(reason, position=int(pos), column=column, value=value)
        self.total += max(len(positions) - room, 0)

    def row(self, position: int) -> int:
        return int(position) + self.row_offset


def _show(value: object) -> str:
    if isinstance(value, float) and np.isnan(value):
        return "NaN"
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --------------------------------------------------------------------------------------------
# Reading raw files
# --------------------------------------------------------------------------------------------


def _file_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    raise _FileLevelError(
        Problem(
            path.name,
            None,
            None,
            None,
            f"unsupported file type '{path.suffix or path.name}'; use .csv, .csv.gz or .parquet",
        )
    )


def _first_bad_utf8_line(path: Path) -> tuple[int, int, int]:
    """Return (line number, column, byte) of the first byte sequence that is not UTF-8."""
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as err:
                return lineno, err.start + 1, line[err.start]
    return 0, 0, 0


def _read_csv_raw(path: Path, spec: TableSpec, source: str) -> pd.DataFrame:
    if path.stat().st_size == 0:
        raise _FileLevelError(
            Problem(
                source,
                None,
                None,
                None,
                "the file is empty (0 bytes); expected a header line such as "
                f"'{','.join(spec.required)}' followed by data rows",
            )
        )
    compression: Literal["gzip"] | None = "gzip" if path.name.lower().endswith(".gz") else None
    try:
        opener = _open_text(path, compression)
        with opener as fh:
            header_line = fh.readline()
    except UnicodeDecodeError:
        header_line = None
    if header_line is not None:
        header_line = header_line.lstrip("\ufeff").rstrip("\r\n")
        if not header_line.strip():
            raise _FileLevelError(
                Problem(
                    source,
                    1,
                    None,
                    None,
                    "the first line is empty; expected a header with the column names "
                    f"('{','.join(spec.required)}', ...)",
                    row_label="line",
                )
            )
        header = next(csv.reader([header_line]))
        if len(header) == 1:
            for sep, label in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
                if sep in header_line:
                    raise _FileLevelError(
                        Problem(
                            source,
                            1,
                            None,
                            None,
                            f"the header looks {label}-separated ({header_line!r}); files must "
                            "be comma-separated: save as CSV with ',' as the delimiter",
                            row_label="line",
                        )
                    )
        seen: set[str] = set()
        for name in header:
            if name.strip() in seen:
                raise _FileLevelError(
                    Problem(
                        source,
                        1,
                        name,
                        None,
                        "the column name appears twice in the header; each column once",
                        row_label="line",
                    )
                )
            seen.add(name.strip())
    try:
        raw = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_values=[],
            skip_blank_lines=False,
            encoding="utf-8-sig",
            compression=compression,
        )
    except UnicodeDecodeError:
        lineno, col, byte = _first_bad_utf8_line(path)
        raise _FileLevelError(
            Problem(
                source,
                lineno or None,
                None,
                None,
                f"byte 0x{byte:02x} at character {col} is not valid UTF-8; re-save the file "
                "with UTF-8 encoding",
                row_label="line",
            )
        ) from None
    except pd.errors.EmptyDataError:
        raise _FileLevelError(
            Problem(source, None, None, None, "the file has no header and no data")
        ) from None
    except pd.errors.ParserError as err:
        match = _PANDAS_FIELDS.search(str(err))
        if match:
            expected, line, saw = match.groups()
            raise _FileLevelError(
                Problem(
                    source,
                    int(line),
                    None,
                    None,
                    f"has {saw} fields but the header has {expected}; check for an unquoted "
                    "comma or a wrong delimiter",
                    row_label="line",
                )
            ) from None
        raise _FileLevelError(
            Problem(source, None, None, None, f"cannot be parsed as CSV: {err}")
        ) from None
    raw.columns = [str(c).strip() for c in raw.columns]
    return raw


def _open_text(path: Path, compression: str | None) -> IO[str]:
    if compression == "gzip":
        import gzip

        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def _read_parquet_raw(path: Path, source: str) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise _FileLevelError(Problem(source, None, None, None, "the file is empty (0 bytes)"))
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise _FileLevelError(
            Problem(
                source,
                None,
                None,
                None,
                f"is not a readable Parquet file (truncated or corrupt?): {err}; re-export it",
            )
        ) from None
    names = table.column_names
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise _FileLevelError(
            Problem(source, None, dupes[0], None, "the column appears twice; each column once")
        )
    return table.to_pandas()


# --------------------------------------------------------------------------------------------
# Parsing columns into types
# --------------------------------------------------------------------------------------------


def _missing_mask_python(values: pd.Series) -> np.ndarray:
    text = values.astype("string").str.strip().str.lower()
    return np.asarray(values.isna() | text.isin(MISSING_TOKENS).fillna(True), dtype=bool)


def _missing_mask_arrow(values: pd.Series) -> np.ndarray | None:
    """:func:`_missing_mask_python` for a column of text, in Arrow; None for other objects.

    ASCII values are trimmed and lowered exactly as Python does it; the few others go through
    the Python path, so the result is the same (about 10x faster on a million ids).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from clv.data.contract import ASCII_SPACE, arrow_text

    found = arrow_text(values)
    if found is None:
        return None
    array: Any
    array, ascii_only = found
    text = pc.ascii_lower(pc.utf8_trim(array, characters=ASCII_SPACE))
    token = pc.is_in(text, value_set=pa.array(sorted(MISSING_TOKENS), type=array.type))
    missing = pc.fill_null(pc.or_(pc.is_null(array), token), True).to_numpy(zero_copy_only=False)
    others = np.flatnonzero(~ascii_only)
    out = np.asarray(missing, dtype=bool).copy()
    if len(others):
        out[others] = _missing_mask_python(values.iloc[others])
    return out


def _missing_mask(values: pd.Series) -> np.ndarray:
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        fast = _missing_mask_arrow(values)
        return _missing_mask_python(values) if fast is None else fast
    return np.asarray(values.isna(), dtype=bool)


def _parse_string(values: pd.Series, missing: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    out = values.astype(object).copy()
    out[missing] = None
    if not pd.api.types.is_string_dtype(values):
        out = out.map(lambda v: v if v is None or isinstance(v, str) else str(v))
    return out, np.zeros(len(values), dtype=bool)


def _parse_float(values: pd.Series, missing: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    if pd.api.types.is_bool_dtype(values):
        return pd.Series(np.nan, index=values.index), ~missing
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64"), np.zeros(len(values), dtype=bool)
    text = values.astype("string").str.strip()
    parsed = pd.to_numeric(text.mask(pd.Series(missing, index=text.index)), errors="coerce")
    parsed = parsed.astype("float64")
    bad = ~missing & parsed.isna().to_numpy()
    return parsed, bad


def _parse_int(values: pd.Series, missing: np.ndarray) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    floats, bad = _parse_float(values, missing)
    finite = np.isfinite(floats.to_numpy(dtype="float64", na_value=np.nan))
    fractional = ~bad & ~missing & finite & (np.floor(floats.fillna(0)) != floats.fillna(0))
    nonfinite = ~bad & ~missing & ~finite
    ok = ~(bad | fractional | nonfinite | missing)
    out = pd.array(np.where(ok, floats.fillna(0), 0).astype("int64"), dtype="Int64")
    out[~ok] = pd.NA
    return pd.Series(out, index=values.index), bad, fractional | nonfinite


def _parse_bool(values: pd.Series, missing: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    if pd.api.types.is_bool_dtype(values):
        return values.astype("boolean"), np.zeros(len(values), dtype=bool)
    text = values.astype("string").str.strip().str.lower()
    is_true = text.isin(_TRUE).fillna(False).to_numpy(dtype=bool)
    is_false = text.isin(_FALSE).fillna(False).to_numpy(dtype=bool)
    out = pd.array(is_true, dtype="boolean")
    out[~(is_true | is_false)] = pd.NA
    bad = ~missing & ~(is_true | is_false)
    return pd.Series(out, index=values.index), bad


def _parse_datetime(
    values: pd.Series, missing: np.ndarray, col: ColumnSpec, collector: _Collector
) -> tuple[pd.Series, np.ndarray]:
    n = len(values)
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
        if getattr(values.dt, "tz", None) is not None:
            parsed = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return parsed.astype("datetime64[ns]"), np.zeros(n, dtype=bool)
    if values.dtype == object and not pd.api.types.is_string_dtype(values):
        text = values.map(lambda v: None if v is None else str(v)).astype("string")
    else:
        text = values.astype("string")
    text = text.str.strip().mask(pd.Series(missing, index=text.index))
    has_tz = text.str.contains(_TZ_SUFFIX, regex=True, na=False).to_numpy(dtype=bool)
    present = ~missing
    n_tz, n_naive = int((has_tz & present).sum()), int((~has_tz & present).sum())
    bad = np.zeros(n, dtype=bool)
    if n_tz and n_naive:
        minority = has_tz if n_tz <= n_naive else ~has_tz
        majority_pos = int(np.flatnonzero(~minority & present)[0])
        example = collector.row(majority_pos)
        reason = (
            f"has a UTC offset but {collector.row_label} {example} has none; "
            "give every timestamp an offset or none (mixed time zones)"
            if n_tz <= n_naive
            else f"has no UTC offset but {collector.row_label} {example} has one; "
            "give every timestamp an offset or none (mixed time zones)"
        )
        positions = np.flatnonzero(minority & present)
        collector.add_rows(positions, col.name, values, reason)
        bad |= minority & present
    parsed = pd.to_datetime(
        text.mask(pd.Series(bad, index=text.index, dtype=bool)),
        format="ISO8601",
        utc=True,
        errors="coerce",
    )
    parsed = parsed.dt.tz_localize(None).astype("datetime64[ns]")
    unparsed = present & ~bad & parsed.isna().to_numpy()
    if unparsed.any():
        years = text.str.extract(_YEAR, expand=False).astype("Float64")
        out_of_range = (
            unparsed
            & years.notna().to_numpy(dtype=bool)
            & ((years < MIN_TIMESTAMP.year) | (years > MAX_TIMESTAMP.year - 1)).to_numpy(
                dtype=bool, na_value=False
            )
        )
        collector.add_rows(
            np.flatnonzero(out_of_range),
            col.name,
            values,
            f"is outside the plausible range {MIN_TIMESTAMP.date()} to {MAX_TIMESTAMP.date()}",
        )
        collector.add_rows(
            np.flatnonzero(unparsed & ~out_of_range),
            col.name,
            values,
            "is not a valid date; use ISO 8601, e.g. 2024-03-01 or 2024-03-01T14:30:00+01:00",
        )
        bad |= unparsed
    if col.kind == "date":
        parsed = parsed.dt.normalize()
    return parsed, bad


def _parse_table(
    raw: pd.DataFrame, spec: TableSpec, collector: _Collector
) -> tuple[pd.DataFrame, np.ndarray]:
    """Parse each contract column of ``raw``; return the typed frame and a mask of bad rows."""
    n = len(raw)
    row_bad = np.zeros(n, dtype=bool)
    out: dict[str, pd.Series] = {}
    for col in spec.columns:
        if col.name not in raw.columns:
            continue
        values = raw[col.name].reset_index(drop=True)
        missing = _missing_mask(values)
        if col.required and missing.any():
            collector.add_rows(
                np.flatnonzero(missing),
                col.name,
                values.map(lambda v: "" if v is None else v),
                "is missing; this column is required on every row",
            )
            row_bad |= missing
        if col.kind == "string":
            parsed, bad = _parse_string(values, missing)
        elif col.kind == "float":
            parsed, bad = _parse_float(values, missing)
            collector.add_rows(
                np.flatnonzero(bad),
                col.name,
                values,
                "is not a number; write plain numbers like 12.50 (no currency symbols or "
                "thousands separators)",
            )
        elif col.kind == "int":
            parsed, bad, not_whole = _parse_int(values, missing)
            collector.add_rows(np.flatnonzero(bad), col.name, values, "is not a number")
            collector.add_rows(np.flatnonzero(not_whole), col.name, values, "is not a whole number")
            bad = bad | not_whole
        elif col.kind == "bool":
            parsed, bad = _parse_bool(values, missing)
            collector.add_rows(
                np.flatnonzero(bad),
                col.name,
                values,
                "is not a boolean; use true/false, yes/no or 1/0",
            )
        else:
            parsed, bad = _parse_datetime(values, missing, col, collector)
        row_bad |= bad
        out[col.name] = parsed
    frame = pd.DataFrame(out)
    return frame, row_bad


def _check_columns(
    raw: pd.DataFrame, spec: TableSpec, collector: _Collector, *, allow_extra: bool
) -> list[str]:
    """Report missing and unknown columns; return the unknown ones."""
    present = [str(c) for c in raw.columns]
    extra = [c for c in present if c not in spec.names]
    for name in spec.required:
        if name not in present:
            hint = difflib.get_close_matches(name, extra, n=1, cutoff=0.6)
            suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
            found = ", ".join(repr(c) for c in present) or "no columns"
            collector.add(
                f"required column '{name}' is missing (found {found}){suggestion}",
            )
    if not allow_extra:
        for name in extra:
            hint = difflib.get_close_matches(name, spec.names, n=1, cutoff=0.6)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            collector.add(
                f"column '{name}' is not in the {spec.kind} contract{suggestion}; allowed: "
                f"{', '.join(spec.names)}. Remove it, or pass --allow-extra-columns to drop it",
            )
    return extra


def _check_duplicates(
    raw: pd.DataFrame,
    spec: TableSpec,
    collector: _Collector,
    *,
    on_duplicate: OnDuplicate,
    warnings: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    """Handle exact duplicate rows and repeated unique keys.

    Returns the mask of rows that are problems and the mask of rows to drop. Exact duplicate
    transactions without an ``order_id`` follow ``on_duplicate`` (real exports often hold
    legitimate repeats: the same customer buying the same thing twice a day); with an
    ``order_id`` the same order line twice is always an error.
    """
    n = len(raw)
    flagged, dropped = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    cols = [c for c in spec.names if c in raw.columns]
    if raw.empty or not cols:
        return flagged, dropped
    positions = np.arange(n)
    # Row hashes instead of grouping on the values: linear time and memory on 10M rows.
    hashes = pd.util.hash_pandas_object(raw[cols], index=False).to_numpy()
    first = pd.Series(positions).groupby(hashes).transform("min").to_numpy()
    dup = np.flatnonzero(first != positions)
    if spec.kind == "transactions" and len(dup):
        has_id = (
            ~_missing_mask(raw["order_id"].reset_index(drop=True))
            if "order_id" in raw.columns
            else np.zeros(n, dtype=bool)
        )
        strict, lenient = dup[has_id[dup]], dup[~has_id[dup]]
    else:
        has_id = np.zeros(n, dtype=bool)
        strict, lenient = dup, dup[:0]
    label = collector.row_label
    if on_duplicate == "error":
        strict, lenient = np.sort(np.concatenate([strict, lenient])), lenient[:0]
    elif len(lenient):
        shown = ", ".join(
            f"{label} {collector.row(p)} (= {label} {collector.row(first[p])})"
            for p in lenient[:_SHOWN_DUPLICATES]
        )
        more = f" and {len(lenient) - _SHOWN_DUPLICATES} more" if len(lenient) > 5 else ""
        if on_duplicate == "drop":
            dropped[lenient] = True
            what = "dropped (--on-duplicate drop)"
        else:
            what = (
                "kept as separate purchases (--on-duplicate drop removes them, "
                "--on-duplicate error refuses the file)"
            )
        warnings.append(
            f"{collector.source}: {len(lenient):,} row(s) exactly repeat an earlier row and "
            f"have no order_id: {shown}{more}; {what}"
        )
    room = max(collector.limit - len(collector.problems), 0)
    for pos in strict[:room]:
        advice = (
            "the same order line twice: remove the repeated row"
            if has_id[pos]
            else "remove the repeated row (if both are real, give them distinct order_id "
            "values, or pass --on-duplicate warn to keep both)"
            if spec.kind == "transactions"
            else "remove the repeated row"
        )
        collector.add(
            f"duplicates {label} {collector.row(first[pos])} exactly; {advice}",
            position=int(pos),
        )
    collector.total += max(len(strict) - room, 0)
    flagged[strict] = True
    if spec.unique_key and all(k in raw.columns for k in spec.unique_key):
        key = list(spec.unique_key)
        khash = pd.util.hash_pandas_object(raw[key], index=False).to_numpy()
        kfirst = pd.Series(positions).groupby(khash).transform("min").to_numpy()
        repeated = np.flatnonzero((kfirst != positions) & ~flagged)
        for pos in repeated:
            collector.add(
                f"repeats the {', '.join(key)} of {collector.row_label} "
                f"{collector.row(kfirst[pos])}; each customer must appear once",
                position=int(pos),
                column=key[0],
                value=raw[key[0]].iloc[int(pos)],
            )
        flagged[repeated] = True
    return flagged, dropped


def _check_future(
    raw: pd.DataFrame,
    frame: pd.DataFrame,
    spec: TableSpec,
    collector: _Collector,
    *,
    now: pd.Timestamp,
    tolerance_days: float,
) -> np.ndarray:
    """Flag dates after the present (plus a tolerance for clocks and time zones)."""
    bad = np.zeros(len(frame), dtype=bool)
    limit = now + pd.Timedelta(days=tolerance_days)
    for col in spec.columns:
        if col.kind not in ("datetime", "date") or col.name not in frame.columns:
            continue
        late = (frame[col.name] > limit).to_numpy(dtype=bool, na_value=False)
        if late.any():
            collector.add_rows(
                np.flatnonzero(late),
                col.name,
                raw[col.name].reset_index(drop=True),
                f"is in the future (now is {now:%Y-%m-%d %H:%M} UTC; tolerance "
                f"{tolerance_days:g} day(s)); fix the date or its time zone, or raise "
                "--future-tolerance-days (CLV_FUTURE_TOLERANCE_DAYS)",
            )
            bad |= late
    return bad


def _map_columns(
    raw: pd.DataFrame, spec: TableSpec, columns: Mapping[str, str] | None, source: str
) -> pd.DataFrame:
    """Rename the file's own column names onto the contract's (``{contract: file}``)."""
    if not columns:
        return raw
    unknown = [k for k in columns if k not in spec.names]
    if unknown:
        raise ValueError(
            f"columns: {', '.join(map(repr, unknown))} is not a {spec.kind} column of the "
            f"contract; map onto {', '.join(spec.names)}"
        )
    present = [str(c) for c in raw.columns]
    found = ", ".join(repr(c) for c in present) or "no columns"
    renames: dict[str, str] = {}
    for contract, own in columns.items():
        if own == contract:
            continue
        if own not in present:
            raise _FileLevelError(
                Problem(
                    source,
                    None,
                    own,
                    None,
                    f"is not in the file (given for '{contract}', e.g. "
                    f"--{contract.replace('_', '-')}-col); the file's columns are: {found}",
                )
            )
        if contract in present:
            raise _FileLevelError(
                Problem(
                    source,
                    None,
                    contract,
                    None,
                    f"is in the file and '{own}' is mapped onto it too; map only one column "
                    f"onto '{contract}' (rename or drop the other)",
                )
            )
        renames[own] = contract
    return raw.rename(columns=renames)


def _run_pandera(frame: pd.DataFrame, spec: TableSpec, collector: _Collector) -> np.ndarray:
    """Apply the pandera schema; map its failure cases to located problems."""
    import pandera.errors as pa_errors

    schema = pandera_schema(spec, list(frame.columns))
    bad = np.zeros(len(frame), dtype=bool)
    try:
        schema.validate(frame, lazy=True)  # type: ignore[attr-defined]
    except pa_errors.SchemaErrors as err:
        reasons: dict[str, str] = {}
        for column in schema.columns.values():  # type: ignore[attr-defined]
            for check in column.checks:
                # pandera reports a check by its error text (or name, depending on version)
                reasons[str(check.name)] = reasons[str(check.error)] = str(check.error)
        cases = err.failure_cases
        cases = cases[cases["index"].notna()].sort_values("index", kind="stable")
        for case in cases.itertuples(index=False):
            check = str(case.check)
            reason = reasons.get(check)
            if reason is None:
                reason = (
                    "is missing; this column is required on every row"
                    if check == "not_nullable"
                    else f"fails the contract check {check}"
                )
            pos = int(case.index)
            value = frame[case.column].iloc[pos] if case.column in frame.columns else None
            collector.add(reason, position=pos, column=str(case.column), value=value)
            bad[pos] = True
    return bad


@dataclass(frozen=True)
class _Options:
    on_duplicate: OnDuplicate
    future_tolerance_days: float
    now: pd.Timestamp
    columns: Mapping[str, str] | None


def _options(
    on_duplicate: str,
    future_tolerance_days: float | None,
    now: pd.Timestamp | None,
    columns: Mapping[str, str] | None,
) -> _Options:
    if on_duplicate not in ON_DUPLICATE_CHOICES:
        raise ValueError(
            f"on_duplicate must be one of {', '.join(ON_DUPLICATE_CHOICES)}, got {on_duplicate!r}"
        )
    if future_tolerance_days is None:
        from clv.settings import get_settings

        future_tolerance_days = get_settings().future_tolerance_days
    if future_tolerance_days < 0:
        raise ValueError(f"--future-tolerance-days must be >= 0, got {future_tolerance_days}")
    stamp = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return _Options(on_duplicate, float(future_tolerance_days), stamp, columns)


def _validate_raw(
    raw: pd.DataFrame,
    spec: TableSpec,
    collector: _Collector,
    report: ValidationReport,
    *,
    allow_extra: bool,
    options: _Options,
) -> ValidationReport:
    raw = raw.reset_index(drop=True)
    if options.columns:
        collector.display = {k: v for k, v in options.columns.items() if k != v}
    report.n_rows = len(raw)
    _check_columns(raw, spec, collector, allow_extra=allow_extra)
    if len(raw) == 0:
        collector.add("has a header but no data rows")
    if collector.total == 0 and collector.row_label == "line" and len(raw.columns):
        # Only text files have blank lines; typed Parquet columns cannot.
        blank = raw.apply(lambda s: s.str.strip().fillna("") == "").all(axis=1).to_numpy()
        for pos in np.flatnonzero(blank):
            collector.add("is blank; remove empty lines", position=int(pos))
    if collector.total == 0:
        # Column-level problems and blank lines stop here: parsing would only repeat them.
        frame, row_bad = _parse_table(raw, spec, collector)
        row_bad |= _check_future(
            raw,
            frame,
            spec,
            collector,
            now=options.now,
            tolerance_days=options.future_tolerance_days,
        )
        flagged, dropped = _check_duplicates(
            raw, spec, collector, on_duplicate=options.on_duplicate, warnings=report.warnings
        )
        row_bad |= flagged
        clean_positions = np.flatnonzero(~row_bad)
        if len(clean_positions):
            sub = _Collector(collector.source, collector.row_label, 0, collector.limit)
            _run_pandera(frame.iloc[clean_positions].reset_index(drop=True), spec, sub)
            for p in sub.problems:
                at = None if p.row is None else int(clean_positions[p.row])
                value: object = p.value
                if at is not None and p.column in raw.columns:
                    value = raw[p.column].iloc[at]  # show the value as written in the input
                collector.add(p.reason, position=at, column=p.column, value=value)
            collector.total += sub.total - len(sub.problems)
        if collector.total == 0:
            if dropped.any():
                frame = frame.loc[~dropped].reset_index(drop=True)
            report.frame = frame
    report.problems = sorted(collector.problems, key=lambda p: p.row or 0)
    report.total_problems = collector.total
    return report


def _limit(max_problems: int | None) -> int:
    if max_problems is not None:
        return max_problems
    from clv.settings import get_settings

    return get_settings().max_reported_errors


def validate_file(
    path: str | Path,
    kind: TableKind = "transactions",
    *,
    allow_extra_columns: bool = False,
    max_problems: int | None = None,
    source: str | None = None,
    on_duplicate: OnDuplicate = "warn",
    columns: Mapping[str, str] | None = None,
    future_tolerance_days: float | None = None,
    now: pd.Timestamp | None = None,
) -> ValidationReport:
    """Validate a local CSV or Parquet file against the contract; never raises for bad data.

    Parameters
    ----------
    path : str or Path
        Local file (``.csv``, ``.csv.gz``, ``.parquet``). For ``s3://`` use :mod:`clv.data.io`.
    kind : {"transactions", "customers", "sustainability"}
        Which table of the contract the file holds.
    allow_extra_columns : bool
        Drop columns that are not in the contract instead of rejecting the file.
    max_problems : int, optional
        How many problems to list (default: ``CLV_MAX_REPORTED_ERRORS``); all are counted.
    source : str, optional
        Name shown in messages (default: the file name).
    on_duplicate : {"warn", "error", "drop"}
        Exact duplicate transaction rows without an ``order_id``: kept with a warning
        (default), refused, or dropped with a warning. With an ``order_id`` they are errors.
    columns : mapping, optional
        The file's own column names, ``{contract name: file name}``, e.g.
        ``{"customer_id": "CustomerID", "timestamp": "InvoiceDate"}``; renamed before validation.
    future_tolerance_days : float, optional
        Dates later than now plus this many days are refused (default
        ``CLV_FUTURE_TOLERANCE_DAYS``, 1 day).
    now : Timestamp, optional
        The present (default: the clock), for reproducible checks.

    Returns
    -------
    ValidationReport
        ``report.ok`` tells whether the file passed; ``report.frame`` holds the typed table;
        ``report.warnings`` what was accepted but deserves a look.

    Raises
    ------
    ValueError
        When an option itself is invalid (``on_duplicate``, a ``columns`` key not in the contract).
    """
    options = _options(on_duplicate, future_tolerance_days, now, columns)
    path = Path(path)
    spec = TABLES[kind]
    shown = source or path.name
    limit = _limit(max_problems)
    report = ValidationReport(source=shown, kind=kind)
    try:
        if not path.exists():
            raise _FileLevelError(Problem(shown, None, None, None, f"no such file: {path}"))
        if path.is_dir():
            raise _FileLevelError(
                Problem(
                    shown, None, None, None, "is a folder, not a file; give a CSV or Parquet file"
                )
            )
        file_kind = _file_kind(path)
        if file_kind == "csv":
            raw = _read_csv_raw(path, spec, shown)
            collector = _Collector(shown, "line", 2, limit)
        else:
            raw = _read_parquet_raw(path, shown)
            collector = _Collector(shown, "row", 1, limit)
        raw = _map_columns(raw, spec, columns, shown)
    except _FileLevelError as err:
        report.problems = [err.problem]
        report.total_problems = 1
        return report
    report = _validate_raw(
        raw, spec, collector, report, allow_extra=allow_extra_columns, options=options
    )
    return report


def validate_frame(
    frame: pd.DataFrame,
    kind: TableKind = "transactions",
    *,
    allow_extra_columns: bool = False,
    source: str = "<DataFrame>",
    max_problems: int | None = None,
    on_duplicate: OnDuplicate = "warn",
    columns: Mapping[str, str] | None = None,
    future_tolerance_days: float | None = None,
    now: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Validate an in-memory frame and return its typed copy (rows numbered from 1).

    Parameters
    ----------
    frame : DataFrame
        The table as read.
    kind : {"transactions", "customers", "sustainability"}
        Which table of the contract it holds.
    allow_extra_columns : bool
        Drop columns that are not in the contract instead of rejecting the frame.
    source : str
        Name shown in messages.
    max_problems : int, optional
        How many problems to list.
    on_duplicate : {"warn", "error", "drop"}
        Exact duplicate transaction rows without an ``order_id``: kept with a warning
        (default), refused, or dropped with a warning. With an ``order_id`` they are errors.
    columns : mapping, optional
        The file's own column names, ``{contract name: file name}``, e.g.
        ``{"customer_id": "CustomerID", "timestamp": "InvoiceDate"}``; renamed before validation.
    future_tolerance_days : float, optional
        Dates later than now plus this many days are refused (default
        ``CLV_FUTURE_TOLERANCE_DAYS``, 1 day).
    now : Timestamp, optional
        The present (default: the clock), for reproducible checks.

    Returns
    -------
    DataFrame
        The typed table; warnings (e.g. duplicates kept) are issued as :class:`DataWarning`.

    Raises
    ------
    ContractError
        When the frame breaks the contract; the message lists every problem up to the limit.
    """
    options = _options(on_duplicate, future_tolerance_days, now, columns)
    spec = TABLES[kind]
    report = ValidationReport(source=source, kind=kind)
    collector = _Collector(source, "row", 1, _limit(max_problems))
    try:
        frame = _map_columns(frame, spec, columns, source)
    except _FileLevelError as err:
        report.problems, report.total_problems = [err.problem], 1
        raise ContractError(report) from None
    report = _validate_raw(
        frame, spec, collector, report, allow_extra=allow_extra_columns, options=options
    )
    if not report.ok or report.frame is None:
        raise ContractError(report)
    emit_warnings(report)
    return report.frame


def emit_warnings(report: ValidationReport) -> None:
    """Issue the report's warnings as :class:`DataWarning` (the CLI prints them, once each)."""
    import warnings

    for message in report.warnings:
        warnings.warn(message, DataWarning, stacklevel=3)


def load_validated(
    path: str | Path,
    kind: TableKind = "transactions",
    *,
    allow_extra_columns: bool = False,
    on_duplicate: OnDuplicate = "warn",
    columns: Mapping[str, str] | None = None,
    future_tolerance_days: float | None = None,
) -> pd.DataFrame:
    """Read and validate a local file; return the typed table.

    Raises
    ------
    ContractError
        When the file breaks the contract.
    """
    report = validate_file(
        path,
        kind,
        allow_extra_columns=allow_extra_columns,
        on_duplicate=on_duplicate,
        columns=columns,
        future_tolerance_days=future_tolerance_days,
    )
    if not report.ok or report.frame is None:
        raise ContractError(report)
    emit_warnings(report)
    return report.frame


def format_problems(problems: Iterable[Problem]) -> list[str]:
    """Render problems as strings, one per line (for CLIs and logs)."""
    return [str(p) for p in problems]
