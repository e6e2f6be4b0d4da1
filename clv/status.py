"""What the platform holds right now: champions, the last scores, the last drift check.

``clv status`` prints it as a table (``make demo`` ends with it). Everything is read from where
the other commands wrote it: the MLflow registry (the champion's tags), a scores file, and the
Prometheus textfile and Evidently reports under ``<CLV_HOME>/monitoring``. Nothing is recomputed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from clv import tracking

#: Metrics of a version, from its ``metric.*`` tags (written by ``flows.training``): the
#: model's own holdout Gini, BG/NBD + Gamma-Gamma's on the same holdout, the churn model's Brier.
GINI = "holdout_normalized_gini"
BTYD_GINI = "holdout_bgnbd_gamma_gamma_normalized_gini"
BRIER = "holdout_brier"
#: The drift check that ``clv monitor`` records for the spend model's features.
DRIFT_MODEL = tracking.SPEND_MODEL
DRIFT_DATASET = "features"


@dataclass(frozen=True)
class ModelStatus:
    """A registered model's champion (or, without one, its newest version)."""

    name: str
    version: int
    is_champion: bool
    family: str | None
    as_of: str | None
    metrics: dict[str, float]


@dataclass(frozen=True)
class ScoresStatus:
    """A scores file written by ``clv score``."""

    path: Path
    rows: int
    total_predicted_clv: float
    mean_churn_probability: float | None


@dataclass(frozen=True)
class DriftStatus:
    """The last drift check recorded in the metrics textfile."""

    share: float
    drifted_columns: int | None
    checked_at: datetime | None
    textfile: Path
    report: Path | None


def _float(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def model_status(model_name: str) -> ModelStatus | None:
    """The champion of ``model_name``, or its newest version when none is promoted.

    Parameters
    ----------
    model_name : str
        Registered model name, e.g. ``"clv-spend"``.

    Returns
    -------
    ModelStatus or None
        None when the model has no registered version.
    """
    info = tracking.get_version(model_name, alias=tracking.CHAMPION)
    is_champion = info is not None
    if info is None:
        info = tracking.get_version(model_name, latest=True)
    if info is None:
        return None
    prefix = tracking.METRIC_TAG_PREFIX
    metrics = {
        key.removeprefix(prefix): value
        for key, text in info.tags.items()
        if key.startswith(prefix) and (value := _float(text)) is not None
    }
    return ModelStatus(
        name=model_name,
        version=info.version,
        is_champion=is_champion,
        family=info.tags.get("family"),
        as_of=info.tags.get("as_of"),
        metrics=metrics,
    )


def scores_status(path: Path) -> ScoresStatus | None:
    """Rows and total predicted CLV of a scores file; None when the file does not exist.

    Raises
    ------
    ValueError
        When the file has no ``predicted_clv`` column (it is not a ``clv score`` output).
    """
    path = Path(path)
    if not path.is_file():
        return None
    scores = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    if "predicted_clv" not in scores.columns:
        raise ValueError(f"{path} has no 'predicted_clv' column: is it a 'clv score' output?")
    churn = scores["churn_probability"].mean() if "churn_probability" in scores else None
    return ScoresStatus(
        path=path,
        rows=len(scores),
        total_predicted_clv=float(scores["predicted_clv"].sum()),
        mean_churn_probability=None if churn is None or pd.isna(churn) else float(churn),
    )


def drift_status(textfile: Path, reports: Path) -> DriftStatus | None:
    """The last feature-drift check from the metrics ``textfile``; None before the first check.

    Parameters
    ----------
    textfile : Path
        The Prometheus textfile the flows write (``monitoring.metrics.default_textfile()``).
    reports : Path
        Folder of Evidently reports; the newest ``drift-features-*.html`` below it is returned.
    """
    from prometheus_client.parser import text_string_to_metric_families

    textfile = Path(textfile)
    if not textfile.is_file():
        return None
    share: float | None = None
    drifted: int | None = None
    checked_at: datetime | None = None
    for family in text_string_to_metric_families(textfile.read_text(encoding="utf-8")):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "clv_drift_share" and labels == {
                "model": DRIFT_MODEL,
                "dataset": DRIFT_DATASET,
            }:
                share = float(sample.value)
            elif sample.name == "clv_drifted_columns" and labels == {"model": DRIFT_MODEL}:
                drifted = int(sample.value)
            elif sample.name == "clv_last_drift_check_timestamp_seconds":
                checked_at = datetime.fromtimestamp(sample.value, tz=UTC)
    if share is None:
        return None
    found = sorted(Path(reports).rglob(f"drift-{DRIFT_DATASET}-*.html"), key=_mtime)
    return DriftStatus(
        share=share,
        drifted_columns=drifted,
        checked_at=checked_at,
        textfile=textfile,
        report=found[-1] if found else None,
    )


def _mtime(path: Path) -> float:
    return path.stat().st_mtime
