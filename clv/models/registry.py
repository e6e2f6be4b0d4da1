"""Look up model families by name; importing this module registers every family (cheaply).

The family modules import their libraries (XGBoost, LightGBM, TensorFlow) lazily, so loading the
registry costs no heavy import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import clv.models.baselines
import clv.models.keras_ziln
import clv.models.trees  # noqa: F401  (the imports register the families)
from clv.models.base import MODELS, CLVModel

#: The learnt spend families, in the order reports show them.
SPEND_FAMILIES: tuple[str, ...] = ("xgboost", "lightgbm", "keras_ziln")


def create(name: str, params: Mapping[str, Any] | None = None) -> CLVModel:
    """Return an unfitted model of family ``name``.

    Raises
    ------
    ValueError
        When no family has that name (the message lists the known ones).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model family {name!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[name](params or {})
