"""One small interface for every spend model, a factory registry, and safe native persistence.

Models are saved in their library's native format (XGBoost UBJ, LightGBM text, ``.keras``) next to
a ``manifest.json`` that records the model name, feature columns, parameters and the SHA-256 of
every file. Loading verifies each hash first and refuses a file that changed. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np
import pandas as pd

Params = Mapping[str, Any]
#: Called during training as ``monitor(step, validation_predictions)`` (steps are boosting rounds
#: or epochs); it may raise to stop training, as Optuna's pruning does.
Monitor = Callable[[int, np.ndarray], None]
MANIFEST = "manifest.json"


@runtime_checkable
class CLVModel(Protocol):
    """What every spend model offers.

    ``predict`` returns expected spend over the horizon, never negative. Models that give a
    distribution also offer ``predict_interval(X, coverage)`` returning (lower, upper).
    """

    name: str
    feature_names: list[str]

    def fit(
        self,
        X: pd.DataFrame,
        y: pd.Series,
        *,
        X_val: pd.DataFrame | None = None,
        y_val: pd.Series | None = None,
        monitor: Monitor | None = None,
        monitor_every: int = 25,
    ) -> Self: ...

    def predict(self, X: pd.DataFrame) -> np.ndarray: ...

    def save(self, path: Path) -> None: ...


class IntegrityError(RuntimeError):
    """A saved model file does not match the hash recorded when it was written."""


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder: Path, *, name: str, files: list[str], meta: Mapping[str, Any]) -> None:
    """Record the model's name, metadata and the SHA-256 of each native file in ``folder``."""
    manifest = {
        "model": name,
        "files": {f: sha256_file(folder / f) for f in files},
        "meta": dict(meta),
    }
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str), encoding="utf-8")
    tmp.replace(folder / MANIFEST)


def read_manifest(folder: Path, *, expected_model: str) -> dict[str, Any]:
    """Read ``manifest.json`` and verify every file's hash before anything is loaded.

    Raises
    ------
    IntegrityError
        When a file is missing, changed, or the manifest names another model.
    """
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise IntegrityError(f"{folder}: no {MANIFEST}; not a saved clv model")
    manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("model") != expected_model:
        raise IntegrityError(
            f"{folder}: holds a {manifest.get('model')!r} model, not {expected_model!r}"
        )
    for name, digest in manifest["files"].items():
        file = Path(folder) / name
        if not file.exists():
            raise IntegrityError(f"{file}: missing")
        if sha256_file(file) != digest:
            raise IntegrityError(f"{file}: SHA-256 does not match the manifest; refusing to load")
    return manifest


#: Below this many rows a LightGBM prediction runs on one thread: a request for one customer
#: otherwise waits for an OpenMP thread per core (measured: 12–15 ms → 3 ms of CPU a request on
#: 2 busy cores, docs/benchmarks.md, serving API). Batch scoring keeps every core.
SMALL_BATCH_ROWS = 10_000


def small_batch_threads(X: pd.DataFrame) -> dict[str, int]:
    """``{"num_threads": 1}`` for a small frame, else nothing (LightGBM's own default)."""
    return {"num_threads": 1} if len(X) < SMALL_BATCH_ROWS else {}


def align_features(X: pd.DataFrame, feature_names: list[str]) -> pd.DataFrame:
    """Columns in training order; absent ones added as missing (e.g. a channel never seen)."""
    return X.reindex(columns=feature_names).astype("float64")


MODELS: dict[str, Callable[[Params], CLVModel]] = {}


def register(name: str) -> Callable[[Callable[[Params], CLVModel]], Callable[[Params], CLVModel]]:
    """Class or factory decorator adding a model family to :data:`MODELS`."""

    def decorate(factory: Callable[[Params], CLVModel]) -> Callable[[Params], CLVModel]:
        MODELS[name] = factory
        return factory

    return decorate
