"""Customer lifetime value platform.

The library in five lines::

    import clv
    data = clv.generate(customers=10_000, seed=7)
    model = clv.CLVPredictor(horizon_days=90).fit(data.transactions)
    scores = model.predict(data.transactions)
    segments = clv.segment(scores)

Importing ``clv`` is cheap: the names above are resolved lazily (module ``__getattr__``), heavy
libraries (TensorFlow, Evidently, MLflow, Prefect) are imported by the modules that need them, and
nothing runs at import time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> module that defines it (imported on first use).
_LAZY: dict[str, str] = {
    "generate": "clv.shortcuts",
    "GeneratedData": "clv.shortcuts",
    "rfm_summary": "clv.shortcuts",
    "fit_btyd": "clv.shortcuts",
    "BTYDModel": "clv.shortcuts",
    "CLVPredictor": "clv.predictor",
    "load": "clv.predictor",
    "segment": "clv.segmentation",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:
    from clv.predictor import CLVPredictor as CLVPredictor
    from clv.predictor import load as load
    from clv.segmentation import segment as segment
    from clv.shortcuts import BTYDModel as BTYDModel
    from clv.shortcuts import GeneratedData as GeneratedData
    from clv.shortcuts import fit_btyd as fit_btyd
    from clv.shortcuts import generate as generate
    from clv.shortcuts import rfm_summary as rfm_summary


def __getattr__(name: str) -> Any:
    """Import a public name's module the first time the name is used."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'clv' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
