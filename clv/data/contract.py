"""The data contract: which tables the platform reads, their columns, types and rules.

The contract is written for people in ``docs/data_contract.md``; this module is its executable form.
Only three transaction columns are required (``customer_id``, ``timestamp``, ``amount``) so that any
retail data set fits; the optional columns and tables enrich features when present.

Parsing raw values into types (with the offending value in the message) happens in
:mod:`clv.data.validation`; the rules on parsed values are pandera schemas built here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

ColumnKind = Literal["string", "datetime", "date", "float", "int", "bool"]
TableKind = Literal["transactions", "customers", "sustainability"]
TABLE_KINDS: tuple[TableKind, ...] = ("transactions", "customers", "sustainability")

#: Largest absolute money value accepted. Larger values are almost always unit or parsing errors
#: (cents read as dollars twice, an id pasted into the amount column, ...).
MAX_ABS_AMOUNT = 1e9
#: Timestamps outside this range are rejected as implausible.
MIN_TIMESTAMP = pd.Timestamp("1900-01-01")
MAX_TIMESTAMP = pd.Timestamp("2100-01-01")
MAX_ID_LENGTH = 256


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a table in the contract.

    Attributes
    ----------
    name : str
        Column name, exact (case-sensitive).
    kind : {"string", "datetime", "date", "float", "int", "bool"}
        Logical type. ``datetime`` accepts dates too; time zones are converted to UTC.
    required : bool
        Whether the column must be present. Required columns never contain missing values.
    description : str
        What the column means, for people.
    min_value, max_value : float or None
        Inclusive bounds for numbers.
    """

    name: str
    kind: ColumnKind
    required: bool
    description: str
    min_value: float | None = None
    max_value: float | None = None


@dataclass(frozen=True)
class TableSpec:
    """A table in the contract.

    Attributes
    ----------
    kind : str
        ``transactions``, ``customers`` or ``sustainability``.
    columns : tuple of ColumnSpec
        Every allowed column, required ones first.
    unique_key : tuple of str
        Columns whose combination must be unique (empty: only exact duplicate rows are rejected).
    """

    kind: TableKind
    columns: tuple[ColumnSpec, ...]
    unique_key: tuple[str, ...] = field(default=())

    @property
    def required(self) -> list[str]:
        """Names of the required columns."""
        return [c.name for c in self.columns if c.required]

    @property
    def names(self) -> list[str]:
        """Names of all allowed columns."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        """Return the spec of column ``name``."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


TRANSACTIONS = TableSpec(
    kind="transactions",
    columns=(
        ColumnSpec("customer_id", "string", True, "Customer identifier; leading zeros are kept."),
        ColumnSpec(
            "timestamp",
            "datetime",
            True,
            "When the transaction happened: ISO 8601 date or date-time, optionally with a UTC "
            "offset (converted to UTC). A file either has offsets on every value or on none.",
            min_value=None,
        ),
        ColumnSpec(
            "amount",
            "float",
            True,
            "Net value in the shop's currency. Negative values are refunds or returns.",
            min_value=-MAX_ABS_AMOUNT,
            max_value=MAX_ABS_AMOUNT,
        ),
        ColumnSpec("order_id", "string", False, "Order identifier; a return repeats its order's."),
        ColumnSpec("quantity", "int", False, "Items in the line; negative for returns.", -1e6, 1e6),
        ColumnSpec("product_category", "string", False, "Product category of the line."),
        ColumnSpec("is_eco_product", "bool", False, "Whether the product is certified eco."),
        ColumnSpec("channel", "string", False, "Sales channel (web, app, store, marketplace...)."),
        ColumnSpec("carbon_kg", "float", False, "Estimated CO2e of the line in kg.", 0.0, 1e6),
    ),
)

CUSTOMERS = TableSpec(
    kind="customers",
    columns=(
        ColumnSpec("customer_id", "string", True, "Customer identifier (unique)."),
        ColumnSpec("signup_date", "date", True, "Date the customer was acquired."),
        ColumnSpec("region", "string", False, "Geographic region."),
        ColumnSpec("acquisition_channel", "string", False, "Channel that acquired the customer."),
        ColumnSpec(
            "eco_preference", "float", False, "Stated eco preference from 0 (none) to 1.", 0.0, 1.0
        ),
        ColumnSpec("marketing_opt_in", "bool", False, "Whether the customer accepts marketing."),
    ),
    unique_key=("customer_id",),
)

SUSTAINABILITY = TableSpec(
    kind="sustainability",
    columns=(
        ColumnSpec("customer_id", "string", True, "Customer identifier (unique)."),
        ColumnSpec(
            "eco_engagement_score",
            "float",
            False,
            "Engagement with sustainability content, 0 to 100.",
            0.0,
            100.0,
        ),
        ColumnSpec("recycling_program", "bool", False, "Member of the take-back/recycling scheme."),
        ColumnSpec("carbon_offset_opt_in", "bool", False, "Opted in to carbon-offset shipping."),
        ColumnSpec(
            "green_newsletter_clicks", "int", False, "Clicks on sustainability mailings.", 0, 1e7
        ),
        ColumnSpec(
            "carbon_saved_kg", "float", False, "Estimated CO2e saved by eco choices, kg.", 0, 1e9
        ),
    ),
    unique_key=("customer_id",),
)

TABLES: dict[TableKind, TableSpec] = {
    "transactions": TRANSACTIONS,
    "customers": CUSTOMERS,
    "sustainability": SUSTAINABILITY,
}


#: What ``str.strip()`` removes from ASCII text (``str.isspace``: the file, group, record and unit
#: separators too, which Unicode's White_Space, and so Arrow's trim, leaves).
ASCII_SPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"


def arrow_text(values: pd.Series) -> tuple[object, np.ndarray] | None:
    """``values`` as an Arrow string array and a mask of its ASCII (or missing) values.

    None when the column holds something else than text and missing values. The checks on text
    use it to run in Arrow (about 10x faster than ``.str`` on object columns), exactly as Python
    would for ASCII values; the callers run Python's own string methods on the other values.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        return None
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return None
    ascii_only = pc.fill_null(pc.string_is_ascii(array), True).to_numpy(zero_copy_only=False)
    return array, np.asarray(ascii_only, dtype=bool)


def _non_empty_python(s: pd.Series) -> pd.Series:
    return s.isna() | (s.astype(str).str.strip().str.len() > 0)


def _non_empty(s: pd.Series) -> pd.Series:
    """Missing, or text with something else than whitespace."""
    found = arrow_text(s)
    if found is None:
        return _non_empty_python(s)
    import pyarrow.compute as pc

    array, ascii_only = found
    stripped = pc.utf8_length(pc.utf8_trim(array, characters=ASCII_SPACE))
    out = np.asarray(pc.fill_null(pc.greater(stripped, 0), True).to_numpy(zero_copy_only=False))
    out = out.astype(bool)
    others = np.flatnonzero(~ascii_only)
    if len(others):
        out[others] = _non_empty_python(s.iloc[others]).to_numpy(dtype=bool)
    return pd.Series(out, index=s.index)


def _not_too_long(s: pd.Series) -> pd.Series:
    """Missing, or at most :data:`MAX_ID_LENGTH` characters (code points, as ``len``)."""
    found = arrow_text(s)
    if found is None:
        return s.isna() | (s.astype(str).str.len() <= MAX_ID_LENGTH)
    import pyarrow.compute as pc

    array, _ = found
    short = pc.less_equal(pc.utf8_length(array), MAX_ID_LENGTH)
    out = np.asarray(pc.fill_null(short, True).to_numpy(zero_copy_only=False), dtype=bool)
    return pd.Series(out, index=s.index)


def pandera_schema(spec: TableSpec, columns: list[str]) -> object:
    """Build the pandera schema for the parsed columns of ``spec`` that a file actually has.

    Parameters
    ----------
    spec : TableSpec
        The table in the contract.
    columns : list of str
        Columns present in the parsed frame (a subset of ``spec.names``).

    Returns
    -------
    pandera.DataFrameSchema
        Checks: required columns have no missing values, numbers are finite and in bounds,
        identifiers are non-empty and not too long, datetimes are in a plausible range.
    """
    import pandera.pandas as pa  # local import: pandera costs ~0.5 s to import

    dtypes = {
        "string": object,
        "datetime": "datetime64[ns]",
        "date": "datetime64[ns]",
        "float": "float64",
        "int": "Int64",
        "bool": "boolean",
    }
    schema_columns = {}
    for name in columns:
        col = spec.column(name)
        checks = []
        if col.kind == "string":
            checks.append(
                pa.Check(
                    _non_empty,
                    name="non_empty",
                    error="is empty or only whitespace",
                )
            )
            checks.append(
                pa.Check(
                    _not_too_long,
                    name="max_length",
                    error=f"is longer than {MAX_ID_LENGTH} characters",
                )
            )
        if col.kind == "float":
            checks.append(
                pa.Check(
                    lambda s: s.isna() | np.isfinite(s.to_numpy(dtype="float64", na_value=0.0)),
                    name="finite",
                    error="is infinite; use a finite number",
                )
            )
        if col.kind in ("float", "int") and col.min_value is not None:
            lo, hi = col.min_value, col.max_value
            checks.append(
                pa.Check(
                    lambda s, lo=lo, hi=hi: (
                        s.isna()
                        | ~np.isfinite(s.astype("float64").fillna(0.0))
                        | s.astype("float64").between(lo, hi)
                    ),
                    name="in_range",
                    error=f"is outside the allowed range [{lo:g}, {hi:g}]",
                )
            )
        if col.kind in ("datetime", "date"):
            checks.append(
                pa.Check(
                    lambda s: s.isna() | s.between(MIN_TIMESTAMP, MAX_TIMESTAMP),
                    name="plausible_date",
                    error=f"is outside the plausible range {MIN_TIMESTAMP.date()} to "
                    f"{MAX_TIMESTAMP.date()}",
                )
            )
        schema_columns[name] = pa.Column(
            dtypes[col.kind],
            checks=checks,
            nullable=not col.required,
            coerce=False,
            required=col.required,
        )
    return pa.DataFrameSchema(schema_columns, strict=False, ordered=False)
