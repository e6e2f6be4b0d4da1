"""Feature and prediction drift between a reference and a current table, computed with Evidently.

This is the only module that imports Evidently, and it does so inside :func:`compute_drift`:
importing Evidently takes 3-4 s, which code that merely imports :mod:`monitoring` should not pay.

Inputs are validated here, before Evidently sees them, so that a person gets a message that says
what is wrong and where (an empty table, a missing or all-NaN column, too few rows, a column that
is neither numeric nor declared categorical) instead of an Evidently stack trace.

How a column is judged
----------------------
Evidently picks the statistical test per column from its type and the number of rows: for up to
1,000 rows the Kolmogorov-Smirnov test on numeric columns (drift when the p-value is below 0.05)
and chi-square or a Z-test on categorical ones; above that the normed Wasserstein distance on
numeric columns and the Jensen-Shannon distance on categorical ones (drift when the distance is at
least 0.1). :class:`ColumnDrift` records which test was used, its score, its threshold and
Evidently's verdict. The dataset counts as drifted when the share of drifted columns reaches
``threshold``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clv.data.io import write_atomic

__all__ = [
    "DEFAULT_EXCLUDED_COLUMNS",
    "MIN_ROWS",
    "ColumnDrift",
    "DriftComputationError",
    "DriftInputError",
    "DriftResult",
    "compute_drift",
    "prediction_drift",
]

logger = logging.getLogger(__name__)

#: Fewer rows than this in either table make every drift test meaningless.
MIN_ROWS = 30
#: Identifier and bookkeeping columns never compared by default.
DEFAULT_EXCLUDED_COLUMNS: frozenset[str] = frozenset(
    {"customer_id", "cutoff", "as_of", "horizon_days", "model_version"}
)
#: Prediction columns compared by :func:`prediction_drift`, when present in both tables.
PREDICTION_COLUMNS: tuple[str, ...] = ("predicted_clv", "churn_probability")

_VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
_DRIFT_TEST_ID = "drift"


class DriftInputError(ValueError):
    """The reference or current table cannot be compared; the message says why and where."""


class DriftComputationError(RuntimeError):
    """Evidently failed on inputs that passed validation (a bug here or there; see the log)."""


@dataclass(frozen=True)
class ColumnDrift:
    """Drift verdict for one column.

    Attributes
    ----------
    column : str
        Column name.
    score : float
        The test's statistic: a p-value (drift when small) or a distance (drift when large),
        see ``stattest``.
    stattest : str
        Evidently's name of the test, e.g. ``"K-S p_value"`` or
        ``"Wasserstein distance (normed)"``.
    threshold : float
        The test's threshold.
    drifted : bool
        Evidently's verdict.
    """

    column: str
    score: float
    stattest: str
    threshold: float
    drifted: bool

    @property
    def is_p_value(self) -> bool:
        """Whether ``score`` is a p-value (small means drift) rather than a distance."""
        return "p_value" in self.stattest

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly representation."""
        return {
            "score": _finite_or_none(self.score),
            "stattest": self.stattest,
            "threshold": self.threshold,
            "drifted": self.drifted,
        }


@dataclass(frozen=True)
class DriftResult:
    """Outcome of one drift check.

    Attributes
    ----------
    name : str
        What was compared, e.g. ``"features"`` or ``"predictions"``.
    share : float
        Drifted columns over columns checked, in [0, 1].
    drifted_columns : list of str
        Columns whose distribution changed, in the order they were checked.
    column_scores : dict of str to ColumnDrift
        Per-column test, score and verdict.
    n_reference, n_current : int
        Rows in each table.
    columns_checked : list of str
        Columns compared.
    threshold : float
        Share of drifted columns from which the dataset counts as drifted.
    detected : bool
        ``share >= threshold``.
    report_path : Path or None
        Evidently's HTML report, when a report folder was given.
    data_summary : dict
        Data-quality summary of the current table from Evidently's data summary preset:
        ``rows``, ``columns``, ``missing_cells``, ``missing_share`` (of all compared cells),
        ``missing_share_by_column``, and counts of constant, almost constant, empty and
        duplicated columns or rows.
    """

    name: str
    share: float
    drifted_columns: list[str]
    column_scores: dict[str, ColumnDrift]
    n_reference: int
    n_current: int
    columns_checked: list[str]
    threshold: float
    detected: bool
    report_path: Path | None = None
    data_summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly representation (paths as strings, NaN as ``None``)."""
        return {
            "name": self.name,
            "share": self.share,
            "detected": self.detected,
            "threshold": self.threshold,
            "drifted_columns": list(self.drifted_columns),
            "columns_checked": list(self.columns_checked),
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "column_scores": {name: c.to_dict() for name, c in self.column_scores.items()},
            "report_path": None if self.report_path is None else str(self.report_path),
            "data_summary": self.data_summary,
        }


# --------------------------------------------------------------------------------------------
# Validation at the boundary
# --------------------------------------------------------------------------------------------


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _default_columns(reference: pd.DataFrame, current: pd.DataFrame) -> list[str]:
    common = [c for c in reference.columns if c in current.columns]
    return [
        str(c)
        for c in common
        if str(c) not in DEFAULT_EXCLUDED_COLUMNS
        and _is_numeric(reference[c])
        and _is_numeric(current[c])
    ]


def _validate(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: list[str] | None,
    categorical_columns: Sequence[str],
    threshold: float,
) -> tuple[list[str], list[str]]:
    """Check both tables; return the (numeric, categorical) columns to compare."""
    frames = {"reference": reference, "current": current}
    for label, frame in frames.items():
        if not isinstance(frame, pd.DataFrame):
            raise DriftInputError(
                f"the {label} data must be a pandas DataFrame, got {type(frame).__name__}"
            )
        if frame.empty:
            raise DriftInputError(
                f"the {label} data is empty ({len(frame)} rows, {frame.shape[1]} columns): "
                "nothing to compare"
            )
        if len(frame) < MIN_ROWS:
            raise DriftInputError(
                f"the {label} data has only {len(frame)} rows; drift tests need at least "
                f"{MIN_ROWS} in each table"
            )
    if not 0.0 < threshold <= 1.0:
        raise DriftInputError(f"threshold must be a share in (0, 1], got {threshold!r}")

    categorical = [str(c) for c in categorical_columns]
    if columns is None:
        wanted = _default_columns(reference, current)
        wanted += [c for c in categorical if c not in wanted]
        if not wanted:
            raise DriftInputError(
                "the reference and current data have no numeric column in common (ignoring "
                f"{', '.join(sorted(DEFAULT_EXCLUDED_COLUMNS))}); pass columns= explicitly"
            )
    else:
        wanted = [str(c) for c in columns]
        if not wanted:
            raise DriftInputError("columns is an empty list: name at least one column to compare")
        wanted += [c for c in categorical if c not in wanted]
    duplicates = sorted({c for c in wanted if wanted.count(c) > 1})
    if duplicates:
        raise DriftInputError(f"column(s) listed twice: {', '.join(duplicates)}")

    for label, frame in frames.items():
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise DriftInputError(
                f"column(s) {', '.join(repr(c) for c in missing)} missing from the {label} data "
                f"(it has {frame.shape[1]} columns: {_preview(frame.columns)})"
            )
        duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        clash = [c for c in wanted if c in duplicated]
        if clash:
            raise DriftInputError(
                f"the {label} data has several columns named {', '.join(map(repr, clash))}"
            )

    numeric: list[str] = []
    for column in wanted:
        is_categorical = column in categorical
        for label, frame in frames.items():
            series = frame[column]
            if series.isna().all():
                raise DriftInputError(
                    f"column {column!r} is entirely missing (all NaN) in the {label} data: "
                    "fix the upstream step or leave the column out"
                )
            if is_categorical:
                continue
            if not _is_numeric(series):
                raise DriftInputError(
                    f"column {column!r} in the {label} data has dtype {series.dtype}, which is "
                    "not numeric; pass it in categorical_columns to compare it as a category, "
                    "or leave it out"
                )
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isinf(values).any():
                raise DriftInputError(
                    f"column {column!r} in the {label} data has {int(np.isinf(values).sum())} "
                    "infinite value(s); replace them (e.g. with NaN) before checking drift"
                )
        if not is_categorical:
            numeric.append(column)
    return numeric, [c for c in wanted if c in categorical]


def _preview(names: pd.Index, limit: int = 12) -> str:
    shown = [str(n) for n in names[:limit]]
    more = len(names) - limit
    return ", ".join(shown) + (f", ... ({more} more)" if more > 0 else "")


def _prepare(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """The compared columns only, numeric as float64 and categories as strings, plain index."""
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for column in numeric:
        out[column] = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
    for column in categorical:
        values = frame[column]
        text = values.astype("string").astype(object).to_numpy()
        text[values.isna().to_numpy()] = None
        out[column] = text
    return out


def _report_file_name(name: str, reference: pd.DataFrame, current: pd.DataFrame) -> str:
    """``drift-<name>-<12 hex>.html``: the suffix is a hash of the compared data, not a time."""
    digest = hashlib.sha256()
    for frame in (reference, current):
        digest.update(",".join(frame.columns).encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "data"
    return f"drift-{slug}-{digest.hexdigest()[:12]}.html"


# --------------------------------------------------------------------------------------------
# Reading Evidently's snapshot
# --------------------------------------------------------------------------------------------


def _column_scores(snapshot_dict: dict[str, Any], columns: list[str]) -> dict[str, ColumnDrift]:
    """Per-column drift from the ``ValueDrift`` metrics and their tests in ``Snapshot.dict()``.

    The metric holds the score, the test's name and threshold; the verdict is the status of
    the metric's ``drift`` test (``FAIL`` = drift), which needs ``include_tests=True``.
    """
    verdicts: dict[str, bool] = {}
    for test in snapshot_dict.get("tests", []):
        params = test.get("metric_config", {}).get("params", {})
        if test.get("id") == _DRIFT_TEST_ID and params.get("type") == _VALUE_DRIFT:
            verdicts[str(params["column"])] = test.get("status") == "FAIL"
    scores: dict[str, ColumnDrift] = {}
    for metric in snapshot_dict.get("metrics", []):
        config = metric.get("config", {})
        if config.get("type") != _VALUE_DRIFT:
            continue
        column = str(config["column"])
        score = float(metric["value"])
        stattest = str(config.get("method"))
        threshold = float(config.get("threshold"))
        drifted = verdicts.get(column)
        if drifted is None:  # no test result: apply the test's own rule
            drifted = score < threshold if "p_value" in stattest else score >= threshold
        scores[column] = ColumnDrift(column, score, stattest, threshold, bool(drifted))
    absent = [c for c in columns if c not in scores]
    if absent:
        raise DriftComputationError(
            f"Evidently returned no drift score for column(s) {', '.join(absent)}"
        )
    return {c: scores[c] for c in columns}


_SUMMARY_COUNTS = {
    "evidently:metric_v2:RowCount": "rows",
    "evidently:metric_v2:ColumnCount": "columns",
    "evidently:metric_v2:DuplicatedRowCount": "duplicated_rows",
    "evidently:metric_v2:ConstantColumnsCount": "constant_columns",
    "evidently:metric_v2:AlmostConstantColumnsCount": "almost_constant_columns",
    "evidently:metric_v2:EmptyColumnsCount": "empty_columns",
    "evidently:metric_v2:EmptyRowsCount": "empty_rows",
}


def _data_summary(snapshot_dict: dict[str, Any]) -> dict[str, Any]:
    """Small data-quality summary of the current table from the data summary preset's metrics."""
    summary: dict[str, Any] = {}
    missing: dict[str, float] = {}
    for metric in snapshot_dict.get("metrics", []):
        config = metric.get("config", {})
        kind = config.get("type")
        value = metric.get("value")
        if kind in _SUMMARY_COUNTS and "column_type" not in config:
            summary[_SUMMARY_COUNTS[kind]] = int(value)
        elif kind == "evidently:metric_v2:DatasetMissingValueCount":
            # Evidently's own "share" here is missing cells per *row* (it can exceed 1).
            summary["missing_cells"] = int(value["count"])
        elif kind == "evidently:metric_v2:MissingValueCount":
            missing[str(config["column"])] = float(value["share"])
    summary["missing_share_by_column"] = missing
    cells = summary.get("rows", 0) * len(missing)
    if "missing_cells" in summary and cells:
        summary["missing_share"] = summary["missing_cells"] / cells
    return summary


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: list[str] | None = None,
    report_dir: Path | None = None,
    threshold: float = 0.3,
    name: str = "features",
    categorical_columns: Sequence[str] = (),
) -> DriftResult:
    """Compare the distribution of each column in ``current`` with ``reference``.

    Parameters
    ----------
    reference : DataFrame
        The table the model was trained on (or the last accepted batch), at least
        :data:`MIN_ROWS` rows; e.g. ``clv.features.build_features`` output.
    current : DataFrame
        The new table, same columns, at least :data:`MIN_ROWS` rows.
    columns : list of str, optional
        Columns to compare. Default: the numeric columns both tables share, minus identifier
        columns (:data:`DEFAULT_EXCLUDED_COLUMNS`), plus ``categorical_columns``.
    report_dir : Path, optional
        When given, Evidently's HTML report is written there (atomically) as
        ``drift-<name>-<hash of the data>.html``.
    threshold : float
        Share of drifted columns, in (0, 1], from which the dataset counts as drifted.
    name : str
        What is compared; names the report file.
    categorical_columns : sequence of str
        Columns to compare as categories (any dtype; values are compared as strings). They are
        added to ``columns`` when not already listed.

    Returns
    -------
    DriftResult
        Share of drifted columns, per-column scores, the verdict and the report's path.

    Raises
    ------
    DriftInputError
        When a table is empty or has fewer than :data:`MIN_ROWS` rows, a column is missing from
        either table, entirely NaN, infinite somewhere, or neither numeric nor declared
        categorical. The message names the column and the table.
    DriftComputationError
        When Evidently itself fails on validated inputs (details in the debug log).
    """
    numeric, categorical = _validate(
        reference,
        current,
        columns=columns,
        categorical_columns=categorical_columns,
        threshold=threshold,
    )
    checked = [*numeric, *categorical]
    ref = _prepare(reference, numeric, categorical)
    cur = _prepare(current, numeric, categorical)

    from evidently import DataDefinition, Dataset, Report  # type: ignore[import-untyped]
    from evidently.presets import DataDriftPreset, DataSummaryPreset  # type: ignore[import-untyped]

    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    # include_tests: the per-column drift verdicts are only exposed as test results.
    report = Report(
        [
            DataDriftPreset(columns=checked, drift_share=threshold),
            DataSummaryPreset(columns=checked),
        ],
        include_tests=True,
    )
    try:
        snapshot = report.run(
            current_data=Dataset.from_pandas(cur, data_definition=definition),
            reference_data=Dataset.from_pandas(ref, data_definition=definition),
        )
        snapshot_dict = snapshot.dict()
    except Exception as err:
        logger.debug("Evidently failed on %s drift", name, exc_info=True)
        raise DriftComputationError(
            f"Evidently could not compute {name} drift over {len(checked)} column(s): "
            f"{type(err).__name__}: {err}"
        ) from None

    scores = _column_scores(snapshot_dict, checked)
    drifted = [c for c in checked if scores[c].drifted]
    share = len(drifted) / len(checked)

    report_path: Path | None = None
    if report_dir is not None:
        report_path = Path(report_dir) / _report_file_name(name, ref, cur)
        write_atomic(report_path, lambda tmp: snapshot.save_html(str(tmp)))  # str: see below
        # Snapshot.save_html silently writes nothing when given a Path rather than a str.
        if not report_path.exists() or report_path.stat().st_size == 0:
            raise DriftComputationError(f"Evidently wrote an empty HTML report to {report_path}")

    result = DriftResult(
        name=name,
        share=share,
        drifted_columns=drifted,
        column_scores=scores,
        n_reference=len(reference),
        n_current=len(current),
        columns_checked=checked,
        threshold=threshold,
        detected=share >= threshold,
        report_path=report_path,
        data_summary=_data_summary(snapshot_dict),
    )
    logger.info(
        "%s drift: %d of %d columns drifted (share %.2f, threshold %.2f)%s",
        name,
        len(drifted),
        len(checked),
        share,
        threshold,
        f": {', '.join(drifted)}" if drifted else "",
    )
    return result


def prediction_drift(
    reference_scores: pd.DataFrame,
    current_scores: pd.DataFrame,
    *,
    report_dir: Path | None = None,
    threshold: float = 0.3,
    name: str = "predictions",
) -> DriftResult:
    """Drift of the model's outputs between two scores files.

    Compares ``predicted_clv`` and, when both files have it, ``churn_probability``.

    Parameters
    ----------
    reference_scores, current_scores : DataFrame
        Scores files (see ``clv.training.scoring.score_customers``).
    report_dir : Path, optional
        Folder for Evidently's HTML report.
    threshold : float
        Share of drifted prediction columns from which drift counts as detected; with the
        default 0.3, one drifted column out of two is enough.
    name : str
        Names the report file.

    Returns
    -------
    DriftResult

    Raises
    ------
    DriftInputError
        As :func:`compute_drift`; also when ``predicted_clv`` is missing from either file.
    """
    in_both = set(getattr(reference_scores, "columns", ())) & set(
        getattr(current_scores, "columns", ())
    )
    columns = [c for c in PREDICTION_COLUMNS if c == "predicted_clv" or c in in_both]
    return compute_drift(
        reference_scores,
        current_scores,
        columns=columns,
        report_dir=report_dir,
        threshold=threshold,
        name=name,
    )
