"""``CLVPredictor``: the training pipeline of ``clv train`` behind a scikit-learn-like object.

::

    model = clv.CLVPredictor(horizon_days=90).fit(transactions)
    scores = model.predict(transactions)      # predicted_clv, its interval, churn_probability
    model.save("models/clv-90d")
    model = clv.load("models/clv-90d")

``fit`` runs :func:`clv.training.pipeline.fit_pipeline` in this process (window plan, features,
one Optuna study per family, the ensemble, holdout evaluation against BG/NBD + Gamma-Gamma and
the run rate, the packaged spend and churn bundles); nothing is registered in MLflow and Prefect
is not involved. ``save`` writes both bundles in their usual format (every file SHA-256-checked on
load) and the predictor's settings in one folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import pandas as pd

if TYPE_CHECKING:
    from clv.training.bundle import ChurnBundle, SpendBundle
    from clv.training.pipeline import TrainConfig, TrainingReport

#: Name in the manifest of a saved predictor folder.
PREDICTOR_NAME = "clv-predictor"
SETTINGS_FILE = "predictor.json"
#: Version of the folder layout (bumped when it changes incompatibly).
FORMAT_VERSION = 1
#: Learnt families trained by default (as ``clv train``).
DEFAULT_FAMILIES: tuple[str, ...] = ("xgboost", "lightgbm", "keras_ziln")


class NotFittedError(RuntimeError):
    """The predictor was asked to predict or save before it was fitted."""


def _train_config(
    horizon_days: int, families: Iterable[str], trials: int, seed: int, options: Mapping[str, Any]
) -> TrainConfig:
    from clv.training.pipeline import TrainConfig

    known = {f.name for f in fields(TrainConfig)} - {"horizon_days", "families", "n_trials", "seed"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(
            f"CLVPredictor() got unknown option(s) {unknown}; it accepts horizon_days, "
            f"families, trials, seed and {', '.join(sorted(known))}"
        )
    settings = dict(options)
    if settings.get("as_of") is not None:
        settings["as_of"] = pd.Timestamp(settings["as_of"])
    if isinstance(families, str):
        families = (families,)
    return TrainConfig(
        horizon_days=int(horizon_days),
        families=tuple(families),
        n_trials=int(trials),
        seed=int(seed),
        **settings,
    )


class CLVPredictor:
    """Predict each customer's spend over a horizon, with an interval and a churn probability.

    Parameters
    ----------
    horizon_days : int, default 90
        Days ahead the spend (and churn: no purchase) is predicted over.
    families : sequence of str, default ("xgboost", "lightgbm", "keras_ziln")
        Learnt model families; each gets one Optuna study, then a stacked ensemble of them and
        the references competes with them on the holdout.
    trials : int, default 10
        Optuna trials per family.
    seed : int, default 0
        Seed of the samplers and models: the same data, settings and seed give the same model.
    **options
        Any other :class:`clv.training.pipeline.TrainConfig` field: ``as_of``, ``n_windows``,
        ``step_days``, ``coverage``, ``max_tune_rows``, ``max_fit_rows``, ...

    Attributes
    ----------
    config : TrainConfig
        The training configuration (checked when the predictor is built).
    winner_ : str
        After ``fit``: the model chosen on the holdout.
    holdout_metrics_ : DataFrame
        After ``fit``: holdout metrics (columns) of every candidate and reference (rows).
    churn_metrics_ : DataFrame
        After ``fit``: holdout churn metrics of the churn model and BG/NBD.
    report_ : TrainingReport or None
        After ``fit``: everything the pipeline measured (``None`` after :meth:`load`).
    spend_, churn_ : SpendBundle, ChurnBundle
        After ``fit``: the packaged models.

    Raises
    ------
    TypeError
        When an option is not a training setting (the message lists them).
    ValueError
        When a setting is out of range (e.g. an unknown family).
    """

    def __init__(
        self,
        horizon_days: int = 90,
        *,
        families: Iterable[str] = DEFAULT_FAMILIES,
        trials: int = 10,
        seed: int = 0,
        **options: Any,
    ) -> None:
        self.config = _train_config(horizon_days, families, trials, seed, options)
        self.spend_: SpendBundle | None = None
        self.churn_: ChurnBundle | None = None
        self.report_: TrainingReport | None = None
        self.winner_: str | None = None
        self.holdout_metrics_: pd.DataFrame | None = None
        self.churn_metrics_: pd.DataFrame | None = None
        self.tables_: tuple[str, ...] = ()

    @property
    def horizon_days(self) -> int:
        """Days ahead the model predicts."""
        return int(self.config.horizon_days)

    # -- training ----------------------------------------------------------------------------

    def fit(
        self,
        transactions: pd.DataFrame,
        customers: pd.DataFrame | None = None,
        sustainability: pd.DataFrame | None = None,
        *,
        columns: Mapping[str, str] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> Self:
        """Train on these frames with the pipeline of ``clv train``.

        Parameters
        ----------
        transactions : DataFrame
            ``customer_id``, ``timestamp``, ``amount`` (and optional contract columns).
        customers, sustainability : DataFrame, optional
            The optional tables; a model trained with them needs them to predict.
        columns : mapping, optional
            The transactions' own column names to the contract's
            (``{"CustomerID": "customer_id", "InvoiceDate": "timestamp", ...}``).
        progress : callable, optional
            Called with a short description before each step (default: the log, INFO).

        Returns
        -------
        CLVPredictor
            ``self``, fitted.

        Raises
        ------
        clv.data.validation.ContractError
            When a frame breaks the data contract (the message names row, column and value).
        ValueError
            When no model can be trained on this history (the message gives the numbers).
        """
        from clv.shortcuts import validated
        from clv.training.pipeline import fit_pipeline

        tx = validated(transactions, columns=columns)
        optional = {
            kind: None if frame is None else validated(frame, kind)  # type: ignore[arg-type]
            for kind, frame in (("customers", customers), ("sustainability", sustainability))
        }
        report = fit_pipeline(
            tx,
            self.config,
            customers=optional["customers"],
            sustainability=optional["sustainability"],
            progress=progress,
        )
        self._set_fitted(
            spend=report.spend,
            churn=report.churn,
            winner=report.winner,
            metrics=report.metrics,
            churn_metrics=report.churn_metrics,
            tables=tuple(k for k, v in optional.items() if v is not None),
        )
        self.report_ = report
        return self

    def _set_fitted(
        self,
        *,
        spend: SpendBundle,
        churn: ChurnBundle,
        winner: str,
        metrics: Mapping[str, Mapping[str, float]],
        churn_metrics: Mapping[str, Mapping[str, float]],
        tables: tuple[str, ...],
    ) -> None:
        self.spend_, self.churn_, self.winner_ = spend, churn, winner
        self.holdout_metrics_ = pd.DataFrame(metrics).T.rename_axis("model")
        self.churn_metrics_ = pd.DataFrame(churn_metrics).T.rename_axis("model")
        self.tables_ = tables

    def _fitted(self) -> tuple[SpendBundle, ChurnBundle]:
        if self.spend_ is None or self.churn_ is None:
            raise NotFittedError(
                "this CLVPredictor is not fitted yet: call .fit(transactions) first, or load a "
                "saved one with clv.load(path)"
            )
        return self.spend_, self.churn_

    # -- scoring -----------------------------------------------------------------------------

    def predict(
        self,
        transactions: pd.DataFrame,
        as_of: pd.Timestamp | str | None = None,
        *,
        customers: pd.DataFrame | None = None,
        sustainability: pd.DataFrame | None = None,
        columns: Mapping[str, str] | None = None,
    ) -> pd.DataFrame:
        """Score every customer with a purchase on or before ``as_of``.

        Parameters
        ----------
        transactions : DataFrame
            Transactions up to (at least) ``as_of``; later rows are ignored.
        as_of : Timestamp or str, optional
            Scoring cut-off; a bare date means the end of that day. Default: the end of the day
            of the last transaction.
        customers, sustainability : DataFrame, optional
            Required when the model was fitted with them.
        columns : mapping, optional
            The transactions' own column names to the contract's.

        Returns
        -------
        DataFrame
            The scores of :func:`clv.training.scoring.score_customers` (``customer_id``,
            ``predicted_clv`` with ``predicted_clv_lower`` / ``_upper``, ``churn_probability``,
            ``as_of``, ``horizon_days``), then ``days_since_last_purchase``, ``purchase_days``
            and ``avg_purchase_day_value`` at ``as_of``, which :func:`clv.segment` reads.

        Raises
        ------
        NotFittedError
            Before :meth:`fit` (or :meth:`load`).
        clv.data.validation.ContractError
            When a frame breaks the data contract.
        ValueError
            When a table the model was trained with is missing, or nobody bought by ``as_of``.
        """
        from clv.shortcuts import _cutoff, validated
        from clv.training.scoring import score_customers

        spend, churn = self._fitted()
        given = {"customers": customers, "sustainability": sustainability}
        absent = [kind for kind in self.tables_ if given[kind] is None]
        if absent:
            raise ValueError(
                f"this model was trained with the {' and '.join(absent)} table(s): pass them to "
                f"predict() too ({', '.join(f'{k}=...' for k in absent)})"
            )
        tx = validated(transactions, columns=columns)
        cutoff = _cutoff(tx, as_of)
        optional = {
            kind: None if given[kind] is None else validated(given[kind], kind)  # type: ignore[arg-type]
            for kind in self.tables_
        }
        return score_customers(
            tx,
            spend=spend,
            churn=churn,
            horizon_days=self.horizon_days,
            as_of=cutoff,
            customers=optional.get("customers"),
            sustainability=optional.get("sustainability"),
        )

    # -- persistence -------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the fitted predictor to the folder ``path`` (replaced whole, never half-written).

        The folder holds ``spend/`` and ``churn/`` (the bundle format of ``clv train``'s
        registered models, every file SHA-256-checked on load), ``predictor.json`` (settings,
        winner, holdout metrics) and a ``manifest.json`` with its SHA-256.

        Returns
        -------
        Path
            The folder.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        """
        from clv.data.io import write_folder_atomic
        from clv.models.base import write_manifest
        from clv.training.bundle import save_bundle

        spend, churn = self._fitted()
        settings = {
            "format_version": FORMAT_VERSION,
            "code_version": _code_version(),
            "config": self.config.to_dict(),
            "winner": self.winner_,
            "tables": list(self.tables_),
            "holdout_metrics": _records(self.holdout_metrics_),
            "churn_metrics": _records(self.churn_metrics_),
        }

        def write(folder: Path) -> None:
            save_bundle(spend, folder / "spend")
            save_bundle(churn, folder / "churn")
            (folder / SETTINGS_FILE).write_text(
                # Unsorted keys: the metrics keep the pipeline's order of models and metrics.
                json.dumps(settings, indent=2, default=str),
                encoding="utf-8",
            )
            write_manifest(folder, name=PREDICTOR_NAME, files=[SETTINGS_FILE], meta={})

        return write_folder_atomic(Path(path), write)

    @classmethod
    def load(cls, path: str | Path) -> CLVPredictor:
        """Read a predictor written by :meth:`save`, verifying every file's SHA-256.

        Raises
        ------
        FileNotFoundError
            When ``path`` is not a folder.
        clv.models.base.IntegrityError
            When a file is missing or changed, or the folder is not a saved predictor.
        ValueError
            When the folder was written by an incompatible version.
        """
        from clv.models.base import read_manifest
        from clv.training.bundle import ChurnBundle, SpendBundle, load_bundle
        from clv.training.pipeline import TrainConfig

        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"no saved CLVPredictor at {folder}: not a folder")
        read_manifest(folder, expected_model=PREDICTOR_NAME)
        settings = json.loads((folder / SETTINGS_FILE).read_text(encoding="utf-8"))
        if settings.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{folder} was saved in predictor format {settings.get('format_version')!r}; "
                f"this version of clv reads format {FORMAT_VERSION}: retrain and save again"
            )
        spend = load_bundle(folder / "spend")
        churn = load_bundle(folder / "churn")
        if not isinstance(spend, SpendBundle) or not isinstance(churn, ChurnBundle):
            raise ValueError(f"{folder}: spend/ and churn/ must hold a spend and a churn bundle")
        known = {f.name for f in fields(TrainConfig)}
        config = {k: v for k, v in settings["config"].items() if k in known}
        predictor = cls(
            config.pop("horizon_days"),
            families=config.pop("families"),
            trials=config.pop("n_trials"),
            seed=config.pop("seed"),
            **config,
        )
        predictor._set_fitted(
            spend=spend,
            churn=churn,
            winner=str(settings["winner"]),
            metrics=settings["holdout_metrics"],
            churn_metrics=settings["churn_metrics"],
            tables=tuple(settings.get("tables", ())),
        )
        return predictor

    # -- display -----------------------------------------------------------------------------

    def __repr__(self) -> str:
        cfg = self.config
        head = (
            f"CLVPredictor(horizon_days={cfg.horizon_days}, families={tuple(cfg.families)!r}, "
            f"trials={cfg.n_trials}, seed={cfg.seed})"
        )
        if self.spend_ is None or self.holdout_metrics_ is None:
            return f"{head}, not fitted"
        metrics, winner = self.holdout_metrics_, str(self.winner_)
        gini = "normalized_gini"
        parts = [f"winner {winner}"]
        if gini in metrics.columns and winner in metrics.index:
            parts.append(f"holdout Gini {metrics.loc[winner, gini]:.3f}")
            from clv.training.pipeline import BTYD

            if BTYD in metrics.index and winner != BTYD:
                parts.append(f"BG/NBD {metrics.loc[BTYD, gini]:.3f}")
        parts.append(f"as of {pd.Timestamp(self.spend_.as_of):%Y-%m-%d}")
        return f"{head}, fitted: {', '.join(parts)}"


def _records(frame: pd.DataFrame | None) -> dict[str, dict[str, float]]:
    if frame is None:
        return {}
    return {
        str(model): {str(k): float(v) for k, v in row.items()} for model, row in frame.iterrows()
    }


def _code_version() -> str:
    import clv

    return clv.__version__


def load(path: str | Path) -> CLVPredictor:
    """Read a :class:`CLVPredictor` saved with :meth:`CLVPredictor.save` (SHA-256-checked).

    Parameters
    ----------
    path : str or Path
        The folder ``save`` wrote.

    Returns
    -------
    CLVPredictor
        Fitted, ready to ``predict``.
    """
    return CLVPredictor.load(path)
