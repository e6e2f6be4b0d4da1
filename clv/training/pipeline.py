"""The training pipeline's steps as plain functions (the Prefect flow calls them as tasks).

``load_inputs`` → ``plan`` → :func:`clv.training.dataset.build_training_frames` → one
:func:`clv.training.hpo.run_study` per family → :func:`assemble` (ensemble, holdout evaluation
against BG/NBD + Gamma-Gamma and the run-rate reference, the winner, intervals, churn) →
registration in :mod:`clv.tracking`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

import clv
from clv.evaluation.backtest import metrics_table
from clv.evaluation.metrics import churn_report, regression_report
from clv.features.support import MAX_EXTRAPOLATED_SHARE
from clv.models.intervals import BinnedRatioInterval
from clv.models.keras_ziln import DEFAULT_PARAMS as ZILN_DEFAULTS
from clv.models.keras_ziln import check_sigma_cap
from clv.training.bundle import ChurnBundle, SpendBundle
from clv.training.dataset import PURCHASES, TARGET, TrainingFrames
from clv.training.hpo import StudyOutcome
from clv.training.windows import WindowPlan, end_of_day, plan_windows

if TYPE_CHECKING:
    from clv.data.validation import OnDuplicate

logger = logging.getLogger(__name__)

BTYD = "bgnbd_gamma_gamma"
RUN_RATE = "run_rate"
ENSEMBLE = "ensemble"
#: The registry's primary metric for spend models (higher is better).
PRIMARY_METRIC = "normalized_gini"


@dataclass(frozen=True)
class TrainConfig:
    """What a training run does, apart from its data.

    Attributes
    ----------
    horizon_days : int
        Prediction horizon in days.
    as_of : Timestamp or None
        Training cut-off; ``None`` means the day of the last transaction.
    families : tuple of str
        Learnt families to tune (each gets one Optuna study).
    n_trials : int
        Finished trials per study.
    n_windows, step_days : int
        Training cut-offs (validation included) and days between them.
    seed : int
        Seed of the samplers and models.
    coverage : float
        Nominal coverage of the prediction intervals.
    max_tune_rows : int or None
        Optuna trials see at most this many fit (and validation) rows, sampled with the seed;
        the best parameters are then refitted on up to ``max_fit_rows``. ``None``: all rows.
    max_fit_rows : int or None
        Rows of each family's final refit after tuning on a sample (``None``: all fit rows).
    max_extrapolated_share : float or None
        The learnt models leave out an unconstrained feature when more than this share of the
        holdout's customers lie outside its values in the fit windows, e.g. customer age on a
        single acquisition cohort (:attr:`clv.training.dataset.TrainingFrames.extrapolated`).
        Default :data:`clv.features.support.MAX_EXTRAPOLATED_SHARE` (0.5); ``None`` or 1 keeps
        every feature.
    ziln_members : int
        Networks in Keras ZILN's deep ensemble (default 3). Its Optuna trials train one
        network; the best trial's parameters are refitted with this many.
    ziln_sigma_cap : float or None
        Keras ZILN's ``sigma_cap`` (default 1.5): its expected spend uses ``sigma`` at most this
        multiple of the training labels' log-spread; ``None`` keeps the network's own ``sigma``
        (see :func:`clv.models.keras_ziln.sigma_limit`).
    """

    horizon_days: int
    as_of: pd.Timestamp | None = None
    families: tuple[str, ...] = ("xgboost", "lightgbm", "keras_ziln")
    n_trials: int = 10
    n_windows: int = 12
    step_days: int = 30
    seed: int = 0
    coverage: float = 0.8
    max_tune_rows: int | None = 50_000
    max_fit_rows: int | None = 250_000
    max_extrapolated_share: float | None = MAX_EXTRAPOLATED_SHARE
    ziln_members: int = int(ZILN_DEFAULTS["n_members"])
    ziln_sigma_cap: float | None = ZILN_DEFAULTS["sigma_cap"]

    def __post_init__(self) -> None:
        from clv.models.registry import SEARCH_SPACES

        if self.horizon_days < 1:
            raise ValueError(f"--horizon-days must be at least 1, got {self.horizon_days}")
        if self.n_trials < 1:
            raise ValueError(f"--trials must be at least 1, got {self.n_trials}")
        if not self.families:
            raise ValueError("at least one model family is needed")
        unknown = [f for f in self.families if f not in SEARCH_SPACES]
        if unknown:
            raise ValueError(
                f"unknown model families {unknown}; choose from {', '.join(SEARCH_SPACES)}"
            )
        for name in ("max_tune_rows", "max_fit_rows"):
            value = getattr(self, name)
            if value is not None and value < 1000:
                raise ValueError(
                    f"{name} must be at least 1000 (or None for all rows), got {value}"
                )
        share = self.max_extrapolated_share
        if share is not None and not 0.0 < share <= 1.0:
            raise ValueError(
                f"max_extrapolated_share must be in (0, 1] (or None to keep every feature), "
                f"got {share}"
            )
        if not 0.0 < self.coverage < 1.0:
            raise ValueError(f"coverage must be strictly between 0 and 1, got {self.coverage}")
        if isinstance(self.ziln_members, bool) or int(self.ziln_members) != self.ziln_members:
            raise ValueError(f"ziln_members must be a whole number, got {self.ziln_members!r}")
        if self.ziln_members < 1:
            raise ValueError(f"ziln_members must be at least 1, got {self.ziln_members}")
        check_sigma_cap(self.ziln_sigma_cap, "ziln_sigma_cap")

    def family_params(self, family: str) -> dict[str, Any]:
        """Parameters this configuration fixes for ``family``'s models (Optuna tunes the rest)."""
        if family != "keras_ziln":
            return {}
        return {
            "n_members": int(self.ziln_members),
            "sigma_cap": check_sigma_cap(self.ziln_sigma_cap, "ziln_sigma_cap"),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        out = asdict(self)
        out["as_of"] = None if self.as_of is None else pd.Timestamp(self.as_of).isoformat()
        out["families"] = list(self.families)
        return out


@dataclass
class Inputs:
    """Validated input tables and their content hashes."""

    transactions: pd.DataFrame
    hashes: dict[str, str]
    customers: pd.DataFrame | None = None
    sustainability: pd.DataFrame | None = None


def load_inputs(
    transactions: str | Path,
    *,
    customers: str | Path | None = None,
    sustainability: str | Path | None = None,
    on_duplicate: OnDuplicate = "warn",
    columns: Mapping[str, str] | None = None,
    future_tolerance_days: float | None = None,
) -> Inputs:
    """Read and validate the input tables (local or ``s3://``) and hash their contents.

    Parameters
    ----------
    transactions : str or Path
        The transactions table.
    customers, sustainability : str or Path, optional
        The optional tables.
    on_duplicate : {"warn", "error", "drop"}
        Exact duplicate transactions without ``order_id``: kept with a warning, refused or
        dropped (see :func:`clv.data.io.read_table`).
    columns : mapping, optional
        The transactions file's own column names, ``{contract name: file name}``.
    future_tolerance_days : float, optional
        Dates after now plus this many days are refused (default: the settings').

    Returns
    -------
    Inputs
        The typed tables and their hashes; read options that change the table (dropping
        duplicates, a column mapping) are part of the hashes, so caches and fingerprints differ.

    Raises
    ------
    clv.data.validation.ContractError
        When a table breaks the contract (the message names file, row, column and reason).
    FileNotFoundError
        When a file does not exist.
    """
    from clv.data.io import read_table, sha256_of

    hashes = {"transactions": sha256_of(transactions)}
    if on_duplicate == "drop" or columns:
        hashes["transactions_read"] = json.dumps(
            {"drop_duplicates": on_duplicate == "drop", "columns": dict(columns or {})},
            sort_keys=True,
        )
    frames: dict[str, pd.DataFrame | None] = {"customers": None, "sustainability": None}
    for kind, uri in (("customers", customers), ("sustainability", sustainability)):
        if uri is not None:
            hashes[kind] = sha256_of(uri)
            frames[kind] = read_table(uri, kind, future_tolerance_days=future_tolerance_days)
    return Inputs(
        transactions=read_table(
            transactions,
            "transactions",
            on_duplicate=on_duplicate,
            columns=columns,
            future_tolerance_days=future_tolerance_days,
        ),
        hashes=hashes,
        customers=frames["customers"],
        sustainability=frames["sustainability"],
    )


def make_plan(transactions: pd.DataFrame, config: TrainConfig) -> WindowPlan:
    """The window plan for ``config`` on these transactions.

    Raises
    ------
    ValueError
        When ``as_of`` lies after the data or the history is too short (actionable message).
    """
    last = pd.Timestamp(transactions["timestamp"].max())
    as_of = end_of_day(last) if config.as_of is None else pd.Timestamp(config.as_of)
    if as_of > end_of_day(last):
        raise ValueError(
            f"--as-of {as_of:%Y-%m-%d} is after the last transaction ({last:%Y-%m-%d}); "
            "training needs the data up to the as-of date"
        )
    return plan_windows(
        pd.Timestamp(transactions["timestamp"].min()),
        as_of=as_of,
        horizon_days=config.horizon_days,
        n_windows=config.n_windows,
        step_days=config.step_days,
    )


def fingerprint(hashes: Mapping[str, str], plan: WindowPlan, config: TrainConfig) -> str:
    """Identity of a training run: same data, plan, configuration and code → same fingerprint.

    Registering a run whose fingerprint is already in the registry adds no version, and Optuna
    studies are named after it, so a restarted run resumes its own studies.
    """
    payload = json.dumps(
        {
            "inputs": dict(hashes),
            "plan": plan.to_dict(),
            "config": config.to_dict(),
            "code": clv.__version__,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


@dataclass
class TrainingReport:
    """What :func:`assemble` decided and measured.

    Attributes
    ----------
    winner : str
        The candidate registered (highest holdout Gini among the learnt models and the ensemble).
    spend : SpendBundle
        The winner, packaged.
    churn : ChurnBundle
        The calibrated churn model, packaged.
    metrics : dict
        Holdout metrics per candidate and reference.
    churn_metrics : dict
        Holdout churn metrics: the model and BG/NBD's probability of no purchase.
    validation_scores : dict
        Best validation Gini per family (the Optuna objective).
    ensemble_weights : dict
        Convex weights of the ensemble.
    holdout_predictions : DataFrame
        Per holdout customer: ``actual`` and each candidate's prediction.
    timings : dict
        Seconds per step.
    """

    winner: str
    spend: SpendBundle
    churn: ChurnBundle
    metrics: dict[str, dict[str, float]]
    churn_metrics: dict[str, dict[str, float]]
    validation_scores: dict[str, float]
    ensemble_weights: dict[str, float]
    holdout_predictions: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)

    def flat_metrics(self) -> dict[str, float]:
        """``holdout_<metric>`` of the winner and ``holdout_<model>_<metric>`` of every model."""
        out: dict[str, float] = {}
        for name, values in self.metrics.items():
            for key, value in values.items():
                out[f"holdout_{name}_{key}"] = float(value)
        for key, value in self.metrics[self.winner].items():
            out[f"holdout_{key}"] = float(value)
        for name, values in self.churn_metrics.items():
            for key, value in values.items():
                out[f"holdout_churn_{name}_{key}"] = float(value)
        return out

    def to_markdown(self, *, title: str = "Training run", links: Mapping[str, str] = {}) -> str:
        """Summary table: every candidate and reference on the holdout, the winner first."""
        columns = ["normalized_gini", "decile_mape", "aggregate_error", "top20_lift", "mae"]
        lines = [f"# {title}", ""]
        for label, url in links.items():
            lines.append(f"- {label}: {url}")
        plan = self.spend.info.get("plan", {})
        lines += [
            "",
            f"Winner: **{self.winner}**, horizon {self.spend.horizon_days} days, as of "
            f"{pd.Timestamp(self.spend.as_of):%Y-%m-%d}; holdout cut-off "
            f"{plan.get('holdout', '?')[:10]}.",
            "",
        ]
        order = sorted(
            self.metrics, key=lambda m: (m != self.winner, -self.metrics[m][PRIMARY_METRIC])
        )
        lines += metrics_table(self.metrics, columns, order)
        lines += ["", "Churn (no purchase in the horizon), holdout:", ""]
        lines += ["| model | auc | brier | calibration_error |", "|---|---:|---:|---:|"]
        for name, m in self.churn_metrics.items():
            lines.append(
                f"| {name} | {m['auc']:.4f} | {m['brier']:.4f} | {m['calibration_error']:.4f} |"
            )
        if self.ensemble_weights:
            weights = ", ".join(f"{k} {v:.3f}" for k, v in self.ensemble_weights.items())
            lines += ["", f"Ensemble weights: {weights}."]
        return "\n".join(lines) + "\n"


def _level(predict: Any, frames: TrainingFrames, cutoff: pd.Timestamp) -> float:
    from clv.models.calibration import seasonal_level_factor

    return seasonal_level_factor(
        predict, frames.training, as_of=cutoff, feature_columns=frames.feature_columns
    ).factor


def assemble(
    frames: TrainingFrames,
    outcomes: Sequence[StudyOutcome],
    config: TrainConfig,
    *,
    provenance: Mapping[str, Any] | None = None,
) -> TrainingReport:
    """Ensemble the tuned families, evaluate everything on the holdout, package the winner.

    Parameters
    ----------
    frames : TrainingFrames
        Fit, validation and holdout rows.
    outcomes : sequence of StudyOutcome
        One finished study per family.
    config : TrainConfig
        The run's configuration.
    provenance : mapping, optional
        Recorded in the bundles (data hash, fingerprint, ...).

    Returns
    -------
    TrainingReport
        Holdout metrics of every candidate and both references, the packaged winner and churn
        model.
    """
    from clv.models.baselines import BTYDReference, RunRateBaseline
    from clv.models.churn import ChurnModel
    from clv.models.ensemble import StackedEnsemble

    timings: dict[str, float] = {}
    plan = frames.plan
    validation, holdout = frames.validation, frames.holdout
    X_val, y_val = frames.X(validation), validation[TARGET]
    X_hold, y_hold = frames.X(holdout), holdout[TARGET].to_numpy()

    t0 = time.perf_counter()
    learnt: dict[str, Any] = {o.family: o.load_model() for o in outcomes}
    members = {
        **learnt,
        BTYD: BTYDReference(),
        RUN_RATE: RunRateBaseline({"horizon_days": plan.horizon_days}),
    }
    ensemble = StackedEnsemble(members).fit(X_val, y_val)
    candidates: dict[str, Any] = {**learnt, ENSEMBLE: ensemble}
    timings["ensemble"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    predictions = pd.DataFrame({"customer_id": holdout["customer_id"].to_numpy(), "actual": y_hold})
    metrics: dict[str, dict[str, float]] = {}
    intervals: dict[str, BinnedRatioInterval] = {}
    for name, model in candidates.items():
        predicted = model.predict(X_hold) * _level(model.predict, frames, plan.holdout)
        intervals[name] = BinnedRatioInterval.fit(
            y_val, model.predict(X_val), coverage=config.coverage
        )
        lower, upper = intervals[name].apply(predicted)
        predictions[name] = predicted
        metrics[name] = regression_report(y_hold, predicted, lower, upper)
    for name, model in ((BTYD, members[BTYD]), (RUN_RATE, members[RUN_RATE])):
        predictions[name] = model.predict(X_hold)
        metrics[name] = regression_report(y_hold, predictions[name])
    winner = max(
        candidates,
        key=lambda n: (np.nan_to_num(metrics[n][PRIMARY_METRIC], nan=-2.0), n == ENSEMBLE),
    )
    timings["holdout_evaluation"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    fit = frames.fit
    churn_model = ChurnModel({"seed": config.seed}).fit(
        frames.learnt_X(fit),
        (fit[PURCHASES] == 0).to_numpy(),
        X_val=frames.learnt_X(validation),
        churned_val=(validation[PURCHASES] == 0).to_numpy(),
    )
    churned = (holdout[PURCHASES] == 0).astype(int).to_numpy()
    churn_metrics = {
        "churn_model": churn_report(churned, churn_model.predict_proba(X_hold)),
        "bgnbd_p_no_purchase_in_horizon": churn_report(
            churned, X_hold["btyd_p_no_purchase"].to_numpy()
        ),
    }
    timings["churn"] = time.perf_counter() - t0

    info = {
        **dict(provenance or {}),
        "plan": plan.to_dict(),
        "config": config.to_dict(),
        "code_version": clv.__version__,
        "holdout_metrics": metrics[winner],
        "extrapolated_features": dict(frames.extrapolated),
        "out_of_range": dict(frames.out_of_range),
    }
    chosen = candidates[winner]
    spend = SpendBundle(
        model=chosen,
        family=winner,
        feature_columns=frames.feature_columns,
        horizon_days=plan.horizon_days,
        as_of=plan.as_of,
        level_factor=_level(chosen.predict, frames, plan.as_of),
        intervals=intervals[winner],
        info={**info, "ensemble_weights": ensemble.weights if winner == ENSEMBLE else {}},
        reference=drift_reference(X_val, seed=config.seed),
    )
    churn = ChurnBundle(
        model=churn_model,
        feature_columns=frames.feature_columns,
        horizon_days=plan.horizon_days,
        as_of=plan.as_of,
        info={**info, "holdout_metrics": churn_metrics["churn_model"]},
    )
    return TrainingReport(
        winner=winner,
        spend=spend,
        churn=churn,
        metrics=metrics,
        churn_metrics=churn_metrics,
        validation_scores={o.family: o.best_value for o in outcomes},
        ensemble_weights=ensemble.weights,
        holdout_predictions=predictions,
        timings=timings,
    )


#: Rows kept as the drift reference in a spend bundle.
REFERENCE_ROWS = 20_000


def drift_reference(features: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """A seeded sample of at most :data:`REFERENCE_ROWS` feature rows (the drift reference)."""
    if len(features) <= REFERENCE_ROWS:
        return features.reset_index(drop=True)
    return features.sample(n=REFERENCE_ROWS, random_state=seed).reset_index(drop=True)


def evaluate_spend_bundle(bundle: SpendBundle, frames: TrainingFrames) -> dict[str, float]:
    """Holdout metrics of an existing model (e.g. the champion) on this run's holdout."""
    holdout = frames.holdout
    predicted = bundle.predict(holdout[frames.feature_columns])
    lower, upper = bundle.intervals.apply(predicted)
    return regression_report(holdout[TARGET].to_numpy(), predicted, lower, upper)


def evaluate_churn_bundle(bundle: ChurnBundle, frames: TrainingFrames) -> dict[str, float]:
    """Holdout churn metrics of an existing churn model on this run's holdout."""
    holdout = frames.holdout
    churned = (holdout[PURCHASES] == 0).astype(int).to_numpy()
    return churn_report(churned, bundle.model.predict_proba(holdout[frames.feature_columns]))
