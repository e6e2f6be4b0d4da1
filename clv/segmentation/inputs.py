"""What segmentation reads: a scoring run's scores, checked at the boundary, with the RFM profile.

A scores file is what ``clv score`` writes (:mod:`clv.training.scoring`): one row per customer with
``predicted_clv``, ``churn_probability``, the scores' ``as_of`` and the profile columns
(:data:`clv.training.scoring.PROFILE_COLUMNS`: the RFM inputs, the eco share of spend and the
sustainability engagement when the data hold them). Older files without the RFM inputs need the
transactions, from which they are computed at the scores' ``as_of``.

Every problem is reported with the file, the column and the first offending rows (numbered as data
rows, 1 = the first row after a CSV header), and nothing downstream runs on a bad file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from clv.segmentation.rfm import RFM_INPUT_COLUMNS, SegmentRules, segment_rfm

#: Columns a scores file must have.
REQUIRED_COLUMNS = ("customer_id", "predicted_clv", "churn_probability")
#: Optional value features segmentation uses when the scores carry them.
OPTIONAL_FEATURES = ("eco_spend_share", "eco_engagement_score")
#: How many offending rows a message lists.
SHOWN_ROWS = 5


class SegmentInputError(ValueError):
    """A scores file or frame segmentation cannot use; the message says where and what to do."""


def _rows(mask: np.ndarray | pd.Series) -> str:
    where = np.flatnonzero(np.asarray(mask)) + 1
    shown = ", ".join(str(i) for i in where[:SHOWN_ROWS])
    more = f" and {len(where) - SHOWN_ROWS:,} more" if len(where) > SHOWN_ROWS else ""
    return f"row{'s' if len(where) > 1 else ''} {shown}{more}"


def check_scores(scores: pd.DataFrame, source: str, *, needs_rfm: bool = True) -> None:
    """Refuse scores segmentation cannot use, naming the source, the column and the rows.

    Parameters
    ----------
    scores : DataFrame
        One row per customer, as ``clv score`` writes it.
    source : str
        Where the scores come from (the file name), for the messages.
    needs_rfm : bool
        Whether the RFM input columns must be present (False when transactions are given).

    Raises
    ------
    SegmentInputError
        On an empty table, a missing column, a missing, non-numeric, negative or infinite
        ``predicted_clv``, a ``churn_probability`` outside [0, 1], duplicate or missing customer
        ids, or bad RFM inputs.
    """
    if len(scores) == 0:
        raise SegmentInputError(f"{source}: the scores hold no rows; score some customers first")
    needed = list(REQUIRED_COLUMNS) + (list(RFM_INPUT_COLUMNS) if needs_rfm else [])
    missing = [c for c in needed if c not in scores.columns]
    if missing:
        hint = (
            " (the RFM inputs: score with `clv score`, which writes them, or pass --transactions "
            "to compute them)"
            if set(missing) & set(RFM_INPUT_COLUMNS)
            else ""
        )
        raise SegmentInputError(
            f"{source}: missing column(s) {', '.join(missing)}{hint}; the file has "
            f"{', '.join(map(str, scores.columns))}"
        )
    ids = scores["customer_id"]
    blank = ids.isna().to_numpy() | (ids.astype(str).str.strip() == "").to_numpy()
    if blank.any():
        raise SegmentInputError(f"{source}: column customer_id is empty in {_rows(blank)}")
    repeated = ids.astype(str).duplicated(keep=False).to_numpy()
    if repeated.any():
        first = ids.astype(str)[repeated].iloc[0]
        raise SegmentInputError(
            f"{source}: column customer_id repeats customers in {_rows(repeated)} (e.g. "
            f"{first!r}); a scores file holds one row per customer: segment one scoring run"
        )
    numeric = {"predicted_clv": (0.0, np.inf), "churn_probability": (0.0, 1.0)}
    if needs_rfm:
        numeric |= {c: (0.0, np.inf) for c in RFM_INPUT_COLUMNS}
        numeric["purchase_days"] = (1.0, np.inf)
    for column, (low, high) in numeric.items():
        values = pd.to_numeric(scores[column], errors="coerce").to_numpy(dtype="float64")
        bad_type = np.isnan(values) & scores[column].notna().to_numpy()
        if bad_type.any():
            raise SegmentInputError(
                f"{source}: column {column} is not a number in {_rows(bad_type)}"
            )
        nan = np.isnan(values)
        if nan.any():
            raise SegmentInputError(f"{source}: column {column} is missing (NaN) in {_rows(nan)}")
        outside = ~np.isfinite(values) | (values < low) | (values > high)
        if outside.any():
            span = f"at least {low:g}" if np.isinf(high) else f"between {low:g} and {high:g}"
            example = values[outside][0]
            raise SegmentInputError(
                f"{source}: column {column} must be finite and {span}; {_rows(outside)} "
                f"hold(s) e.g. {example:g}"
            )
    if "as_of" in scores.columns:
        stamps = pd.to_datetime(scores["as_of"], errors="coerce")
        if stamps.isna().any():
            raise SegmentInputError(
                f"{source}: column as_of is not a date in {_rows(stamps.isna())}"
            )
        if stamps.nunique() > 1:
            raise SegmentInputError(
                f"{source}: column as_of holds {stamps.nunique()} different dates; segment one "
                "scoring run at a time"
            )


def scores_as_of(scores: pd.DataFrame) -> pd.Timestamp | None:
    """The scoring run's ``as_of`` instant, or None when the scores do not carry it."""
    if "as_of" not in scores.columns:
        return None
    return pd.Timestamp(pd.to_datetime(scores["as_of"]).iloc[0])


def read_scores(uri: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a scores file (CSV, CSV.gz or Parquet; local or ``s3://``) without checking it.

    Raises
    ------
    SegmentInputError
        When the file cannot be read as a table.
    FileNotFoundError, IsADirectoryError, clv.data.io.StorageError
        When it cannot be read at all.
    """
    from clv.data.io import display_name, local_copy

    name = display_name(uri)
    with local_copy(uri) as path:
        if path.is_dir():
            raise IsADirectoryError(f"{name} is a folder; pass the scores file itself")
        suffix = "".join(path.suffixes[-2:]).lower()
        try:
            if suffix.endswith((".parquet", ".pq")):
                return pd.read_parquet(path)
            if suffix.endswith((".csv", ".csv.gz")):
                return pd.read_csv(path, dtype={"customer_id": str})
        except Exception as err:  # a broken file: say which and why, never a traceback
            raise SegmentInputError(f"{name}: cannot be read as a table ({err})") from err
    raise SegmentInputError(f"{name}: use a .csv, .csv.gz or .parquet scores file")


def segment_inputs(
    scores: pd.DataFrame,
    *,
    source: str = "scores",
    transactions: pd.DataFrame | None = None,
    rules: SegmentRules | None = None,
) -> pd.DataFrame:
    """The per-customer table segmentation works on, from checked scores.

    Parameters
    ----------
    scores : DataFrame
        A scoring run's scores (see the module docstring).
    source : str
        Their name for messages.
    transactions : DataFrame, optional
        Validated transactions, needed only when the scores lack the RFM inputs; the RFM inputs
        are then computed at the scores' ``as_of`` (or the end of the last transaction's day).
    rules : optional
        The RFM segment rules (see :func:`clv.segmentation.rfm.load_rules`).

    Returns
    -------
    DataFrame
        Indexed by ``customer_id`` (str), sorted: ``predicted_clv``, ``churn_probability``, the
        :data:`OPTIONAL_FEATURES` present, the RFM inputs, ``r_score``, ``f_score``, ``m_score``,
        ``rfm_score`` and the RFM ``segment`` name.

    Raises
    ------
    SegmentInputError
        When the scores cannot be segmented (see :func:`check_scores`), or a scored customer has
        no purchase in the given transactions.
    """
    has_rfm = all(c in scores.columns for c in RFM_INPUT_COLUMNS)
    check_scores(scores, source, needs_rfm=transactions is None or has_rfm)
    frame = scores.copy()
    frame["customer_id"] = frame["customer_id"].astype(str)
    if not has_rfm:
        frame = _with_rfm(frame, transactions, source)  # type: ignore[arg-type]
    columns: Sequence[str] = [
        "predicted_clv",
        "churn_probability",
        *[c for c in OPTIONAL_FEATURES if c in frame.columns],
        *RFM_INPUT_COLUMNS,
    ]
    out = frame.set_index("customer_id")[list(columns)].sort_index()
    for column in columns:
        out[column] = pd.to_numeric(out[column], errors="coerce").astype("float64")
    return segment_rfm(out, rules)


def _with_rfm(frame: pd.DataFrame, transactions: pd.DataFrame, source: str) -> pd.DataFrame:
    from clv.features.rfm import rfm_features
    from clv.training.windows import end_of_day

    cutoff = scores_as_of(frame)
    if cutoff is None:
        cutoff = end_of_day(pd.Timestamp(transactions["timestamp"].max()))
    rfm = rfm_features(transactions, cutoff=cutoff)
    rfm.index = rfm.index.astype(str)
    found = rfm.reindex(pd.Index(frame["customer_id"]))
    absent = found[RFM_INPUT_COLUMNS[0]].isna().to_numpy()
    if absent.any():
        raise SegmentInputError(
            f"{source}: {int(absent.sum()):,} scored customer(s) have no purchase on or before "
            f"{cutoff:%Y-%m-%d} in the transactions ({_rows(absent)}, e.g. "
            f"{frame['customer_id'].iloc[int(np.flatnonzero(absent)[0])]!r}); pass the "
            "transactions the scores were computed from"
        )
    out = frame.copy()
    for column in RFM_INPUT_COLUMNS:
        out[column] = found[column].to_numpy()
    return out


__all__ = [
    "OPTIONAL_FEATURES",
    "REQUIRED_COLUMNS",
    "SegmentInputError",
    "check_scores",
    "read_scores",
    "scores_as_of",
    "segment_inputs",
]
