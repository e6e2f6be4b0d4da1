"""Honest backtests: train on data up to an as-of date, score the following horizon, compare.

Protocol (nothing after its cut-off is ever seen by a model):

1. The evaluation cut-off is ``as_of``; the truth is each customer's spend in
   ``(as_of, as_of + horizon]``. Customers are those with a purchase on or before ``as_of``.
2. Training rows come from ``n_windows`` earlier cut-offs, ``as_of - horizon - k * step`` for
   ``k = 0..n_windows-1``: their targets end on or before ``as_of``.
3. The validation fold (early stopping, ensemble weights) is the latest training window, the
   others train the models; or, with ``validation="customers"`` (and always with one window), a
   random fifth of the customers across all windows.
4. References measured in the same run: BG/NBD + Gamma-Gamma fitted on data up to ``as_of``, and
   the naive run-rate model.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clv.evaluation.metrics import regression_report
from clv.features import build_features, future_targets, training_set
from clv.features.support import (
    MAX_EXTRAPOLATED_SHARE,
    OUT_OF_RANGE_SHARE,
    beyond,
    describe_shares,
    outside_support,
)

logger = logging.getLogger(__name__)

TARGET = "future_spend"
NON_FEATURES = ("cutoff", "customer_id", "future_spend", "future_purchases")
BTYD = "bgnbd_gamma_gamma"
RUN_RATE = "run_rate"
ENSEMBLE = "ensemble"


@dataclass
class BacktestResult:
    """Everything a backtest measured.

    Attributes
    ----------
    as_of : Timestamp
        Evaluation cut-off.
    horizon_days : int
        Horizon in days.
    train_cutoffs : list of Timestamp
        Cut-offs whose windows trained (all but the latest) and validated (the latest).
    metrics : dict
        Model name to :func:`clv.evaluation.metrics.regression_report`.
    predictions : DataFrame
        Per customer: ``actual`` and one column per model (plus ZILN interval bounds).
    ensemble_weights : dict
        Non-negative member weights of the stacked ensemble.
    timings : dict
        Seconds per stage.
    validation_aggregate_errors : dict
        Per ensemble member and the ensemble: aggregate error on the validation window (the
        latest training window), before seasonal calibration. Set the scored aggregate errors
        beside it to see whether a level learnt on that window would carry to the horizon.
        Empty when the validation fold is not one window (``validation="customers"``).
    model_features : dict
        Per learnt model (each family and ``churn_model``): the feature columns it was trained
        on, in order.
    tuning : dict
        Per tuned family: ``trials`` (finished trials), ``best_value`` (validation Gini of the
        best trial), ``best_number`` and ``best_params``. Empty without ``tune_trials``.
    out_of_range : dict
        Features for which more than half of the customers scored lie outside the values of the
        fit windows, with that share (a diagnostic: the models extrapolate there; see
        :mod:`clv.features.support`).
    extrapolated_features : dict
        Features the learnt models left out (``max_extrapolated_share``), with that share.
    """

    as_of: pd.Timestamp
    horizon_days: int
    train_cutoffs: list[pd.Timestamp]
    metrics: dict[str, dict[str, float]]
    predictions: pd.DataFrame
    ensemble_weights: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    n_train_rows: int = 0
    churn_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    seasonal_factors: dict[str, float] = field(default_factory=dict)
    validation_aggregate_errors: dict[str, float] = field(default_factory=dict)
    model_features: dict[str, list[str]] = field(default_factory=dict)
    tuning: dict[str, dict[str, Any]] = field(default_factory=dict)
    extrapolated_features: dict[str, float] = field(default_factory=dict)
    out_of_range: dict[str, float] = field(default_factory=dict)

    def best_model(self, metric: str = "normalized_gini") -> str:
        """Name of the model with the highest ``metric``."""
        return max(self.metrics, key=lambda m: self.metrics[m].get(metric, float("-inf")))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (no per-customer rows)."""
        return {
            "as_of": self.as_of.isoformat(),
            "horizon_days": self.horizon_days,
            "train_cutoffs": [c.isoformat() for c in self.train_cutoffs],
            "customers_scored": len(self.predictions),
            "train_rows": self.n_train_rows,
            "actual_total": float(self.predictions["actual"].sum()),
            "metrics": self.metrics,
            "ensemble_weights": self.ensemble_weights,
            "churn_metrics": self.churn_metrics,
            "seasonal_factors": self.seasonal_factors,
            "validation_aggregate_errors": self.validation_aggregate_errors,
            "model_features": self.model_features,
            "tuning": self.tuning,
            "out_of_range": self.out_of_range,
            "extrapolated_features": self.extrapolated_features,
            "timings_s": self.timings,
        }

    def to_markdown(self) -> str:
        """A markdown table of the metrics, best first."""
        columns = [
            "normalized_gini",
            "decile_mape",
            "aggregate_error",
            "spearman",
            "top20_precision",
            "top20_lift",
            "mae",
            "rmse",
        ]
        lines = [
            f"# Backtest: as of {self.as_of:%Y-%m-%d}, horizon {self.horizon_days} days",
            "",
            f"{len(self.predictions):,} customers scored; actual spend in the horizon "
            f"{self.predictions['actual'].sum():,.2f}. Training cut-offs: "
            + ", ".join(f"{c:%Y-%m-%d}" for c in self.train_cutoffs)
            + ".",
            "",
        ]
        order = sorted(self.metrics, key=lambda m: -self.metrics[m]["normalized_gini"])
        lines += metrics_table(self.metrics, columns, order)
        if self.ensemble_weights:
            weights = ", ".join(f"{k} {v:.3f}" for k, v in self.ensemble_weights.items())
            lines += ["", f"Ensemble weights: {weights}."]
        if self.out_of_range:
            lines += [
                "",
                "Customers scored outside the range the learnt models saw in their fit windows "
                f"(share of customers): {describe_shares(self.out_of_range)}.",
            ]
        if self.extrapolated_features:
            left_out = ", ".join(self.extrapolated_features)
            lines += ["", f"Left out of the learnt models as out of range: {left_out}."]
        if self.churn_metrics:
            lines += [
                "",
                f"## Churn: no purchase in the {self.horizon_days}-day horizon",
                "",
                "| model | auc | brier | calibration_error | base_rate |",
                "|---|---:|---:|---:|---:|",
            ]
            for name, m in self.churn_metrics.items():
                lines.append(
                    f"| {name} | {m['auc']:.4f} | {m['brier']:.4f} | "
                    f"{m['calibration_error']:.4f} | {m['base_rate']:.4f} |"
                )
        return "\n".join(lines) + "\n"


def metrics_table(
    metrics: Mapping[str, Mapping[str, float]], columns: Sequence[str], order: Sequence[str]
) -> list[str]:
    """Markdown table lines: one row per model in ``order``, plus interval coverage if known."""
    lines = [
        "| model | " + " | ".join(columns) + " | interval_coverage |",
        "|---|" + "---:|" * (len(columns) + 1),
    ]
    for name in order:
        m = metrics[name]
        cells = [f"{m[c]:.4f}" for c in columns]
        coverage = m.get("interval_coverage")
        cells.append("" if coverage is None else f"{coverage:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def default_as_of(transactions: pd.DataFrame, horizon_days: int) -> pd.Timestamp:
    """The latest as-of whose horizon is fully observed: the last day with data minus the horizon.

    End of that day, so a horizon of ``h`` days after it ends with the data's last day.
    """
    last = pd.Timestamp(transactions["timestamp"].max()).normalize()
    return last - pd.Timedelta(days=horizon_days) + pd.Timedelta(days=1) - pd.Timedelta(1, "us")


def _features_only(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[c for c in NON_FEATURES if c in frame.columns])


def _trials_per_family(
    tune_trials: int | Mapping[str, int], families: Sequence[str]
) -> dict[str, int]:
    """Optuna trials per family (0: fixed parameters), refusing names that are not trained."""
    if isinstance(tune_trials, Mapping):
        unknown = sorted(set(tune_trials) - set(families))
        if unknown:
            raise ValueError(
                f"tune_trials names {unknown}, which are not among the families trained "
                f"({', '.join(families)})"
            )
        trials = {f: int(tune_trials.get(f, 0)) for f in families}
    else:
        trials = {f: int(tune_trials) for f in families}
    negative = {f: n for f, n in trials.items() if n < 0}
    if negative:
        raise ValueError(f"tune_trials must be 0 or more, got {negative}")
    return trials


def backtest(
    transactions: pd.DataFrame,
    *,
    horizon_days: int,
    as_of: pd.Timestamp | None = None,
    customers: pd.DataFrame | None = None,
    sustainability: pd.DataFrame | None = None,
    n_windows: int = 12,
    step_days: int | None = 30,
    families: Sequence[str] = ("xgboost", "lightgbm", "keras_ziln"),
    params: Mapping[str, Mapping[str, Any]] | None = None,
    interval_coverage: float = 0.8,
    seed: int = 0,
    with_churn: bool = True,
    validation: str = "latest",
    seasonal_calibration: bool = True,
    refit: bool = False,
    exclude_features: Sequence[str] = (),
    derive_features: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    tune_trials: int | Mapping[str, int] = 0,
    max_extrapolated_share: float | None = MAX_EXTRAPOLATED_SHARE,
    progress: Callable[[str], None] | None = None,
) -> BacktestResult:
    """Train every family on data up to ``as_of`` and score ``(as_of, as_of + horizon]``.

    Parameters
    ----------
    transactions : DataFrame
        Validated transactions; they must cover the horizon after ``as_of``.
    horizon_days : int
        Prediction horizon.
    as_of : Timestamp, optional
        Evaluation cut-off (default: the last day with data minus the horizon, end of day).
    customers, sustainability : DataFrame, optional
        Validated optional tables.
    n_windows : int
        Training cut-offs stacked (the latest one validates).
    step_days : int, optional
        Days between training cut-offs (``None``: the horizon).
    families : sequence of str
        Learnt families to train (see :data:`clv.models.registry.SPEND_FAMILIES`).
    params : mapping, optional
        Per-family parameter overrides.
    interval_coverage : float
        Coverage of the prediction intervals reported for models that give them.
    seed : int
        Seed passed to every family.
    validation : {"latest", "customers"}
        Validation fold for early stopping and ensemble weights: the latest training window
        (out of time) or a random fifth of the customers across all windows.
    seasonal_calibration : bool
        Multiply each learnt model's predictions by its realised/predicted ratio on the training
        window one year earlier (:mod:`clv.models.calibration`); 1 without such a window.
    refit : bool
        After early stopping and the ensemble weights, refit each family on every window,
        validation window included, with the chosen number of rounds or epochs. Helps on
        multi-cohort data (generated: decile MAPE 0.30 -> 0.11 for the ensemble); hurts on a
        single cohort such as CDNOW, where customer age then identifies the latest window and
        trees extrapolate it (Gini 0.686 -> 0.617 at 90 days from 1997-09-30). Off by default.
    with_churn : bool
        Also train the calibrated churn model and compare it with BG/NBD's probability of no
        purchase in the horizon and with 1 - P(alive).
    exclude_features : sequence of str
        Feature columns the learnt models (every family and the churn model) do not see, e.g.
        ``("T",)`` so that customer age cannot tell the training windows apart. Names absent
        from the features are ignored (data sets differ in their columns). The references
        (BG/NBD + Gamma-Gamma, the run rate) still read their own columns. Default: none.
    derive_features : callable, optional
        ``frame -> frame`` applied to every feature frame (each training window, the validation
        window, the scoring frame) before ``exclude_features``, e.g. to add ``recency / T``.
        It must be a function of each row's own features only, which all lie at or before that
        row's cut-off. It may add columns but must keep the rows and their order.
    tune_trials : int or mapping of str to int
        Optuna trials per family (a mapping gives them family by family; 0 or absent: the
        fixed parameters). A family with trials is tuned by :func:`clv.training.hpo.run_study`
        on the backtest's own fit rows and validation window (the study's objective is the
        validation Gini), in a temporary SQLite storage that is deleted afterwards, and the
        best trial's model is used; ``params`` then fixes what every trial shares. Default 0.
    max_extrapolated_share : float or None
        The learnt models also leave out every feature without a monotone constraint for which
        more than this share of the customers scored lie outside the values of the fit windows
        (:func:`clv.features.support.extrapolated_features`; features only, no target is read).
        On a single acquisition cohort 0.5 drops customer age ``T``, which no training window
        shows at the as-of's values. Default :data:`clv.features.support.MAX_EXTRAPOLATED_SHARE`
        (0.5: on CDNOW, over three seeds, it meets 7 target cells under every seed against 5 when
        every feature is kept; see docs/benchmarks.md); ``None`` or 1 keeps every feature. The
        features out of range are reported either way (``out_of_range``).
    progress : callable, optional
        Called with a short description before each stage.

    Returns
    -------
    BacktestResult
        Metrics per model, per-customer predictions, weights and timings.

    Raises
    ------
    ValueError
        When the data do not cover the horizon after ``as_of`` or no training window is usable.
    """
    from clv.evaluation.metrics import aggregate_error, churn_report
    from clv.models.baselines import BTYDReference, RunRateBaseline
    from clv.models.calibration import seasonal_level_factor
    from clv.models.churn import ChurnModel, btyd_churn_reference
    from clv.models.ensemble import StackedEnsemble
    from clv.models.registry import create
    from clv.models.trees import MONOTONE

    say = progress or (lambda message: logger.info(message))
    timings: dict[str, float] = {}
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be at least 1, got {horizon_days}")
    as_of = default_as_of(transactions, horizon_days) if as_of is None else pd.Timestamp(as_of)
    last = pd.Timestamp(transactions["timestamp"].max())
    if as_of + pd.Timedelta(days=horizon_days) > last + pd.Timedelta(days=1):
        raise ValueError(
            f"the data end on {last:%Y-%m-%d}; a {horizon_days}-day horizon after {as_of:%Y-%m-%d} "
            "is not fully observed, so it cannot be scored. Use an earlier --as-of."
        )
    step = step_days or horizon_days
    first = pd.Timestamp(transactions["timestamp"].min())
    cutoffs = [
        as_of - pd.Timedelta(days=horizon_days + k * step)
        for k in range(n_windows)
        if as_of - pd.Timedelta(days=horizon_days + k * step) > first + pd.Timedelta(days=step)
    ]
    if not cutoffs:
        raise ValueError(
            f"no training window fits between {first:%Y-%m-%d} and {as_of:%Y-%m-%d} with a "
            f"{horizon_days}-day horizon; use a later --as-of or a shorter horizon"
        )

    say(f"building training windows at {len(cutoffs)} cut-offs")
    t0 = time.perf_counter()
    stacked = training_set(
        transactions,
        cutoffs=cutoffs,
        horizon_days=horizon_days,
        customers=customers,
        sustainability=sustainability,
    )
    timings["training_features"] = time.perf_counter() - t0
    reserved = sorted(set(exclude_features) & set(NON_FEATURES))
    if reserved:
        raise ValueError(f"exclude_features names non-feature columns {reserved}")
    derive = derive_features or (lambda frame: frame)
    if derive_features is not None:
        stacked = _derived(derive, stacked)
    say("building features at the as-of date")
    t0 = time.perf_counter()
    scoring = build_features(
        transactions,
        cutoff=as_of,
        horizon_days=horizon_days,
        customers=customers,
        sustainability=sustainability,
    )
    if derive_features is not None:
        scoring = _derived(derive, scoring)
    truth = future_targets(transactions, cutoff=as_of, horizon_days=horizon_days)
    actual = truth[TARGET].reindex(scoring.index).fillna(0.0)
    timings["scoring_features"] = time.perf_counter() - t0

    trials = _trials_per_family(tune_trials, families)
    latest = stacked["cutoff"].max()
    if validation not in ("latest", "customers"):
        raise ValueError(f"validation must be 'latest' or 'customers', got {validation!r}")
    if len(cutoffs) > 1 and validation == "latest":
        fit_rows, val_rows = (
            stacked[stacked["cutoff"] < latest],
            stacked[stacked["cutoff"] == latest],
        )
    else:
        ids = stacked["customer_id"].unique()
        held = set(np.random.default_rng(seed).permutation(ids)[: max(len(ids) // 5, 1)])
        holdout = stacked["customer_id"].isin(held).to_numpy()
        fit_rows, val_rows = stacked[~holdout], stacked[holdout]
    X_fit, y_fit = _features_only(fit_rows), fit_rows[TARGET]
    X_val, y_val = _features_only(val_rows), val_rows[TARGET]
    excluded = [c for c in dict.fromkeys(exclude_features) if c in stacked.columns]
    shares = outside_support(X_fit, scoring)
    out_of_range = beyond(shares, OUT_OF_RANGE_SHARE)
    if out_of_range:
        say(f"customers scored outside the fit windows' range: {', '.join(out_of_range)}")
    extrapolated = beyond(
        shares.drop(index=excluded, errors="ignore"), max_extrapolated_share, exempt=MONOTONE
    )
    excluded += list(extrapolated)
    if excluded:
        say(f"learnt models do not see {', '.join(excluded)}")
    # What the learnt models see; the references (ensemble members) read the full frames, and
    # the learnt models pick their own columns from any frame they are given.
    learnt_fit, learnt_val = X_fit.drop(columns=excluded), X_val.drop(columns=excluded)
    if learnt_fit.shape[1] == 0:
        raise ValueError("exclude_features leaves the learnt models no feature to learn from")

    predictions = pd.DataFrame({"actual": actual})
    models: dict[str, Any] = {}
    factors: dict[str, float] = {}
    tuning: dict[str, dict[str, Any]] = {}
    for family in families:
        t0 = time.perf_counter()
        family_params = dict((params or {}).get(family, {}))
        if trials[family] > 0:
            say(f"tuning {family}: {trials[family]} Optuna trials")
            model, tuning[family] = _tuned_model(
                family,
                n_trials=trials[family],
                x_fit=learnt_fit,
                y_fit=y_fit,
                x_val=learnt_val,
                y_val=y_val,
                seed=seed,
                fixed_params=family_params,
            )
        else:
            say(f"training {family}")
            model = create(family, {"seed": seed, **family_params})
            model.fit(learnt_fit, y_fit, X_val=learnt_val, y_val=y_val)
        models[family] = model
        timings[family] = time.perf_counter() - t0

    weights: dict[str, float] = {}
    validation_errors: dict[str, float] = {}
    ensemble = None
    if models:
        # The references join the stack: the run-rate model carries the base's current level,
        # which trees trained on older windows cannot extrapolate to.
        say("learning ensemble weights on the validation window")
        members = {
            **models,
            BTYD: BTYDReference(),
            RUN_RATE: RunRateBaseline({"horizon_days": horizon_days}),
        }
        ensemble = StackedEnsemble(members).fit(X_val, y_val)
        weights = ensemble.weights
        if val_rows["cutoff"].nunique() == 1 and float(y_val.sum()) != 0.0:
            # The run rate normalises over the rows it is given: only meaningful on one window.
            validation_errors = {
                name: aggregate_error(y_val, member.predict(X_val))
                for name, member in {**members, ENSEMBLE: ensemble}.items()
            }

    if refit and len(cutoffs) > 1:
        # The validation window is the one most like the horizon to score: once it has chosen
        # the number of rounds (epochs) and the ensemble weights, train on it too.
        X_all, y_all = _features_only(stacked).drop(columns=excluded), stacked[TARGET]
        for family, model in list(models.items()):
            refit_params = getattr(model, "refit_params", None)
            if refit_params is None:
                continue
            say(f"refitting {family} on every window")
            t0 = time.perf_counter()
            models[family] = create(family, refit_params()).fit(X_all, y_all)
            timings[family] += time.perf_counter() - t0
        if ensemble is not None:
            ensemble.members.update(models)

    def score(name: str, predict: Callable[[pd.DataFrame], np.ndarray]) -> None:
        predictions[name] = predict(scoring)
        if seasonal_calibration:
            found = seasonal_level_factor(
                predict, stacked, as_of=as_of, feature_columns=list(X_fit.columns)
            )
            factors[name] = found.factor
            predictions[name] *= found.factor

    for family, model in models.items():
        score(family, model.predict)
        interval = getattr(model, "predict_interval", None)
        if interval is not None:
            lower, upper = interval(scoring, coverage=interval_coverage)
            scale = factors.get(family, 1.0)
            predictions[f"{family}_lower"] = np.asarray(lower) * scale
            predictions[f"{family}_upper"] = np.asarray(upper) * scale
    if ensemble is not None:
        score(ENSEMBLE, ensemble.predict)

    model_features = {family: list(model.feature_names) for family, model in models.items()}
    churn_metrics: dict[str, dict[str, float]] = {}
    if with_churn:
        say("training the churn model")
        t0 = time.perf_counter()
        churn_model = ChurnModel({"seed": seed}).fit(
            learnt_fit,
            fit_rows["future_purchases"] == 0,
            X_val=learnt_val,
            churned_val=val_rows["future_purchases"] == 0,
        )
        churned = (truth["future_purchases"].reindex(scoring.index).fillna(0.0) == 0).astype(int)
        predictions["churn_probability"] = churn_model.predict_proba(scoring)
        predictions["btyd_churn_probability"] = btyd_churn_reference(scoring)
        predictions["churned"] = churned
        model_features["churn_model"] = list(churn_model.feature_names)
        churn_metrics = {
            "churn_model": churn_report(churned, predictions["churn_probability"]),
            "bgnbd_1_minus_p_alive": churn_report(churned, predictions["btyd_churn_probability"]),
            # BG/NBD's own probability of no purchase over the horizon: the fair reference
            # (1 - P(alive) is 0 for every customer without repeat purchases).
            "bgnbd_p_no_purchase_in_horizon": churn_report(
                churned, scoring["btyd_p_no_purchase"].to_numpy()
            ),
        }
        timings["churn"] = time.perf_counter() - t0

    predictions[BTYD] = scoring["btyd_expected_spend"].to_numpy()
    run_rate = RunRateBaseline({"horizon_days": horizon_days})
    predictions[RUN_RATE] = run_rate.fit(scoring, actual).predict(scoring)

    metrics = {}
    for name in [*models, *([ENSEMBLE] if weights else []), BTYD, RUN_RATE]:
        lower = predictions.get(f"{name}_lower")
        upper = predictions.get(f"{name}_upper")
        metrics[name] = regression_report(actual, predictions[name], lower, upper)
    return BacktestResult(
        as_of=as_of,
        horizon_days=horizon_days,
        train_cutoffs=sorted(pd.Timestamp(c) for c in stacked["cutoff"].unique()),
        metrics=metrics,
        predictions=predictions,
        ensemble_weights=weights,
        timings=timings,
        n_train_rows=len(stacked),
        churn_metrics=churn_metrics,
        seasonal_factors=factors,
        validation_aggregate_errors=validation_errors,
        model_features=model_features,
        tuning=tuning,
        extrapolated_features=extrapolated,
        out_of_range=out_of_range,
    )


def _derived(derive: Callable[[pd.DataFrame], pd.DataFrame], frame: pd.DataFrame) -> pd.DataFrame:
    """``derive(frame)``, checked to keep the rows (same index, same order)."""
    out = derive(frame)
    if not out.index.equals(frame.index):
        raise ValueError("derive_features must keep the rows of the frame it is given, in order")
    return out


def _tuned_model(
    family: str,
    *,
    n_trials: int,
    x_fit: pd.DataFrame,
    y_fit: pd.Series,
    x_val: pd.DataFrame,
    y_val: pd.Series,
    seed: int,
    fixed_params: Mapping[str, Any],
) -> tuple[Any, dict[str, Any]]:
    """The best model of an Optuna study on these rows, and what the study found.

    The study lives in a temporary SQLite file and its trial models in the same temporary
    folder; the best model is loaded (verified) before the folder is deleted.
    """
    from clv.training.hpo import run_study

    with tempfile.TemporaryDirectory(prefix="clv-backtest-tuning-") as tmp:
        outcome = run_study(
            family,
            X_fit=x_fit,
            y_fit=y_fit,
            X_val=x_val,
            y_val=y_val,
            n_trials=n_trials,
            study_name=f"backtest-{family}",
            storage=f"sqlite:///{Path(tmp) / 'optuna.db'}",
            model_root=Path(tmp) / "models",
            seed=seed,
            fixed_params=fixed_params,
        )
        model = outcome.load_model()
    finished = [t for t in outcome.trials if t.state in ("COMPLETE", "PRUNED")]
    best = max(
        (t for t in outcome.trials if t.state == "COMPLETE" and t.value is not None),
        key=lambda t: t.value if t.value is not None else float("-inf"),
    )
    summary = {
        "trials": len(finished),
        "best_value": outcome.best_value,
        "best_number": best.number,
        "best_params": outcome.best_params,
    }
    return model, summary


def write_backtest_report(result: BacktestResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``backtest.json``, ``backtest.md``, ``predictions.parquet`` and plots to ``out_dir``.

    Returns
    -------
    dict of str to Path
        What was written.
    """
    from clv.data.io import write_atomic, write_table
    from clv.evaluation.plots import decile_sum_plot, lift_plot

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(result.to_dict(), indent=2, sort_keys=True)
    written = {"json": out / "backtest.json", "markdown": out / "backtest.md"}
    write_atomic(written["json"], lambda p: p.write_text(payload, encoding="utf-8"))
    markdown = result.to_markdown()
    write_atomic(written["markdown"], lambda p: p.write_text(markdown, encoding="utf-8"))
    written["predictions"] = out / "predictions.parquet"
    write_table(result.predictions.reset_index(), written["predictions"])
    actual = result.predictions["actual"]
    models = {name: result.predictions[name] for name in result.metrics}
    written["lift_plot"] = lift_plot(actual, models, out / "lift.png")
    best = result.best_model()
    written["decile_plot"] = decile_sum_plot(actual, result.predictions[best], out / "deciles.png")
    if result.churn_metrics:
        from clv.evaluation.plots import calibration_plot

        written["churn_calibration_plot"] = calibration_plot(
            result.predictions["churned"],
            {
                "churn_model": result.predictions["churn_probability"],
                "BG/NBD 1 - P(alive)": result.predictions["btyd_churn_probability"],
            },
            out / "churn_calibration.png",
        )
    return written
