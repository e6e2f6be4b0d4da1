"""Review report of a segmentation version: one self-contained HTML page plus CSV files.

A segmentation run produces a version that an expert reviews before it goes live, as a model is
reviewed before promotion. ``clv segment review`` prints each segment's profile and calls
:func:`write_review_report`, which writes into one folder:

* ``report.html``: title (version, method, status, date), a summary (customers, segments, rules
  passed and failed, the failed rules' messages highlighted), the profile table, the rule table
  and the plots, embedded as PNG data URIs. Inline CSS only: no script, no external link, so the
  file can be mailed or attached to a ticket as it is. Every piece of user-provided text (segment
  names, rule messages, ...) goes through :func:`html.escape`;
* ``profiles.csv``: the profile table as given, its index in a ``segment`` column;
* ``rules.csv``: the rule results as given;
* ``migration.csv``: previous segment (rows, ``previous`` column) by current segment (columns),
  customer counts; only when a migration table is given;
* ``assignments_summary.csv``: ``segment, customers`` counted from the labels.

Plots (Agg canvas, :data:`DPI`): segment sizes; predicted CLV per segment as box plots on a
``log1p`` axis, from at most :data:`MAX_BOX_SAMPLE` customers per segment drawn with a fixed seed
(so a million customers draw as fast as a hundred thousand); a snake plot of the standardised
centroids; and, when a migration table is given, a heat map of it.

As in :mod:`clv.evaluation.plots`, matplotlib is imported inside the functions (importing this
module loads no plotting library) and only its object-oriented API is used, never ``pyplot``.

What a failure leaves behind
----------------------------
The report is written in two phases, so that a failure leaves no ``report.html`` and no partial
file from the failed call:

1. Everything is built in memory first: the PNG bytes of every plot, the CSV text and the HTML.
   A failure here (bad input, a plot that cannot be drawn) touches nothing on disk; the folder
   is not even created.
2. Every file is then written to a temporary file in the folder (``.<name>.<uuid>.tmp``). If one
   of these writes fails, all temporaries are removed (and the folder too when this call created
   it and it is empty), so the files of an earlier report stay as they were. Only when all are
   written are they renamed into place with :meth:`pathlib.Path.replace`, ``report.html`` last:
   a reader never sees half a file, and a new ``report.html`` never appears before its CSVs.

A ``migration.csv`` left by an earlier report in the same folder is removed when the new report
has no migration table (just before ``report.html`` is renamed), so the folder always describes
one report.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "CENTROID_FEATURES",
    "DPI",
    "MAX_BOX_SAMPLE",
    "REPORT_FILE",
    "standardised_means",
    "write_review_report",
]

#: Resolution of the embedded PNGs.
DPI = 110
#: Customers per segment drawn, at most, for the CLV box plots.
MAX_BOX_SAMPLE = 20_000
#: Per-customer columns whose standardised segment means make the snake plot when no centroids
#: are given (those present and numeric are used, in this order).
CENTROID_FEATURES: tuple[str, ...] = (
    "predicted_clv",
    "churn_probability",
    "eco_spend_share",
    "r_score",
    "f_score",
    "m_score",
)
#: Name of the HTML file in the report folder.
REPORT_FILE = "report.html"
#: Name of the migration table in the report folder.
MIGRATION_FILE = "migration.csv"
#: Columns the rule table must have (``value`` and ``threshold`` are shown when present).
RULE_COLUMNS: tuple[str, ...] = ("segment", "rule", "passed", "message")

_FEATURE_LABELS = {
    "predicted_clv": "predicted CLV",
    "churn_probability": "churn probability",
    "eco_spend_share": "eco spend share",
    "r_score": "R score",
    "f_score": "F score",
    "m_score": "M score",
}
# The profile columns in the order the HTML shows them (others follow in their own order).
_PROFILE_COLUMNS: dict[str, str] = {
    "customers": "Customers",
    "share": "Share",
    "customers_before": "Customers before",
    "change": "Change",
    "clv_share": "CLV share",
    "mean_clv": "Mean CLV",
    "median_clv": "Median CLV",
    "mean_churn": "Mean churn",
    "eco_share": "Eco share",
    "mean_r": "Mean R",
    "mean_f": "Mean F",
    "mean_m": "Mean M",
    "rfm_mix": "RFM mix",
}
_PERCENT_COLUMNS = frozenset({"share", "clv_share", "mean_churn", "eco_share"})
_MONEY_COLUMNS = frozenset({"mean_clv", "median_clv"})
_SCORE_COLUMNS = frozenset({"mean_r", "mean_f", "mean_m"})
_COUNT_COLUMNS = frozenset({"customers", "customers_before"})
_MISSING = "&mdash;"

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2328;
       max-width: 1200px; margin: 2em auto; padding: 0 1em; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #d0d7de; }
.meta { color: #57606a; margin-top: 0; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
th, td { border: 1px solid #d0d7de; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.failed td { background: #ffebe9; }
.bad { color: #cf222e; }
.good { color: #1a7f37; }
.failures { background: #ffebe9; border: 1px solid #ff8182; border-radius: 6px;
            padding: 0.5em 1em; margin: 1em 0; }
.failures p { margin: 0.2em 0; font-weight: 600; color: #cf222e; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
figcaption { color: #57606a; font-size: 0.9em; }
"""


@dataclass(frozen=True)
class _Plot:
    title: str
    caption: str
    png: bytes


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def write_review_report(
    folder: Path,
    *,
    version: int,
    method: str,
    status: str,
    profiles: pd.DataFrame,
    inputs: pd.DataFrame,
    labels: pd.Series,
    centroids: pd.DataFrame | None,
    migration: pd.DataFrame | None,
    rules: pd.DataFrame,
    compared_with: int | None = None,
    created_at: datetime | None = None,
    seed: int = 0,
) -> Path:
    """Write the review report of a segmentation version: ``report.html`` and its CSV files.

    Parameters
    ----------
    folder : Path
        Where to write; created when missing. Files of an earlier report are replaced.
    version : int
        The segmentation version under review.
    method : str
        How it was segmented (``"rfm"`` or ``"kmeans"``).
    status : str
        Its status (``pending``, ``active``, ...).
    profiles : DataFrame
        One row per segment, indexed by segment label, in the order the report shows them.
        Needs ``customers``; shows, when present, ``share``, ``clv_share``, ``mean_churn`` and
        ``eco_share`` as percentages, ``mean_clv`` and ``median_clv`` with two decimals,
        ``mean_r``, ``mean_f``, ``mean_m``, ``rfm_mix``, ``customers_before`` and ``change``
        (customers minus customers before, as a signed count; NaN, a segment the compared
        version lacks, shows as "new"), then any other column. Other NaNs show as a dash.
    inputs : DataFrame
        One row per customer, indexed by ``customer_id``: ``predicted_clv`` and, for the snake
        plot when ``centroids`` is None, the :data:`CENTROID_FEATURES` present.
    labels : Series
        Segment label per customer, indexed by ``customer_id``; every labelled customer must be
        in ``inputs``.
    centroids : DataFrame or None
        Segment label by feature, standardised (k-means centroids). When None, the standardised
        segment means of :func:`standardised_means` are drawn.
    migration : DataFrame or None
        Customer counts, previous segment (rows) by current segment (columns); None when there
        is no active version to compare with.
    rules : DataFrame
        Rule results: ``segment``, ``rule``, ``passed``, ``message`` and, shown when present,
        ``value`` and ``threshold``. A missing ``segment`` means the rule is about the whole
        segmentation.
    compared_with : int, optional
        The active version ``migration`` compares against.
    created_at : datetime, optional
        The date the title shows; default now, in UTC. Give it (and keep ``seed``) to get the
        same bytes from the same inputs.
    seed : int, default 0
        Seed of the per-segment sample drawn for the CLV box plots.

    Returns
    -------
    Path
        ``folder / "report.html"``.

    Raises
    ------
    ValueError
        When an input lacks a column it needs, ``profiles`` is empty, ``labels`` has missing
        labels or names customers that ``inputs`` lacks. Nothing is written then, nor when a
        plot fails (see the module docstring for what a failure leaves behind).
    """
    _check_inputs(profiles, inputs, labels, rules)
    when = created_at if created_at is not None else datetime.now(UTC)
    order = [str(name) for name in profiles.index]
    aligned = _aligned(inputs, labels)
    codes, names = _segment_codes(labels)

    plots = [
        _Plot(
            "Segment sizes",
            "Customers per segment; the label gives the share of all customers.",
            _sizes_png(profiles),
        ),
        _Plot(
            "Predicted CLV per segment",
            f"Box: quartiles and median; whiskers: 5th to 95th percentile; log(1 + CLV) axis "
            f"labelled in CLV. At most {MAX_BOX_SAMPLE:,} customers per segment are drawn "
            f"(random sample, seed {seed}).",
            _clv_distribution_png(
                _clv_samples(aligned["predicted_clv"], codes, names, order, seed=seed)
            ),
        ),
        _Plot(
            "Segment profiles (snake plot)",
            "Standardised centroid of each segment across the features: 0 is the mean customer,"
            " 1 is one standard deviation above it."
            if centroids is not None
            else "Standardised mean of each feature per segment: 0 is the mean customer, 1 is "
            "one standard deviation above it.",
            _snake_png(
                _ordered(
                    centroids if centroids is not None else standardised_means(aligned, labels),
                    order,
                )
            ),
        ),
    ]
    if migration is not None:
        plots.append(
            _Plot(
                "Migration from the active version",
                "Customers by previous segment (rows) and segment in this version (columns); "
                "colour: share of the previous segment's customers.",
                _migration_png(migration, version=version, compared_with=compared_with),
            )
        )

    files: dict[str, bytes] = {
        "profiles.csv": profiles.to_csv(index_label="segment").encode("utf-8"),
        "rules.csv": rules.to_csv(index=False).encode("utf-8"),
    }
    if migration is not None:
        files[MIGRATION_FILE] = migration.to_csv(index_label="previous").encode("utf-8")
    files["assignments_summary.csv"] = (
        _assignments_summary(codes, names, order).to_csv(index=False).encode("utf-8")
    )
    files[REPORT_FILE] = _render_html(
        version=version,
        method=method,
        status=status,
        created_at=when,
        customers=len(labels),
        profiles=profiles,
        rules=rules,
        migration=migration,
        compared_with=compared_with,
        plots=plots,
    ).encode("utf-8")

    folder = Path(folder)
    _commit(folder, files, stale=() if migration is not None else (MIGRATION_FILE,))
    return folder / REPORT_FILE


def standardised_means(inputs: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """Mean of each standardised feature per segment: where each segment sits, in z units.

    Each of the :data:`CENTROID_FEATURES` present in ``inputs`` (and numeric) is standardised
    over all labelled customers, ``(x - mean) / std`` (population standard deviation), and
    averaged per segment; the mean of a segment is therefore ``(segment mean - mean) / std``.
    NaNs are skipped; a segment whose values are all NaN gets NaN, and a constant feature 0.

    Parameters
    ----------
    inputs : DataFrame
        One row per customer, indexed by ``customer_id``.
    labels : Series
        Segment label per customer; every labelled customer must be in ``inputs``.

    Returns
    -------
    DataFrame
        Segment label (as str, in order of first appearance in ``labels``) by feature.

    Raises
    ------
    ValueError
        When ``labels`` has missing labels or names customers that ``inputs`` lacks.
    """
    aligned = _aligned(inputs, labels)
    codes, names = _segment_codes(labels)
    features = [
        c
        for c in CENTROID_FEATURES
        if c in aligned.columns and pd.api.types.is_numeric_dtype(aligned[c])
    ]
    values = aligned[features].astype(np.float64)
    mean = values.mean()
    std = values.std(ddof=0)
    segment_means = values.groupby(codes).mean().reindex(range(len(names)))
    spread = std.where(std > 0)
    z = (segment_means - mean) / spread
    z.loc[:, spread.isna() & mean.notna()] = 0.0
    z.index = pd.Index(names, name="segment")
    return z


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def _check_inputs(
    profiles: pd.DataFrame, inputs: pd.DataFrame, labels: pd.Series, rules: pd.DataFrame
) -> None:
    if profiles.empty:
        raise ValueError("profiles is empty: the report needs one row per segment")
    if "customers" not in profiles.columns:
        raise ValueError(
            f"profiles lacks the 'customers' column; it has {list(map(str, profiles.columns))}"
        )
    if "predicted_clv" not in inputs.columns:
        raise ValueError(
            "inputs lacks the 'predicted_clv' column, which the CLV box plots are drawn from"
        )
    missing_rules = [c for c in RULE_COLUMNS if c not in rules.columns]
    if missing_rules:
        raise ValueError(
            f"rules lacks the column(s) {missing_rules}; it needs {list(RULE_COLUMNS)}"
        )
    n_missing = int(labels.isna().sum())
    if n_missing:
        raise ValueError(f"labels has {n_missing:,} customer(s) without a segment label")


def _aligned(inputs: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """``inputs`` in the row order of ``labels`` (no copy when they already match)."""
    if inputs.index.equals(labels.index):
        return inputs
    absent = labels.index.difference(inputs.index)
    if len(absent):
        examples = ", ".join(repr(c) for c in absent[:3])
        raise ValueError(f"{len(absent):,} labelled customer(s) are not in inputs, e.g. {examples}")
    return inputs.reindex(labels.index)


def _segment_codes(labels: pd.Series) -> tuple[npt.NDArray[np.intp], list[str]]:
    """Position of each customer's segment in ``names``, and the names as str."""
    codes, uniques = pd.factorize(labels)
    if (codes < 0).any():
        raise ValueError(
            f"labels has {int((codes < 0).sum()):,} customer(s) without a segment label"
        )
    return np.asarray(codes, dtype=np.intp), [str(u) for u in uniques]


def _ordered(table: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    """``table`` with a str index, the segments of ``order`` first, in that order."""
    result = table.copy()
    result.index = pd.Index([str(name) for name in result.index], name="segment")
    rank = {name: i for i, name in enumerate(order)}
    position = [rank.get(name, len(order) + i) for i, name in enumerate(result.index)]
    return result.iloc[np.argsort(position, kind="stable")]


def _clv_samples(
    predicted_clv: pd.Series,
    codes: npt.NDArray[np.intp],
    names: Sequence[str],
    order: Sequence[str],
    *,
    seed: int,
) -> dict[str, npt.NDArray[np.float64]]:
    """Predicted CLV of at most :data:`MAX_BOX_SAMPLE` customers per segment, NaNs dropped.

    Segments come in ``order`` (those only in the labels after them); a segment of the profiles
    without labelled customers gets an empty array.
    """
    values = predicted_clv.to_numpy(dtype=np.float64, na_value=np.nan)
    rng = np.random.default_rng(seed)
    position_of = {name: i for i, name in enumerate(names)}
    samples: dict[str, npt.NDArray[np.float64]] = {}
    for name in [*order, *(n for n in names if n not in set(order))]:
        if name not in position_of:
            samples[name] = np.empty(0, dtype=np.float64)
            continue
        members = np.flatnonzero(codes == position_of[name])
        if len(members) > MAX_BOX_SAMPLE:
            members = np.sort(rng.choice(members, size=MAX_BOX_SAMPLE, replace=False))
        sample = values[members]
        samples[name] = sample[~np.isnan(sample)]
    return samples


def _assignments_summary(
    codes: npt.NDArray[np.intp], names: Sequence[str], order: Sequence[str]
) -> pd.DataFrame:
    counts = dict(zip(names, np.bincount(codes, minlength=len(names)).tolist(), strict=True))
    segments = [*order, *(n for n in names if n not in set(order))]
    return pd.DataFrame(
        {"segment": segments, "customers": [int(counts.get(s, 0)) for s in segments]}
    )


# ---------------------------------------------------------------------------------------------
# Plots: each returns PNG bytes
# ---------------------------------------------------------------------------------------------


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # No "Software" text chunk: the bytes depend on the data only, not on matplotlib's version.
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _plain(name: str) -> str:
    """A label matplotlib shows as written: no mathtext for ``$``, no hiding for a leading ``_``."""
    text = name.replace("$", r"\$")
    return f" {text}" if text.startswith("_") else text


def _height_for(n_rows: int) -> float:
    return max(2.6, 0.42 * n_rows + 1.4)


def _sizes_png(profiles: pd.DataFrame) -> bytes:
    names = [_plain(str(name)) for name in profiles.index]
    customers = profiles["customers"].to_numpy(dtype=np.float64, na_value=0.0)
    if "share" in profiles.columns:
        shares = profiles["share"].to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        total = customers.sum()
        shares = customers / total if total > 0 else np.full(len(customers), np.nan)

    figure = _new_figure(8.0, _height_for(len(names)))
    axes = figure.add_subplot()
    positions = np.arange(len(names))
    axes.barh(positions, customers, color="#4c72b0")
    for y, (n, share) in enumerate(zip(customers, shares, strict=True)):
        share_text = "" if math.isnan(share) else f" ({share:.1%})"
        axes.text(n, y, f" {n:,.0f}{share_text}", va="center", fontsize=9)
    axes.set_yticks(positions, names)
    axes.invert_yaxis()
    axes.set_xlim(0, max(float(customers.max()), 1.0) * 1.3)
    axes.set_xlabel("Customers")
    axes.set_title("Segment sizes")
    return _png_bytes(figure)


def _log1p_ticks(largest: float) -> tuple[list[float], list[str]]:
    """Tick positions on the ``log1p`` axis at 0, 1, 10, 100, ... CLV, up to ``largest``."""
    decades = max(1, math.ceil(math.log10(largest + 1.0)))
    values = [0.0, *(10.0**k for k in range(decades + 1))]
    return [math.log1p(v) for v in values], [f"{v:,.0f}" for v in values]


def _clv_distribution_png(samples: dict[str, npt.NDArray[np.float64]]) -> bytes:
    names = list(samples)
    data = [np.log1p(np.clip(samples[name], 0.0, None)) for name in names]
    largest = max((float(s.max()) for s in samples.values() if len(s)), default=1.0)

    figure = _new_figure(8.0, _height_for(len(names)))
    axes = figure.add_subplot()
    axes.boxplot(
        data,
        orientation="horizontal",
        tick_labels=[_plain(name) for name in names],
        whis=(5.0, 95.0),
        showfliers=False,
        patch_artist=True,
        boxprops={"facecolor": "#c6d4ea"},
        medianprops={"color": "#1f2328"},
    )
    axes.invert_yaxis()
    positions, tick_labels = _log1p_ticks(max(largest, 0.0))
    axes.set_xticks(positions, tick_labels)
    axes.set_xlabel("Predicted CLV (log(1 + CLV) scale)")
    axes.set_title("Predicted CLV per segment")
    return _png_bytes(figure)


def _snake_png(centroids: pd.DataFrame) -> bytes:
    features = [_plain(_FEATURE_LABELS.get(str(c), str(c))) for c in centroids.columns]
    figure = _new_figure(max(7.0, 1.1 * len(features) + 4.0), 4.8)
    axes = figure.add_subplot()
    positions = np.arange(len(features))
    for name, row in centroids.iterrows():
        values = row.to_numpy(dtype=np.float64, na_value=np.nan)
        axes.plot(positions, values, marker="o", label=_plain(str(name)))
    axes.axhline(0.0, color="grey", linestyle="--", linewidth=1)
    axes.set_xticks(positions, features, rotation=20, ha="right")
    axes.set_ylabel("Standardised value (z)")
    axes.set_title("Snake plot of the segments")
    if len(features) == 0:
        axes.text(0.5, 0.5, "no numeric feature to draw", ha="center", transform=axes.transAxes)
    elif len(centroids):
        axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    return _png_bytes(figure)


def _migration_png(migration: pd.DataFrame, *, version: int, compared_with: int | None) -> bytes:
    counts = migration.to_numpy(dtype=np.float64, na_value=0.0)
    row_totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_totals, out=np.zeros_like(counts), where=row_totals > 0)
    rows = [_plain(str(r)) for r in migration.index]
    columns = [_plain(str(c)) for c in migration.columns]

    figure = _new_figure(max(5.5, 0.95 * len(columns) + 3.5), max(3.5, 0.55 * len(rows) + 2.2))
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    fontsize = 9 if max(len(rows), len(columns)) <= 8 else 7
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            axes.text(
                j,
                i,
                f"{counts[i, j]:,.0f}",
                ha="center",
                va="center",
                fontsize=fontsize,
                color="white" if shares[i, j] > 0.5 else "#1f2328",
            )
    axes.set_xticks(np.arange(len(columns)), columns, rotation=30, ha="right")
    axes.set_yticks(np.arange(len(rows)), rows)
    axes.set_xlabel(f"Segment in version {version}")
    previous = f"version {compared_with}" if compared_with is not None else "the active version"
    axes.set_ylabel(f"Segment in {previous}")
    axes.set_title("Migration of customers between segments")
    figure.colorbar(image, ax=axes, label="Share of the previous segment's customers")
    return _png_bytes(figure)


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def _number(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.2f}"
    return f"{value:.4g}"


def _generic_cell(value: object) -> tuple[str, bool]:
    if _is_missing(value):
        return _MISSING, True
    if isinstance(value, bool | np.bool_):
        return ("yes" if value else "no"), False
    if isinstance(value, int | np.integer):
        return f"{int(value):,}", True
    if isinstance(value, float | np.floating):
        return _number(float(value)), True
    return _text(value), False


def _profile_cell(column: str, value: object) -> tuple[str, bool]:
    """The HTML text of one profile cell and whether it is a number (right-aligned)."""
    if column == "change" and _is_missing(value):
        return "new", True
    if _is_missing(value) or not isinstance(value, int | float | np.number):
        return _generic_cell(value)
    number = float(value)
    if column in _PERCENT_COLUMNS:
        return f"{number:.1%}", True
    if column in _MONEY_COLUMNS:
        return f"{number:,.2f}", True
    if column in _SCORE_COLUMNS:
        return f"{number:.2f}", True
    if column in _COUNT_COLUMNS:
        return f"{number:,.0f}", True
    if column == "change":
        return f"{number:+,.0f}", True
    return _generic_cell(value)


def _td(content: str, numeric: bool) -> str:
    return f'<td class="num">{content}</td>' if numeric else f"<td>{content}</td>"


def _profile_table(profiles: pd.DataFrame) -> str:
    columns = [c for c in _PROFILE_COLUMNS if c in profiles.columns]
    columns += [c for c in profiles.columns if c not in _PROFILE_COLUMNS]
    header = "".join(
        f"<th>{_text(_PROFILE_COLUMNS.get(str(c), str(c)))}</th>" for c in ["Segment", *columns]
    )
    body = []
    for name, row in zip(profiles.index, profiles[columns].itertuples(index=False), strict=True):
        cells = [f"<th>{_text(name)}</th>"]
        for column, value in zip(columns, row, strict=True):
            cells.append(_td(*_profile_cell(str(column), value)))
        body.append(f"<tr>{''.join(cells)}</tr>")
    return _table(header, body)


def _table(header: str, body: Iterable[str]) -> str:
    rows = "\n".join(body)
    return f"<table>\n<thead><tr>{header}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>"


def _passed_flags(rules: pd.DataFrame) -> list[bool]:
    return [False if _is_missing(v) else bool(v) for v in rules["passed"]]


def _rule_scope(segment: object) -> str:
    return "all segments" if _is_missing(segment) or str(segment) == "" else str(segment)


def _rules_table(rules: pd.DataFrame, passed: Sequence[bool]) -> str:
    if rules.empty:
        return "<p>No rule was checked.</p>"
    columns = ["segment", "rule", "passed"]
    columns += [c for c in ("value", "threshold") if c in rules.columns]
    columns += ["message"]
    header = "".join(f"<th>{_text(c.capitalize())}</th>" for c in columns)
    body = []
    for ok, (_, row) in zip(passed, rules.iterrows(), strict=True):
        cells = []
        for column in columns:
            value = row[column]
            if column == "segment":
                cells.append(_td(_text(_rule_scope(value)), False))
            elif column == "passed":
                cells.append(
                    '<td class="good">&#10003; passed</td>'
                    if ok
                    else '<td class="bad">&#10007; failed</td>'
                )
            else:
                cells.append(_td(*_generic_cell(value)))
        row_class = "" if ok else ' class="failed"'
        body.append(f"<tr{row_class}>{''.join(cells)}</tr>")
    return _table(header, body)


def _failures(rules: pd.DataFrame, passed: Sequence[bool]) -> str:
    items = [
        f"<li><strong>{_text(_rule_scope(row['segment']))}</strong> &middot; "
        f"{_text(row['rule'])}: {_text('' if _is_missing(row['message']) else row['message'])}"
        "</li>"
        for ok, (_, row) in zip(passed, rules.iterrows(), strict=True)
        if not ok
    ]
    if not items:
        return ""
    return (
        '<div class="failures">\n<p>Failed rules</p>\n<ul>\n' + "\n".join(items) + "\n</ul>\n</div>"
    )


def _stayed(migration: pd.DataFrame) -> str:
    """A summary line: customers of the active version who kept their segment's name."""
    counts = migration.to_numpy(dtype=np.float64, na_value=0.0)
    total = float(counts.sum())
    if total <= 0:
        return ""
    column_of = {str(c): j for j, c in enumerate(migration.columns)}
    kept = sum(
        float(counts[i, column_of[str(r)]])
        for i, r in enumerate(migration.index)
        if str(r) in column_of
    )
    return (
        f"<li><strong>{kept:,.0f}</strong> of {total:,.0f} customers of the active version "
        f"({kept / total:.1%}) stay in a segment of the same name</li>"
    )


def _figure(plot: _Plot) -> str:
    data = base64.b64encode(plot.png).decode("ascii")
    return (
        f'<figure>\n<img alt="{_text(plot.title)}" src="data:image/png;base64,{data}">\n'
        f"<figcaption>{_text(plot.title)}. {_text(plot.caption)}</figcaption>\n</figure>"
    )


def _render_html(
    *,
    version: int,
    method: str,
    status: str,
    created_at: datetime,
    customers: int,
    profiles: pd.DataFrame,
    rules: pd.DataFrame,
    migration: pd.DataFrame | None,
    compared_with: int | None,
    plots: Sequence[_Plot],
) -> str:
    passed = _passed_flags(rules)
    n_failed = passed.count(False)
    title = f"Segmentation version {version}: {method}, {status}"
    date = created_at.strftime("%Y-%m-%d")
    stamp = created_at.strftime("%Y-%m-%d %H:%M %Z").strip()
    if compared_with is not None:
        comparison = f"compared with active version {compared_with}"
    elif migration is not None:
        comparison = "compared with the active version"
    else:
        comparison = "no active version to compare with"
    failed_class = "bad" if n_failed else "good"
    summary = [
        f"<li><strong>{customers:,}</strong> customers in <strong>{len(profiles):,}</strong> "
        "segments</li>",
        f'<li>Rules: <strong class="good">{len(passed) - n_failed:,}</strong> passed, '
        f'<strong class="{failed_class}">{n_failed:,}</strong> failed</li>',
    ]
    if migration is not None:
        summary.append(_stayed(migration))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{_text(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_text(title)} &middot; {_text(date)}</h1>",
        f'<p class="meta">Created {_text(stamp)}; method {_text(method)}; status '
        f"{_text(status)}; {_text(comparison)}.</p>",
        "<h2>Summary</h2>",
        "<ul>",
        *(line for line in summary if line),
        "</ul>",
        _failures(rules, passed),
        "<h2>Segment profiles</h2>",
        _profile_table(profiles),
        "<h2>Rules</h2>",
        _rules_table(rules, passed),
        "<h2>Plots</h2>",
        *(_figure(plot) for plot in plots),
        "</body>",
        "</html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def _write_temporary(folder: Path, name: str, content: bytes) -> Path:
    """Write ``content`` to a new temporary file beside ``folder / name``; removed on failure."""
    temporary = folder / f".{name}.{uuid.uuid4().hex}.tmp"
    try:
        # O_EXCL: never write through someone else's file; mode 0o666 lets the umask decide.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def _commit(folder: Path, files: dict[str, bytes], *, stale: Sequence[str]) -> None:
    """Write every file to a temporary, then rename them all into place, the last one last.

    ``stale`` files are removed just before the last rename.
    """
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    temporaries: dict[str, Path] = {}
    try:
        for name, content in files.items():
            temporaries[name] = _write_temporary(folder, name, content)
    except BaseException:
        for temporary in temporaries.values():
            temporary.unlink(missing_ok=True)
        if created and not any(folder.iterdir()):
            folder.rmdir()
        raise
    names = list(temporaries)
    try:
        for i, name in enumerate(names):
            if i == len(names) - 1:
                for old in stale:
                    (folder / old).unlink(missing_ok=True)
            temporaries[name].replace(folder / name)
    finally:
        for temporary in temporaries.values():
            temporary.unlink(missing_ok=True)
