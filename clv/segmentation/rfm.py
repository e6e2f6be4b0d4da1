"""RFM segments: recency, frequency and monetary scores 1–5 and the classic named segments.

Scores, per customer, as of a cut-off:

* **recency** ``r_score``: days from the last purchase day to the cut-off
  (``days_since_last_purchase``), by quintiles, 5 = most recent;
* **frequency** ``f_score``: purchase days (``purchase_days``). A customer who bought once
  scores 1, explicitly; repeat buyers score 2–5 by quartiles of their purchase days among repeat
  buyers. (Quintiles over everyone would put the mass of one-time buyers, often more than half
  of a customer base, across two or three scores, so that "bought once" and "bought twice" could
  share a score or one-time buyers split arbitrarily.)
* **monetary** ``m_score``: mean gross value per purchase day, the first included
  (``avg_purchase_day_value``), by quintiles, 5 = highest.

Ties get equal scores: a value's score comes from the midpoint of the positions its ties occupy
(``ceil(k * (below + equal / 2) / n)`` for ``k`` scores), so equal values always share a score and
a larger value never scores lower. With distinct values the scores are exact quantile groups.

Segments come from a rule table (:data:`DEFAULT_RULES_FILE`, YAML shipped in the package; pass
your own as a path or a list of rules): each rule gives a range of each score, and the first rule
that contains a customer's three scores names them. A table is refused unless its rules cover all
125 score combinations, so every customer gets exactly one segment, and unless every rule names
some combination that no earlier rule takes.

Where this differs from the references
--------------------------------------
* The R ``rfm`` package (``rfm_segment``) also takes the first matching range rule, but its
  documented default table leaves combinations uncovered (they become "Others") and, in the
  version with ranges ``recency 4-5 / 3-5 / ...``, lists "Potential Loyalist" before "New
  Customers", "Promising" and "Can't Lose Them", which therefore never match. It scores
  frequency by quintiles of the order count over everyone (ties broken by row order) and has no
  "Hibernating" segment. Ours covers every cell, refuses unreachable rules, scores ties equally
  and gives one-time buyers their own frequency score.
* pymc-marketing (``clv.utils.rfm_segments``) scores by quartiles with ``pandas.qcut``
  (``duplicates="drop"``, so heavy ties silently lower the top score), maps three-digit score
  strings to five segments ("Premium Customer", "Repeat Customer", "Top Spender", "At Risk
  Customer", "Inactive Customer") and leaves the rest as "Other". Ours uses quintiles, ranges
  instead of enumerated strings, and the eleven classic names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

#: The package's rule table.
DEFAULT_RULES_FILE = "rfm_segments.yaml"
#: Scores run from 1 to this.
N_SCORES = 5
#: What the scores are computed from (columns of :func:`clv.features.rfm.rfm_features`).
RFM_INPUT_COLUMNS: tuple[str, ...] = (
    "days_since_last_purchase",
    "purchase_days",
    "avg_purchase_day_value",
)
#: Columns :func:`segment_rfm` adds.
SEGMENT_COLUMNS: tuple[str, ...] = ("r_score", "f_score", "m_score", "rfm_score", "segment")
_DIMENSIONS = ("recency", "frequency", "monetary")


@dataclass(frozen=True)
class SegmentRule:
    """One row of the rule table: a name and an inclusive range of each score.

    Attributes
    ----------
    name : str
        Segment name.
    recency, frequency, monetary : tuple of int
        ``(lowest, highest)`` score, inclusive, within 1–5.
    description : str
        What the segment means, for people.
    """

    name: str
    recency: tuple[int, int]
    frequency: tuple[int, int]
    monetary: tuple[int, int]
    description: str = ""

    def cells(self) -> Iterable[tuple[int, int, int]]:
        """Every ``(r, f, m)`` score combination the rule contains."""
        for r in range(self.recency[0], self.recency[1] + 1):
            for f in range(self.frequency[0], self.frequency[1] + 1):
                for m in range(self.monetary[0], self.monetary[1] + 1):
                    yield r, f, m


@dataclass(frozen=True)
class SegmentRules:
    """A checked rule table: the first matching rule names a customer's segment.

    Attributes
    ----------
    rules : tuple of SegmentRule
        In order of precedence.
    source : str
        Where the table came from (for messages).
    """

    rules: tuple[SegmentRule, ...]
    source: str

    @property
    def names(self) -> list[str]:
        """Segment names in the table's order."""
        return [rule.name for rule in self.rules]

    def lookup(self) -> npt.NDArray[np.intp]:
        """Array ``[r-1, f-1, m-1]`` → index of the rule that names that score combination."""
        table = np.full((N_SCORES,) * 3, -1, dtype=np.intp)
        for i, rule in enumerate(self.rules):
            for r, f, m in rule.cells():
                if table[r - 1, f - 1, m - 1] < 0:
                    table[r - 1, f - 1, m - 1] = i
        return table


def _score_range(value: object, where: str, dimension: str) -> tuple[int, int]:
    ok = (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    )
    if not ok:
        raise ValueError(
            f"{where}: '{dimension}' must be a pair of whole scores [lowest, highest], "
            f"got {value!r}"
        )
    low, high = int(value[0]), int(value[1])  # type: ignore[index]
    if not 1 <= low <= high <= N_SCORES:
        raise ValueError(
            f"{where}: '{dimension}' [{low}, {high}] must satisfy 1 <= lowest <= highest <= "
            f"{N_SCORES}"
        )
    return low, high


def _rule(entry: object, position: int, source: str) -> SegmentRule:
    where = f"{source}, rule {position}"
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: a rule is a mapping with name, recency, frequency, monetary")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where}: 'name' must be a non-empty text")
    where = f"{source}, rule {position} ({name!r})"
    unknown = sorted(set(entry) - {"name", "description", *_DIMENSIONS})
    if unknown:
        raise ValueError(
            f"{where}: unknown field(s) {unknown}; a rule has name, description, recency, "
            "frequency and monetary"
        )
    missing = [d for d in _DIMENSIONS if d not in entry]
    if missing:
        raise ValueError(f"{where}: missing {missing}; give each as [lowest, highest] (1-5)")
    description = entry.get("description", "")
    if not isinstance(description, str):
        raise ValueError(f"{where}: 'description' must be text")
    return SegmentRule(
        name=name,
        recency=_score_range(entry["recency"], where, "recency"),
        frequency=_score_range(entry["frequency"], where, "frequency"),
        monetary=_score_range(entry["monetary"], where, "monetary"),
        description=description,
    )


def check_rules(entries: object, source: str) -> SegmentRules:
    """Turn raw rules (a list of mappings, or ``{"segments": [...]}``) into checked rules.

    Raises
    ------
    ValueError
        When a rule is malformed, names repeat, a score combination matches no rule, or a rule
        can never match; the message names the source and the rule.
    """
    if isinstance(entries, Mapping):
        if "segments" not in entries:
            raise ValueError(f"{source}: expected a top-level 'segments:' list of rules")
        entries = entries["segments"]
    if not isinstance(entries, Sequence) or isinstance(entries, str) or not entries:
        raise ValueError(f"{source}: 'segments' must be a non-empty list of rules")
    rules = tuple(_rule(entry, i, source) for i, entry in enumerate(entries, start=1))
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise ValueError(f"{source}: segment name {rule.name!r} appears twice")
        seen.add(rule.name)
    checked = SegmentRules(rules=rules, source=source)
    table = checked.lookup()
    uncovered = np.argwhere(table < 0)
    if len(uncovered):
        r, f, m = (int(v) + 1 for v in uncovered[0])
        raise ValueError(
            f"{source}: {len(uncovered)} score combination(s) match no rule, e.g. recency {r}, "
            f"frequency {f}, monetary {m}; add a rule for them (or a last catch-all rule with "
            "[1, 5] everywhere) so that every customer gets a segment"
        )
    used = set(np.unique(table).tolist())
    for i, rule in enumerate(rules):
        if i not in used:
            raise ValueError(
                f"{source}, rule {i + 1} ({rule.name!r}) never matches: earlier rules take every "
                "score combination it contains; move it up or narrow the earlier rules"
            )
    return checked


def load_rules(rules: str | Path | Sequence[Mapping[str, Any]] | None = None) -> SegmentRules:
    """The rule table: the package's default, a YAML file, or rules given in Python.

    Parameters
    ----------
    rules : path, list of mappings or None
        ``None`` for :data:`DEFAULT_RULES_FILE`; a path to a YAML file with a ``segments:`` list;
        or the list itself (each rule: ``name``, ``recency``, ``frequency``, ``monetary`` as
        ``[lowest, highest]``, optional ``description``).

    Returns
    -------
    SegmentRules
        The checked table.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ValueError
        When the YAML cannot be parsed (with its line) or the table is invalid.
    """
    import yaml

    if rules is None or isinstance(rules, str | Path):
        if rules is None:
            text = resources.files("clv.segmentation").joinpath(DEFAULT_RULES_FILE).read_text()
            source = f"clv/segmentation/{DEFAULT_RULES_FILE}"
        else:
            path = Path(rules)
            if not path.is_file():
                raise FileNotFoundError(f"segment rules file not found: {path}")
            text, source = path.read_text(encoding="utf-8"), str(path)
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark is not None else ""
            problem = getattr(err, "problem", None) or str(err)
            raise ValueError(f"{source}{line}: not valid YAML ({problem})") from None
        return check_rules(raw, source)
    return check_rules(rules, "the rules given")


def quantile_scores(values: npt.ArrayLike, n_scores: int) -> npt.NDArray[np.int64]:
    """Scores ``1..n_scores`` by quantile groups of ``values`` (higher value, higher score).

    Equal values get equal scores: each value is placed at the midpoint of the positions its
    ties occupy in the sorted values, ``ceil(n_scores * (below + equal / 2) / n)``.

    Parameters
    ----------
    values : array-like of float
        Finite values.
    n_scores : int
        Number of groups.

    Returns
    -------
    ndarray of int
        One score per value.
    """
    v = np.asarray(values, dtype="float64")
    if v.size == 0:
        return np.zeros(0, dtype=np.int64)
    ordered = np.sort(v)
    below = np.searchsorted(ordered, v, side="left")
    up_to = np.searchsorted(ordered, v, side="right")
    midpoint = (below + up_to) / (2.0 * v.size)
    return np.clip(np.ceil(n_scores * midpoint), 1, n_scores).astype(np.int64)


def rfm_scores(rfm: pd.DataFrame) -> pd.DataFrame:
    """Recency, frequency and monetary scores 1–5 (see the module docstring).

    Parameters
    ----------
    rfm : DataFrame
        :data:`RFM_INPUT_COLUMNS` per customer (e.g. :func:`clv.features.rfm.rfm_features`).

    Returns
    -------
    DataFrame
        ``r_score``, ``f_score``, ``m_score`` (int) and ``rfm_score`` (e.g. ``"545"``), indexed
        like ``rfm``.
    """
    days = rfm["days_since_last_purchase"].to_numpy(dtype="float64")
    purchases = rfm["purchase_days"].to_numpy(dtype="float64")
    value = rfm["avg_purchase_day_value"].to_numpy(dtype="float64")
    recency = quantile_scores(-days, N_SCORES)
    frequency = np.ones(len(rfm), dtype=np.int64)  # bought once: 1, whatever the others do
    repeat = purchases > 1
    frequency[repeat] = 1 + quantile_scores(purchases[repeat], N_SCORES - 1)
    monetary = quantile_scores(value, N_SCORES)
    out = pd.DataFrame(
        {"r_score": recency, "f_score": frequency, "m_score": monetary}, index=rfm.index
    )
    out["rfm_score"] = [f"{r}{f}{m}" for r, f, m in zip(recency, frequency, monetary, strict=True)]
    return out


def _check_inputs(rfm: pd.DataFrame) -> None:
    bad = rfm[list(RFM_INPUT_COLUMNS)].isna().any(axis=1)
    if bad.any():
        labels = rfm["customer_id"] if "customer_id" in rfm.columns else rfm.index.to_series()
        ids = [str(i) for i in labels[bad.to_numpy()][:5]]
        raise ValueError(
            f"{int(bad.sum())} customer(s) have no purchase to score (e.g. {', '.join(ids)}): "
            "RFM segments need at least one purchase (positive amount) on or before the cut-off"
        )
    for column in RFM_INPUT_COLUMNS:
        values = rfm[column].to_numpy(dtype="float64")
        if not np.isfinite(values).all():
            raise ValueError(f"column '{column}' holds non-finite values; recompute the RFM")
    if (rfm["purchase_days"] < 1).any():
        raise ValueError("column 'purchase_days' must be at least 1 for every customer")


def segment_rfm(
    rfm: pd.DataFrame, rules: SegmentRules | str | Path | Sequence[Mapping[str, Any]] | None = None
) -> pd.DataFrame:
    """Scores and one named segment per customer.

    Parameters
    ----------
    rfm : DataFrame
        :data:`RFM_INPUT_COLUMNS` per customer (any other columns are kept).
    rules : SegmentRules, path or list of rules, optional
        The rule table (default: the package's, see :func:`load_rules`).

    Returns
    -------
    DataFrame
        ``rfm`` with :data:`SEGMENT_COLUMNS` added; ``segment`` is a categorical in the rule
        table's order.

    Raises
    ------
    ValueError
        When an input column is missing or a customer has no purchase.
    """
    missing = [c for c in RFM_INPUT_COLUMNS if c not in rfm.columns]
    if missing:
        raise ValueError(f"RFM segments need column(s) {missing}")
    _check_inputs(rfm)
    table = rules if isinstance(rules, SegmentRules) else load_rules(rules)
    scores = rfm_scores(rfm)
    which = table.lookup()[
        scores["r_score"].to_numpy() - 1,
        scores["f_score"].to_numpy() - 1,
        scores["m_score"].to_numpy() - 1,
    ]
    out = rfm.copy()
    for column in ("r_score", "f_score", "m_score", "rfm_score"):
        out[column] = scores[column].to_numpy()
    out["segment"] = pd.Categorical.from_codes(which, categories=pd.Index(table.names))
    return out
