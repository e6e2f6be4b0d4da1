"""The report of a measured campaign: one markdown file, one standalone HTML page, two PNG plots.

``clv campaign analyze --report DIR`` measures a campaign with
:func:`clv.campaigns.measurement.analyze_campaign` and calls :func:`write_report`, which writes into
one folder:

* ``report.md``: the campaign, its primary metric, cost, attribution window, the incremental
  revenue and ROI with their 95% intervals, the sample ratio check, whether CUPED was used, the
  verdict (winner and the engine's reason), a table per variant and one per segment, and links to
  the two PNGs beside it;
* ``report.html``: the same content as one page that stands alone: inline CSS, no script, the
  PNGs embedded as ``data:`` URIs. Every piece of text from the campaign (its id, variant and
  segment names, the verdict's reason, the title) goes through :func:`html.escape`;
* ``incremental_revenue.png``: incremental revenue with its 95% interval per variant (and all
  treated together) and per segment, two panels, a zero line;
* ``cumulative_lift.png``: :func:`cumulative_lift` drawn, per customer and in total, per variant
  and for all treated together.

The numbers come from the analysis as it is (nothing is re-estimated here), except the cumulative
lift, which is a plain difference of means computed from the plan and the transactions: it shows
*when* the revenue came, not a second test. Its last day equals the attribution window of
:func:`~clv.campaigns.measurement.attributed_metrics`, so on the last day it is the unadjusted
version of the incremental revenue (the headline number may differ by CUPED's adjustment).

Everything is built in memory first, so a failure (bad input, a plot that cannot be drawn)
writes nothing. Each file is then written with :func:`clv.data.io.write_atomic`, the PNGs first
and ``report.html`` last: a reader never sees half a file, and a new ``report.html`` never appears
before its plots. The same inputs give the same bytes (no date in the report, no software stamp in
the PNGs).

As in :mod:`clv.segmentation.report`, matplotlib is imported inside the functions (importing this
module loads no plotting library) and only its object-oriented API with the Agg canvas is used.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clv.campaigns.definition import HOLDOUT

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from clv.campaigns.measurement import CampaignAnalysis

__all__ = [
    "CUMULATIVE_LIFT_COLUMNS",
    "CUMULATIVE_LIFT_FILE",
    "DPI",
    "HTML_FILE",
    "INCREMENTAL_REVENUE_FILE",
    "MARKDOWN_FILE",
    "POOLED",
    "cumulative_lift",
    "write_report",
]

#: Resolution of the PNGs.
DPI = 110
#: File names in the report folder.
MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"
INCREMENTAL_REVENUE_FILE = "incremental_revenue.png"
CUMULATIVE_LIFT_FILE = "cumulative_lift.png"
#: The group of all treated customers together (variant names are slugs: no space, no clash).
POOLED = "all treated"
#: Columns of :func:`cumulative_lift`.
CUMULATIVE_LIFT_COLUMNS: tuple[str, ...] = (
    "day",
    "group",
    "treated_per_customer",
    "holdout_per_customer",
    "lift_per_customer",
    "cumulative_incremental_revenue",
)

_DAY = pd.Timedelta(days=1)
_MISSING = "n/a"
_WINNER_COLOUR = "#1a7f37"
_VARIANT_COLOUR = "#4c72b0"
_POOLED_COLOUR = "#1f2328"
_SEGMENT_COLOUR = "#8172b3"

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
tr.winner td { background: #dafbe1; }
.bad { color: #cf222e; }
.good { color: #1a7f37; }
.verdict { border-radius: 6px; padding: 0.5em 1em; margin: 1em 0; }
.verdict.good { background: #dafbe1; border: 1px solid #4ac26b; color: #1f2328; }
.verdict.none { background: #f6f8fa; border: 1px solid #d0d7de; }
.verdict.bad { background: #ffebe9; border: 1px solid #ff8182; color: #1f2328; }
.verdict p { margin: 0.2em 0; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
figcaption { color: #57606a; font-size: 0.9em; }
"""


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def cumulative_lift(
    plan: pd.DataFrame, transactions: pd.DataFrame, window_days: int
) -> pd.DataFrame:
    """Cumulative revenue per customer, treated minus holdout, for each day since the send.

    Each customer is followed from their own ``send_at``: on day ``d`` (0 to ``window_days``)
    their revenue is the sum of their transactions in ``[send_at, send_at + d days)``. So day 0 is
    always 0, a purchase 2.5 days after the send counts from day 3 on, and day ``window_days`` is
    the attribution window of :func:`clv.campaigns.measurement.attributed_metrics`. Transactions
    before the send or from ``window_days`` on are ignored; refunds (negative amounts) count.

    Parameters
    ----------
    plan : DataFrame
        ``customer_id`` (one row per customer), ``group`` (:data:`~clv.campaigns.definition.HOLDOUT`
        or a variant name) and ``send_at`` (naive UTC, or aware and converted to UTC).
    transactions : DataFrame
        Contract transactions: ``customer_id``, ``timestamp``, ``amount``. Customers not in the
        plan are ignored.
    window_days : int
        The last day, at least 1.

    Returns
    -------
    DataFrame
        :data:`CUMULATIVE_LIFT_COLUMNS`, one row per treated group and day: the variants in name
        order, then :data:`POOLED` (all treated together), each over days ``0..window_days``.
        ``treated_per_customer`` and ``holdout_per_customer`` are the group's and the holdout's
        cumulative revenue divided by their planned customers (buyers or not),
        ``lift_per_customer`` their difference and ``cumulative_incremental_revenue`` that lift
        times the group's planned customers.

    Raises
    ------
    ValueError
        When a column is missing, ``window_days`` is less than 1, a customer appears twice in the
        plan, or the plan has no holdout or no treated customer.
    """
    if isinstance(window_days, bool) or not isinstance(window_days, int | np.integer):
        raise ValueError(f"window_days must be a whole number of days (got {window_days!r})")
    if window_days < 1:
        raise ValueError(f"window_days must be at least 1 (got {window_days})")
    _require(plan, ("customer_id", "group", "send_at"), "plan")
    _require(transactions, ("customer_id", "timestamp", "amount"), "transactions")
    ids = plan["customer_id"].astype(str)
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        examples = ", ".join(repr(c) for c in duplicated.unique()[:3])
        raise ValueError(
            f"plan has {len(duplicated):,} repeated customer row(s), e.g. {examples}: "
            "each customer is planned once"
        )
    groups = plan["group"].astype(str)
    if not (groups == HOLDOUT).any():
        raise ValueError(f"plan has no {HOLDOUT!r} customers: nothing to compare with")
    variants = sorted(set(groups) - {HOLDOUT})
    if not variants:
        raise ValueError("plan has no treated customers: nothing to measure")

    names = [*variants, HOLDOUT]
    code_of = {name: i for i, name in enumerate(names)}
    keys = pd.DataFrame(
        {
            "customer_id": ids.to_numpy(),
            "code": groups.map(code_of).to_numpy(dtype=np.intp),
            "send_at": _naive_utc(plan["send_at"]).to_numpy(),
        }
    )
    tx = pd.DataFrame(
        {
            "customer_id": transactions["customer_id"].astype(str).to_numpy(),
            "timestamp": _naive_utc(transactions["timestamp"]).to_numpy(),
            "amount": transactions["amount"].to_numpy(dtype=np.float64),
        }
    )
    tx = tx[tx["customer_id"].isin(keys["customer_id"])].merge(keys, on="customer_id")
    offset = tx["timestamp"] - tx["send_at"]
    inside = ((offset >= pd.Timedelta(0)) & (offset < window_days * _DAY)).to_numpy()
    # A purchase at offset t is in [send, send + d days) for every whole d > t.
    elapsed = offset.to_numpy(dtype="timedelta64[ns]")[inside]
    first_day = (elapsed // np.timedelta64(1, "D")).astype(np.intp) + 1
    daily = np.zeros((len(names), window_days + 1), dtype=np.float64)
    np.add.at(daily, (tx["code"].to_numpy()[inside], first_day), tx["amount"].to_numpy()[inside])
    cumulative = daily.cumsum(axis=1)
    customers = np.bincount(keys["code"].to_numpy(), minlength=len(names)).astype(np.float64)

    holdout = cumulative[code_of[HOLDOUT]] / customers[code_of[HOLDOUT]]
    treated_rows = [code_of[v] for v in variants]
    series = {v: (cumulative[code_of[v]], customers[code_of[v]]) for v in variants}
    series[POOLED] = (cumulative[treated_rows].sum(axis=0), customers[treated_rows].sum())
    days = np.arange(window_days + 1, dtype=np.int64)
    frames = []
    for group, (revenue, n_treated) in series.items():
        treated = revenue / n_treated
        lift = treated - holdout
        frames.append(
            pd.DataFrame(
                {
                    "day": days,
                    "group": group,
                    "treated_per_customer": treated,
                    "holdout_per_customer": holdout,
                    "lift_per_customer": lift,
                    "cumulative_incremental_revenue": lift * n_treated,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)[list(CUMULATIVE_LIFT_COLUMNS)]


def write_report(
    analysis: CampaignAnalysis | Mapping[str, Any],
    plan: pd.DataFrame,
    transactions: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    *,
    window_days: int,
    title: str | None = None,
) -> dict[str, Path]:
    """Write the campaign report: ``report.md``, ``report.html`` and two PNG plots.

    Parameters
    ----------
    analysis : CampaignAnalysis or mapping
        The measured campaign, or its :meth:`~clv.campaigns.measurement.CampaignAnalysis.to_dict`
        (the ``--json`` payload read back).
    plan : DataFrame
        The campaign's plan rows: ``customer_id``, ``group``, ``send_at`` (for the customer
        counts and the cumulative lift).
    transactions : DataFrame
        Contract transactions covering the attribution window.
    out_dir : str or PathLike
        A local folder; created when missing. Files of an earlier report are replaced.
    window_days : int
        The attribution window (the definition's ``attribution_window_days``): the last day of
        the cumulative lift, and stated in the report.
    title : str, optional
        The report's heading; by default ``"Campaign <id>: measured against the holdout"``.

    Returns
    -------
    dict of str to Path
        ``markdown``, ``html``, ``incremental_revenue_plot`` and ``cumulative_lift_plot``: the
        files written.

    Raises
    ------
    ValueError
        When the plan or transactions cannot give the cumulative lift (see
        :func:`cumulative_lift`). Nothing is written then.
    """
    payload = analysis.to_dict() if hasattr(analysis, "to_dict") else dict(analysis)
    lift = cumulative_lift(plan, transactions, window_days)
    content = _content(payload, plan, window_days=window_days, title=title)
    plots = [
        _Plot(
            INCREMENTAL_REVENUE_FILE,
            "Incremental revenue",
            "Estimate and 95% interval per variant (and all treated together) and per segment; "
            "an interval that crosses the zero line is not distinguishable from no effect.",
            _incremental_revenue_png(payload),
        ),
        _Plot(
            CUMULATIVE_LIFT_FILE,
            "Cumulative lift",
            f"Revenue per customer since each customer's send, treated minus holdout, for days "
            f"0 to {window_days}; and that lift times the group's customers.",
            _cumulative_lift_png(lift, winner=payload.get("winner")),
        ),
    ]
    markdown = _render_markdown(content, plots)
    page = _render_html(content, plots)

    out = Path(out_dir)
    written = {
        "incremental_revenue_plot": out / INCREMENTAL_REVENUE_FILE,
        "cumulative_lift_plot": out / CUMULATIVE_LIFT_FILE,
        "markdown": out / MARKDOWN_FILE,
        "html": out / HTML_FILE,
    }
    files: dict[str, bytes] = {
        "incremental_revenue_plot": plots[0].png,
        "cumulative_lift_plot": plots[1].png,
        "markdown": markdown.encode("utf-8"),
        "html": page.encode("utf-8"),
    }
    from clv.data.io import write_atomic

    for key, path in written.items():  # report.html last
        write_atomic(path, _bytes_writer(files[key]))
    return written


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def _require(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {', '.join(repr(c) for c in missing)}")


def _naive_utc(values: pd.Series) -> pd.Series:
    """``values`` as naive UTC datetimes (the store gives aware UTC, files naive)."""
    stamps = pd.to_datetime(values)
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return stamps.astype("datetime64[ns]")


def _bytes_writer(content: bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(content)

    return write


# ---------------------------------------------------------------------------------------------
# Content: plain text, rendered to markdown and to HTML
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    heading: str
    header: tuple[str, ...]
    numeric: tuple[bool, ...]
    rows: Sequence[tuple[str, ...]]
    winner_rows: frozenset[int]
    empty: str


@dataclass(frozen=True)
class _Content:
    title: str
    meta: str
    summary: list[tuple[str, str]]
    winner: str | None
    reason: str
    warning: str | None
    tables: list[_Table]


@dataclass(frozen=True)
class _Plot:
    file: str
    title: str
    caption: str
    png: bytes


def _finite(value: object) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _money(value: object) -> str:
    number = _finite(value)
    return _MISSING if number is None else f"{number:,.2f}"


def _percent(value: object, *, signed: bool = True) -> str:
    number = _finite(value)
    if number is None:
        return _MISSING
    return f"{number:+,.1%}" if signed else f"{number:,.1%}"


def _p_value(value: object) -> str:
    number = _finite(value)
    return _MISSING if number is None else f"{number:.3g}"


def _interval(values: Mapping[str, Any] | None, show: Callable[[object], str]) -> str:
    """``estimate (95% CI low to high)`` in the format ``show``; n/a when there is no estimate."""
    if not values or _finite(values.get("estimate")) is None:
        return _MISSING
    low, high = values.get("ci_low"), values.get("ci_high")
    if _finite(low) is None or _finite(high) is None:
        return show(values["estimate"])
    return f"{show(values['estimate'])} (95% CI {show(low)} to {show(high)})"


def _roi(values: Mapping[str, Any] | None) -> str:
    if not values or _finite(values.get("estimate")) is None:
        return f"{_MISSING} (no cost)"
    return _interval(values, _percent)


def _srm_text(srm: Mapping[str, Any]) -> tuple[str, str | None]:
    """The sample ratio check as a sentence, and a warning when it failed."""
    p = _p_value(srm.get("p_value"))
    threshold = _p_value(srm.get("threshold"))
    observed = srm.get("observed") or {}
    expected = srm.get("expected_shares") or {}
    total = sum(int(n) for n in observed.values())
    groups = []
    for name, n in observed.items():
        share = _finite(expected.get(name))
        planned = f" ({int(n) / total:.1%} vs {share:.1%} planned)" if total and share else ""
        groups.append(f"{name} {int(n):,}{planned}")
    split = ", ".join(groups)
    detail = f"p = {p}, threshold {threshold}" + (f"; {split}" if split else "")
    if srm.get("mismatch"):
        warning = (
            "Sample ratio mismatch: the groups' sizes differ from the planned shares more than "
            "chance explains, so the assignment or the measurement is broken and no winner is "
            "declared."
        )
        return f"mismatch ({detail})", warning
    return f"passed ({detail})", None


def _cuped_text(cuped: Mapping[str, Any] | None) -> str:
    if not cuped:
        return "not used (no pre-period spend to adjust on)"
    covariate = str(cuped.get("covariate") or "the pre-period")
    theta = _finite(cuped.get("theta"))
    reduction = _finite(cuped.get("variance_reduction"))
    parts = [f"theta {theta:.3g}" if theta is not None else ""]
    parts.append(f"variance reduced by {reduction:.1%}" if reduction is not None else "")
    detail = ", ".join(p for p in parts if p)
    return f"used on {covariate}" + (f" ({detail})" if detail else "")


def _content(
    payload: Mapping[str, Any], plan: pd.DataFrame, *, window_days: int, title: str | None
) -> _Content:
    campaign_id = str(payload.get("campaign_id", ""))
    metric = str(payload.get("metric", "revenue"))
    winner = payload.get("winner")
    winner = None if winner is None else str(winner)
    srm_text, warning = _srm_text(payload.get("srm") or {})
    counts = plan["group"].astype(str).value_counts()
    n_holdout = int(counts.get(HOLDOUT, 0))
    n_treated = int(counts.drop(HOLDOUT, errors="ignore").sum())
    summary = [
        ("Campaign", campaign_id),
        ("Primary metric", metric),
        ("Attribution window", f"{window_days} days after each customer's send"),
        ("Customers", f"{n_treated:,} treated, {n_holdout:,} held out"),
        ("Cost", _money(payload.get("cost"))),
        ("Incremental revenue", _interval(payload.get("incremental_revenue"), _money)),
        ("ROI", _roi(payload.get("roi"))),
        ("Sample ratio check", srm_text),
        ("CUPED", _cuped_text(payload.get("cuped"))),
    ]
    tables = [
        _variant_table(payload, counts, metric=metric, winner=winner),
        _segment_table(payload.get("segments") or []),
    ]
    return _Content(
        title=title
        if title is not None
        else f"Campaign {campaign_id}: measured against the holdout",
        meta=(
            f"Campaign {campaign_id}; primary metric {metric}; treated customers compared with "
            f"the holdout over {window_days} days from each one's send."
        ),
        summary=summary,
        winner=winner,
        reason=str(payload.get("reason", "")),
        warning=warning,
        tables=tables,
    )


def _variant_table(
    payload: Mapping[str, Any], counts: pd.Series, *, metric: str, winner: str | None
) -> _Table:
    n_holdout = int(counts.get(HOLDOUT, 0))
    rows: list[tuple[str, ...]] = []
    winners = set()
    for i, variant in enumerate(payload.get("variants") or []):
        name = str(variant.get("variant", ""))
        if name == winner:
            winners.add(i)
        significant = variant.get("significant")
        rows.append(
            (
                name,
                f"{int(counts.get(name, variant.get('n', 0))):,}",
                f"{n_holdout:,}",
                _interval(variant.get("relative"), _percent),
                _p_value(variant.get("p_value_adjusted")),
                _MISSING if significant is None else ("yes" if significant else "no"),
                _interval(variant.get("incremental_revenue"), _money),
                _money(variant.get("cost")),
                _roi(variant.get("roi")),
            )
        )
    n_treated = int(counts.drop(HOLDOUT, errors="ignore").sum())
    rows.append(
        (
            POOLED,
            f"{n_treated:,}",
            f"{n_holdout:,}",
            _MISSING,
            _MISSING,
            _MISSING,
            _interval(payload.get("incremental_revenue"), _money),
            _money(payload.get("cost")),
            _roi(payload.get("roi")),
        )
    )
    return _Table(
        heading="Variants",
        header=(
            "Variant",
            "Treated",
            "Holdout",
            f"Relative effect on {metric}",
            "Adjusted p",
            "Significant",
            "Incremental revenue",
            "Cost",
            "ROI",
        ),
        numeric=(False, True, True, True, True, False, True, True, True),
        rows=rows,
        winner_rows=frozenset(winners),
        empty="No variant was measured.",
    )


def _segment_table(segments: Sequence[Mapping[str, Any]]) -> _Table:
    rows = [
        (
            str(segment.get("segment", "")),
            f"{int(segment.get('n_treated', 0)):,}",
            f"{int(segment.get('n_holdout', 0)):,}",
            _interval(segment.get("relative"), _percent),
            _interval(segment.get("incremental_revenue"), _money),
            _money(segment.get("cost")),
            _roi(segment.get("roi")),
        )
        for segment in segments
    ]
    return _Table(
        heading="Segments (all treated against the holdout, on revenue)",
        header=(
            "Segment",
            "Treated",
            "Holdout",
            "Relative effect on revenue",
            "Incremental revenue",
            "Cost",
            "ROI",
        ),
        numeric=(False, True, True, True, True, True, True),
        rows=rows,
        winner_rows=frozenset(),
        empty="No segment had enough treated and held-out customers with revenue to measure.",
    )


def _verdict(content: _Content) -> str:
    if content.winner is not None:
        return f"Winner: {content.winner}"
    return "No winner"


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------

_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|#"} | {"\n": " ", "\r": " "})


def _md(text: str) -> str:
    """Text shown as written in markdown: no emphasis, link, HTML or table cell break."""
    return text.translate(_MARKDOWN_SPECIAL)


def _markdown_table(table: _Table) -> list[str]:
    lines = [f"## {_md(table.heading)}", ""]
    if not table.rows:
        return [*lines, _md(table.empty), ""]
    lines.append("| " + " | ".join(_md(h) for h in table.header) + " |")
    lines.append("|" + "|".join("---:" if n else "---" for n in table.numeric) + "|")
    for i, row in enumerate(table.rows):
        cells = [_md(cell) for cell in row]
        if i in table.winner_rows:
            cells[0] = f"**{cells[0]}** (winner)"
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _render_markdown(content: _Content, plots: Sequence[_Plot]) -> str:
    lines = [f"# {_md(content.title)}", "", _md(content.meta), "", "## Summary", ""]
    lines += [f"- **{_md(label)}**: {_md(value)}" for label, value in content.summary]
    lines += ["", "## Verdict", "", f"**{_md(_verdict(content))}**. {_md(content.reason)}", ""]
    if content.warning:
        lines += [f"> **Warning**: {_md(content.warning)}", ""]
    for table in content.tables:
        lines += _markdown_table(table)
    lines += ["## Plots", ""]
    for plot in plots:
        lines += [f"![{_md(plot.title)}]({plot.file})", "", f"*{_md(plot.caption)}*", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


def _html_table(table: _Table) -> str:
    heading = f"<h2>{_text(table.heading)}</h2>"
    if not table.rows:
        return f"{heading}\n<p>{_text(table.empty)}</p>"
    header = "".join(f"<th>{_text(h)}</th>" for h in table.header)
    body = []
    for i, row in enumerate(table.rows):
        cells = []
        for j, (cell, numeric) in enumerate(zip(row, table.numeric, strict=True)):
            text = _text(cell)
            if j == 0 and i in table.winner_rows:
                text = f"<strong>{text}</strong> (winner)"
            cells.append(f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>")
        row_class = ' class="winner"' if i in table.winner_rows else ""
        body.append(f"<tr{row_class}>{''.join(cells)}</tr>")
    rows = "\n".join(body)
    return (
        f"{heading}\n<table>\n<thead><tr>{header}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>"
    )


def _html_figure(plot: _Plot) -> str:
    data = base64.b64encode(plot.png).decode("ascii")
    return (
        f'<figure>\n<img alt="{_text(plot.title)}" src="data:image/png;base64,{data}">\n'
        f"<figcaption>{_text(plot.title)}. {_text(plot.caption)}</figcaption>\n</figure>"
    )


def _render_html(content: _Content, plots: Sequence[_Plot]) -> str:
    kind = "bad" if content.warning else ("good" if content.winner is not None else "none")
    verdict = [
        f'<div class="verdict {kind}">',
        f"<p><strong>{_text(_verdict(content))}</strong>. {_text(content.reason)}</p>",
        f"<p><strong>Warning</strong>: {_text(content.warning)}</p>" if content.warning else "",
        "</div>",
    ]
    summary = [
        f"<li><strong>{_text(label)}</strong>: {_text(value)}</li>"
        for label, value in content.summary
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{_text(content.title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_text(content.title)}</h1>",
        f'<p class="meta">{_text(content.meta)}</p>',
        "<h2>Summary</h2>",
        "<ul>",
        *summary,
        "</ul>",
        "<h2>Verdict</h2>",
        *verdict,
        *(_html_table(table) for table in content.tables),
        "<h2>Plots</h2>",
        *(_html_figure(plot) for plot in plots),
        "</body>",
        "</html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


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


@dataclass(frozen=True)
class _Interval:
    label: str
    estimate: float
    low: float
    high: float
    colour: str


def _intervals(label: str, values: Mapping[str, Any] | None, colour: str) -> _Interval:
    values = values or {}
    estimate = _finite(values.get("estimate"))
    low, high = _finite(values.get("ci_low")), _finite(values.get("ci_high"))
    point = math.nan if estimate is None else estimate
    return _Interval(
        label=label,
        estimate=point,
        low=point if low is None else low,
        high=point if high is None else high,
        colour=colour,
    )


def _interval_panel(axes: Axes, rows: Sequence[_Interval], *, title: str, empty: str) -> None:
    axes.axvline(0.0, color="grey", linestyle="--", linewidth=1)
    axes.set_title(title)
    axes.set_xlabel("Incremental revenue (95% interval)")
    if not rows:
        axes.set_yticks([])
        axes.text(0.5, 0.5, empty, ha="center", va="center", transform=axes.transAxes)
        return
    positions = np.arange(len(rows), dtype=np.float64)
    for y, row in zip(positions, rows, strict=True):
        below = max(row.estimate - row.low, 0.0) if math.isfinite(row.estimate) else 0.0
        above = max(row.high - row.estimate, 0.0) if math.isfinite(row.estimate) else 0.0
        axes.errorbar(
            [row.estimate],
            [y],
            xerr=[[below], [above]],
            fmt="o",
            color=row.colour,
            ecolor=row.colour,
            capsize=4,
            markersize=6,
        )
    axes.set_yticks(positions, [_plain(row.label) for row in rows])
    axes.set_ylim(len(rows) - 0.5, -0.5)  # the first row on top
    axes.ticklabel_format(axis="x", style="plain")
    axes.xaxis.set_major_formatter("{x:,.0f}")


def _incremental_revenue_png(payload: Mapping[str, Any]) -> bytes:
    winner = payload.get("winner")
    variants = [
        _intervals(
            str(v.get("variant", "")) + (" (winner)" if v.get("variant") == winner else ""),
            v.get("incremental_revenue"),
            _WINNER_COLOUR if v.get("variant") == winner else _VARIANT_COLOUR,
        )
        for v in payload.get("variants") or []
    ]
    variants.append(_intervals(POOLED, payload.get("incremental_revenue"), _POOLED_COLOUR))
    segments = [
        _intervals(str(s.get("segment", "")), s.get("incremental_revenue"), _SEGMENT_COLOUR)
        for s in payload.get("segments") or []
    ]
    heights = [max(len(variants), 1) + 1.5, max(len(segments), 1) + 1.5]
    figure = _new_figure(8.0, max(4.5, 0.45 * sum(heights) + 1.5))
    top, bottom = figure.subplots(2, 1, height_ratios=heights)
    _interval_panel(top, variants, title="Per variant", empty="no variant measured")
    _interval_panel(
        bottom, segments, title="Per segment (all treated)", empty="no segment large enough"
    )
    figure.suptitle("Incremental revenue against the holdout")
    return _png_bytes(figure)


def _cumulative_lift_png(lift: pd.DataFrame, *, winner: object) -> bytes:
    figure = _new_figure(11.0, 4.6)
    per_customer, total = figure.subplots(1, 2)
    for group, part in lift.groupby("group", sort=False):
        name = str(group)
        pooled = name == POOLED
        style = {
            "color": _POOLED_COLOUR if pooled else None,
            "linewidth": 2.4 if pooled else 1.5,
            "linestyle": "-" if pooled or name == winner else "--",
            "marker": "o" if len(part) <= 31 else None,
            "markersize": 3,
            "label": _plain(name + (" (winner)" if name == winner else "")),
        }
        days = part["day"].to_numpy()
        per_customer.plot(days, part["lift_per_customer"].to_numpy(), **style)
        total.plot(days, part["cumulative_incremental_revenue"].to_numpy(), **style)
    for axes, ylabel in (
        (per_customer, "Cumulative revenue per customer, treated minus holdout"),
        (total, "Cumulative incremental revenue"),
    ):
        axes.axhline(0.0, color="grey", linestyle="--", linewidth=1)
        axes.set_xlabel("Days since the send")
        axes.set_ylabel(ylabel)
        axes.set_xlim(0, max(int(lift["day"].max()), 1))
    per_customer.set_title("Lift per customer")
    total.set_title("Lift times treated customers")
    total.yaxis.set_major_formatter("{x:,.0f}")
    per_customer.legend(loc="best", fontsize=8)
    figure.suptitle("Cumulative lift since the send")
    return _png_bytes(figure)
