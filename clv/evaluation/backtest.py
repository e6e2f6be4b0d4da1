"""Honest backtests: run the training pipeline at an as-of date, score the following horizon.

A backtest is what a user does by hand, automated: train with ``clv train --as-of A`` (the very
pipeline, :func:`clv.training.pipeline.fit_pipeline`, on the transactions up to ``A`` only), score
every customer seen by ``A`` with the bundle it would register (``clv score --as-of A``), and
compare with what each customer spent in ``(A, A + horizon]``. Beside the registered model it
scores every other candidate the run packaged (each family and the stacked ensemble, refitted as
the winner is) and, measured in the same run, BG/NBD + Gamma-Gamma fitted on the data up to ``A``
and the naive run-rate model. The pipeline's own holdout metrics (the horizon before ``A``, on
which it chose the winner) are kept beside the scored ones.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from clv.evaluation.metrics import metrics_table, regression_report
from clv.features import future_targets
from clv.features.support import MAX_EXTRAPOLATED_SHARE, describe_shares
from clv.models.keras_ziln import DEFAULT_PARAMS as ZILN_DEFAULTS

logger = logging.getLogger(__name__)

TARGET = "future_spend"
BTYD = "bgnbd_gamma_gamma"
RUN_RATE = "run_rate"
ENSEMBLE = "ensemble"


@dataclass
class BacktestResult:
    """Everything a backtest measured.

    Attributes
    ----------
    as_of : Timestamp
        Evaluation cut-off (the training run's as-of).
    horizon_days : int
        Horizon in days.
    train_cutoffs : list of Timestamp
        Cut-offs of the windows the registered model learnt from (its fit windows and the
        window that validated it).
    metrics : dict
        Model name to :func:`clv.evaluation.metrics.regression_report` on ``(as_of, as_of + h]``:
        every candidate of the run and both references.
    predictions : DataFrame
        Per customer: ``actual`` and one column per model (plus interval bounds).
    winner : str
        The candidate the run would register (chosen on its own holdout).
    holdout_metrics : dict
        The training run's own holdout metrics (the window before ``as_of``).
    ensemble_weights : dict
        Member weights of the registered stacked ensemble.
    timings : dict
        Seconds per stage.
    churn_metrics : dict
        The registered churn model and BG/NBD's references on the horizon.
    seasonal_factors : dict
        Each candidate's seasonal level factor at ``as_of``.
    model_features : dict
        The feature columns the learnt models were fitted on.
    tuning : dict
        Per family: ``best_value``, the best validation Gini of its Optuna study.
    out_of_range, extrapolated_features : dict
        Features most customers lie outside of in the fit windows, and those left out.
    reductions : list of str
        What a short history reduced in the run (see :func:`clv.training.windows.plan_windows`).
    spend, churn : SpendBundle, ChurnBundle
        The bundles the run would register (not serialised by :meth:`to_dict`).
    """

    as_of: pd.Timestamp
    horizon_days: int
    train_cutoffs: list[pd.Timestamp]
    metrics: dict[str, dict[str, float]]
    predictions: pd.DataFrame
    winner: str = ""
    holdout_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    ensemble_weights: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    n_train_rows: int = 0
    churn_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    seasonal_factors: dict[str, float] = field(default_factory=dict)
    model_features: dict[str, list[str]] = field(default_factory=dict)
    tuning: dict[str, dict[str, Any]] = field(default_factory=dict)
    extrapolated_features: dict[str, float] = field(default_factory=dict)
    out_of_range: dict[str, float] = field(default_factory=dict)
    reductions: list[str] = field(default_factory=list)
    spend: Any = field(default=None, repr=False)
    churn: Any = field(default=None, repr=False)

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
            "winner": self.winner,
            "holdout_metrics": self.holdout_metrics,
            "reductions": self.reductions,
            "ensemble_weights": self.ensemble_weights,
            "churn_metrics": self.churn_metrics,
            "seasonal_factors": self.seasonal_factors,
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
            + f". The run registers **{self.winner}** (chosen on its own holdout).",
            "",
        ]
        for reduction in self.reductions:
            lines += [f"Short history: {reduction}.", ""]
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


def default_as_of(transactions: pd.DataFrame, horizon_days: int) -> pd.Timestamp:
    """The latest as-of whose horizon is fully observed: the last day with data minus the horizon.

    End of that day, so a horizon of ``h`` days after it ends with the data's last day.
    """
    last = pd.Timestamp(transactions["timestamp"].max()).normalize()
    return last - pd.Timedelta(days=horizon_days) + pd.Timedelta(days=1) - pd.Timedelta(1, "us")


def backtest(
    transactions: pd.DataFrame,
    *,
    horizon_days: int,
    as_of: pd.Timestamp | None = None,
    customers: pd.DataFrame | None = None,
    sustainability: pd.DataFrame | None = None,
    n_windows: int = 12,
    step_days: int = 30,
    families: Sequence[str] = ("xgboost", "lightgbm", "keras_ziln"),
    trials: int = 1,
    seed: int = 0,
    interval_coverage: float = 0.8,
    max_extrapolated_share: float | None = MAX_EXTRAPOLATED_SHARE,
    ziln_members: int = int(ZILN_DEFAULTS["n_members"]),
    ziln_sigma_cap: float | None = ZILN_DEFAULTS["sigma_cap"],
    refit_final: bool = True,
    max_tune_rows: int | None = 50_000,
    max_fit_rows: int | None = 250_000,
    progress: Callable[[str], None] | None = None,
) -> BacktestResult:
    """Run the training pipeline at ``as_of`` and score its bundles on ``(as_of, as_of + h]``.

    Parameters
    ----------
    transactions : DataFrame
        Validated transactions; they must cover the horizon after ``as_of``. The training run
        sees only the rows up to ``as_of``.
    horizon_days : int
        Prediction horizon.
    as_of : Timestamp, optional
        Evaluation cut-off (default: the last day with data minus the horizon, end of day).
    customers, sustainability : DataFrame, optional
        Validated optional tables.
    n_windows, step_days, families, trials, seed, interval_coverage, max_extrapolated_share,
    ziln_members, ziln_sigma_cap, refit_final, max_tune_rows, max_fit_rows
        The training run's configuration (:class:`clv.training.pipeline.TrainConfig`; ``trials``
        is its ``n_trials``, default 1: each family's default parameters; ``ziln_members`` and
        ``ziln_sigma_cap`` default to the library's).
    progress : callable, optional
        Called with a short description before each stage.

    Returns
    -------
    BacktestResult
        Metrics per model, per-customer predictions, weights and timings.

    Raises
    ------
    ValueError
        When the data do not cover the horizon after ``as_of``, or the training run refuses the
        history (no model at all can be fitted).
    """
    from clv.models.churn import btyd_churn_reference
    from clv.training.pipeline import RUN_RATE as RUN_RATE_NAME
    from clv.training.pipeline import TrainConfig, fit_pipeline
    from clv.training.scoring import customer_features

    say = progress or (lambda message: logger.info(message))
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be at least 1, got {horizon_days}")
    as_of = default_as_of(transactions, horizon_days) if as_of is None else pd.Timestamp(as_of)
    last = pd.Timestamp(transactions["timestamp"].max())
    if as_of + pd.Timedelta(days=horizon_days) > last + pd.Timedelta(days=1):
        raise ValueError(
            f"the data end on {last:%Y-%m-%d}; a {horizon_days}-day horizon after {as_of:%Y-%m-%d} "
            "is not fully observed, so it cannot be scored. Use an earlier --as-of."
        )
    config = TrainConfig(
        horizon_days=horizon_days,
        as_of=as_of,
        families=tuple(families),
        n_trials=trials,
        n_windows=n_windows,
        step_days=step_days,
        seed=seed,
        coverage=interval_coverage,
        max_tune_rows=max_tune_rows,
        max_fit_rows=max_fit_rows,
        max_extrapolated_share=max_extrapolated_share,
        refit_final=refit_final,
        ziln_members=ziln_members,
        ziln_sigma_cap=ziln_sigma_cap,
    )
    seen = transactions[transactions["timestamp"] <= as_of]
    if seen.empty:
        first = pd.Timestamp(transactions["timestamp"].min())
        raise ValueError(
            f"--as-of {as_of:%Y-%m-%d} is before the first transaction ({first:%Y-%m-%d}); "
            "nothing to learn from. Use a later --as-of."
        )
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="clv-backtest-") as tmp:
        report = fit_pipeline(
            seen,
            config,
            customers=customers,
            sustainability=sustainability,
            workdir=Path(tmp),
            progress=say,
            data_end=as_of,  # the data go on after it: a quiet last day is real silence
        )
    timings["training"] = time.perf_counter() - t0
    timings.update({f"training_{k}": v for k, v in report.timings.items()})

    say("scoring the horizon after the as-of date")
    t0 = time.perf_counter()
    features = customer_features(
        seen,
        as_of=as_of,
        horizon_days=horizon_days,
        customers=customers,
        sustainability=sustainability,
    )
    truth = future_targets(transactions, cutoff=as_of, horizon_days=horizon_days)
    actual = truth[TARGET].reindex(features.index).fillna(0.0)
    predictions = pd.DataFrame({"actual": actual})
    metrics: dict[str, dict[str, float]] = {}
    for name, bundle in report.candidates.items():
        scored = bundle.predict_frame(features)
        predictions[name] = scored["predicted_clv"]
        predictions[f"{name}_lower"] = scored["predicted_clv_lower"]
        predictions[f"{name}_upper"] = scored["predicted_clv_upper"]
        metrics[name] = regression_report(
            actual, predictions[name], predictions[f"{name}_lower"], predictions[f"{name}_upper"]
        )
    from clv.models.baselines import RunRateBaseline

    if BTYD not in report.candidates:
        predictions[BTYD] = features["btyd_expected_spend"].clip(lower=0.0).fillna(0.0)
        metrics[BTYD] = regression_report(actual, predictions[BTYD])
    predictions[RUN_RATE_NAME] = RunRateBaseline({"horizon_days": horizon_days}).predict(features)
    metrics[RUN_RATE_NAME] = regression_report(actual, predictions[RUN_RATE_NAME])

    churned = (truth["future_purchases"].reindex(features.index).fillna(0.0) == 0).astype(int)
    predictions["churn_probability"] = report.churn.predict_frame(features)["churn_probability"]
    predictions["btyd_churn_probability"] = btyd_churn_reference(features)
    predictions["churned"] = churned
    from clv.evaluation.metrics import churn_report

    churn_metrics = {
        "churn_model": churn_report(churned, predictions["churn_probability"]),
        "bgnbd_1_minus_p_alive": churn_report(churned, predictions["btyd_churn_probability"]),
        # BG/NBD's own probability of no purchase over the horizon: the fair reference
        # (1 - P(alive) is 0 for every customer without repeat purchases).
        "bgnbd_p_no_purchase_in_horizon": churn_report(
            churned, features["btyd_p_no_purchase"].to_numpy()
        ),
    }
    timings["scoring"] = time.perf_counter() - t0

    plan = report.spend.info["plan"]
    refit = bool(report.spend.info.get("refit_final"))
    learnt_cutoffs = (
        [*plan["final_fit"], plan["holdout"]] if refit else [*plan["fit"], plan["validation"]]
    )
    winner = report.spend
    return BacktestResult(
        as_of=as_of,
        horizon_days=horizon_days,
        train_cutoffs=[pd.Timestamp(c) for c in learnt_cutoffs] if plan["fit"] else [],
        metrics=metrics,
        predictions=predictions,
        winner=report.winner,
        holdout_metrics=report.metrics,
        ensemble_weights=dict(winner.info.get("ensemble_weights", {})),
        timings=timings,
        n_train_rows=report.training_rows,
        churn_metrics=churn_metrics,
        seasonal_factors={n: float(b.level_factor) for n, b in report.candidates.items()},
        model_features={
            n: list(getattr(b.model, "feature_names", b.feature_columns))
            for n, b in report.candidates.items()
            if n != ENSEMBLE
        },
        tuning={f: {"best_value": v} for f, v in report.validation_scores.items()},
        extrapolated_features=dict(winner.info.get("extrapolated_features", {})),
        out_of_range=dict(winner.info.get("out_of_range", {})),
        reductions=list(report.reductions),
        spend=report.spend,
        churn=report.churn,
    )


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
