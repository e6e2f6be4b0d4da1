"""Score customers with a registered model: one row per customer seen up to the as-of date."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from clv.features import build_features
from clv.training.bundle import ChurnBundle, SpendBundle
from clv.training.windows import end_of_day

#: Columns every scores file starts with, in this order (later steps read them by name).
SCORE_COLUMNS = (
    "customer_id",
    "predicted_clv",
    "predicted_clv_lower",
    "predicted_clv_upper",
)

#: What segmentation reads besides the predictions, copied from the features when present: the RFM
#: inputs, the eco share of spend and the sustainability engagement (absent without those data).
PROFILE_COLUMNS = (
    "days_since_last_purchase",
    "purchase_days",
    "avg_purchase_day_value",
    "eco_spend_share",
    "eco_engagement_score",
)


def score_customers(
    transactions: pd.DataFrame,
    *,
    spend: SpendBundle,
    horizon_days: int,
    as_of: pd.Timestamp | None = None,
    churn: ChurnBundle | None = None,
    customers: pd.DataFrame | None = None,
    sustainability: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Predicted spend over the horizon (with interval) and churn probability per customer.

    Parameters
    ----------
    transactions : DataFrame
        Validated transactions; rows after ``as_of`` are ignored.
    spend : SpendBundle
        The spend model.
    horizon_days : int
        Must equal the horizon the model was trained for.
    as_of : Timestamp, optional
        Scoring cut-off (default: the day of the last transaction, end of day).
    churn : ChurnBundle, optional
        Adds ``churn_probability`` when given (same horizon).
    customers, sustainability : DataFrame, optional
        Optional tables, as in training.

    Returns
    -------
    DataFrame
        :data:`SCORE_COLUMNS`, then ``churn_probability`` (when a churn model is given),
        ``as_of`` and ``horizon_days``, then the :data:`PROFILE_COLUMNS` the features hold; one
        row per customer with a purchase on or before ``as_of``, sorted by ``customer_id``.

    Raises
    ------
    ValueError
        When the horizon differs from the model's, or no customer has a purchase by ``as_of``.
    """
    for bundle in (spend, churn):
        if bundle is not None and bundle.horizon_days != horizon_days:
            raise ValueError(
                f"the {bundle.family} model was trained for a {bundle.horizon_days}-day horizon, "
                f"not {horizon_days}; score with --horizon-days {bundle.horizon_days} or train "
                f"a model with --horizon-days {horizon_days}"
            )
    from clv.progress import report

    last = pd.Timestamp(transactions["timestamp"].max())
    cutoff = end_of_day(last) if as_of is None else pd.Timestamp(as_of)
    report(f"features of {transactions['customer_id'].nunique():,} customers at {cutoff:%Y-%m-%d}")
    features = customer_features(
        transactions,
        as_of=cutoff,
        horizon_days=horizon_days,
        customers=customers,
        sustainability=sustainability,
    )
    report(f"predicting spend with {spend.family} for {len(features):,} customers")
    out = spend.predict_frame(features)
    if churn is not None:
        report("predicting churn")
        out["churn_probability"] = churn.predict_frame(features)["churn_probability"]
    out["as_of"] = cutoff
    out["horizon_days"] = horizon_days
    for column in PROFILE_COLUMNS:
        if column in features.columns:
            out[column] = features[column].to_numpy()
    out.index = out.index.astype(str)
    out = out.rename_axis("customer_id").reset_index().sort_values("customer_id")
    return out.reset_index(drop=True)


def customer_features(
    transactions: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    horizon_days: int,
    customers: pd.DataFrame | None = None,
    sustainability: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The features a bundle scores: every customer with a purchase by ``as_of``.

    Raises
    ------
    ValueError
        When no transaction lies on or before ``as_of``.
    """
    cutoff = pd.Timestamp(as_of)
    seen = transactions[transactions["timestamp"] <= cutoff]
    if seen.empty:
        raise ValueError(
            f"no transaction on or before the as-of date {cutoff:%Y-%m-%d}; nobody to score"
        )
    return build_features(
        seen,
        cutoff=cutoff,
        horizon_days=horizon_days,
        customers=customers,
        sustainability=sustainability,
    )


@dataclass
class RegisteredModels:
    """The spend (and, when registered under the alias, churn) models behind a registry alias."""

    spend: SpendBundle
    spend_version: int
    churn: ChurnBundle | None
    churn_version: int | None


def load_registered(alias: str, dst: Path) -> RegisteredModels:
    """Download and verify ``clv-spend@alias`` and, when it exists, ``clv-churn@alias``.

    Raises
    ------
    clv.tracking.NoSuchModelError
        When ``clv-spend`` has no such alias (the message names ``clv promote``).
    clv.models.base.IntegrityError
        When a downloaded file does not match its recorded SHA-256.
    ValueError
        When the alias points at something that is not a spend or a churn model.
    """
    from clv import tracking
    from clv.training.bundle import load_bundle

    spend_info = tracking.get_version(tracking.SPEND_MODEL, alias=alias)
    spend = load_bundle(
        tracking.download_bundle(tracking.SPEND_MODEL, alias=alias, dst=Path(dst) / "spend")
    )
    if spend_info is None or not isinstance(spend, SpendBundle):
        raise ValueError(f"clv-spend@{alias} is not a spend model")
    churn_info = tracking.get_version(tracking.CHURN_MODEL, alias=alias)
    churn = None
    if churn_info is not None:
        loaded = load_bundle(
            tracking.download_bundle(tracking.CHURN_MODEL, alias=alias, dst=Path(dst) / "churn")
        )
        if not isinstance(loaded, ChurnBundle):
            raise ValueError(f"clv-churn@{alias} is not a churn model")
        churn = loaded
    return RegisteredModels(
        spend=spend,
        spend_version=spend_info.version,
        churn=churn,
        churn_version=None if churn_info is None else churn_info.version,
    )
