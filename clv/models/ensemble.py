"""Stacked ensemble: convex weights over fitted spend models, learnt on a validation fold.

The weights solve ``min ||P w - y||^2 subject to w >= 0, sum(w) = 1`` where ``P`` holds the
members' validation predictions. Since each single member is a feasible choice of ``w``, the
ensemble's squared error on that fold is never worse than the best member's.

Why convex and not merely non-negative: unconstrained non-negative weights also rescale the level
to the validation window (weights summing to 1.2 add 20% to every prediction). When the level of
the scored horizon differs from that window's (another season, an older cohort) that rescaling
is wrong, and the benchmarks showed it moving aggregate errors by up to 40 points. A convex
combination keeps the members' level and only mixes their rankings and shapes.

Equal weights as the fallback (``average``): weights estimated on one validation window are
noisy, and a plain average of comparable forecasts often does better out of sample than the
weights that fit best in sample (the "forecast combination puzzle", Smith & Wallis 2009). Given
the members to average, :meth:`StackedEnsemble.fit` therefore scores both weightings on the
validation rows *out of fold*: the learnt weights are refitted on k - 1 folds and predict the
k-th, the equal weights need no fitting. The weighting with the higher out-of-fold normalised
Gini is kept (ties keep the learnt weights); Gini is the criterion because it is what the
training flow registers models by and what Optuna tunes them on. Both scores, both weight
vectors and the choice are kept in :attr:`StackedEnsemble.selection`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from clv.evaluation.metrics import UndefinedMetricWarning, normalized_gini
from clv.models.base import MODELS, CLVModel, read_manifest, write_manifest

#: The two weightings :meth:`StackedEnsemble.fit` chooses between.
STACK, MEAN = "stack", "mean"


def convex_weights(preds: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Convex weights minimising the mean squared error of ``preds @ w`` against ``target``.

    Parameters
    ----------
    preds : ndarray of shape (n, k)
        One column of predictions per member.
    target : ndarray of shape (n,)
        The true values.

    Returns
    -------
    ndarray of shape (k,)
        Non-negative weights summing to 1, never worse than the best single member.
    """
    from scipy.optimize import minimize

    k = preds.shape[1]
    scale = float(np.mean(target**2)) or 1.0

    def loss(w: np.ndarray) -> float:
        return float(np.mean((preds @ w - target) ** 2) / scale)

    def grad(w: np.ndarray) -> np.ndarray:
        return np.asarray(2.0 * preds.T @ (preds @ w - target) / len(target) / scale)

    # Start from the best single member, so the result can only improve on it.
    best = int(np.argmin([loss(np.eye(k)[i]) for i in range(k)]))
    result = minimize(
        loss,
        np.eye(k)[best],
        jac=grad,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * k,
        constraints=[{"type": "eq", "fun": lambda w: float(np.sum(w) - 1.0)}],
    )
    w = np.clip(result.x, 0.0, None)
    w = w / w.sum() if w.sum() > 0 else np.eye(k)[best]
    return w if loss(w) <= loss(np.eye(k)[best]) else np.eye(k)[best]


class StackedEnsemble:
    """Convex combination of already fitted members.

    Parameters
    ----------
    members : mapping of str to CLVModel
        Fitted models, by name.
    average : sequence of str, optional
        Members whose plain average competes with the learnt weights (see the module
        docstring). ``None`` (default) or fewer than two names: the learnt weights are used.
    folds : int
        Folds of the out-of-fold comparison (at least 2). Default 5.
    seed : int
        Seed of the random fold assignment.
    """

    name = "ensemble"

    def __init__(
        self,
        members: Mapping[str, CLVModel],
        *,
        average: Sequence[str] | None = None,
        folds: int = 5,
        seed: int = 0,
    ) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        unknown = sorted(set(average or ()) - set(members))
        if unknown:
            raise ValueError(f"average names {unknown}, which are not members {sorted(members)}")
        if folds < 2:
            raise ValueError(f"folds must be at least 2, got {folds}")
        self.members = dict(members)
        self.average = list(dict.fromkeys(average or ()))
        self.folds = folds
        self.seed = seed
        self.weights: dict[str, float] = {}
        self.selection: dict[str, Any] = {}
        self.feature_names = sorted({f for m in members.values() for f in m.feature_names})

    def fit(
        self,
        X: pd.DataFrame,
        y: pd.Series,
        *,
        X_val: pd.DataFrame | None = None,
        y_val: pd.Series | None = None,
    ) -> Self:
        """Learn the weights on ``(X, y)``, which must be data the members were not trained on.

        Parameters
        ----------
        X : DataFrame
            Features of the validation rows.
        y : Series
            Their true spend.
        X_val, y_val : optional
            Ignored (the interface's early-stopping fold; ``X`` already is one).

        Returns
        -------
        StackedEnsemble
            ``self``, with :attr:`weights` and :attr:`selection` set.
        """
        target = np.asarray(y, dtype="float64")
        if len(target) != len(X):
            raise ValueError(f"X has {len(X)} rows but y has {len(target)}")
        preds = np.column_stack([m.predict(X) for m in self.members.values()])
        names = list(self.members)
        stack = convex_weights(preds, target)
        self.weights = dict(zip(names, map(float, stack), strict=True))
        self.selection = {STACK: {"weights": self.weights}, "chosen": STACK}
        if len(self.average) < 2:
            return self
        mean = np.array([1.0 / len(self.average) if n in self.average else 0.0 for n in names])
        self.selection[MEAN] = {"weights": dict(zip(names, map(float, mean), strict=True))}
        if len(target) < 2 * self.folds:
            self.selection["reason"] = f"{len(target)} validation rows: too few to compare"
            return self
        out_of_fold = np.empty(len(target))
        fold = np.random.default_rng(self.seed).permutation(len(target)) % self.folds
        for k in range(self.folds):
            held = fold == k
            out_of_fold[held] = preds[held] @ convex_weights(preds[~held], target[~held])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            for name, predicted in ((STACK, out_of_fold), (MEAN, preds @ mean)):
                self.selection[name]["out_of_fold"] = {
                    "normalized_gini": normalized_gini(target, predicted),
                    "rmse": float(np.sqrt(np.mean((predicted - target) ** 2))),
                }
        gini = {n: self.selection[n]["out_of_fold"]["normalized_gini"] for n in (STACK, MEAN)}
        if gini[MEAN] > gini[STACK]:  # False when either is nan (constant target)
            self.selection["chosen"] = MEAN
            self.weights = self.selection[MEAN]["weights"]
        return self

    def weighted(self, weighting: str) -> StackedEnsemble:
        """The same members with the weights of one weighting (``"stack"`` or ``"mean"``).

        For comparing the weighting chosen with the one left out; raises ``KeyError`` when
        ``weighting`` was not computed by :meth:`fit`.
        """
        other = StackedEnsemble(self.members, average=self.average, folds=self.folds)
        other.weights = dict(self.selection[weighting]["weights"])
        other.selection = self.selection
        return other

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Weighted sum of the members' predictions (non-negative)."""
        if not self.weights:
            raise RuntimeError("the ensemble's weights are not fitted")
        out = np.zeros(len(X))
        for name, model in self.members.items():
            if self.weights[name] > 0:
                out += self.weights[name] * model.predict(X)
        return np.maximum(out, 0.0)

    def save(self, path: Path) -> None:
        """Each member in its own sub-folder (native format), weights in ``weights.json``."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        for name, model in self.members.items():
            model.save(folder / name)
        families = {name: model.name for name, model in self.members.items()}
        (folder / "weights.json").write_text(
            json.dumps(
                {"weights": self.weights, "families": families, "selection": self.selection},
                sort_keys=True,
            )
        )
        write_manifest(folder, name=self.name, files=["weights.json"], meta={})

    @classmethod
    def load(cls, path: Path) -> StackedEnsemble:
        """Load the weights (SHA-256 checked) and each member through its own verified loader."""
        import clv.models.registry  # noqa: F401  (registers every family a member may be)

        folder = Path(path)
        read_manifest(folder, expected_model=cls.name)
        spec: dict[str, Any] = json.loads((folder / "weights.json").read_text())
        members: dict[str, CLVModel] = {}
        for name, family in spec["families"].items():
            loader = getattr(MODELS[family], "load", None)
            if loader is None:
                raise ValueError(f"model family {family!r} cannot be loaded")
            members[name] = loader(folder / name)
        ensemble = cls(members)
        ensemble.weights = {k: float(v) for k, v in spec["weights"].items()}
        ensemble.selection = dict(spec.get("selection", {}))  # absent when saved before it existed
        return ensemble


def describe_weights(weights: Mapping[str, float], selection: Mapping[str, Any]) -> str:
    """One sentence for reports: the weights, and how they were chosen when there was a choice.

    Parameters
    ----------
    weights : mapping of str to float
        The ensemble's weights.
    selection : mapping
        :attr:`StackedEnsemble.selection` (may be empty).

    Returns
    -------
    str
        E.g. ``"Ensemble weights: xgboost 0.500, lightgbm 0.500 (the plain average of ...)."``.
    """
    text = "Ensemble weights: " + ", ".join(f"{k} {v:.3f}" for k, v in weights.items())
    scores = {n: selection.get(n, {}).get("out_of_fold") for n in (STACK, MEAN)}
    if scores[STACK] is not None and scores[MEAN] is not None:
        averaged = [n for n, v in selection[MEAN]["weights"].items() if v > 0]
        kept = "the plain average" if selection.get("chosen") == MEAN else "the learnt weights"
        text += (
            f" ({kept}: out-of-fold validation Gini "
            f"{scores[STACK]['normalized_gini']:.4f} for the learnt weights, "
            f"{scores[MEAN]['normalized_gini']:.4f} for the plain average of "
            f"{', '.join(averaged)})"
        )
    elif "reason" in selection:
        text += f" (learnt weights kept: {selection['reason']})"
    return text + "."
