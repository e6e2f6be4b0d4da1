"""Sustainability and customer-profile features, present only when the input has the data.

From transactions (when ``is_eco_product`` / ``carbon_kg`` exist): eco share of spend, its trend
and CO2e per purchase. From the optional customers table: stated eco preference, marketing opt-in
and days since sign-up. From the optional sustainability table: engagement scores. Nothing is
filled in: a customer without a row in an optional table gets missing values, which tree models
treat as such.

The customers and sustainability tables are snapshots without a time column. Backtests at an
earlier cut-off should use snapshots taken then; a later snapshot can carry information from after
the cut-off (e.g. ``carbon_saved_kg``).
"""

from __future__ import annotations

import pandas as pd
import polars as pl

from clv.features.rfm import Transactions, history

SUSTAINABILITY_SCORES: tuple[str, ...] = (
    "eco_engagement_score",
    "recycling_program",
    "carbon_offset_opt_in",
    "green_newsletter_clicks",
    "carbon_saved_kg",
)


def sustainability_features(
    transactions: Transactions,
    *,
    cutoff: pd.Timestamp,
    customers: pd.DataFrame | None = None,
    sustainability: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Eco and profile features per customer as of ``cutoff``.

    Parameters
    ----------
    transactions : DataFrame
        Validated transactions.
    cutoff : Timestamp
        Rows after this instant are ignored; sign-ups after it are ignored too.
    customers, sustainability : DataFrame, optional
        Validated optional tables.

    Returns
    -------
    DataFrame
        Indexed by ``customer_id`` (customers with sales on or before ``cutoff``); no columns when
        the inputs carry no sustainability or profile information.
    """
    cutoff = pd.Timestamp(cutoff)
    hist = history(transactions, cutoff, columns=("is_eco_product", "carbon_kg"))
    sales = hist.filter(pl.col("amount") > 0)
    cutoff_day = pl.lit(cutoff.date())
    aggs: list[pl.Expr] = []
    if "is_eco_product" in hist.columns:
        eco = pl.col("is_eco_product").fill_null(False)
        late = (cutoff_day - pl.col("timestamp").dt.date()).dt.total_days() < 180
        aggs += [
            (pl.col("amount").filter(eco).sum() / pl.col("amount").sum()).alias("eco_spend_share"),
            (
                pl.col("amount").filter(eco & late).sum() / pl.col("amount").filter(late).sum()
                - pl.col("amount").filter(eco & ~late).sum() / pl.col("amount").filter(~late).sum()
            ).alias("eco_share_trend_180d"),
        ]
    if "carbon_kg" in hist.columns:
        aggs += [
            (pl.col("carbon_kg").sum() / pl.len()).alias("carbon_kg_per_purchase"),
            (pl.col("carbon_kg").sum() / pl.col("amount").sum()).alias("carbon_kg_per_currency"),
        ]
    base = sales.group_by("customer_id").agg(pl.len().alias("_n"), *aggs).drop("_n")
    out = base.sort("customer_id").to_pandas().set_index("customer_id")
    if customers is not None:
        profile = customers.set_index("customer_id")
        profile = profile[profile["signup_date"] <= cutoff]
        extra = pd.DataFrame(index=profile.index)
        extra["days_since_signup"] = (cutoff.normalize() - profile["signup_date"]).dt.days.astype(
            "float64"
        )
        if "eco_preference" in profile:
            extra["eco_preference"] = profile["eco_preference"].astype("float64")
        if "marketing_opt_in" in profile:
            extra["marketing_opt_in"] = (
                profile["marketing_opt_in"].astype("Float64").astype("float64")
            )
        out = out.join(extra, how="left")
    if sustainability is not None:
        scores = sustainability.set_index("customer_id")
        present = [c for c in SUSTAINABILITY_SCORES if c in scores]
        out = out.join(scores[present].astype("Float64").astype("float64"), how="left")
    return out
