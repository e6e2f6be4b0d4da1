"""Look up model families by name; importing this module registers every family (cheaply).

The family modules import their libraries (XGBoost, LightGBM, TensorFlow) lazily, so loading the
registry costs no heavy import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import clv.models.baselines
import clv.models.keras_ziln
import clv.models.trees  # noqa: F401  (the imports register the families)
from clv.models.base import MODELS, CLVModel
from clv.models.keras_ziln import DEFAULT_TRIAL as ZILN_DEFAULT_TRIAL
from clv.models.keras_ziln import TUNING_PARAMS as ZILN_TUNING_PARAMS
from clv.models.keras_ziln import search_space as ziln_search_space
from clv.models.trees import (
    LIGHTGBM_DEFAULT_TRIAL,
    XGBOOST_DEFAULT_TRIAL,
    lightgbm_search_space,
    xgboost_search_space,
)

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


#: Per learnt family: its Optuna search space (``trial -> params``) and the trial values that
#: reproduce its defaults (enqueued first, so a study never ends worse than the defaults).
SEARCH_SPACES: dict[str, tuple[Callable[[Any], dict[str, Any]], dict[str, Any]]] = {
    "xgboost": (xgboost_search_space, XGBOOST_DEFAULT_TRIAL),
    "lightgbm": (lightgbm_search_space, LIGHTGBM_DEFAULT_TRIAL),
    "keras_ziln": (ziln_search_space, ZILN_DEFAULT_TRIAL),
}

#: Per family: parameters Optuna trials use in place of the final model's, to make a trial cheap
#: (Keras ZILN tunes one network, then the best trial is refitted as the deep ensemble).
TUNING_PARAMS: dict[str, dict[str, Any]] = {"keras_ziln": ZILN_TUNING_PARAMS}
