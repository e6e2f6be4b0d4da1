"""What each segment looks like, how customers moved between versions, and the business rules.

Everything here takes the segment inputs (one row per customer, indexed by ``customer_id``; see
:func:`clv.segmentation.values.fit_value_segments`) and a label per customer: a k-means segment
id or name, or an RFM segment name. The functions do not care which: RFM and value segments are
profiled and checked alike.

* :func:`profile_segments`: size, share of customers and of predicted CLV, mean churn, eco share,
  RFM means and mix per segment, and the change since a previous version;
* :func:`migration_matrix` / :func:`migration_share`: customers from each old label to each new
  one, and the share that changed;
* :func:`check_segments`: the rules a segmentation must pass before it is used, each result with
  the numbers and a message a marketer can act on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from clv.segmentation.values import TRANSFORMS, VALUE_FEATURES

#: Label of customers present on one side only of a migration.
NONE_LABEL = "(none)"
#: RFM segments listed in a profile's ``rfm_mix``.
RFM_MIX_TOP = 3


def _as_labels(assignments: pd.Series, what: str = "assignments") -> pd.Series:
    """Labels as text (missing stays missing), indexed by customer id as text."""
    if not isinstance(assignments, pd.Series):
        raise TypeError(f"{what} must be a pandas Series, got {type(assignments).__name__}")
    values = assignments.astype(object)
    labels = values.where(values.isna(), values.astype(str))
    labels.index = pd.Index(assignments.index.astype(str), name="customer_id")
    return labels


def _unique(labels: pd.Series, what: str) -> pd.Series:
    if not labels.index.is_unique:
        repeated = labels.index[labels.index.duplicated()].unique()
        raise ValueError(
            f"{what} hold {len(repeated):,} customer(s) more than once (e.g. "
            f"{', '.join(map(repr, repeated[:3]))}); give each customer one label "
            "(check_segments reports these as 'assigned_once')"
        )
    return labels


def _customer_index(inputs: pd.DataFrame) -> pd.Index:
    return pd.Index(inputs.index.astype(str), name="customer_id")


def _values(inputs: pd.DataFrame, column: str) -> np.ndarray:
    if column not in inputs.columns:
        return np.full(len(inputs), np.nan)
    return np.asarray(pd.to_numeric(inputs[column], errors="coerce"), dtype="float64")


def _rfm_mix(rfm: pd.Series, labels: pd.Series) -> pd.Series:
    """Top RFM segments of each label with their shares, as text."""
    frame = pd.DataFrame({"label": labels.to_numpy(), "rfm": rfm.to_numpy()})
    counts = frame.groupby(["label", "rfm"], sort=False).size().rename("n").reset_index()
    counts = counts.sort_values(["label", "n", "rfm"], ascending=[True, False, True])
    out: dict[str, str] = {}
    for label, group in counts.groupby("label", sort=False):
        total = int(group["n"].sum())
        top = group.head(RFM_MIX_TOP)
        parts = [f"{name} {n / total:.0%}" for name, n in zip(top["rfm"], top["n"], strict=True)]
        rest = group.iloc[RFM_MIX_TOP:]
        if len(rest):
            others = "other" if len(rest) == 1 else f"{len(rest)} others"
            parts.append(f"{others} {int(rest['n'].sum()) / total:.0%}")
        out[str(label)] = ", ".join(parts)
    return pd.Series(out, dtype=object)


def profile_segments(
    inputs: pd.DataFrame,
    assignments: pd.Series,
    *,
    previous: pd.Series | None = None,
) -> pd.DataFrame:
    """One row per segment: its size, value, churn, eco share and RFM make-up.

    Parameters
    ----------
    inputs : DataFrame
        Segment inputs indexed by ``customer_id``: ``predicted_clv`` required;
        ``churn_probability``, ``eco_spend_share``, ``r_score``, ``f_score``, ``m_score`` and the
        RFM ``segment`` name used when present.
    assignments : Series
        Segment id or name per customer (indexed by ``customer_id``). Customers of ``inputs``
        without a label are left out; labels of customers not in ``inputs`` are ignored (see
        :func:`check_segments` for both).
    previous : Series, optional
        The previous version's label per customer: adds ``customers_before`` and ``change``.

    Returns
    -------
    DataFrame
        Indexed by the label (``segment``), sorted by ``clv_share`` descending: ``customers``,
        ``share`` (of the labelled customers), ``clv_share`` (of their total predicted CLV; NaN
        when that total is 0), ``mean_clv``, ``median_clv``, ``mean_churn``, ``eco_share``
        (mean eco share of spend; NaN without the column), ``mean_r``, ``mean_f``, ``mean_m``,
        ``rfm_mix`` (e.g. "Champions 62%, Loyal 30%, At risk 5%, 2 others 3%"; None without the
        RFM ``segment`` column), and with ``previous`` ``customers_before`` and ``change``
        (customers now minus before, for the same label). Labels only ``previous`` has are not
        rows; :func:`migration_matrix` shows where their customers went.

    Raises
    ------
    ValueError
        When ``predicted_clv`` is missing or a customer has more than one label.
    """
    if "predicted_clv" not in inputs.columns:
        raise ValueError("segment profiles need the column 'predicted_clv' in the inputs")
    labels = _unique(_as_labels(assignments), "the assignments")
    labels = labels.reindex(_customer_index(inputs))
    keep = labels.notna().to_numpy()
    frame = pd.DataFrame(
        {
            "label": labels.to_numpy()[keep],
            "clv": _values(inputs, "predicted_clv")[keep],
            "churn": _values(inputs, "churn_probability")[keep],
            "eco": _values(inputs, "eco_spend_share")[keep],
            "r": _values(inputs, "r_score")[keep],
            "f": _values(inputs, "f_score")[keep],
            "m": _values(inputs, "m_score")[keep],
        }
    )
    grouped = frame.groupby("label", sort=True)
    out = pd.DataFrame(
        {
            "customers": grouped.size().astype("int64"),
            "clv_total": grouped["clv"].sum(),
            "mean_clv": grouped["clv"].mean(),
            "median_clv": grouped["clv"].median(),
            "mean_churn": grouped["churn"].mean(),
            "eco_share": grouped["eco"].mean(),
            "mean_r": grouped["r"].mean(),
            "mean_f": grouped["f"].mean(),
            "mean_m": grouped["m"].mean(),
        }
    )
    total_clv = float(out["clv_total"].sum())
    out.insert(1, "share", out["customers"] / max(int(out["customers"].sum()), 1))
    out.insert(2, "clv_share", out["clv_total"] / total_clv if total_clv > 0 else np.nan)
    out = out.drop(columns="clv_total")
    if "segment" in inputs.columns:
        rfm = inputs["segment"].astype(str)
        out["rfm_mix"] = _rfm_mix(rfm[keep], frame["label"]).reindex(out.index)
    else:
        out["rfm_mix"] = None
    if previous is not None:
        before = _unique(_as_labels(previous, "previous"), "the previous labels").dropna()
        counts = before.value_counts()
        out["customers_before"] = counts.reindex(out.index, fill_value=0).astype("int64")
        out["change"] = out["customers"] - out["customers_before"]
    out.index.name = "segment"
    order = out.reset_index().sort_values(
        ["clv_share", "customers", "segment"], ascending=[False, False, True], na_position="last"
    )
    return order.set_index("segment")


def migration_matrix(previous: pd.Series, current: pd.Series) -> pd.DataFrame:
    """How many customers went from each previous label (rows) to each current one (columns).

    Parameters
    ----------
    previous, current : Series
        Label per customer (indexed by ``customer_id``). A customer on one side only (or with
        a missing label) is counted in the ``(none)`` row or column.

    Returns
    -------
    DataFrame
        Counts; rows ``previous`` labels and columns ``current`` labels, each sorted, with
        ``(none)`` last when present.

    Raises
    ------
    ValueError
        When a customer has more than one label on one side.
    """
    before = _unique(_as_labels(previous, "previous"), "the previous labels")
    after = _unique(_as_labels(current, "current"), "the current labels")
    customers = before.index.union(after.index)
    rows = before.reindex(customers).fillna(NONE_LABEL)
    columns = after.reindex(customers).fillna(NONE_LABEL)
    table = pd.crosstab(
        pd.Series(rows.to_numpy(), name="previous"), pd.Series(columns.to_numpy(), name="current")
    )

    def ordered(labels: pd.Index) -> list[str]:
        named = sorted(str(label) for label in labels if label != NONE_LABEL)
        return named + ([NONE_LABEL] if NONE_LABEL in labels else [])

    table = table.reindex(index=ordered(table.index), columns=ordered(table.columns), fill_value=0)
    table.index.name, table.columns.name = "previous", "current"
    return table.astype("int64")


def migration_share(previous: pd.Series, current: pd.Series) -> float:
    """Share of the customers labelled in both versions whose label changed.

    Parameters
    ----------
    previous, current : Series
        Label per customer (indexed by ``customer_id``).

    Returns
    -------
    float
        In [0, 1]; NaN when no customer is labelled in both.
    """
    before = _unique(_as_labels(previous, "previous"), "the previous labels").dropna()
    after = _unique(_as_labels(current, "current"), "the current labels").dropna()
    common = before.index.intersection(after.index)
    if len(common) == 0:
        return float("nan")
    return float((before.reindex(common) != after.reindex(common)).mean())


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one business rule, for one segment or for the whole segmentation.

    Attributes
    ----------
    segment : str or None
        The segment label, or None for a rule about the whole segmentation.
    rule : str
        ``min_size``, ``distinct_profile``, ``assigned_once`` or ``not_outlier_driven``.
    passed : bool
        Whether the rule holds.
    value : float
        What was measured (customers, distance, problem customers, share).
    threshold : float
        The limit it was compared with.
    message : str
        What it means and what to do, with the numbers.
    """

    segment: str | None
    rule: str
    passed: bool
    value: float
    threshold: float
    message: str


def _standardised_profiles(inputs: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """Mean standardised value feature per segment (log1p CLV, missing values at the median)."""
    columns: dict[str, np.ndarray] = {}
    for name in VALUE_FEATURES:
        if name not in inputs.columns:
            continue
        values = _values(inputs, name)
        if not np.isfinite(values).any():
            continue
        values = np.where(np.isfinite(values), values, np.nanmedian(values))
        if TRANSFORMS.get(name) == "log1p":
            values = np.log1p(np.maximum(values, 0.0))
        scale = float(values.std())
        columns[name] = (values - values.mean()) / (scale if scale > 1e-12 else 1.0)
    frame = pd.DataFrame(columns)
    frame["label"] = labels.to_numpy()
    return frame.dropna(subset=["label"]).groupby("label", sort=True).mean()


def _percent(share: float) -> str:
    """``0.01`` → ``"1%"``, ``0.005`` → ``"0.5%"``."""
    return f"{share * 100:.1f}".rstrip("0").rstrip(".") + "%"


def _examples(ids: Sequence[object] | pd.Index) -> str:
    shown = [repr(str(i)) for i in list(ids)[:3]]
    return "e.g. " + ", ".join(shown)


def _assigned_once(
    customers: pd.Index, raw: pd.Series, expected: set[str] | None
) -> tuple[RuleResult, pd.Series]:
    """The global rule, and the labels of ``customers`` usable by the per-segment rules."""
    problems: list[str] = []
    bad = 0
    repeated = raw.index[raw.index.duplicated()].unique()
    if len(repeated):
        bad += len(repeated)
        problems.append(
            f"{len(repeated):,} customer(s) are assigned more than once ({_examples(repeated)})"
        )
    labels = raw[~raw.index.duplicated(keep="first")]
    absent = customers.difference(labels.index)
    if len(absent):
        bad += len(absent)
        problems.append(f"{len(absent):,} customer(s) have no assignment ({_examples(absent)})")
    aligned = labels.reindex(customers)
    empty = aligned.index[aligned.isna().to_numpy()].difference(absent)
    if len(empty):
        bad += len(empty)
        problems.append(f"{len(empty):,} customer(s) have an empty segment ({_examples(empty)})")
    if expected is not None:
        known = aligned.isna() | aligned.isin(sorted(expected))
        unknown = aligned[~known.to_numpy()]
        if len(unknown):
            bad += len(unknown)
            problems.append(
                f"{len(unknown):,} customer(s) are in segment(s) "
                f"{', '.join(map(repr, sorted(unknown.unique())[:3]))} that the segmentation "
                f"does not define (it defines {', '.join(map(repr, sorted(expected)))})"
            )
    extra = labels.index.difference(customers)
    if len(extra):
        bad += len(extra)
        problems.append(
            f"{len(extra):,} assignment(s) are for customers not in the scores ({_examples(extra)})"
        )
    if problems:
        message = (
            "every customer must be in exactly one segment: "
            + "; ".join(problems)
            + ". Re-run the assignment on the same scores before using these segments"
        )
    else:
        message = f"each of the {len(customers):,} customers is in exactly one segment"
    result = RuleResult(None, "assigned_once", not problems, float(bad), 0.0, message)
    return result, aligned


def check_segments(
    inputs: pd.DataFrame,
    assignments: pd.Series,
    *,
    min_share: float = 0.01,
    min_customers: int = 30,
    min_centroid_distance: float = 0.25,
    max_top_customer_clv_share: float = 0.5,
    expected_ids: Sequence[str] | None = None,
) -> list[RuleResult]:
    """Check the business rules a segmentation must pass before it is used.

    Rules, in the order of the results:

    * ``assigned_once`` (whole segmentation): every customer of ``inputs`` has exactly one
      label, none is missing, none is outside ``expected_ids`` (when given), and no label is
      for a customer not in ``inputs``. ``value`` counts the customers in trouble.
    * ``min_size`` (each segment): at least ``min_customers`` customers and ``min_share`` of
      them; ``value`` is the customers, ``threshold`` the larger of the two minimums in
      customers. A segment of ``expected_ids`` nobody is in fails it with 0.
    * ``distinct_profile`` (each segment): the Euclidean distance from the segment's mean
      standardised profile (the :data:`~clv.segmentation.values.VALUE_FEATURES` present,
      ``log1p`` CLV, standardised over ``inputs``) to the nearest other segment's is at least
      ``min_centroid_distance``; segments closer than that cannot be told apart by a campaign.
    * ``not_outlier_driven`` (each segment): more than one customer, and the largest single
      customer holds at most ``max_top_customer_clv_share`` of the segment's predicted CLV.

    Parameters
    ----------
    inputs : DataFrame
        Segment inputs indexed by ``customer_id`` (``predicted_clv`` required).
    assignments : Series
        Segment id or name per customer (RFM names and k-means ids alike).
    min_share, min_customers : float and int
        Size minimums (share of the customers, and count).
    min_centroid_distance : float
        Smallest distance between two segments' standardised profiles.
    max_top_customer_clv_share : float
        Largest share of a segment's predicted CLV one customer may hold.
    expected_ids : sequence of str, optional
        The labels the segmentation defines (e.g. a model's ``segment_ids``).

    Returns
    -------
    list of RuleResult
        ``assigned_once`` first, then each per-segment rule for every segment (largest first).

    Raises
    ------
    ValueError
        When ``predicted_clv`` is missing from the inputs.
    """
    if "predicted_clv" not in inputs.columns:
        raise ValueError("the business rules need the column 'predicted_clv' in the inputs")
    customers = _customer_index(inputs)
    expected = None if expected_ids is None else {str(i) for i in expected_ids}
    global_result, labels = _assigned_once(customers, _as_labels(assignments), expected)
    results = [global_result]

    counts = labels.value_counts()
    if expected is not None:
        counts = counts.reindex(sorted(set(counts.index) | expected), fill_value=0)
    order = sorted(counts.index, key=lambda s: (-int(counts[s]), str(s)))
    total = int(counts.sum())

    needed = max(float(min_customers), min_share * total)
    for segment in order:
        n = int(counts[segment])
        share = n / total if total else 0.0
        passed = n >= min_customers and share >= min_share
        if n == 0:
            message = f"segment {segment!r} holds no customers; drop it or refit with a smaller k"
        elif passed:
            message = (
                f"segment {segment!r} holds {n:,} customers ({share:.1%}), above the minimum "
                f"{min_customers:,} / {_percent(min_share)}"
            )
        else:
            message = (
                f"segment {segment!r} holds {n:,} customers ({share:.1%}), below the minimum "
                f"{min_customers:,} / {_percent(min_share)}: too few to target or to measure a "
                "campaign on; merge it into a neighbour or refit with a smaller k"
            )
        results.append(RuleResult(segment, "min_size", passed, float(n), needed, message))

    profiles = _standardised_profiles(inputs, labels)
    present = [s for s in order if s in profiles.index]
    matrix = profiles.loc[present].to_numpy()
    for i, segment in enumerate(present):
        if len(present) < 2:
            results.append(
                RuleResult(
                    segment,
                    "distinct_profile",
                    True,
                    float("nan"),
                    min_centroid_distance,
                    f"segment {segment!r} is the only segment; there is nothing to tell it from",
                )
            )
            continue
        dist = np.sqrt(((matrix - matrix[i]) ** 2).sum(axis=1))
        dist[i] = np.inf
        j = int(np.argmin(dist))
        nearest, value = present[j], float(dist[j])
        passed = value >= min_centroid_distance
        if passed:
            message = (
                f"segment {segment!r} differs from its nearest segment {nearest!r} by {value:.2f} "
                f"standard deviations (minimum {min_centroid_distance:.2f})"
            )
        else:
            message = (
                f"segments {segment!r} and {nearest!r} have almost the same profile (distance "
                f"{value:.2f}, minimum {min_centroid_distance:.2f} standard deviations): a "
                "campaign cannot treat them differently; merge them or refit with a smaller k"
            )
        results.append(
            RuleResult(segment, "distinct_profile", passed, value, min_centroid_distance, message)
        )

    clv = pd.Series(_values(inputs, "predicted_clv"), index=customers)
    frame = pd.DataFrame({"label": labels.to_numpy(), "clv": clv.to_numpy()}, index=customers)
    frame = frame.dropna(subset=["label"])
    grouped = frame.groupby("label", sort=True)["clv"]
    sums, tops, sizes = grouped.sum(), grouped.max(), grouped.size()
    top_ids = grouped.idxmax() if len(frame) else pd.Series(dtype=object)
    for segment in order:
        if segment not in sizes.index:
            continue
        n, segment_total = int(sizes[segment]), float(sums[segment])
        top_share = float(tops[segment]) / segment_total if segment_total > 0 else 0.0
        top_id = str(top_ids[segment])
        if n <= 1:
            passed = False
            message = (
                f"segment {segment!r} holds a single customer ({top_id!r}): its profile is one "
                "person's; merge it into a neighbour or refit with a smaller k"
            )
        elif top_share > max_top_customer_clv_share:
            passed = False
            message = (
                f"in segment {segment!r} one customer ({top_id!r}) holds {top_share:.0%} of the "
                f"segment's predicted CLV (maximum {max_top_customer_clv_share:.0%}): its value "
                "rests on one person; review that customer's scores before targeting it"
            )
        else:
            passed = True
            message = (
                f"segment {segment!r}: its largest customer holds {top_share:.1%} of its "
                f"predicted CLV (maximum {max_top_customer_clv_share:.0%})"
            )
        if not math.isfinite(top_share):
            top_share = 0.0
        results.append(
            RuleResult(
                segment,
                "not_outlier_driven",
                passed,
                top_share,
                max_top_customer_clv_share,
                message,
            )
        )
    return results


def rules_passed(results: Sequence[RuleResult]) -> bool:
    """Whether every rule passed.

    Parameters
    ----------
    results : sequence of RuleResult
        :func:`check_segments` output.

    Returns
    -------
    bool
    """
    return all(r.passed for r in results)


__all__ = [
    "NONE_LABEL",
    "RuleResult",
    "check_segments",
    "migration_matrix",
    "migration_share",
    "profile_segments",
    "rules_passed",
]
