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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

import clv
from clv.evaluation.metrics import churn_report, metrics_table, regression_report
from clv.features.support import MAX_EXTRAPOLATED_SHARE
from clv.models.intervals import BinnedRatioInterval
from clv.models.keras_ziln import DEFAULT_PARAMS as ZILN_DEFAULTS
from clv.models.keras_ziln import check_sigma_cap
from clv.training.bundle import ChurnBundle, SpendBundle
from clv.training.dataset import PURCHASES, TARGET, TrainingFrames
from clv.training.hpo import StudyOutcome, fit_best
from clv.training.windows import HistoryTooShortError, WindowPlan, end_of_day, plan_windows

if TYPE_CHECKING:
    from distributed import Client

    from clv.data.validation import OnDuplicate

logger = logging.getLogger(__name__)


def _say(message: str) -> None:
    """Log a step and tell :mod:`clv.progress`'s listeners (the CLI's spinner)."""
    from clv.progress import report

    logger.info(message)
    report(message)


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
    refit_final : bool
        After the holdout has measured the recipe, refit it with every window one evaluation
        window later (the holdout window validates) and register that refit (default). ``False``
        registers the evaluated models themselves, which have learnt nothing after the
        validation window's end: a horizon staler (see docs/benchmarks.md, step 5).
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
    refit_final: bool = True

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


#: Fewest customers with a repeat purchase for which BG/NBD + Gamma-Gamma is still fitted.
MIN_REPEAT_BUYERS = 5


def make_plan(
    transactions: pd.DataFrame, config: TrainConfig, *, data_end: pd.Timestamp | None = None
) -> WindowPlan:
    """The window plan for ``config`` on these transactions.

    A history too short for learnt models (see :func:`clv.training.windows.plan_windows`) gets a
    plan without fit windows, whose :attr:`~clv.training.windows.WindowPlan.reductions` say why:
    BG/NBD + Gamma-Gamma is then the model (:func:`assemble`), evaluated on a holdout of at most
    half the history.

    Raises
    ------
    ValueError
        When ``as_of`` lies after the data, before the first transaction, or the history holds
        too few repeat buyers for any model (actionable message, with the numbers).
    """
    first = pd.Timestamp(transactions["timestamp"].min())
    last = pd.Timestamp(transactions["timestamp"].max())
    as_of = end_of_day(last) if config.as_of is None else pd.Timestamp(config.as_of)
    # data_end: the caller vouches that the data are complete up to it (a backtest's as-of,
    # whose last day may have had no sale), so quiet days before it are real silence.
    if as_of > end_of_day(last if data_end is None else max(last, pd.Timestamp(data_end))):
        raise ValueError(
            f"--as-of {as_of:%Y-%m-%d} is after the last transaction ({last:%Y-%m-%d}); "
            "training needs the data up to the as-of date"
        )
    if as_of < first:
        raise ValueError(
            f"--as-of {as_of:%Y-%m-%d} is before the first transaction ({first:%Y-%m-%d}); "
            "nothing to learn from"
        )
    try:
        return plan_windows(
            first,
            as_of=as_of,
            horizon_days=config.horizon_days,
            n_windows=config.n_windows,
            step_days=config.step_days,
        )
    except HistoryTooShortError as short:
        seen = transactions[transactions["timestamp"] <= as_of]
        days = seen.loc[seen["amount"] > 0, ["customer_id", "timestamp"]]
        days = days.assign(day=days["timestamp"].dt.normalize()).drop_duplicates(
            ["customer_id", "day"]
        )
        repeat = int((days.groupby("customer_id").size() > 1).sum())
        if repeat < MIN_REPEAT_BUYERS:
            raise ValueError(
                f"{short} Not even BG/NBD + Gamma-Gamma can be fitted: {repeat} customer(s) "
                f"bought on more than one day by {as_of:%Y-%m-%d}, at least "
                f"{MIN_REPEAT_BUYERS} are needed. Use a later --as-of."
            ) from short
        have = max((as_of - first).days, 2)
        evaluation_days = max(1, min(config.horizon_days, have // 2))
        holdout = as_of - pd.Timedelta(days=evaluation_days)
        return WindowPlan(
            as_of=as_of,
            horizon_days=config.horizon_days,
            holdout=holdout,
            validation=holdout,
            fit=(),
            final_fit=(),
            evaluation_days=evaluation_days,
            reductions=(
                f"no learnt model: {short}; BG/NBD + Gamma-Gamma ({repeat} repeat buyers) is "
                f"the registered model, evaluated on a {evaluation_days}-day holdout",
            ),
        )


def fingerprint(hashes: Mapping[str, str], plan: WindowPlan, config: TrainConfig) -> str:
    """Identity of a training run: same data, plan, configuration and code → same fingerprint.

    Registering a run whose fingerprint is already in the registry adds no version, and Optuna
    studies are named after it, so a restarted run resumes its own studies. The code is
    :func:`clv._code.code_identity` (version and source hash), so changed code retrains.
    """
    from clv._code import code_identity

    payload = json.dumps(
        {
            "inputs": dict(hashes),
            "plan": plan.to_dict(),
            "config": config.to_dict(),
            # Version plus a hash of the package source: a fixed bug registers a new version.
            "code": code_identity(),
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
        The candidate registered (highest holdout Gini among the learnt models and the ensemble;
        ``bgnbd_gamma_gamma`` when the history is too short for a learnt model).
    spend : SpendBundle
        The winner, packaged: the bundle ``clv train`` registers.
    churn : ChurnBundle
        The churn model, packaged.
    metrics : dict
        Holdout metrics per candidate and reference.
    churn_metrics : dict
        Holdout churn metrics: the model and BG/NBD's probability of no purchase.
    validation_scores : dict
        Best validation Gini per family (the Optuna objective).
    ensemble_weights : dict
        Convex weights of the evaluated ensemble.
    holdout_predictions : DataFrame
        Per holdout customer: ``actual`` and each candidate's prediction.
    candidates : dict of str to SpendBundle
        Every candidate packaged as the winner is (the final refit of each family and of the
        ensemble): what a backtest scores beside the winner.
    reductions : list of str
        What a short history reduced (windows shortened, fewer windows, no learnt model).
    training_rows : int
        Rows the registered model learnt from (its fit and validation windows).
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
    candidates: dict[str, SpendBundle] = field(default_factory=dict)
    reductions: list[str] = field(default_factory=list)
    training_rows: int = 0
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
        if self.reductions:
            lines += ["Short history:", ""] + [f"- {r}" for r in self.reductions] + [""]
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
        if self.winner != BTYD and self.spend.info.get("refit_final"):
            lines += [
                "",
                "The registered model is this recipe refitted with every window one holdout "
                "later (the holdout window validated it): it has learnt from everything up to "
                "the as-of date. The metrics above are the recipe's, measured before that refit.",
            ]
        return "\n".join(lines) + "\n"


def _level(predict: Any, rows: pd.DataFrame, columns: list[str], cutoff: pd.Timestamp) -> float:
    from clv.models.calibration import seasonal_level_factor

    return seasonal_level_factor(predict, rows, as_of=cutoff, feature_columns=columns).factor


def _churn(frames: TrainingFrames, fit: pd.DataFrame, val: pd.DataFrame, seed: int) -> Any:
    from clv.models.churn import ChurnModel

    return ChurnModel({"seed": seed}).fit(
        frames.learnt_X(fit),
        (fit[PURCHASES] == 0).to_numpy(),
        X_val=frames.learnt_X(val),
        churned_val=(val[PURCHASES] == 0).to_numpy(),
    )


def assemble(
    frames: TrainingFrames,
    outcomes: Sequence[StudyOutcome],
    config: TrainConfig,
    *,
    provenance: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainingReport:
    """Ensemble the tuned families, evaluate on the holdout, refit, package the winner.

    1. Evaluation: the studies' models and their stacked ensemble (weights learnt on the
       validation window) are scored on the holdout beside BG/NBD + Gamma-Gamma and the run
       rate; the winner is the candidate with the highest holdout Gini.
    2. Final refit (``config.refit_final``): every family is refitted with its best parameters
       on the windows one evaluation window later, validated (early stopping, ensemble weights,
       intervals, churn calibration) on the holdout window; each candidate is packaged as a
       :class:`SpendBundle` with its seasonal level factor at the as-of date.

    Without fit windows (a history too short for learnt models; see :func:`make_plan`) the
    model is BG/NBD + Gamma-Gamma, with BG/NBD's probability of no purchase as churn model.

    Parameters
    ----------
    frames : TrainingFrames
        Fit, validation and holdout rows (and the final model's fit rows).
    outcomes : sequence of StudyOutcome
        One finished study per family (empty without fit windows).
    config : TrainConfig
        The run's configuration.
    provenance : mapping, optional
        Recorded in the bundles (data hash, fingerprint, ...).
    progress : callable, optional
        Called with a short description before each step.

    Returns
    -------
    TrainingReport
        Holdout metrics of every candidate and both references, the packaged winner and churn
        model.
    """
    from clv.models.baselines import BTYDReference, RunRateBaseline
    from clv.models.ensemble import StackedEnsemble

    say = progress or _say
    timings: dict[str, float] = {}
    plan = frames.plan
    holdout = frames.holdout
    X_hold, y_hold = frames.X(holdout), frames.y(holdout)
    columns = frames.feature_columns
    references: dict[str, Any] = {
        BTYD: BTYDReference(),
        RUN_RATE: RunRateBaseline({"horizon_days": plan.horizon_days}),
    }
    predictions = pd.DataFrame(
        {"customer_id": holdout["customer_id"].to_numpy(), "actual": y_hold.to_numpy()}
    )
    metrics: dict[str, dict[str, float]] = {}
    for name, model in references.items():
        predictions[name] = model.predict(X_hold)
        metrics[name] = regression_report(y_hold, predictions[name])
    churned = (holdout[PURCHASES] == 0).astype(int).to_numpy()
    churn_metrics = {
        "bgnbd_p_no_purchase_in_horizon": churn_report(
            churned, X_hold["btyd_p_no_purchase"].to_numpy()
        ),
    }
    info = {
        **dict(provenance or {}),
        "plan": plan.to_dict(),
        "config": config.to_dict(),
        "code_version": clv.__version__,
        "extrapolated_features": dict(frames.extrapolated),
        "out_of_range": dict(frames.out_of_range),
        "reductions": list(plan.reductions),
        "refit_final": bool(config.refit_final),
    }
    if not plan.fit:
        return _btyd_report(frames, config, info, metrics, churn_metrics, predictions)
    if not outcomes:
        raise ValueError("assemble needs one finished study per family when there are fit windows")

    validation = frames.validation
    X_val, y_val = frames.X(validation), frames.y(validation)
    t0 = time.perf_counter()
    say("ensemble weights on the validation window")
    learnt: dict[str, Any] = {o.family: o.load_model() for o in outcomes}
    ensemble = StackedEnsemble({**learnt, **references}).fit(X_val, y_val)
    evaluated: dict[str, Any] = {**learnt, ENSEMBLE: ensemble}
    timings["ensemble"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    say("holdout evaluation")
    training = frames.training
    intervals: dict[str, BinnedRatioInterval] = {}
    for name, model in evaluated.items():
        level = _level(model.predict, training, columns, plan.holdout)
        predicted = model.predict(X_hold) * level
        intervals[name] = BinnedRatioInterval.fit(
            y_val, model.predict(X_val), coverage=config.coverage
        )
        lower, upper = intervals[name].apply(predicted)
        predictions[name] = predicted
        metrics[name] = regression_report(y_hold, predicted, lower, upper)
    winner = max(
        evaluated,
        key=lambda n: (np.nan_to_num(metrics[n][PRIMARY_METRIC], nan=-2.0), n == ENSEMBLE),
    )
    churn_model = _churn(frames, frames.fit, validation, config.seed)
    churn_metrics = {
        "churn_model": churn_report(churned, churn_model.predict_proba(X_hold)),
        **churn_metrics,
    }
    timings["holdout_evaluation"] = time.perf_counter() - t0

    final_rows = training
    if config.refit_final:
        t0 = time.perf_counter()
        final_fit = frames.final_fit
        X_ffit, y_ffit = frames.learnt_X(final_fit), frames.y(final_fit)
        refitted: dict[str, Any] = {}
        for outcome in outcomes:
            say(f"refitting {outcome.family} on the windows up to the as-of date")
            refitted[outcome.family] = fit_best(
                outcome.family,
                outcome.best_params,
                X_fit=X_ffit,
                y_fit=y_ffit,
                X_val=frames.learnt_X(holdout),
                y_val=y_hold,
                max_fit_rows=config.max_fit_rows,
                seed=config.seed,
            )
        final_ensemble = StackedEnsemble({**refitted, **references}).fit(X_hold, y_hold)
        evaluated = {**refitted, ENSEMBLE: final_ensemble}
        intervals = {
            name: BinnedRatioInterval.fit(y_hold, model.predict(X_hold), coverage=config.coverage)
            for name, model in evaluated.items()
        }
        churn_model = _churn(frames, final_fit, holdout, config.seed)
        final_rows = frames.final_training
        timings["final_refit"] = time.perf_counter() - t0

    reference = drift_reference(X_hold if config.refit_final else X_val, seed=config.seed)
    candidates: dict[str, SpendBundle] = {}
    for name, model in evaluated.items():
        weights = model.weights if name == ENSEMBLE else {}
        candidates[name] = SpendBundle(
            model=model,
            family=name,
            feature_columns=columns,
            horizon_days=plan.horizon_days,
            as_of=plan.as_of,
            level_factor=_level(model.predict, final_rows, columns, plan.as_of),
            intervals=intervals[name],
            info={**info, "holdout_metrics": metrics[name], "ensemble_weights": weights},
            reference=reference,
        )
    churn = ChurnBundle(
        model=churn_model,
        feature_columns=columns,
        horizon_days=plan.horizon_days,
        as_of=plan.as_of,
        info={**info, "holdout_metrics": churn_metrics["churn_model"]},
    )
    return TrainingReport(
        winner=winner,
        spend=candidates[winner],
        churn=churn,
        metrics=metrics,
        churn_metrics=churn_metrics,
        validation_scores={o.family: o.best_value for o in outcomes},
        ensemble_weights=ensemble.weights,
        holdout_predictions=predictions,
        candidates=candidates,
        reductions=list(plan.reductions),
        training_rows=len(final_rows),
        timings=timings,
    )


def _btyd_report(
    frames: TrainingFrames,
    config: TrainConfig,
    info: dict[str, Any],
    metrics: dict[str, dict[str, float]],
    churn_metrics: dict[str, dict[str, float]],
    predictions: pd.DataFrame,
) -> TrainingReport:
    """BG/NBD + Gamma-Gamma as the registered model (no window for a learnt model)."""
    from clv.models.baselines import BTYDChurnReference, BTYDReference

    plan = frames.plan
    holdout = frames.holdout
    X_hold, y_hold = frames.X(holdout), frames.y(holdout)
    model = BTYDReference()
    intervals = BinnedRatioInterval.fit(y_hold, model.predict(X_hold), coverage=config.coverage)
    lower, upper = intervals.apply(predictions[BTYD].to_numpy())
    metrics[BTYD] = regression_report(y_hold, predictions[BTYD], lower, upper)
    spend = SpendBundle(
        model=model,
        family="btyd",
        feature_columns=frames.feature_columns,
        horizon_days=plan.horizon_days,
        as_of=plan.as_of,
        level_factor=1.0,
        intervals=intervals,
        info={**info, "holdout_metrics": metrics[BTYD], "ensemble_weights": {}},
        reference=drift_reference(X_hold, seed=config.seed),
    )
    churn = ChurnBundle(
        model=BTYDChurnReference(),
        feature_columns=frames.feature_columns,
        horizon_days=plan.horizon_days,
        as_of=plan.as_of,
        info={**info, "holdout_metrics": churn_metrics["bgnbd_p_no_purchase_in_horizon"]},
        family="btyd_churn",
    )
    churn_metrics = {
        "churn_model": churn_metrics["bgnbd_p_no_purchase_in_horizon"],
        **churn_metrics,
    }
    return TrainingReport(
        winner=BTYD,
        spend=spend,
        churn=churn,
        metrics=metrics,
        churn_metrics=churn_metrics,
        validation_scores={},
        ensemble_weights={},
        holdout_predictions=predictions,
        candidates={BTYD: spend},
        reductions=list(plan.reductions),
    )


def fit_pipeline(
    transactions: pd.DataFrame,
    config: TrainConfig,
    *,
    customers: pd.DataFrame | None = None,
    sustainability: pd.DataFrame | None = None,
    input_hashes: Mapping[str, str] | None = None,
    workdir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    data_end: pd.Timestamp | None = None,
    dask_client: Client | None = None,
) -> TrainingReport:
    """The whole training pipeline in this process: what ``clv train`` runs, without Prefect.

    Window plan (:func:`make_plan`) → features at every cut-off
    (:func:`clv.training.dataset.build_training_frames`) → one Optuna study per family
    (:func:`clv.training.hpo.run_study`, ``config.n_trials`` trials) → :func:`assemble`
    (holdout evaluation, final refit, bundles). Nothing is registered.

    Parameters
    ----------
    transactions : DataFrame
        Validated transactions; rows after ``config.as_of`` are never read.
    config : TrainConfig
        The run's configuration.
    customers, sustainability : DataFrame, optional
        Validated optional tables.
    input_hashes : mapping, optional
        Content hashes of the inputs (recorded in the bundles; default: hashed here).
    workdir : path, optional
        Folder for the Optuna storage and trial models (default: a temporary folder, deleted
        afterwards).
    progress : callable, optional
        Called with a short description before each step.
    data_end : Timestamp, optional
        The instant up to which the data are known to be complete (a backtest's as-of): an
        as-of after the last transaction but not after it is accepted.
    dask_client : distributed.Client, optional
        Tune and refit the tree families on this Dask cluster (see
        :mod:`clv.distributed.training`; the same as running inside its ``on_cluster``).

    Returns
    -------
    TrainingReport
        The packaged winner (``report.spend``), churn model and holdout metrics.
    """
    if dask_client is not None:
        from clv.distributed.training import on_cluster

        with on_cluster(dask_client):
            return fit_pipeline(
                transactions,
                config,
                customers=customers,
                sustainability=sustainability,
                input_hashes=input_hashes,
                workdir=workdir,
                progress=progress,
                data_end=data_end,
            )
    import tempfile

    from clv.training.dataset import build_training_frames
    from clv.training.hpo import run_study

    say = progress or _say
    hashes = dict(input_hashes or {"transactions": frame_hash(transactions)})
    plan = make_plan(transactions, config, data_end=data_end)
    for reduction in plan.reductions:
        say(f"short history: {reduction}")
    with tempfile.TemporaryDirectory(prefix="clv-pipeline-") as tmp:
        root = Path(workdir) if workdir is not None else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        say(f"features at {len(plan.all_cutoffs)} cut-offs")
        frames = build_training_frames(
            transactions,
            plan=plan,
            input_hashes=hashes,
            cache_dir=None,
            customers=customers,
            sustainability=sustainability,
            max_extrapolated_share=config.max_extrapolated_share,
        )
        key = fingerprint(hashes, plan, config)
        outcomes = []
        if plan.fit:
            fit, validation = frames.fit, frames.validation
            for family in config.families:
                say(f"tuning {family}: {config.n_trials} Optuna trial(s)")
                outcomes.append(
                    run_study(
                        family,
                        X_fit=frames.learnt_X(fit),
                        y_fit=frames.y(fit),
                        X_val=frames.learnt_X(validation),
                        y_val=frames.y(validation),
                        n_trials=config.n_trials,
                        study_name=f"clv-{key}-{family}",
                        storage=f"sqlite:///{root / 'optuna.db'}",
                        model_root=root / "hpo",
                        seed=config.seed,
                        fixed_params=config.family_params(family),
                        max_tune_rows=config.max_tune_rows,
                        max_fit_rows=config.max_fit_rows,
                    )
                )
        return assemble(
            frames,
            outcomes,
            config,
            provenance={"fingerprint": key, "data_hashes": hashes},
            progress=say,
        )


def frame_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of a frame's contents (values and column names, row order included)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([str(c) for c in frame.columns]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


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
    return evaluate_spend_holdout(bundle, holdout.assign(**{TARGET: frames.y(holdout)}))


def evaluate_spend_holdout(bundle: SpendBundle, holdout: pd.DataFrame) -> dict[str, float]:
    """Metrics of a spend bundle on holdout rows (features and ``future_spend``).

    Parameters
    ----------
    bundle : SpendBundle
        The model, e.g. the champion.
    holdout : DataFrame
        A training run's holdout rows: at least the bundle's feature columns and ``future_spend``
        over the horizon (the Parquet artifact the training run logs, whose spend a shortened
        holdout window has already scaled to the horizon: ``TrainingFrames.y``).

    Returns
    -------
    dict of str to float
        :func:`clv.evaluation.metrics.regression_report` of the bundle's predictions, with its
        interval's coverage.
    """
    predicted = bundle.predict(holdout[bundle.feature_columns])
    lower, upper = bundle.intervals.apply(predicted)
    return regression_report(holdout[TARGET].to_numpy(), predicted, lower, upper)


def evaluate_churn_bundle(bundle: ChurnBundle, frames: TrainingFrames) -> dict[str, float]:
    """Holdout churn metrics of an existing churn model on this run's holdout."""
    return evaluate_churn_holdout(bundle, frames.holdout)


def evaluate_churn_holdout(bundle: ChurnBundle, holdout: pd.DataFrame) -> dict[str, float]:
    """Churn metrics of a churn bundle on holdout rows (features and ``future_purchases``).

    Parameters
    ----------
    bundle : ChurnBundle
        The churn model, e.g. the champion.
    holdout : DataFrame
        A training run's holdout rows: at least the bundle's feature columns and
        ``future_purchases`` (a customer with none in the horizon churned).

    Returns
    -------
    dict of str to float
        :func:`clv.evaluation.metrics.churn_report` of the bundle's probabilities.
    """
    churned = (holdout[PURCHASES] == 0).astype(int).to_numpy()
    return churn_report(churned, bundle.model.predict_proba(holdout[bundle.feature_columns]))
