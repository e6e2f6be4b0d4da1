"""Segmentation on a Dask cluster: small statistics to the client, every customer by partition.

The single-machine path (:func:`clv.segmentation.inputs.segment_inputs`, then
:func:`clv.segmentation.runs.build_segmentation`) holds every customer in memory. Here:

* **RFM scores** are quantile ranks over the whole population, so they are not per-partition
  values: each of the three dimensions' distinct values and their counts are gathered to the
  client (a few thousand numbers for recency and frequency; at most one per customer for the
  monetary value), and every partition is scored against them with the single-machine formula
  (:func:`clv.segmentation.rfm.quantile_scores`), giving the same integers.
* **Value segments** (k-means) are fitted on the client on the seeded sample
  :func:`clv.segmentation.values.fit_value_segments` itself draws (the ``sample_size`` customers
  whose seeded hash of the id is smallest), found by a reduction over the partitions; every
  customer is then assigned to the nearest centroid by ``map_partitions``.

With ``sample_size`` at least the population, the sample is everyone and the result is the
single-machine one (same inputs, model, ids; tested). With a smaller sample, one difference
remains: the fill value of a missing optional feature is the sample's median, not the
population's, and ``customers`` is set to the population afterwards.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from clv.config import SegmentationConfig
from clv.segmentation.rfm import N_SCORES, RFM_INPUT_COLUMNS, SegmentRules, load_rules

if TYPE_CHECKING:
    import dask.dataframe as dd

    from clv.segmentation.runs import Previous, Segmentation
    from clv.segmentation.values import ValueModel

__all__ = [
    "DaskSegments",
    "fit_value_model_dask",
    "gather_segmentation",
    "segment_dask",
    "segment_inputs_dask",
]

#: The three RFM dimensions: input column and how its values are ranked (see ``rfm_scores``).
_RECENCY, _FREQUENCY, _MONETARY = RFM_INPUT_COLUMNS


@dataclass(frozen=True)
class _Ranks:
    """A dimension's distinct values (ascending) and how many customers hold each."""

    values: npt.NDArray[np.float64]
    counts: npt.NDArray[np.int64]

    @classmethod
    def of(cls, counts: pd.Series) -> _Ranks:
        # + 0.0 makes -0.0 and 0.0 one value, as the comparisons of the sorted array do.
        keys = counts.index.to_numpy(dtype="float64") + 0.0
        values, inverse = np.unique(keys, return_inverse=True)
        summed = np.bincount(inverse, weights=counts.to_numpy(dtype="float64"))
        return cls(values=values, counts=np.rint(summed).astype(np.int64))

    def scores(self, v: npt.NDArray[np.float64], n_scores: int) -> npt.NDArray[np.int64]:
        """:func:`clv.segmentation.rfm.quantile_scores` of ``v`` within the whole population."""
        if v.size == 0:
            return np.zeros(0, dtype=np.int64)
        before = np.concatenate([[0], np.cumsum(self.counts)])
        at = np.searchsorted(self.values, v + 0.0, side="left")
        below = before[at]
        up_to = below + self.counts[at]
        midpoint = (below + up_to) / (2.0 * int(before[-1]))
        return np.clip(np.ceil(n_scores * midpoint), 1, n_scores).astype(np.int64)


def _checked_partition(part: pd.DataFrame, source: str) -> pd.DataFrame:
    """One partition of scores as segment inputs without the RFM scores (``segment_inputs``)."""
    from clv.segmentation.inputs import OPTIONAL_FEATURES, check_scores
    from clv.segmentation.rfm import _check_inputs

    if len(part):  # an empty partition (or the meta) has nothing to check
        check_scores(part, source, needs_rfm=True)
    frame = part.copy()
    frame["customer_id"] = frame["customer_id"].astype(str).astype(object)
    columns: Sequence[str] = [
        "predicted_clv",
        "churn_probability",
        *[c for c in OPTIONAL_FEATURES if c in frame.columns],
        *RFM_INPUT_COLUMNS,
    ]
    out = frame.set_index("customer_id")[list(columns)].sort_index()
    for column in columns:
        out[column] = pd.to_numeric(out[column], errors="coerce").astype("float64")
    if len(out):
        _check_inputs(out)
    return out


def _scored_partition(
    part: pd.DataFrame, ranks: tuple[_Ranks, _Ranks, _Ranks], rules: SegmentRules
) -> pd.DataFrame:
    """The partition with ``segment_rfm``'s columns, ranked within the whole population."""
    recency, frequency, monetary = ranks
    days = part[_RECENCY].to_numpy(dtype="float64")
    purchases = part[_FREQUENCY].to_numpy(dtype="float64")
    value = part[_MONETARY].to_numpy(dtype="float64")
    r = recency.scores(-days, N_SCORES)
    f = np.ones(len(part), dtype=np.int64)  # bought once: 1, whatever the others do
    repeat = purchases > 1
    f[repeat] = 1 + frequency.scores(purchases[repeat], N_SCORES - 1)
    m = monetary.scores(value, N_SCORES)
    which: Any = rules.lookup()[r - 1, f - 1, m - 1]
    out = part.copy()
    out["r_score"], out["f_score"], out["m_score"] = r, f, m
    out["rfm_score"] = pd.Series(
        [f"{a}{b}{c}" for a, b, c in zip(r, f, m, strict=True)], index=part.index, dtype=object
    )
    out["segment"] = pd.Categorical.from_codes(which, categories=pd.Index(rules.names))
    return out


def segment_inputs_dask(
    scores_ddf: dd.DataFrame, *, source: str = "scores", rules: SegmentRules | None = None
) -> dd.DataFrame:
    """:func:`clv.segmentation.inputs.segment_inputs` on Dask: the same table, by partition.

    Parameters
    ----------
    scores_ddf : dask DataFrame
        A scoring run's scores with the RFM inputs (as ``clv score`` writes them), one row per
        customer, each customer in one partition.
    source : str
        Their name, for messages (each check runs on one partition: its row numbers count
        within that partition).
    rules : SegmentRules, optional
        The RFM segment rules (default: the package's).

    Returns
    -------
    dask DataFrame
        Indexed by ``customer_id``, each partition sorted; the columns of ``segment_inputs``.

    Raises
    ------
    clv.segmentation.inputs.SegmentInputError
        When a partition's scores cannot be segmented (raised when the statistics are gathered).
    """
    import dask

    table = rules if rules is not None else load_rules()
    meta_in = _checked_partition(scores_ddf._meta.iloc[:0], source)
    inputs = scores_ddf.map_partitions(_checked_partition, source, meta=meta_in)
    # A tree reduction into one small result each (split_out=1: no shuffle between workers).
    counts = dask.compute(
        (-inputs[_RECENCY]).value_counts(split_out=1),
        inputs[_FREQUENCY][inputs[_FREQUENCY] > 1].value_counts(split_out=1),
        inputs[_MONETARY].value_counts(split_out=1),
    )
    ranks = tuple(_Ranks.of(c) for c in counts)
    meta = _scored_partition(meta_in, ranks, table)  # type: ignore[arg-type]
    return inputs.map_partitions(
        _scored_partition, dask.delayed(ranks), dask.delayed(table), meta=meta
    )


def _sample_key(seed: int) -> str:
    """The hash key of :func:`clv.segmentation.values._sample_order` (the same customers)."""
    return hashlib.sha256(f"clv-value-segments:{seed}".encode()).hexdigest()[:16]


def _hashes(part: pd.DataFrame, key: str) -> pd.Series:
    ids = np.asarray(part.index.astype(str), dtype=object)
    values = pd.util.hash_array(ids, hash_key=key, categorize=False)
    return pd.Series(values, index=part.index, dtype="uint64", name="hash")


def _with_hash(part: pd.DataFrame, key: str) -> pd.DataFrame:
    return part.assign(_sample_hash=_hashes(part, key))


def fit_value_model_dask(
    inputs_ddf: dd.DataFrame,
    *,
    config: SegmentationConfig | None = None,
    previous: ValueModel | None = None,
) -> ValueModel:
    """Value segments fitted on the client on the seeded sample of ``fit_value_segments``.

    Parameters
    ----------
    inputs_ddf : dask DataFrame
        :func:`segment_inputs_dask`.
    config : SegmentationConfig, optional
        ``k_min``, ``k_max``, ``min_share``, ``sample_size``, ``seed``, ``match_distance``.
    previous : ValueModel, optional
        The active model (matching clusters keep their ids and names).

    Returns
    -------
    ValueModel
        Fitted on at most ``sample_size`` customers gathered to the client.
    """
    import dask

    from clv.segmentation.values import fit_value_segments

    config = config or SegmentationConfig()
    key = _sample_key(config.seed)
    hashed = inputs_ddf.map_partitions(
        _with_hash, key, meta=_with_hash(inputs_ddf._meta.iloc[:0], key)
    )
    n, smallest = dask.compute(
        hashed.shape[0], hashed["_sample_hash"].nsmallest(config.sample_size)
    )
    if n == 0:
        raise ValueError("the scores hold no customer to segment")
    threshold = np.uint64(smallest.max())
    chosen = hashed[hashed["_sample_hash"] <= threshold].compute()
    # The single-machine order: ascending hash (ties, vanishingly rare, by customer id).
    chosen = chosen.sort_index(kind="stable").sort_values("_sample_hash", kind="stable")
    sample = chosen.drop(columns="_sample_hash").iloc[: config.sample_size]
    model = fit_value_segments(
        sample,
        k_min=config.k_min,
        k_max=config.k_max,
        min_share=config.min_share,
        sample_size=config.sample_size,
        seed=config.seed,
        previous=previous,
        match_distance=config.match_distance,
    )
    model.customers = int(n)
    return model


def _assigned(part: pd.DataFrame, model: ValueModel) -> pd.Series:
    if len(part) == 0:
        return pd.Series([], index=part.index, name="segment_id", dtype=object)
    return model.assign(part)


def _rfm_ids(part: pd.DataFrame) -> pd.Series:
    from clv.segmentation.runs import slug

    names = part["segment"].astype(str)
    return pd.Series([slug(n) for n in names], index=part.index, name="segment_id", dtype=object)


@dataclass
class DaskSegments:
    """A segmentation computed on the cluster.

    Attributes
    ----------
    method : str
        ``rfm``, ``kmeans`` or ``both``.
    inputs : dask DataFrame
        :func:`segment_inputs_dask`.
    segment_ids : dask Series
        ``segment_id`` per customer, indexed by ``customer_id`` (as ``Segmentation.segment_ids``).
    segments : DataFrame
        ``segment_id``, ``name``, ``description``, ``new``, ``matched_from`` per segment (as
        ``Segmentation.segments`` before profiling).
    model : ValueModel or None
        The value model (None for ``rfm``).
    """

    method: str
    inputs: dd.DataFrame
    segment_ids: dd.Series
    segments: pd.DataFrame
    model: ValueModel | None


def segment_dask(
    scores_ddf: dd.DataFrame,
    *,
    config: SegmentationConfig | None = None,
    source: str = "scores",
    rules: SegmentRules | None = None,
    previous: Previous | None = None,
) -> DaskSegments:
    """Every scored customer's segment, computed on the cluster.

    The assignment is ``build_segmentation(segment_inputs(scores), config=..., previous=...)``'s
    (``segment_ids`` and ``segments``) when ``config.sample_size`` covers every customer; the
    profiles, business-rule checks and migration are not computed here.

    Parameters
    ----------
    scores_ddf : dask DataFrame
        Scores as ``clv score`` writes them (with the RFM inputs), each customer in one partition.
    config : SegmentationConfig, optional
        The settings (default: ``SegmentationConfig()``).
    source : str
        Name of the scores, for messages.
    rules : SegmentRules, optional
        The RFM rules (default: the package's).
    previous : Previous, optional
        The active version (value segments matching it keep their ids and names).

    Returns
    -------
    DaskSegments
        Lazy inputs and ids; the model and segment table, computed.
    """
    import dask

    from clv.segmentation.runs import _describe, _rfm_segments

    config = config or SegmentationConfig()
    inputs = segment_inputs_dask(scores_ddf, source=source, rules=rules)
    id_meta = pd.Series([], dtype=object, name="segment_id", index=inputs._meta.index)
    if config.method == "rfm":
        present = inputs["segment"].astype(str).unique().compute()
        names = pd.DataFrame({"segment": sorted(map(str, present))})
        _, segments = _rfm_segments(names, previous)
        ids = inputs.map_partitions(_rfm_ids, meta=id_meta)
        return DaskSegments(config.method, inputs, ids, segments, None)
    usable = None if previous is None or previous.method == "rfm" else previous
    model = fit_value_model_dask(
        inputs, config=config, previous=None if usable is None else usable.model
    )
    ids = inputs.map_partitions(_assigned, dask.delayed(model), meta=id_meta)
    segments = pd.DataFrame(
        {
            "segment_id": list(model.segment_ids),
            "name": list(model.names),
            "description": [_describe(model, i) for i in range(len(model.segment_ids))],
            "new": [bool(usable is not None and new) for new in model.new],
            "matched_from": list(model.matched_from),
        }
    )
    if previous is not None and usable is None:
        segments["new"] = True
    return DaskSegments(config.method, inputs, ids, segments, model)


def _object_index(frame: pd.DataFrame | pd.Series) -> None:
    """Customer ids as plain ``str`` objects, as the single-machine inputs hold them."""
    ids = np.asarray(frame.index.astype(str), dtype=object)
    frame.index = pd.Index(ids, dtype=object, name="customer_id")


def gather_segmentation(
    result: DaskSegments,
    *,
    config: SegmentationConfig | None = None,
    previous: Previous | None = None,
) -> Segmentation:
    """The full :class:`~clv.segmentation.runs.Segmentation` of a cluster run, on the client.

    The inputs and ids are gathered (about 150 bytes per customer), then profiled and checked
    exactly as :func:`clv.segmentation.runs.build_segmentation` does, so that the run can be
    stored with :func:`clv.segmentation.runs.save_version` (which takes every assignment in one
    transaction) and reviewed as any other.

    Parameters
    ----------
    result : DaskSegments
        :func:`segment_dask`.
    config, previous
        The ones ``result`` was computed with.

    Returns
    -------
    Segmentation
        ``build_segmentation``'s result when the sample was every customer.
    """
    import dask

    from clv.segmentation.runs import assemble_segmentation

    config = config or SegmentationConfig()
    inputs, ids = dask.compute(result.inputs, result.segment_ids)
    for frame in (inputs, ids):
        _object_index(frame)
    inputs, ids = inputs.sort_index(kind="stable"), ids.sort_index(kind="stable")
    return assemble_segmentation(
        inputs, ids, result.segments.copy(), result.model, config=config, previous=previous
    )
