"""A segmentation run: scores in, a reviewed version out.

:func:`build_segmentation` is pure (segment inputs → segments, profiles, rule results, migration
against the active version); :func:`save_version` stores the result as a *pending* version in one
transaction (:class:`clv.store.Store`); :func:`activate_if_unchanged` is the segmentation flow's
automatic activation. Nothing here reads files or talks SQL itself.

Segment ids are stable: RFM segments are identified by a slug of their rule name
(``"cant-lose-them"``); value segments keep the id and name of the active version's cluster they
match (:func:`clv.segmentation.values.fit_value_segments`), new ones get the next free id.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clv.config import SegmentationConfig
from clv.store import ASSIGNMENT_COLUMNS as EXPORT_COLUMNS  # what is kept beside each customer

if TYPE_CHECKING:
    from clv.segmentation.profiles import RuleResult
    from clv.segmentation.values import ValueModel
    from clv.store import Store, VersionInfo


def slug(name: str) -> str:
    """A stable id for a segment name: ``"Can't lose them"`` → ``"cant-lose-them"``."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower().replace("'", "")).strip("-")
    return text or "segment"


@dataclass
class Previous:
    """The active version a new run is compared with."""

    version: int
    method: str
    labels: pd.Series  # segment name per customer_id
    model: ValueModel | None = None


@dataclass
class Segmentation:
    """What one run produced, before it is stored.

    Attributes
    ----------
    method : str
        ``rfm``, ``kmeans`` or ``both``.
    inputs : DataFrame
        Per customer (index ``customer_id``): the value features, RFM scores and RFM segment.
    segment_ids : Series
        Segment id per customer.
    segments : DataFrame
        One row per segment: ``segment_id``, ``name``, ``description``, ``new``,
        ``matched_from``, ``profile`` (a dict of the profile row).
    profiles : DataFrame
        :func:`clv.segmentation.profiles.profile_segments`, indexed by segment name.
    rules : list of RuleResult
        The business rules' results.
    model : ValueModel or None
        The k-means model (``kmeans`` / ``both``).
    previous : Previous or None
        The active version compared with.
    migration : DataFrame or None
        Customers from each old segment (rows) to each new one (columns).
    migration_share : float or None
        Share of customers in both versions whose segment changed.
    config : SegmentationConfig
        The settings of the run.
    content_hash : str
        SHA-256 of the inputs and the settings: the same run twice is one version (while that
        version is pending or active).
    """

    method: str
    inputs: pd.DataFrame
    segment_ids: pd.Series
    segments: pd.DataFrame
    profiles: pd.DataFrame
    rules: list[RuleResult]
    model: ValueModel | None
    previous: Previous | None
    migration: pd.DataFrame | None
    migration_share: float | None
    config: SegmentationConfig
    content_hash: str
    notes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> pd.Series:
        """Segment name per customer."""
        names = dict(zip(self.segments["segment_id"], self.segments["name"], strict=True))
        return self.segment_ids.map(names).rename("segment")

    @property
    def rules_passed(self) -> bool:
        """Whether every business rule passed."""
        return all(r.passed for r in self.rules)

    @property
    def all_matched(self) -> bool:
        """Whether every segment continues one of the compared version's (none is new)."""
        return self.previous is not None and not bool(self.segments["new"].any())

    def assignments(self) -> pd.DataFrame:
        """``customer_id``, ``segment_id`` and the export columns, one row per customer."""
        out = pd.DataFrame({"customer_id": self.segment_ids.index.astype(str)})
        out["segment_id"] = self.segment_ids.to_numpy()
        for column in EXPORT_COLUMNS:
            source = "segment" if column == "rfm_segment" else column
            if source in self.inputs.columns:
                values = self.inputs[source]
                out[column] = (
                    values.astype(str).to_numpy() if column == "rfm_segment" else values.to_numpy()
                )
        return out


def _content_hash(inputs: pd.DataFrame, config: SegmentationConfig) -> str:
    digest = hashlib.sha256()
    frame = inputs.sort_index()
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    digest.update(json.dumps(list(map(str, frame.columns))).encode())
    digest.update(config.model_dump_json().encode())
    return digest.hexdigest()


def _rfm_segments(
    inputs: pd.DataFrame, previous: Previous | None
) -> tuple[pd.Series, pd.DataFrame]:
    from clv.segmentation.rfm import load_rules

    names = inputs["segment"].astype(str)
    rules = load_rules()
    descriptions = dict(zip(rules.names, (r.description for r in rules.rules), strict=True))
    before = set() if previous is None else set(previous.labels.astype(str).unique())
    present = [n for n in rules.names if (names == n).any()] or sorted(names.unique())
    present += sorted(set(names.unique()) - set(present))
    segments = pd.DataFrame(
        {
            "segment_id": [slug(n) for n in present],
            "name": present,
            "description": [descriptions.get(n, "") for n in present],
            "new": [previous is not None and n not in before for n in present],
            "matched_from": [
                slug(n) if previous is not None and n in before else None for n in present
            ],
        }
    )
    return names.map(slug).rename("segment_id"), segments


def _describe(model: ValueModel, index: int) -> str:
    raw = model.centroids_raw().iloc[index]
    parts = [f"typical predicted CLV {raw['predicted_clv']:,.2f}"]
    parts.append(f"churn {raw['churn_probability']:.0%}")
    if "eco_spend_share" in raw.index:
        parts.append(f"eco share {raw['eco_spend_share']:.0%}")
    return "k-means centroid: " + ", ".join(parts)


def _value_segments(
    inputs: pd.DataFrame, config: SegmentationConfig, previous: Previous | None
) -> tuple[pd.Series, pd.DataFrame, ValueModel]:
    from clv.segmentation.values import fit_value_segments

    model = fit_value_segments(
        inputs,
        k_min=config.k_min,
        k_max=config.k_max,
        min_share=config.min_share,
        sample_size=config.sample_size,
        seed=config.seed,
        previous=None if previous is None else previous.model,
        match_distance=config.match_distance,
    )
    ids = model.assign(inputs).rename("segment_id")
    segments = pd.DataFrame(
        {
            "segment_id": list(model.segment_ids),
            "name": list(model.names),
            "description": [_describe(model, i) for i in range(len(model.segment_ids))],
            "new": [bool(previous is not None and new) for new in model.new],
            "matched_from": list(model.matched_from),
        }
    )
    return ids, segments, model


def build_segmentation(
    inputs: pd.DataFrame,
    *,
    config: SegmentationConfig | None = None,
    previous: Previous | None = None,
) -> Segmentation:
    """Segment every customer, profile the segments and check the business rules.

    Parameters
    ----------
    inputs : DataFrame
        :func:`clv.segmentation.inputs.segment_inputs`.
    config : SegmentationConfig, optional
        The settings (default: :class:`~clv.config.SegmentationConfig`'s defaults).
    previous : Previous, optional
        The active version: value segments that match its clusters keep their ids and names,
        and the migration between the two is measured.

    Returns
    -------
    Segmentation
        Everything a version holds.

    Raises
    ------
    ValueError
        When there are fewer customers than ``k_min`` (k-means), with the numbers.
    """
    config = config or SegmentationConfig()
    if config.method == "rfm":
        ids, segments, model = *_rfm_segments(inputs, previous), None
    else:
        usable = None if previous is None or previous.method == "rfm" else previous
        ids, segments, model = _value_segments(inputs, config, usable)
        if previous is not None and usable is None:
            segments["new"] = True
    return assemble_segmentation(inputs, ids, segments, model, config=config, previous=previous)


def assemble_segmentation(
    inputs: pd.DataFrame,
    ids: pd.Series,
    segments: pd.DataFrame,
    model: ValueModel | None,
    *,
    config: SegmentationConfig,
    previous: Previous | None,
) -> Segmentation:
    """A :class:`Segmentation` from the customers' segment ids: profiled and rule-checked.

    What :func:`build_segmentation` does after assigning, and what a Dask run gathers into
    (:func:`clv.distributed.segmentation.gather_segmentation`), so both are reviewed alike.

    Parameters
    ----------
    inputs : DataFrame
        The segmentation inputs, indexed by customer.
    ids : Series
        Segment id per customer (the index of ``inputs``).
    segments : DataFrame
        ``segment_id``, ``name``, ``description`` and the flags of each segment; gains
        ``profile``.
    model : ValueModel or None
        The value model (None for RFM segments).
    config : SegmentationConfig
        The settings the run used (the business rules' thresholds).
    previous : Previous, optional
        The active version, for the migration.

    Returns
    -------
    Segmentation
        Everything a version holds.
    """
    from clv.segmentation.profiles import (
        check_segments,
        migration_matrix,
        migration_share,
        profile_segments,
    )

    names = dict(zip(segments["segment_id"], segments["name"], strict=True))
    labels = ids.map(names).rename("segment")
    before = None if previous is None else previous.labels.astype(str)
    profiles = profile_segments(inputs, labels, previous=before)
    segments["profile"] = pd.Series(
        [{k: _plain(v) for k, v in profiles.loc[name].items()} for name in segments["name"]],
        index=segments.index,
        dtype=object,
    )
    rules = check_segments(
        inputs,
        labels,
        min_share=config.min_segment_share,
        min_customers=config.min_segment_customers,
        min_centroid_distance=config.min_centroid_distance,
        max_top_customer_clv_share=config.max_top_customer_clv_share,
    )
    migration = share = None
    if before is not None:
        migration = migration_matrix(before, labels)
        share = migration_share(before, labels)
    return Segmentation(
        method=config.method,
        inputs=inputs,
        segment_ids=ids,
        segments=segments,
        profiles=profiles,
        rules=list(rules),
        model=model,
        previous=previous,
        migration=migration,
        migration_share=share,
        config=config,
        content_hash=_content_hash(inputs, config),
        notes=[] if model is None else list(getattr(model, "notes", [])),
    )


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar (NaN → None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def previous_of(store: Store) -> Previous | None:
    """The active version as a :class:`Previous`, or None when nothing is active."""
    from clv.segmentation.values import ValueModel

    active = store.active()
    if active is None:
        return None
    assigned = store.assignments(active.version)
    labels = pd.Series(
        assigned["name"].astype(str).to_numpy(),
        index=pd.Index(assigned["customer_id"].astype(str), name="customer_id"),
        name="segment",
    )
    model = None if active.model is None else ValueModel.from_json(active.model)
    return Previous(active.version, active.method, labels, model)


def save_version(
    store: Store,
    segmentation: Segmentation,
    *,
    source: str,
    scores_as_of: pd.Timestamp | None,
) -> VersionInfo:
    """Store a run as a pending version (one transaction; the same run twice is one version).

    Parameters
    ----------
    store : Store
        The platform database.
    segmentation : Segmentation
        What :func:`build_segmentation` produced.
    source : str
        Where the scores came from (a file, or a scoring run of the database).
    scores_as_of : Timestamp or None
        The scores' cut-off.

    Returns
    -------
    VersionInfo
        The stored version (``pending``), or the existing one with the same content.
    """
    rules = [
        {
            "segment": r.segment,
            "rule": r.rule,
            "passed": bool(r.passed),
            "value": _plain(r.value),
            "threshold": _plain(r.threshold),
            "message": r.message,
        }
        for r in segmentation.rules
    ]
    config = segmentation.config.model_dump() | {
        "compared_with": None if segmentation.previous is None else segmentation.previous.version,
        "migration_share": segmentation.migration_share,
        "all_matched": segmentation.all_matched,
        "notes": segmentation.notes,
    }
    return store.create_version(
        method=segmentation.method,
        segments=segmentation.segments,
        assignments=segmentation.assignments(),
        rules=rules,
        config=config,
        model=None if segmentation.model is None else segmentation.model.to_json(),
        scores_as_of=scores_as_of,
        source=source,
        content_hash=segmentation.content_hash,
    )


def can_activate_automatically(segmentation: Segmentation) -> tuple[bool, str]:
    """Whether the flow may activate a version without review, and why (not).

    A version is activated on its own only when ``auto_activate`` is on, every business rule
    passed, every segment matched one of the active version's, and at most
    ``max_auto_migration_share`` of the customers changed segment. The first version always waits
    for review.
    """
    config = segmentation.config
    if not config.auto_activate:
        return False, "automatic activation is off (auto_activate: false)"
    if segmentation.previous is None:
        return False, "there is no active version yet: the first version is reviewed"
    if not segmentation.rules_passed:
        failed = sum(not r.passed for r in segmentation.rules)
        return False, f"{failed} business rule(s) failed"
    new = segmentation.segments.loc[segmentation.segments["new"], "name"].tolist()
    if new:
        return False, f"segment(s) matching no active segment: {', '.join(new)}"
    share = segmentation.migration_share or 0.0
    if share > config.max_auto_migration_share:
        return False, (
            f"{share:.1%} of customers changed segment, more than "
            f"{config.max_auto_migration_share:.1%}"
        )
    return True, (
        f"every segment matched version {segmentation.previous.version}'s and {share:.1%} of "
        "customers changed segment"
    )
