"""Behavioural features as of a cut-off: rhythm, recent activity, trend, mix and timing.

Every feature is computed from rows at or before the cut-off only. Columns that need an optional
transaction column (``product_category``, ``channel``) are produced only when the input has it.
"""

from __future__ import annotations

import pandas as pd
import polars as pl

from clv.features.rfm import Transactions, history, visible_purchase_days

#: Look-back windows (days before the cut-off) for recent counts and spend.
WINDOWS: tuple[int, ...] = (30, 90, 180, 365)


def behaviour_features(transactions: Transactions, *, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Behavioural features per customer as of ``cutoff``.

    Parameters
    ----------
    transactions : DataFrame or VisibleHistory
        Validated transactions (see ``clv.data.contract``), or the history of ``cutoff``.
    cutoff : Timestamp
        Rows after this instant are ignored.

    Returns
    -------
    DataFrame
        Indexed by ``customer_id`` (customers with a purchase on or before ``cutoff``), with:
        inter-purchase gap mean/std/cv and the current gap relative to the mean; purchase days
        and gross spend in the last 30/90/180/365 days; spend trend (last 90 days vs the 90
        before); weekend and November-December shares of purchase days; and, when the columns
        exist, category count and entropy and the share of spend per channel.
    """
    cutoff = pd.Timestamp(cutoff)
    hist = history(transactions, cutoff, columns=("product_category", "channel"))
    days = visible_purchase_days(transactions, cutoff).filter(pl.col("gross") > 0)
    cutoff_day = pl.lit(cutoff.date())
    days = days.sort("customer_id", "day").with_columns(
        (cutoff_day - pl.col("day")).dt.total_days().alias("age"),
        pl.col("day").diff().over("customer_id").dt.total_days().alias("gap"),
    )
    window_aggs = []
    for w in WINDOWS:
        recent = pl.col("age") < w
        window_aggs += [
            recent.sum().cast(pl.Float64).alias(f"purchase_days_{w}d"),
            pl.col("gross").filter(recent).sum().alias(f"spend_{w}d"),
        ]
    prior = (pl.col("age") >= 90) & (pl.col("age") < 180)
    out = days.group_by("customer_id").agg(
        pl.col("gap").mean().alias("gap_mean"),
        pl.col("gap").std().alias("gap_std"),
        pl.col("age").min().cast(pl.Float64).alias("_since_last"),
        *window_aggs,
        pl.col("gross").filter(prior).sum().alias("_spend_prior_90d"),
        (pl.col("day").dt.weekday() >= 6).mean().alias("weekend_share"),
        pl.col("day").dt.month().is_in([11, 12]).mean().alias("holiday_season_share"),
    )
    out = out.with_columns(
        (pl.col("gap_std") / pl.col("gap_mean")).alias("gap_cv"),
        (pl.col("_since_last") / pl.col("gap_mean")).alias("gap_overdue_ratio"),
        # log ratio of the last 90 days to the 90 before; +1 keeps it finite for new silences
        ((pl.col("spend_90d") + 1.0).log() - (pl.col("_spend_prior_90d") + 1.0).log()).alias(
            "spend_trend_90d"
        ),
    ).drop("_since_last", "_spend_prior_90d")

    sales = hist.filter(pl.col("amount") > 0)
    if "product_category" in hist.columns:
        cat = (
            sales.drop_nulls("product_category")
            .group_by("customer_id", "product_category", maintain_order=True)
            .agg(pl.col("amount").sum().alias("v"))
            .with_columns((pl.col("v") / pl.col("v").sum().over("customer_id")).alias("p"))
            .group_by("customer_id")
            .agg(
                pl.len().cast(pl.Float64).alias("category_count"),
                (-(pl.col("p") * pl.col("p").log())).sum().alias("category_entropy"),
            )
        )
        out = out.join(cat, on="customer_id", how="left")
    if "channel" in hist.columns:
        channels = sorted(c for c in sales["channel"].drop_nulls().unique().to_list())
        if channels:
            share = (
                sales.drop_nulls("channel")
                .group_by("customer_id")
                .agg(
                    [
                        (
                            pl.col("amount").filter(pl.col("channel") == ch).sum()
                            / pl.col("amount").sum()
                        ).alias(f"channel_share_{ch}")
                        for ch in channels
                    ]
                )
            )
            out = out.join(share, on="customer_id", how="left")
    return out.sort("customer_id").to_pandas().set_index("customer_id")
