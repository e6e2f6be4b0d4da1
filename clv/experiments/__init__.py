"""Experiments: deterministic assignment, sample size, and an A/B statistics engine.

``analyze`` compares every variant with the control on one metric from a table with one row per
unit: sample ratio mismatch, Welch / two-proportion tests, delta-method relative lift, CUPED,
Holm or Benjamini–Hochberg corrections, always-valid confidence sequences, a Gaussian-prior
Bayesian view, guardrails and an explicit winner rule. ``assign`` buckets units by a salted hash;
``sample_size`` and ``minimum_detectable_effect`` plan the experiment.

Nothing heavy is imported here: the submodules load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clv.experiments.errors import ExperimentInputError

if TYPE_CHECKING:
    from clv.experiments.analysis import ExperimentResult, analyze
    from clv.experiments.assignment import assign, bucket
    from clv.experiments.metrics import unit_metrics
    from clv.experiments.power import minimum_detectable_effect, power_of, sample_size

__all__ = [
    "ExperimentInputError",
    "ExperimentResult",
    "analyze",
    "assign",
    "bucket",
    "minimum_detectable_effect",
    "power_of",
    "sample_size",
    "unit_metrics",
]

_LAZY = {
    "ExperimentResult": "clv.experiments.analysis",
    "analyze": "clv.experiments.analysis",
    "assign": "clv.experiments.assignment",
    "bucket": "clv.experiments.assignment",
    "minimum_detectable_effect": "clv.experiments.power",
    "power_of": "clv.experiments.power",
    "sample_size": "clv.experiments.power",
    "unit_metrics": "clv.experiments.metrics",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'clv.experiments' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
