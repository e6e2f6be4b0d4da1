"""Value segments: k-means on predicted CLV, churn, eco behaviour and the RFM scores.

A value segmentation is a small, JSON-serialisable :class:`ValueModel`: the features used, how each
is transformed and standardised, the cluster centroids, and for each cluster a stable id
(``"V1"``, ``"V2"``, ...) and a name a marketer can read ("high-value eco loyalists").

How a model is fitted (:func:`fit_value_segments`)
--------------------------------------------------
1. **Features.** Those of :data:`VALUE_FEATURES` that the inputs hold with at least one value;
   ``predicted_clv`` and ``churn_probability`` are required. ``predicted_clv`` is taken as
   ``log1p``: CLV is heavy-tailed (a few customers are worth hundreds of times the median), and on
   the raw scale k-means spends its clusters splitting the tail while everyone else shares one.
   A missing value of an optional feature (a customer without sustainability data) becomes the
   population median of that feature, stored in the model (``fill``) so that later assignments
   use the same value.
2. **Sample.** k-means is fitted on at most ``sample_size`` customers, chosen by a seeded hash
   of the customer id: the same customers whatever the row order, in an order that does not
   depend on the input's either. Shuffled rows therefore give the same model, byte for byte.
   The standardiser (mean and standard deviation of each transformed feature) is the sample's.
3. **Weights.** The three RFM scores together weigh as much as one other feature (each
   ``1/sqrt(3)`` in the distance): they describe the same purchase history that predicted CLV
   and churn already summarise, and unweighted, five of seven features say one thing, so that
   k-means tends to split customers by activity alone. On generated data with a planted
   eco-conscious population (3,000 customers, seed 7, BTYD scores), unweighted k-means found
   no eco segment at all; weighted, 60% of the planted customers land in an eco segment that
   is 72% eco-conscious (22% in the population).
4. **k.** Each k in ``k_min..k_max`` is fitted (scikit-learn ``KMeans``, ``n_init`` =
   :data:`N_INIT`, ``random_state`` = the seed, one thread). k is the one with the best
   silhouette (on the first :data:`SILHOUETTE_ROWS` customers of the sample, all k in one pass
   over the pairwise distances: :func:`silhouettes`) among those whose smallest cluster holds
   at least ``min_share`` of the sample. When none does, the k with the largest smallest
   cluster wins, and the model's ``notes`` say so.
5. **Order, ids and names.** Centroids are recomputed as exactly rounded means of their
   customers (k-means' own sums can differ in the last bit between runs), ordered by descending
   CLV, named from their standardised values (:func:`name_clusters`) and numbered ``V1..Vk`` in
   that order. With a ``previous`` model, clusters are matched to its clusters instead
   (:func:`match_clusters`): a match keeps the previous id and name, an unmatched cluster gets
   the next unused id and a fresh name, unique against the kept ones.

Every customer is then assigned to the nearest centroid (:meth:`ValueModel.assign`), in chunks,
so that a million customers need a few tens of megabytes beyond the inputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

logger = logging.getLogger(__name__)

#: Features value segments may use, in this order; those present in the inputs are used.
VALUE_FEATURES: tuple[str, ...] = (
    "predicted_clv",
    "churn_probability",
    "eco_spend_share",
    "eco_engagement_score",
    "r_score",
    "f_score",
    "m_score",
)
#: Features every value segmentation needs.
REQUIRED_FEATURES: tuple[str, ...] = ("predicted_clv", "churn_probability")
#: The RFM scores: three coarse views of one purchase history, weighted to count as one feature.
RFM_SCORES: tuple[str, ...] = ("r_score", "f_score", "m_score")
#: Transform applied before standardising (features not listed: ``identity``).
TRANSFORMS: dict[str, str] = {"predicted_clv": "log1p"}
#: k-means restarts per k (fixed so that a model is reproducible from its seed).
N_INIT = 4
#: Most customers the silhouette is computed on (it costs the square of the rows).
SILHOUETTE_ROWS = 10_000
#: Decimals a silhouette is kept to (and compared at when choosing k).
SILHOUETTE_DIGITS = 6
#: Rows per chunk when assigning customers to centroids.
ASSIGN_CHUNK_ROWS = 100_000
#: A standardised centroid value at or beyond +/- this is "high" / "low" in a name.
NAME_THRESHOLD = 0.5
#: Descriptive words in a name besides the value tier (more make names hard to read).
NAME_WORDS = 2
#: Version of the JSON layout written by :meth:`ValueModel.to_json`.
FORMAT_VERSION = 1
_ID_PREFIX = "V"


# --- features -------------------------------------------------------------------------------


def _forward(transform: str, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    if transform == "log1p":
        return np.log1p(values)
    if transform == "identity":
        return values
    raise ValueError(f"unknown feature transform {transform!r}; known: identity, log1p")


def _inverse(transform: str, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    if transform == "log1p":
        return np.expm1(values)
    if transform == "identity":
        return values
    raise ValueError(f"unknown feature transform {transform!r}; known: identity, log1p")


def value_features(inputs: pd.DataFrame) -> list[str]:
    """The :data:`VALUE_FEATURES` of ``inputs`` a value segmentation uses.

    Parameters
    ----------
    inputs : DataFrame
        Segment inputs, one row per customer.

    Returns
    -------
    list of str
        The features present with at least one non-missing value, in :data:`VALUE_FEATURES`
        order.

    Raises
    ------
    ValueError
        When ``predicted_clv`` or ``churn_probability`` is missing, naming it.
    """
    missing = [c for c in REQUIRED_FEATURES if c not in inputs.columns]
    if missing:
        raise ValueError(
            f"value segments need column(s) {', '.join(missing)}; the inputs have "
            f"{', '.join(map(str, inputs.columns))}. Score the customers first (clv score)"
        )
    used = []
    for name in VALUE_FEATURES:
        if name in inputs.columns and (name in REQUIRED_FEATURES or inputs[name].notna().any()):
            used.append(name)
    return used


def _column(inputs: pd.DataFrame, name: str) -> npt.NDArray[np.float64]:
    try:
        return np.asarray(inputs[name].to_numpy(dtype="float64", na_value=np.nan))
    except (TypeError, ValueError) as err:
        raise ValueError(f"column '{name}' must be numeric ({err})") from None


def _check_required(inputs: pd.DataFrame) -> None:
    for name in REQUIRED_FEATURES:
        values = _column(inputs, name)
        bad = ~np.isfinite(values)
        if bad.any():
            example = inputs.index[int(np.flatnonzero(bad)[0])]
            raise ValueError(
                f"column '{name}' is missing or infinite for {int(bad.sum()):,} customer(s) "
                f"(e.g. {example!r}); every customer needs a score to be segmented"
            )
    clv = _column(inputs, "predicted_clv")
    if (clv < 0).any():
        example = inputs.index[int(np.flatnonzero(clv < 0)[0])]
        raise ValueError(
            f"column 'predicted_clv' is negative for {int((clv < 0).sum()):,} customer(s) "
            f"(e.g. {example!r}); predicted CLV must be at least 0"
        )
    churn = _column(inputs, "churn_probability")
    outside = (churn < 0) | (churn > 1)
    if outside.any():
        example = inputs.index[int(np.flatnonzero(outside)[0])]
        raise ValueError(
            f"column 'churn_probability' lies outside [0, 1] for {int(outside.sum()):,} "
            f"customer(s) (e.g. {example!r})"
        )


def _exact_mean(values: npt.NDArray[np.float64]) -> float:
    """The mean, exactly rounded (so the same numbers in any memory layout give the same bits)."""
    return math.fsum(values.tolist()) / len(values)


def _weights(features: Sequence[str]) -> dict[str, float]:
    """Distance weight of each feature: the RFM scores present share one feature's weight."""
    n_rfm = sum(f in RFM_SCORES for f in features)
    return {f: (1.0 / math.sqrt(n_rfm) if f in RFM_SCORES else 1.0) for f in features}


def _sample_order(index: pd.Index, seed: int) -> npt.NDArray[np.intp]:
    """Row positions in a seeded order that depends on the customer ids only, not the rows'."""
    key = hashlib.sha256(f"clv-value-segments:{seed}".encode()).hexdigest()[:16]
    ids = np.asarray(index.astype(str), dtype=object)
    hashes = pd.util.hash_array(ids, hash_key=key, categorize=False)
    return np.argsort(hashes, kind="stable")


# --- the model ------------------------------------------------------------------------------


@dataclass
class ValueModel:
    """A fitted value segmentation: standardiser, centroids, stable ids and names.

    Every array is stored in ``features`` order; the model is plain data, written and read with
    :meth:`to_json` / :meth:`from_json` (never pickled).

    Attributes
    ----------
    features : list of str
        The features used (a subset of :data:`VALUE_FEATURES`).
    transform : dict
        Transform of each feature before standardising (``log1p`` or ``identity``).
    fill : dict
        Value used for a missing feature value (the population median at fit time).
    mean, scale : dict
        Standardiser: ``(transform(x) - mean) / scale`` per feature.
    weight : dict
        Weight of each standardised feature in the distance (see the module docstring).
    centroids : list of list of float
        ``k`` centroids in the standardised space, in cluster order.
    segment_ids : list of str
        Stable id per cluster (``"V1"``, ...).
    names : list of str
        Name per cluster, unique within the model.
    new : list of bool
        Per cluster: whether it matched no cluster of the previous model (all True without one).
    matched_from : list of str or None
        Per cluster: the previous model's id it continues, or None.
    silhouette : dict
        k → silhouette score over the range tried (None where undefined).
    smallest_share : dict
        k → share of the sample in that k's smallest cluster.
    sizes : list of int
        Sample customers per cluster.
    k : int
        Number of clusters chosen.
    seed : int
        Seed of the sample and of k-means.
    sample_size : int
        Customers k-means was fitted on.
    customers : int
        Customers in the inputs of the fit.
    k_min, k_max : int
        Range of k tried.
    min_share : float
        Smallest cluster share a k needed to be chosen.
    match_distance : float
        Largest standardised distance at which a cluster matched one of the previous model.
    last_id : int
        Highest id number issued by this model and its predecessors (new ids continue from it).
    notes : list of str
        What a reviewer should know about the fit (fallbacks, features dropped).
    """

    features: list[str]
    transform: dict[str, str]
    fill: dict[str, float]
    mean: dict[str, float]
    scale: dict[str, float]
    weight: dict[str, float]
    centroids: list[list[float]]
    segment_ids: list[str]
    names: list[str]
    new: list[bool]
    matched_from: list[str | None]
    silhouette: dict[int, float | None]
    smallest_share: dict[int, float]
    sizes: list[int]
    k: int
    seed: int
    sample_size: int
    customers: int
    k_min: int
    k_max: int
    min_share: float
    match_distance: float
    last_id: int
    notes: list[str] = field(default_factory=list)

    # -- serialisation --------------------------------------------------------------------------

    def to_json(self) -> str:
        """The model as JSON text.

        Returns
        -------
        str
            Sorted keys, no NaN (undefined silhouettes are ``null``): the same model always
            gives the same bytes, and :meth:`from_json` reads it back unchanged.
        """
        data = asdict(self)
        data["silhouette"] = {str(k): v for k, v in self.silhouette.items()}
        data["smallest_share"] = {str(k): v for k, v in self.smallest_share.items()}
        data["format_version"] = FORMAT_VERSION
        return json.dumps(data, sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> ValueModel:
        """Read a model written by :meth:`to_json`.

        Parameters
        ----------
        text : str or bytes
            The JSON text.

        Returns
        -------
        ValueModel

        Raises
        ------
        ValueError
            When the text is not a value model (the message names the missing or unknown keys).
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"not a value segmentation model: invalid JSON ({err})") from None
        if not isinstance(data, dict):
            raise ValueError("not a value segmentation model: expected a JSON object")
        version = data.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise ValueError(
                f"value segmentation model format {version!r} is not supported (expected "
                f"{FORMAT_VERSION}); refit the segments"
            )
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.name != "notes"}
        missing, unknown = sorted(required - set(data)), sorted(set(data) - names)
        if missing or unknown:
            raise ValueError(
                f"not a value segmentation model: missing key(s) {missing}, unknown key(s) "
                f"{unknown}"
            )
        data["silhouette"] = {int(k): v for k, v in data["silhouette"].items()}
        data["smallest_share"] = {int(k): v for k, v in data["smallest_share"].items()}
        model = cls(**data)
        model._check()
        return model

    def _check(self) -> None:
        d, k = len(self.features), len(self.segment_ids)
        shapes_ok = (
            len(self.centroids) == k == self.k
            and all(len(row) == d for row in self.centroids)
            and len(self.names) == len(self.new) == len(self.matched_from) == len(self.sizes) == k
            and all(
                f in self.mean and f in self.scale and f in self.weight and f in self.transform
                for f in self.features
            )
        )
        if not shapes_ok:
            raise ValueError(
                f"inconsistent value segmentation model: {k} ids, {len(self.centroids)} "
                f"centroids, k={self.k}, {d} features"
            )
        if len(set(self.names)) != k or len(set(self.segment_ids)) != k:
            raise ValueError("inconsistent value segmentation model: names or ids repeat")

    # -- arrays ---------------------------------------------------------------------------------

    def _mean(self) -> npt.NDArray[np.float64]:
        return np.array([self.mean[f] for f in self.features], dtype="float64")

    def _scale(self) -> npt.NDArray[np.float64]:
        return np.array([self.scale[f] for f in self.features], dtype="float64")

    def _weight(self) -> npt.NDArray[np.float64]:
        return np.array([self.weight[f] for f in self.features], dtype="float64")

    def _centroids(self) -> npt.NDArray[np.float64]:
        return np.array(self.centroids, dtype="float64").reshape(len(self.centroids), -1)

    def standardise(self, inputs: pd.DataFrame) -> npt.NDArray[np.float64]:
        """The model's features of ``inputs``, filled, transformed and standardised.

        Parameters
        ----------
        inputs : DataFrame
            Segment inputs holding every feature of the model.

        Returns
        -------
        ndarray
            ``len(inputs) × len(features)``.
        """
        return _standardised(
            inputs, self.features, self.transform, self.fill, self.mean, self.scale
        )

    def centroid_frame(self) -> pd.DataFrame:
        """Centroids in the standardised space (unweighted; 0 is the population mean).

        Returns
        -------
        DataFrame
            One row per segment id, one column per feature.
        """
        return pd.DataFrame(
            self._centroids(),
            index=pd.Index(self.segment_ids, name="segment_id"),
            columns=list(self.features),
        )

    def centroids_raw(self) -> pd.DataFrame:
        """Centroids in the features' own units (one row per segment id).

        The standardisation and the transform are undone; for ``predicted_clv`` (``log1p``) that
        is ``expm1`` of the cluster's mean ``log1p`` CLV, a geometric-style mean that sits below
        the arithmetic mean of a skewed cluster (see
        :func:`clv.segmentation.profiles.profile_segments` for the arithmetic one).

        Returns
        -------
        DataFrame
            One row per segment id, one column per feature.
        """
        return pd.DataFrame(
            self._raw_centroids(),
            index=pd.Index(self.segment_ids, name="segment_id"),
            columns=list(self.features),
        )

    def _raw_centroids(self) -> npt.NDArray[np.float64]:
        transformed = self._centroids() * self._scale() + self._mean()
        columns = [
            _inverse(self.transform[f], transformed[:, j]) for j, f in enumerate(self.features)
        ]
        return np.column_stack(columns)

    def labels(self, inputs: pd.DataFrame) -> npt.NDArray[np.intp]:
        """Cluster position (0..k-1) of each row of ``inputs``: the nearest centroid.

        Parameters
        ----------
        inputs : DataFrame
            Segment inputs holding every feature of the model.

        Returns
        -------
        ndarray of int
            One position per row.
        """
        missing = [f for f in self.features if f not in inputs.columns]
        if missing:
            raise ValueError(
                f"the inputs lack {', '.join(missing)}, which these value segments were fitted "
                "on; refit the segments on the new inputs"
            )
        _check_required(inputs)
        weight = self._weight()
        centroids = self._centroids() * weight
        squared = (centroids**2).sum(axis=1)
        out = np.empty(len(inputs), dtype=np.intp)
        for start in range(0, len(inputs), ASSIGN_CHUNK_ROWS):
            chunk = inputs.iloc[start : start + ASSIGN_CHUNK_ROWS]
            x = self.standardise(chunk) * weight
            # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 is the same for every centroid.
            out[start : start + len(chunk)] = np.argmin(squared - 2.0 * (x @ centroids.T), axis=1)
        return out

    def assign(self, inputs: pd.DataFrame) -> pd.Series:
        """Segment id of each customer: the nearest centroid (standardised, weighted distance).

        Parameters
        ----------
        inputs : DataFrame
            Segment inputs indexed by ``customer_id`` holding every feature of the model;
            missing optional values take the model's ``fill``.

        Returns
        -------
        Series
            ``segment_id`` per customer, indexed like ``inputs``.

        Raises
        ------
        ValueError
            When a feature column is missing, or a required score is missing or out of range.
        """
        positions = self.labels(inputs)
        ids = np.asarray(self.segment_ids, dtype=object)[positions]
        return pd.Series(ids, index=inputs.index, name="segment_id", dtype=object)


def _standardised(
    inputs: pd.DataFrame,
    features: Sequence[str],
    transform: Mapping[str, str],
    fill: Mapping[str, float],
    mean: Mapping[str, float],
    scale: Mapping[str, float],
) -> npt.NDArray[np.float64]:
    out = np.empty((len(inputs), len(features)), dtype="float64")
    for j, name in enumerate(features):
        values = _column(inputs, name)
        values = np.where(np.isnan(values), fill.get(name, np.nan), values)
        out[:, j] = (_forward(transform[name], values) - mean[name]) / scale[name]
    return out


# --- names ----------------------------------------------------------------------------------

#: Naming dimensions: (columns averaged, word when high, word when low, comparative high / low).
_DIMENSIONS: dict[str, tuple[tuple[str, ...], str | None, str | None, str, str]] = {
    "churn": (("churn_probability",), "at-risk", "loyal", "more at risk", "more loyal"),
    "eco": (("eco_spend_share", "eco_engagement_score"), "eco", None, "more eco", "less eco"),
    "recency": (("r_score",), "recent", "lapsed", "more recent", "less recent"),
    "frequency": (("f_score",), "frequent", "infrequent", "more frequent", "less frequent"),
    "monetary": (("m_score",), "big-spending", "small-basket", "bigger baskets", "smaller baskets"),
    "value": (("predicted_clv",), None, None, "higher value", "lower value"),
}
#: Order of the words in a name.
_WORD_ORDER = (
    "at-risk",
    "loyal",
    "new",
    "lapsed",
    "recent",
    "frequent",
    "infrequent",
    "eco",
    "small-basket",
    "big-spending",
)


def _dimension_scores(row: pd.Series) -> dict[str, float]:
    """Standardised level of each naming dimension in one centroid (absent ones left out)."""
    scores: dict[str, float] = {}
    for dim, (columns, *_rest) in _DIMENSIONS.items():
        values = [float(row[c]) for c in columns if c in row.index and np.isfinite(row[c])]
        if values:
            # eco: whichever signal is strongest (the share of spend or the engagement score)
            scores[dim] = max(values, key=abs) if dim != "eco" else max(values)
    return scores


def _descriptors(scores: Mapping[str, float]) -> list[tuple[str, str, float]]:
    """(dimension, word, strength) of each dimension beyond the threshold, strongest first."""
    out: list[tuple[str, str, float]] = []
    for dim, z in scores.items():
        _, high, low, *_ = _DIMENSIONS[dim]
        word = high if z >= NAME_THRESHOLD else low if z <= -NAME_THRESHOLD else None
        if word is not None:
            out.append((dim, word, abs(z)))
    words = {w for _, w, _ in out}
    if {"recent", "infrequent"} <= words:  # recent and few purchases: new customers
        strength = max(s for d, _, s in out if d in ("recency", "frequency"))
        out = [t for t in out if t[0] not in ("recency", "frequency")] + [
            ("recency+frequency", "new", strength)
        ]
    if "lapsed" in words:  # lapsed customers are at risk by definition: say the concrete thing
        out = [t for t in out if t[1] != "at-risk"]
    return sorted(out, key=lambda t: (-t[2], t[1]))


def _tier(scores: Mapping[str, float]) -> str:
    z = scores.get("value", 0.0)
    return (
        "high-value"
        if z >= NAME_THRESHOLD
        else "low-value"
        if z <= -NAME_THRESHOLD
        else "mid-value"
    )


def _render(tier: str, words: Sequence[str], qualifiers: Sequence[str]) -> str:
    chosen = sorted(set(words), key=_WORD_ORDER.index)
    if "big-spending" in chosen:
        chosen.remove("big-spending")
        noun = "big spenders"
    elif "loyal" in chosen:
        chosen.remove("loyal")
        noun = "loyalists"
    else:
        noun = "customers"
    head = [] if tier == "mid-value" and (chosen or noun != "customers") else [tier]
    name = " ".join([*head, *chosen, noun])
    if qualifiers:
        name += " (" + ", ".join(qualifiers) + ")"
    return name


def name_clusters(centroids: pd.DataFrame, *, fixed: Mapping[int, str] | None = None) -> list[str]:
    """Names a marketer understands, one per centroid, unique among them.

    Each centroid is read against the population (standardised values; ``+0.5`` or more is
    high, ``-0.5`` or less is low): the value tier from ``predicted_clv`` (``high-value``,
    ``mid-value``, ``low-value``; "mid-value" is left out when other words say more), then the
    :data:`NAME_WORDS` most distinctive of: churn (``at-risk`` / ``loyal``, which makes the noun
    ``loyalists``), eco behaviour (``eco``, from the eco share of spend or the engagement score,
    whichever is higher), recency (``recent`` / ``lapsed``; recent with few purchases is
    ``new``), frequency (``frequent`` / ``infrequent``) and spend per purchase (``big spenders``
    / ``small-basket``). "At-risk" is dropped when "lapsed" applies (lapsed says it concretely).
    Examples: "high-value eco loyalists", "at-risk big spenders", "low-value lapsed customers".

    Names that would repeat are told apart by the feature on which their centroids differ most
    among the features their names do not use, as a comparative in brackets ("... (more eco)" /
    "... (less eco)"); names still equal after that get " (2)", " (3)", ... in row order.

    Parameters
    ----------
    centroids : DataFrame
        One row per cluster, one column per feature (of :data:`VALUE_FEATURES`), standardised
        against the population.
    fixed : mapping, optional
        Row position → a name that must be kept (clusters continuing an earlier model); the
        other rows get names different from these.

    Returns
    -------
    list of str
        One name per row, in row order.
    """
    fixed = dict(fixed or {})
    rows = [centroids.iloc[i] for i in range(len(centroids))]
    scores = [_dimension_scores(r) for r in rows]
    tiers = [_tier(s) for s in scores]
    descriptors = [_descriptors(s) for s in scores]
    words: list[list[str]] = [[w for _, w, _ in d[:NAME_WORDS]] for d in descriptors]
    used: list[set[str]] = [
        {part for dim, _, _ in d[:NAME_WORDS] for part in dim.split("+")} for d in descriptors
    ]
    qualifiers: list[list[str]] = [[] for _ in rows]
    names = [fixed.get(i) or _render(tiers[i], words[i], []) for i in range(len(rows))]

    for _ in range(len(_DIMENSIONS)):
        groups: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            groups.setdefault(name, []).append(i)
        clashes = [g for g in groups.values() if len(g) > 1 and any(i not in fixed for i in g)]
        if not clashes:
            break
        for group in clashes:
            free = [i for i in group if i not in fixed]
            spread: list[tuple[float, str]] = []
            for dim in _DIMENSIONS:
                if any(dim in used[i] for i in free) or any(dim not in scores[i] for i in group):
                    continue
                values = [scores[i][dim] for i in group]
                spread.append((max(values) - min(values), dim))
            if not spread or max(spread)[0] <= 1e-9:  # identical on every free feature
                continue
            _, dim = max(spread, key=lambda t: (t[0], t[1]))
            middle = (max(scores[i][dim] for i in group) + min(scores[i][dim] for i in group)) / 2
            for i in free:
                more, less = _DIMENSIONS[dim][3], _DIMENSIONS[dim][4]
                qualifiers[i].append(more if scores[i][dim] > middle else less)
                used[i].add(dim)
                names[i] = _render(tiers[i], words[i], qualifiers[i])

    seen = set(fixed.values())
    for i, name in enumerate(names):
        if i in fixed:
            continue
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            candidate = f"{name} ({n})"
        names[i] = candidate
        seen.add(candidate)
    return names


# --- matching -------------------------------------------------------------------------------


def _id_number(segment_id: str) -> int:
    found = re.fullmatch(rf"{_ID_PREFIX}(\d+)", segment_id)
    return int(found.group(1)) if found else 0


def _distances_to_previous(new_model: ValueModel, previous: ValueModel) -> pd.DataFrame:
    """Euclidean distance of each new centroid to each previous one, in the previous space."""
    shared = [f for f in previous.features if f in new_model.features]
    where = [new_model.features.index(f) for f in shared]
    raw = new_model._raw_centroids()[:, where]
    mean = np.array([previous.mean[f] for f in shared])
    scale = np.array([previous.scale[f] for f in shared])
    weight = np.array([previous.weight[f] for f in shared])
    moved = np.column_stack(
        [_forward(previous.transform[f], raw[:, j]) for j, f in enumerate(shared)]
    )
    moved = (moved - mean) / scale
    before = previous.centroid_frame()[shared].to_numpy()
    gap = (moved[:, None, :] - before[None, :, :]) * weight
    dist = np.sqrt((gap**2).sum(axis=2))
    return pd.DataFrame(dist, columns=list(previous.segment_ids))


def match_clusters(new_model: ValueModel, previous: ValueModel) -> dict[int, str | None]:
    """Which previous cluster each new cluster continues.

    New centroids are taken back to the features' units and standardised with the *previous*
    model's transform, mean and scale, so that both sets of centroids are compared in the space
    the previous labels were defined in (on the features both models use, with the previous
    model's weights, the distance its customers were assigned by). The pairing
    minimises the total Euclidean distance (Hungarian assignment,
    :func:`scipy.optimize.linear_sum_assignment`); a pair farther apart than
    ``new_model.match_distance`` is not a match.

    Parameters
    ----------
    new_model : ValueModel
        The new fit (its ids and names are not read).
    previous : ValueModel
        The model whose ids should carry over.

    Returns
    -------
    dict
        New cluster position → previous segment id, or None when unmatched.
    """
    from scipy.optimize import linear_sum_assignment

    dist = _distances_to_previous(new_model, previous).to_numpy()
    rows, cols = linear_sum_assignment(dist)
    out: dict[int, str | None] = dict.fromkeys(range(new_model.k))
    for r, c in zip(rows, cols, strict=True):
        if float(dist[r, c]) <= new_model.match_distance:
            out[int(r)] = previous.segment_ids[int(c)]
    return out


def _label(model: ValueModel, previous: ValueModel | None) -> None:
    """Give ``model`` ids and names: fresh ones, or continued from ``previous`` where matched."""
    standardised = pd.DataFrame(model._centroids(), columns=list(model.features))
    if previous is None:
        model.segment_ids = [f"{_ID_PREFIX}{i + 1}" for i in range(model.k)]
        model.names = name_clusters(standardised)
        model.new = [True] * model.k
        model.matched_from = [None] * model.k
        model.last_id = model.k
        return
    matches = match_clusters(model, previous)
    previous_names = dict(zip(previous.segment_ids, previous.names, strict=True))
    fixed = {i: previous_names[m] for i, m in matches.items() if m is not None}
    names = name_clusters(standardised, fixed=fixed)
    last = max([previous.last_id, *(_id_number(s) for s in previous.segment_ids)])
    ids: list[str] = []
    for i in range(model.k):
        matched = matches[i]
        if matched is None:
            last += 1
            ids.append(f"{_ID_PREFIX}{last}")
        else:
            ids.append(matched)
    model.segment_ids, model.names, model.last_id = ids, names, last
    model.matched_from = [matches[i] for i in range(model.k)]
    model.new = [m is None for m in model.matched_from]
    gone = sorted(set(previous.segment_ids) - {m for m in matches.values() if m is not None})
    if gone:
        model.notes.append(
            "previous segment(s) with no counterpart in this fit: "
            + ", ".join(f"{s} ({previous_names[s]!r})" for s in gone)
        )
    fresh = [f"{ids[i]} ({names[i]!r})" for i in range(model.k) if matches[i] is None]
    if fresh:
        model.notes.append("new segment(s): " + ", ".join(fresh))
    if set(previous.features) != set(model.features):
        model.notes.append(
            f"features changed since the previous model ({', '.join(previous.features)} → "
            f"{', '.join(model.features)}); clusters were matched on the shared ones"
        )


# --- fitting --------------------------------------------------------------------------------


def silhouettes(
    x: npt.NDArray[np.float64], labels: Mapping[int, npt.NDArray[np.intp]], *, chunk: int = 500
) -> dict[int, float | None]:
    """Mean silhouette of several labellings of the same points, in one pass over the distances.

    The same definition as :func:`sklearn.metrics.silhouette_score` (Euclidean; a point alone in
    its cluster scores 0; undefined, None, unless 2 <= clusters <= points - 1). The pairwise
    distances are computed once, ``chunk`` rows at a time, and shared by every labelling, where
    scikit-learn recomputes them per labelling: on 10,000 points and eight values of k, about a
    tenth of the time.

    Parameters
    ----------
    x : ndarray
        Points, ``n × d``.
    labels : mapping
        Key (e.g. k) → cluster of each point (0..k-1).
    chunk : int
        Rows of the distance matrix held at once (``chunk × n`` floats).

    Returns
    -------
    dict
        Key → mean silhouette, or None where undefined.
    """
    n = len(x)
    keys = list(labels)
    ks = [int(labels[key].max()) + 1 if n else 0 for key in keys]
    offsets = np.concatenate([[0], np.cumsum(ks)]).astype(int)
    onehot = np.zeros((n, int(offsets[-1])), dtype="float64")
    counts = []
    for j, key in enumerate(keys):
        onehot[np.arange(n), offsets[j] + labels[key]] = 1.0
        counts.append(np.bincount(labels[key], minlength=ks[j]).astype("float64"))
    totals = np.zeros(len(keys))
    squared = (x**2).sum(axis=1)
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        d2 = squared[rows, None] - 2.0 * (x[rows] @ x.T) + squared[None, :]
        dist = np.sqrt(np.maximum(d2, 0.0))
        dist[np.arange(dist.shape[0]), np.arange(rows.start, rows.stop)] = 0.0
        sums = dist @ onehot  # distance of each row to every cluster of every labelling
        for j, key in enumerate(keys):
            own = labels[key][rows]
            block = sums[:, offsets[j] : offsets[j + 1]]
            size = counts[j][own]
            a = block[np.arange(len(own)), own] / np.maximum(size - 1, 1)
            with np.errstate(invalid="ignore", divide="ignore"):
                means = block / counts[j][None, :]
            means[:, counts[j] == 0] = np.inf  # a label no point has (labels need not be 0..k-1)
            means[np.arange(len(own)), own] = np.inf
            b = means.min(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                s = (b - a) / np.maximum(a, b)
            s = np.where((size > 1) & np.isfinite(s), s, 0.0)
            totals[j] += s.sum()
    out: dict[int, float | None] = {}
    for j, key in enumerate(keys):
        defined = 2 <= int((counts[j] > 0).sum()) <= n - 1
        out[key] = float(totals[j] / n) if defined else None
    return out


def _fit_range(
    x: npt.NDArray[np.float64], k_min: int, k_max: int, seed: int, notes: list[str]
) -> tuple[dict[int, Any], dict[int, float], dict[int, float | None]]:
    """k-means for each k of the range; each k's smallest cluster share and silhouette."""
    from sklearn.cluster import KMeans  # type: ignore[import-untyped]

    n = len(x)
    distinct = len(np.unique(x, axis=0))
    fits: dict[int, Any] = {}
    smallest: dict[int, float] = {}
    for k in range(k_min, k_max + 1):
        if k > distinct:
            notes.append(f"k={k} and above not tried: the sample holds {distinct} distinct points")
            break
        km = KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit(x)
        fits[k] = km
        smallest[k] = float(np.bincount(km.labels_, minlength=k).min() / n)
    rows = min(n, SILHOUETTE_ROWS)
    scores = silhouettes(x[:rows], {k: km.labels_[:rows] for k, km in fits.items()})
    # Rounded: the pairwise sums behind them may differ in the last bits from run to run.
    silhouette = {k: None if v is None else round(v, SILHOUETTE_DIGITS) for k, v in scores.items()}
    return fits, smallest, silhouette


def fit_value_segments(
    inputs: pd.DataFrame,
    *,
    k_min: int = 3,
    k_max: int = 10,
    min_share: float = 0.02,
    sample_size: int = 50_000,
    seed: int = 0,
    previous: ValueModel | None = None,
    match_distance: float = 1.0,
) -> ValueModel:
    """Fit value segments: k-means with k chosen by silhouette, named, with stable ids.

    See the module docstring for the steps. ``predicted_clv`` enters as ``log1p``: it is
    heavy-tailed, and on the raw scale k-means would spend clusters on the few largest customers
    while everyone else shares one. A missing value of an optional feature is the population
    median of that feature (kept in the model's ``fill`` for later assignments).

    Parameters
    ----------
    inputs : DataFrame
        Segment inputs indexed by ``customer_id``, one row per customer: ``predicted_clv``
        (>= 0) and ``churn_probability`` ([0, 1]) required; ``eco_spend_share``,
        ``eco_engagement_score``, ``r_score``, ``f_score``, ``m_score`` used when present
        (missing values: the population median).
    k_min, k_max : int, default 3 and 10
        Range of k tried (inclusive).
    min_share : float, default 0.02
        Smallest share of the sample a cluster may hold for its k to be chosen.
    sample_size : int, default 50,000
        Customers k-means is fitted on (a seeded sample without replacement; all when fewer).
    seed : int, default 0
        Seed of the sample and of k-means.
    previous : ValueModel, optional
        The model in use: clusters matching its clusters keep their ids and names.
    match_distance : float, default 1.0
        Largest distance (standardised units of ``previous``) at which clusters match.

    Returns
    -------
    ValueModel
        The model; assign customers with :meth:`ValueModel.assign`.

    Raises
    ------
    ValueError
        When a required column is missing or invalid, the customer ids repeat, the settings are
        out of range, or there are fewer customers than ``k_min``.
    """
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    if not isinstance(inputs, pd.DataFrame):
        raise TypeError(f"inputs must be a pandas DataFrame, got {type(inputs).__name__}")
    if k_min < 2:
        raise ValueError(f"k_min must be at least 2, got {k_min}")
    if k_min > k_max:
        raise ValueError(f"k_min ({k_min}) must not exceed k_max ({k_max})")
    if not 0 <= min_share < 1:
        raise ValueError(f"min_share must lie in [0, 1), got {min_share}")
    if sample_size < 1:
        raise ValueError(f"sample_size must be positive, got {sample_size}")
    if match_distance <= 0:
        raise ValueError(f"match_distance must be positive, got {match_distance}")
    if len(inputs) < k_min:
        raise ValueError(
            f"k_min={k_min} needs at least {k_min} customers, the scores hold {len(inputs)}"
        )
    if sample_size < k_min:
        raise ValueError(f"sample_size={sample_size} is smaller than k_min={k_min}")
    features = value_features(inputs)
    _check_required(inputs)
    if not inputs.index.is_unique:
        repeated = inputs.index[inputs.index.duplicated()][:3].tolist()
        raise ValueError(f"the inputs hold customers more than once (e.g. {repeated})")
    notes: list[str] = []
    absent = [f for f in VALUE_FEATURES if f not in features]
    if absent:
        notes.append(f"not used (absent or empty): {', '.join(absent)}")

    transform = {f: TRANSFORMS.get(f, "identity") for f in features}
    fill = {f: float(np.nanmedian(_column(inputs, f))) for f in features}
    order = _sample_order(inputs.index, seed)[:sample_size]
    sample = inputs.iloc[order]
    zero = dict.fromkeys(features, 0.0)
    one = dict.fromkeys(features, 1.0)
    transformed = _standardised(sample, features, transform, fill, zero, one)
    mean = np.array([_exact_mean(column) for column in transformed.T])
    scale = np.sqrt(
        [_exact_mean((column - m) ** 2) for column, m in zip(transformed.T, mean, strict=True)]
    )
    flat = [f for f, s in zip(features, scale, strict=True) if not s > 1e-12]
    if flat:
        notes.append(f"constant in the sample (carries no information): {', '.join(flat)}")
    scale = np.where(scale > 1e-12, scale, 1.0)
    x = (transformed - mean) / scale
    weight = _weights(features)
    w = np.array([weight[f] for f in features])
    n = len(x)
    # One thread: OpenMP threads oversubscribe a busy small machine (tens of times slower),
    # and the result must not depend on how many cores run it.
    with threadpool_limits(limits=1):
        fits, smallest, silhouette = _fit_range(x * w, k_min, k_max, seed, notes)
    qualifying = [k for k in fits if smallest[k] >= min_share]

    def score(k: int) -> float:
        value = silhouette[k]
        return -math.inf if value is None else value

    if qualifying:
        chosen = max(qualifying, key=lambda k: (score(k), -k))
    else:
        chosen = max(fits, key=lambda k: (smallest[k], score(k), -k))
        notes.append(
            f"no k in {k_min}..{k_max} gives every cluster at least {min_share:.1%} of the "
            f"sample; k={chosen} has the largest smallest cluster ({smallest[chosen]:.1%})"
        )
    labels = fits[chosen].labels_
    # The centroids are recomputed as exact means of their customers: k-means' own sums (BLAS,
    # SIMD) can differ in the last bit from run to run, and the model must give the same bytes.
    centers = np.array(
        [[_exact_mean(column) for column in x[labels == c].T] for c in range(chosen)]
    )
    # Canonical order: descending centroid CLV, the other coordinates breaking ties.
    keys = tuple(-centers[:, j] for j in reversed(range(centers.shape[1])))
    order_k = np.lexsort(keys)
    centers = centers[order_k]
    sizes = np.bincount(labels, minlength=chosen)[order_k]

    model = ValueModel(
        features=list(features),
        transform=transform,
        fill=fill,
        mean={f: float(v) for f, v in zip(features, mean, strict=True)},
        scale={f: float(v) for f, v in zip(features, scale, strict=True)},
        weight=weight,
        centroids=[[float(v) for v in row] for row in centers],
        segment_ids=[],
        names=[],
        new=[],
        matched_from=[],
        silhouette=silhouette,
        smallest_share=smallest,
        sizes=[int(s) for s in sizes],
        k=int(chosen),
        seed=int(seed),
        sample_size=int(n),
        customers=len(inputs),
        k_min=int(k_min),
        k_max=int(k_max),
        min_share=float(min_share),
        match_distance=float(match_distance),
        last_id=0,
        notes=notes,
    )
    _label(model, previous)
    model._check()
    logger.info(
        "value segments: k=%d (silhouette %s) on %d of %d customers",
        chosen,
        silhouette[chosen],
        n,
        len(inputs),
    )
    return model


__all__ = [
    "REQUIRED_FEATURES",
    "VALUE_FEATURES",
    "ValueModel",
    "fit_value_segments",
    "match_clusters",
    "name_clusters",
    "value_features",
]
