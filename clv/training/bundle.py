"""A trained model and everything needed to score with it, in one verifiable folder.

Layout (the folder MLflow stores as the model version's ``bundle`` artefact)::

    bundle.json      kind, family, feature columns, horizon, as-of, level factor, provenance
    intervals.json   interval multipliers (spend bundles)
    reference.parquet  a sample of the validation window's features: the drift reference
    model/           the model in its native format, with its own manifest.json
    manifest.json    SHA-256 of every file above (model "clv-bundle")

:func:`load_bundle` verifies the outer manifest, then the model's own loader verifies its files:
a changed byte anywhere refuses the load. Nothing is pickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clv.data.io import write_folder_atomic
from clv.models.base import MODELS, CLVModel, read_manifest, write_manifest
from clv.models.intervals import BinnedRatioInterval

BUNDLE_NAME = "clv-bundle"
SPEND = "spend"
REFERENCE_FILE = "reference.parquet"
CHURN = "churn"


@dataclass
class SpendBundle:
    """A spend model ready to score.

    Attributes
    ----------
    model : CLVModel
        The fitted model (a single family or a stacked ensemble).
    family : str
        ``xgboost``, ``lightgbm``, ``keras_ziln`` or ``ensemble``.
    feature_columns : list of str
        Columns the model was trained on.
    horizon_days : int
        Horizon the model predicts spend over.
    as_of : Timestamp
        Training cut-off.
    level_factor : float
        Seasonal level correction applied to predictions at ``as_of``.
    intervals : BinnedRatioInterval
        Interval multipliers learnt on the validation window.
    info : dict
        Provenance: data hash, metrics, parameters, code version.
    reference : DataFrame, optional
        Features the model was validated on (a sample): what monitoring compares new data with.
    """

    model: Any
    family: str
    feature_columns: list[str]
    horizon_days: int
    as_of: pd.Timestamp
    level_factor: float
    intervals: BinnedRatioInterval
    info: dict[str, Any] = field(default_factory=dict)
    reference: pd.DataFrame | None = None

    kind = SPEND

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Expected spend over the horizon per row (level-corrected, never negative)."""
        raw = np.asarray(self.model.predict(features), dtype="float64")
        return np.maximum(raw * self.level_factor, 0.0)

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """``predicted_clv`` and its interval bounds, indexed like ``features``."""
        predicted = self.predict(features)
        lower, upper = self.intervals.apply(predicted)
        return pd.DataFrame(
            {
                "predicted_clv": predicted,
                "predicted_clv_lower": lower,
                "predicted_clv_upper": upper,
            },
            index=features.index,
        )


@dataclass
class ChurnBundle:
    """A calibrated churn model ready to score.

    Attributes
    ----------
    model : ChurnModel
        The fitted classifier.
    feature_columns : list of str
        Columns it was trained on.
    horizon_days : int
        Churn means no purchase within this many days.
    as_of : Timestamp
        Training cut-off.
    info : dict
        Provenance.
    family : str
        ``churn`` (the calibrated classifier) or ``btyd_churn`` (BG/NBD's probability of no
        purchase, for a history too short for a learnt model).
    """

    model: Any
    feature_columns: list[str]
    horizon_days: int
    as_of: pd.Timestamp
    info: dict[str, Any] = field(default_factory=dict)
    family: str = "churn"

    kind = CHURN

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """``churn_probability`` per row, indexed like ``features``."""
        return pd.DataFrame(
            {"churn_probability": self.model.predict_proba(features)}, index=features.index
        )


Bundle = SpendBundle | ChurnBundle


def save_bundle(bundle: Bundle, path: Path) -> Path:
    """Write ``bundle`` to the folder ``path`` (replaced whole, never half-written).

    Returns
    -------
    Path
        The folder.
    """

    def write(tmp: Path) -> None:
        bundle.model.save(tmp / "model")
        spec: dict[str, Any] = {
            "kind": bundle.kind,
            "family": bundle.family,
            "feature_columns": list(bundle.feature_columns),
            "horizon_days": int(bundle.horizon_days),
            "as_of": pd.Timestamp(bundle.as_of).isoformat(),
            "info": bundle.info,
        }
        files = ["bundle.json"]
        if isinstance(bundle, SpendBundle):
            spec["level_factor"] = float(bundle.level_factor)
            (tmp / "intervals.json").write_text(bundle.intervals.to_json(), encoding="utf-8")
            files.append("intervals.json")
            if bundle.reference is not None:
                bundle.reference.to_parquet(tmp / REFERENCE_FILE, index=False)
                files.append(REFERENCE_FILE)
        (tmp / "bundle.json").write_text(
            json.dumps(spec, indent=2, sort_keys=True, default=str), encoding="utf-8"
        )
        files += sorted(str(p.relative_to(tmp)) for p in (tmp / "model").rglob("*") if p.is_file())
        write_manifest(tmp, name=BUNDLE_NAME, files=files, meta={"kind": bundle.kind})

    return write_folder_atomic(path, write)


def _load_model(family: str, folder: Path) -> CLVModel:
    if family == "ensemble":
        from clv.models.ensemble import StackedEnsemble

        return StackedEnsemble.load(folder)  # type: ignore[return-value]
    if family == "churn":
        from clv.models.churn import ChurnModel

        return ChurnModel.load(folder)  # type: ignore[return-value]
    import clv.models.registry  # noqa: F401  (registers the families)

    loader = getattr(MODELS.get(family), "load", None)
    if loader is None:
        raise ValueError(f"the bundle holds an unknown model family {family!r}")
    model: CLVModel = loader(folder)
    return model


def load_bundle(path: Path) -> Bundle:
    """Read a bundle after verifying the SHA-256 of every file in it.

    Raises
    ------
    clv.models.base.IntegrityError
        When a file is missing or changed.
    """
    folder = Path(path)
    manifest = read_manifest(folder, expected_model=BUNDLE_NAME)
    spec: dict[str, Any] = json.loads((folder / "bundle.json").read_text(encoding="utf-8"))
    model = _load_model(spec["family"], folder / "model")
    common: dict[str, Any] = {
        "model": model,
        "feature_columns": list(spec["feature_columns"]),
        "horizon_days": int(spec["horizon_days"]),
        "as_of": pd.Timestamp(spec["as_of"]),
        "info": dict(spec.get("info", {})),
    }
    if spec["kind"] == CHURN:
        return ChurnBundle(**common, family=spec["family"])
    intervals = BinnedRatioInterval.from_json(
        (folder / "intervals.json").read_text(encoding="utf-8")
    )
    # Only a file the manifest vouches for is read.
    verified = REFERENCE_FILE in manifest["files"]
    return SpendBundle(
        reference=pd.read_parquet(folder / REFERENCE_FILE) if verified else None,
        family=spec["family"],
        level_factor=float(spec.get("level_factor", 1.0)),
        intervals=intervals,
        **common,
    )
