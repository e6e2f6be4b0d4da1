"""Deterministic, salted hash assignment of units (customers) to experiment variants.

A unit's variant depends only on the experiment ``key``, the ``salt``, the unit's own id and
the variant configuration: never on the other units, their order, the process or the machine.
Python's built-in ``hash()`` is randomised per process (``PYTHONHASHSEED``), so it is not used.
GrowthBook's SDKs follow the same idea with a 32-bit FNV-1a hash reduced to 10 000 buckets
(``hash(seed, value, version=2)``); here BLAKE2b gives 53 bits of a cryptographic-quality hash,
so bucket boundaries can be placed at any share without visible rounding.

The recipe (stable: changing it re-randomises every running experiment)
-----------------------------------------------------------------------
1. ``message = f"{salt}:{key}:{str(unit_id)}".encode("utf-8")``. Unit ids are turned into
   text with ``str()``, so the int ``7`` and the string ``"7"`` are the same unit (both hash
   as ``"7"``; passing both in one call is an error). Only ``str`` and ``int`` ids are
   accepted: a float ``7.0`` would hash as ``"7.0"``, so floats are rejected rather than
   silently assigned differently. ``":"`` is a plain separator, so ``salt="a:b", key="c"``
   and ``salt="a", key="b:c"`` give the same message: avoid ``":"`` in salts if that matters.
2. ``digest = hashlib.blake2b(message, digest_size=8).digest()`` (unkeyed, no personalisation).
3. ``h = int.from_bytes(digest, "big")``, an unsigned 64-bit integer.
4. ``u = (h >> 11) / 2**53``: the top 53 bits as a double in ``[0, 1)``. (``h / 2**64`` would
   round the largest values up to exactly ``1.0``; 53 bits is what a double holds exactly.)

Variants from ``u``, with holdout share ``H`` and weights ``w_1 … w_n`` in the given order,
``W = w_1 + … + w_n`` and ``c_i = (w_1 + … + w_i) / W``:

- ``u < H`` → the holdout. The holdout is carved out first, from its own range, so changing
  the variants or their weights never moves a unit into or out of the holdout;
- otherwise the variant ``i`` with ``H + (1 - H)·c_{i-1} <= u < H + (1 - H)·c_i``
  (``c_0 = 0``; the last variant also takes anything at or above its lower edge).

Because ranges are cumulative in the order given, raising the last variant's weight only moves
units into it (from the others), and raising ``H`` only moves units into the holdout. Changing
the order of the variants re-shuffles assignments: keep it fixed for a running experiment.

In SQL or another SDK: compute BLAKE2b-64 of the message, take the top 53 bits as an integer,
divide by ``2^53`` and compare with the same edges (computed in double precision).
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from clv.experiments.errors import ExperimentInputError

__all__ = ["assign", "bucket"]

#: ``u = (h >> _DROPPED_BITS) * _UNIT`` keeps the 53 bits a double represents exactly.
_DROPPED_BITS = np.uint64(64 - 53)
_UNIT = 2.0**-53
#: ``pandas.api.types.infer_dtype`` results that need no per-element type check.
_PLAIN_ID_KINDS = frozenset({"string", "integer", "empty"})


def bucket(unit_ids: Iterable[str | int], key: str, *, salt: str = "") -> np.ndarray:
    """Hash each unit to a number in ``[0, 1)``, as the module docstring's recipe says.

    This is the draw :func:`assign` cuts into variant ranges; campaigns can reuse it for
    their own holdouts. Duplicated ids are allowed here (each gets the same value).

    Parameters
    ----------
    unit_ids : iterable of str or int
        Unit ids (a list, array, ``Index`` or ``Series`` of values). ``str()`` of each id
        is hashed, so ``7`` and ``"7"`` give the same value. Missing ids (None, NaN),
        floats, bools and bytes are rejected.
    key : str
        The experiment key; must not be empty.
    salt : str, default ""
        Extra text hashed in front of the key; a new salt re-randomises the assignment.

    Returns
    -------
    numpy.ndarray
        float64 values in ``[0, 1)``, one per id, in the order given.

    Raises
    ------
    ExperimentInputError
        If the key is empty, or an id is missing or not a str/int.
    """
    _check_key_and_salt(key, salt)
    _, text_ids = _text_ids(unit_ids, what="unit id")
    return _hash_to_unit_interval(text_ids, key=key, salt=salt)


def assign(
    unit_ids: Iterable[str | int],
    key: str,
    *,
    variants: Mapping[str, float] | Sequence[str] = ("control", "treatment"),
    holdout_share: float = 0.0,
    holdout_name: str = "holdout",
    salt: str = "",
    exclude: Iterable[str | int] | None = None,
    excluded_name: str | None = None,
) -> pd.Series:
    """Assign each unit to a variant (or the holdout) by a salted hash of its id.

    Parameters
    ----------
    unit_ids : iterable of str or int
        Unit ids, unique, none missing. ``str()`` of each id is hashed (see the module
        docstring), so the int ``7`` and the string ``"7"`` are the same unit and get the
        same variant; both in one call count as a duplicate.
    key : str
        The experiment key, e.g. ``"retention-email-2024-06"``; must not be empty. Different
        keys give independent assignments.
    variants : sequence of str or mapping of str to float, default ("control", "treatment")
        Variant names with equal weights, or a mapping name → weight. Weights must be finite
        and > 0; they are normalised by their sum, so ``{"a": 1, "b": 3}`` means 25 % / 75 %
        of the units outside the holdout. Order matters: ranges are laid out in the order
        given.
    holdout_share : float, default 0.0
        Share of all units, in ``[0, 1)``, held out before the variants are split. The
        holdout depends only on the key, salt and this share, never on ``variants``.
    holdout_name : str, default "holdout"
        Label of held-out units; no variant may have this name.
    salt : str, default ""
        Extra text hashed in front of the key; a new salt re-randomises the assignment.
    exclude : iterable of str or int, optional
        Ids to leave out of the experiment, matched on ``str()`` like ``unit_ids``. Ids
        absent from ``unit_ids`` are ignored. Excluding a unit never changes anyone else's
        variant.
    excluded_name : str, optional
        Label for excluded units. If None (the default), excluded units are dropped from
        the result instead.

    Returns
    -------
    pandas.Series
        Named ``"variant"``, string values (the variant, holdout or excluded name), indexed
        by the unit ids as given and in the order given (index name taken from
        ``unit_ids`` if it has one, else ``"unit_id"``).

    Raises
    ------
    ExperimentInputError
        On an empty key; a missing, non-str/int or duplicated unit id (the message names the
        first duplicate and both of its 0-based positions); no variants, an empty or
        repeated variant name, or one equal to ``holdout_name`` or ``excluded_name``; a
        weight that is not a finite number > 0; ``holdout_share`` outside ``[0, 1)``.

    Examples
    --------
    >>> assign(["a", "b", "c", "d", "e", "f"], "exp-1", holdout_share=0.1).tolist()
    ['treatment', 'treatment', 'treatment', 'treatment', 'control', 'control']
    """
    _check_key_and_salt(key, salt)
    names, weights = _parse_variants(variants)
    share = _check_holdout(holdout_share, holdout_name, names)
    if excluded_name is not None:
        _check_label(excluded_name, "excluded_name")
        if excluded_name == holdout_name or excluded_name in names:
            raise ExperimentInputError(
                f"excluded_name {excluded_name!r} is also a variant or the holdout's name; "
                "pick a label of its own"
            )

    index, text_ids = _text_ids(unit_ids, what="unit id")
    text_index = pd.Index(text_ids, dtype=object)
    _reject_duplicates(index, text_index)

    u = _hash_to_unit_interval(text_ids, key=key, salt=salt)
    cumulative = np.cumsum(weights) / math.fsum(weights)
    edges = share + (1.0 - share) * cumulative[:-1]
    codes = np.searchsorted(edges, u, side="right")
    holdout_code = len(names)
    codes[u < share] = holdout_code
    labels = np.array([*names, holdout_name, excluded_name], dtype=object)

    if exclude is not None:
        if isinstance(exclude, str | bytes):
            raise ExperimentInputError(
                f"exclude must be a collection of ids, not the single value {exclude!r}"
            )
        _, excluded_text = _text_ids(exclude, what="excluded id")
        is_excluded = text_index.isin(excluded_text)
        codes[is_excluded] = holdout_code + 1
    else:
        is_excluded = np.zeros(len(text_ids), dtype=bool)

    name = index.name if index.name is not None else "unit_id"
    result = pd.Series(labels[codes], index=index.rename(name), name="variant")
    if excluded_name is None:
        result = result[~is_excluded]
    return result


def _check_key_and_salt(key: object, salt: object) -> None:
    if not isinstance(key, str):
        raise ExperimentInputError(
            f"experiment key must be a string, got {type(key).__name__} {key!r}"
        )
    if not key.strip():
        raise ExperimentInputError("experiment key is empty; give every experiment its own key")
    if not isinstance(salt, str):
        raise ExperimentInputError(f"salt must be a string, got {type(salt).__name__} {salt!r}")
    for what, text in (("experiment key", key), ("salt", salt)):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ExperimentInputError(f"{what} {text!r} is not valid UTF-8 text") from exc


def _check_label(label: object, what: str) -> str:
    if not isinstance(label, str) or not label:
        raise ExperimentInputError(f"{what} must be a non-empty string, got {label!r}")
    return label


def _parse_variants(variants: Mapping[str, float] | Sequence[str]) -> tuple[list[str], list[float]]:
    """Variant names in order and their (unnormalised) weights."""
    if isinstance(variants, str | bytes):
        raise ExperimentInputError(
            f"variants must be a sequence of names or a mapping name -> weight, "
            f"not the single string {variants!r}"
        )
    pairs: list[tuple[object, object]]
    if isinstance(variants, Mapping):
        pairs = list(variants.items())
    else:
        pairs = [(name, 1.0) for name in variants]
    if not pairs:
        raise ExperimentInputError("no variants given; at least one variant is needed")

    names: list[str] = []
    weights: list[float] = []
    for name, weight in pairs:
        names.append(_check_label(name, "every variant name"))
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
            raise ExperimentInputError(
                f"weight of variant {name!r} must be a number, got {weight!r}"
            )
        value = float(weight)
        if not math.isfinite(value) or value <= 0.0:
            raise ExperimentInputError(
                f"weight of variant {name!r} is {value!r}; weights must be finite and > 0 "
                "(drop a variant rather than give it weight 0)"
            )
        weights.append(value)
    if len(set(names)) < len(names):
        repeated = next(name for i, name in enumerate(names) if name in names[:i])
        raise ExperimentInputError(f"variant name {repeated!r} is given more than once")
    return names, weights


def _check_holdout(holdout_share: object, holdout_name: object, names: list[str]) -> float:
    if isinstance(holdout_share, bool) or not isinstance(holdout_share, numbers.Real):
        raise ExperimentInputError(f"holdout_share must be a number, got {holdout_share!r}")
    share = float(holdout_share)
    if not (0.0 <= share < 1.0):  # also false for NaN
        raise ExperimentInputError(f"holdout_share must be in [0, 1), got {share!r}")
    label = _check_label(holdout_name, "holdout_name")
    if label in names:
        raise ExperimentInputError(
            f"variant name {label!r} is also the holdout's name; rename the variant "
            "or pass another holdout_name"
        )
    return share


def _text_ids(ids: Iterable[str | int], *, what: str) -> tuple[pd.Index, list[str]]:
    """The ids as an ``Index`` (for the result) and as the text that is hashed."""
    if isinstance(ids, str | bytes):
        raise ExperimentInputError(
            f"{what}s must be a collection of ids, not the single value {ids!r}"
        )
    if isinstance(ids, pd.Index):
        index = ids
    elif isinstance(ids, pd.Series):
        index = pd.Index(ids.to_numpy(), name=ids.name)
    elif isinstance(ids, np.ndarray):
        if ids.ndim != 1:
            raise ExperimentInputError(f"{what}s must be one-dimensional, got shape {ids.shape}")
        index = pd.Index(ids)
    else:
        items = list(ids)
        # A list of ints with one float would become a float Index; keep such lists as objects
        # so that the error below names the value as given.
        plain = pd.api.types.infer_dtype(items, skipna=False) in _PLAIN_ID_KINDS
        index = pd.Index(items) if plain else pd.Index(items, dtype=object)
    if isinstance(index.dtype, pd.CategoricalDtype):
        index = pd.Index(np.asarray(index), name=index.name)

    missing = np.asarray(index.isna())
    if missing.any():
        position = int(missing.argmax())
        raise ExperimentInputError(
            f"{what} at position {position} (0-based) is missing ({index[position]}); "
            "every unit needs an id"
        )
    values = index.tolist()
    if pd.api.types.infer_dtype(index, skipna=False) not in _PLAIN_ID_KINDS:
        for position, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, str | int | np.integer):
                raise ExperimentInputError(
                    f"{what}s must be str or int; position {position} (0-based) holds "
                    f"{value!r} ({type(value).__name__})"
                )
    return index, list(map(str, values))


def _reject_duplicates(index: pd.Index, text_index: pd.Index) -> None:
    duplicated = np.asarray(text_index.duplicated())
    if not duplicated.any():
        return
    second = int(duplicated.argmax())
    first = int(np.asarray(text_index == text_index[second]).argmax())
    first_id, second_id = index[first], index[second]
    if type(first_id) is type(second_id):
        problem = f"duplicate unit id {second_id!r}"
    else:
        problem = f"unit ids {first_id!r} and {second_id!r} both hash as {text_index[second]!r}"
    raise ExperimentInputError(
        f"{problem} at positions {first} and {second} (0-based); each unit must appear once"
    )


def _hash_to_unit_interval(text_ids: list[str], *, key: str, salt: str) -> np.ndarray:
    # Feeding the shared prefix once and copying the hasher gives the same digest as hashing
    # the whole message, about 3x faster than constructing a new hasher per id.
    prefix = hashlib.blake2b(f"{salt}:{key}:".encode(), digest_size=8)
    digests: list[bytes] = []
    for position, text in enumerate(text_ids):
        hasher = prefix.copy()
        try:
            hasher.update(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise ExperimentInputError(
                f"unit id at position {position} (0-based) is not valid UTF-8 text: {text!r}"
            ) from exc
        digests.append(hasher.digest())
    words = np.frombuffer(b"".join(digests), dtype=">u8")
    return (words >> _DROPPED_BITS).astype(np.float64) * _UNIT
