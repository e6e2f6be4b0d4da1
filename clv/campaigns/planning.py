"""Plan a campaign: audience → eligibility → holdout and variants → budgeted targeting → send times.

The measurement is only as good as the holdout. Customers are assigned to the holdout and the
variants by step 7's salted hash *before* any budget decision, and the targeting rule is then
applied to everyone eligible, holdout included: walking down one ranking, treated customers
spend the budget and holdout customers are marked "would have been sent" at no cost. The
holdout is therefore a random sample of exactly the customers the campaign chose, and treated
minus holdout is the campaign's causal effect on them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clv.campaigns.definition import HOLDOUT, CampaignDefinition
from clv.campaigns.eligibility import eligibility
from clv.campaigns.errors import CampaignError
from clv.campaigns.personalisation import content_fields, send_times
from clv.campaigns.targeting import (
    UPLIFT_COVARIATES,
    UPLIFT_METRICS,
    Tau2Method,
    candidates,
    measured_for_targeting,
    segment_covariates,
    shrink_uplift,
)

if TYPE_CHECKING:
    import dask.dataframe as dd

__all__ = ["PLAN_COLUMNS", "Plan", "campaign_id_for", "plan_campaign"]

#: Columns of a plan, in order (``plan.parquet``).
PLAN_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "group",
    "segment",
    "channel",
    "send_at",
    "predicted_clv",
    "expected_incremental_value",
    "cost",
)


@dataclass(frozen=True)
class Plan:
    """A planned campaign.

    Attributes
    ----------
    campaign_id : str
        ``<name>-<first 8 hex of the content hash>``: the same definition and inputs give the
        same id.
    content_hash : str
        SHA-256 of the definition and the inputs' identity.
    rows : DataFrame
        Columns :data:`PLAN_COLUMNS`: every chosen customer, ``group`` ``holdout`` or a variant.
    fields : DataFrame
        The personalisation fields of the chosen customers (for rendering).
    summary : dict
        Audience size, exclusions by reason, counts per group and channel, spend.
    uplift : DataFrame
        The relative uplift the targeting used per (segment, channel), from
        :func:`clv.campaigns.targeting.shrink_uplift` (``segment``, ``channel``, ``uplift``,
        ``source``).
    """

    campaign_id: str
    content_hash: str
    rows: pd.DataFrame
    fields: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    uplift: pd.DataFrame = field(default_factory=pd.DataFrame)


def campaign_id_for(definition: CampaignDefinition, inputs: dict[str, Any]) -> tuple[str, str]:
    """The campaign's id and content hash from its definition and the identity of its inputs."""
    payload = json.dumps(
        {"definition": definition.model_dump(mode="json"), "inputs": inputs},
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(payload.encode()).hexdigest()
    return f"{definition.name}-{digest[:8]}", digest


def plan_campaign(
    definition: CampaignDefinition,
    *,
    scores: pd.DataFrame,
    customers: pd.DataFrame,
    transactions: pd.DataFrame | dd.DataFrame,
    segments: pd.Series | None = None,
    contacts: pd.DataFrame | None = None,
    suppressed: Iterable[str] = (),
    history: pd.DataFrame | None = None,
    measured_uplift: pd.DataFrame | None = None,
    region_timezones: dict[str, str] | None = None,
    inputs: dict[str, Any] | None = None,
    uplift_metrics: tuple[str, ...] = UPLIFT_METRICS,
    uplift_covariates: tuple[str, ...] = UPLIFT_COVARIATES,
    uplift_tau2_method: Tau2Method = "bayes",
) -> Plan:
    """Choose who gets which variant on which channel when, under the budget, with a holdout.

    Parameters
    ----------
    definition : CampaignDefinition
        The campaign.
    scores : DataFrame
        The champion's scores: ``customer_id``, ``predicted_clv``, ``churn_probability`` and
        the other rule columns.
    customers : DataFrame
        Contract customers (``marketing_opt_in``, ``region``, ``eco_preference``).
    transactions : DataFrame or dask DataFrame
        Contract transactions (habits for the send time, content fields); a dask DataFrame with
        every customer's rows in one partition is summarised per customer on its cluster
        (:mod:`clv.distributed.campaigns`), with the same plan as a result.
    segments : Series, optional
        Active segment name per customer id; required when the audience names segments.
    contacts : DataFrame, optional
        Addresses and opt-outs (see :func:`clv.campaigns.eligibility.eligibility`).
    suppressed : iterable of str
        Customers never to contact.
    history : DataFrame, optional
        Earlier messages (``customer_id``, ``sent_at``) for the frequency cap.
    measured_uplift : DataFrame, optional
        Uplift measured on earlier campaigns (``segment``, ``channel``, ``uplift``,
        ``standard_error``, optionally ``metric``): the targeting's prior, shrunk by precision
        towards a meta-regression on the segments' covariates (see
        :func:`clv.campaigns.targeting.shrink_uplift`).
    region_timezones : dict, optional
        Region → IANA time zone for send times.
    inputs : dict, optional
        Identity of the inputs (file hashes, score run) for the content hash.
    uplift_metrics : tuple of str
        When ``measured_uplift`` has a ``metric`` column, which metric's rows to use, first
        present per (segment, channel) (default ``orders``, then ``revenue``).
    uplift_covariates : tuple of str
        Score columns whose per-segment mean (over the eligible customers; log for
        ``predicted_clv``) are the meta-regression's covariates; those the scores lack are left
        out, ``()`` shrinks towards one global estimate.
    uplift_tau2_method : {"bayes", "reml", "dl"}
        How the residual between-segment variance of the uplift is found: integrated over its
        posterior (default; with a handful of segments a point estimate is often zero and pools
        them all), or estimated by restricted maximum likelihood or DerSimonian–Laird's method
        of moments (see :func:`clv.campaigns.targeting.meta_regression`).

    Returns
    -------
    Plan
        The plan rows, the personalisation fields and a summary.
    """
    if "customer_id" not in scores.columns or "predicted_clv" not in scores.columns:
        raise CampaignError("the scores need customer_id and predicted_clv columns")
    frame = scores.assign(customer_id=scores["customer_id"].astype(str))
    frame = frame.drop_duplicates("customer_id")
    segment = (
        segments.astype(str).reindex(frame["customer_id"].to_numpy()).to_numpy()
        if segments is not None
        else np.full(len(frame), "all", dtype=object)
    )
    frame = frame.assign(segment=pd.Series(segment, index=frame.index).fillna("unsegmented"))
    if definition.audience.segments:
        if segments is None:
            raise CampaignError(
                "the audience names segments but there is no active segmentation: run "
                "`clv segment run` and approve a version, or use an audience rule"
            )
        definition.check_segments(sorted(set(segments.astype(str))))
    customer_table = customers.assign(customer_id=customers["customer_id"].astype(str))
    customer_table = customer_table.drop_duplicates("customer_id")
    extra = [
        c for c in ("region", "eco_preference", "marketing_opt_in") if c in customer_table.columns
    ]
    frame = frame.drop(columns=[c for c in extra if c in frame.columns]).merge(
        customer_table[["customer_id", *extra]], on="customer_id", how="left"
    )
    audience = _audience(definition, frame)
    n_audience = int(audience.sum())
    frame = frame[audience].reset_index(drop=True)
    if frame.empty:
        raise CampaignError(
            f"campaign {definition.name!r}: no customer matches the audience "
            f"({_describe_audience(definition)})"
        )

    start = pd.Timestamp(definition.start).tz_convert("UTC").tz_localize(None)
    end = pd.Timestamp(definition.end).tz_convert("UTC").tz_localize(None)
    channel_names = list(definition.channels)
    allowed = eligibility(
        frame,
        channel_names,
        contacts=contacts,
        suppressed=suppressed,
        history=history,
        max_messages=definition.frequency_cap.max_messages,
        per_days=definition.frequency_cap.per_days,
        now=start,
        channel_kinds={n: c.kind for n, c in definition.channels.items()},
    )
    eligible = frame[frame["customer_id"].isin(allowed.eligible_ids)].reset_index(drop=True)
    if eligible.empty:
        reasons = ", ".join(f"{r}: {n}" for r, n in allowed.excluded.items() if n)
        raise CampaignError(
            f"campaign {definition.name!r}: no eligible customer among the {n_audience:,} in "
            f"the audience ({reasons})"
        )

    from clv.experiments.assignment import assign

    weights = {v.name: float(v.weight) for v in definition.variants}
    groups = assign(
        eligible["customer_id"].tolist(),
        definition.name,
        variants=weights,
        holdout_share=float(definition.holdout_share),
        holdout_name=HOLDOUT,
    )
    eligible = eligible.assign(group=groups.reindex(eligible["customer_id"]).to_numpy())

    covariates = segment_covariates(eligible, uplift_covariates)
    uplift = shrink_uplift(
        measured_for_targeting(measured_uplift, uplift_metrics),
        sorted(set(eligible["segment"])),
        channel_names,
        prior_rate=float(definition.uplift_prior.rate),
        prior_sd=float(definition.uplift_prior.sd),
        covariates=covariates,
        tau2_method=uplift_tau2_method,
    )
    # Spend in the window is the window's share of the CLV horizon (scores from `clv score`
    # say their horizon; scores without one are taken as the window's spend).
    horizon = (
        float(pd.to_numeric(scores["horizon_days"], errors="coerce").dropna().iloc[0])
        if "horizon_days" in scores.columns and scores["horizon_days"].notna().any()
        else float(definition.attribution_window_days)
    )
    window_share = min(1.0, float(definition.attribution_window_days) / horizon)
    pairs = candidates(
        eligible[["customer_id", "segment", "predicted_clv"]],
        {n: float(c.cost_per_message) for n, c in definition.channels.items()},
        uplift,
        margin=float(definition.margin),
        eligible=allowed.channels,
        window_share=window_share,
    )
    chosen = _choose(pairs, eligible.set_index("customer_id")["group"], float(definition.budget))
    if chosen.empty:
        raise CampaignError(
            f"campaign {definition.name!r}: no message is worth its cost (expected uplift × "
            "margin × predicted CLV never exceeds the channel cost); lower the costs, raise the "
            "uplift prior or widen the audience"
        )
    at = send_times(
        transactions,
        customer_table[customer_table["customer_id"].isin(chosen["customer_id"])],
        start=start,
        end=end,
        segments=eligible.set_index("customer_id")["segment"],
        region_timezones=region_timezones,
        earliest_hour=definition.send_hours.earliest,
        latest_hour=max(definition.send_hours.latest - 1, definition.send_hours.earliest),
    )
    chosen = chosen.assign(
        send_at=at.reindex(chosen["customer_id"]).fillna(start).to_numpy(),
    )
    chosen.loc[chosen["group"] == HOLDOUT, "cost"] = 0.0
    rows = chosen[list(PLAN_COLUMNS)].reset_index(drop=True)
    fields = content_fields(
        customer_table,
        transactions,
        scores=rows[["customer_id", "predicted_clv"]],
        segments=rows.set_index("customer_id")["segment"],
        contacts=contacts,
        start=start,
    )
    campaign_id, digest = campaign_id_for(definition, inputs or {})
    summary = {
        "audience": n_audience,
        "excluded": allowed.excluded,
        "eligible": len(eligible),
        "chosen": len(rows),
        "groups": {str(k): int(v) for k, v in rows["group"].value_counts().sort_index().items()},
        "channels": {
            str(k): int(v)
            for k, v in rows.loc[rows["group"] != HOLDOUT, "channel"].value_counts().items()
        },
        "total_cost": float(rows["cost"].sum()),
        "budget": float(definition.budget),
        "expected_incremental_value": float(
            rows.loc[rows["group"] != HOLDOUT, "expected_incremental_value"].sum()
        ),
        "value_window_share": window_share,
        "uplift_sources": {
            str(k): int(v) for k, v in uplift["source"].value_counts().sort_index().items()
        },
        "uplift_covariates": [str(c) for c in covariates.columns],
    }
    return Plan(campaign_id, digest, rows, fields, summary, uplift)


def _audience(definition: CampaignDefinition, frame: pd.DataFrame) -> np.ndarray:
    mask = np.ones(len(frame), dtype=bool)
    if definition.audience.segments:
        mask &= frame["segment"].isin(definition.audience.segments).to_numpy()
    rule = definition.audience.compiled_rule
    if rule is not None:
        missing = [f for f in rule.fields if f not in frame.columns]
        if missing:
            raise CampaignError(
                f"the audience rule uses {', '.join(map(repr, missing))}, which the scores do "
                f"not have (columns: {', '.join(map(str, frame.columns[:20]))})"
            )
        mask &= rule.evaluate(frame).to_numpy(dtype=bool)
    return mask


def _describe_audience(definition: CampaignDefinition) -> str:
    parts = []
    if definition.audience.segments:
        parts.append("segments " + ", ".join(definition.audience.segments))
    if definition.audience.rule:
        parts.append(f"rule {definition.audience.rule!r}")
    return "; ".join(parts)


def _choose(pairs: pd.DataFrame, groups: pd.Series, budget: float) -> pd.DataFrame:
    """One ranking for everyone; treated customers spend the budget, the holdout rides along."""
    cost = pairs["cost"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(cost > 0, pairs["net"].to_numpy() / cost, np.inf)
    ranked = pairs.assign(_ratio=ratio)[pairs["net"].to_numpy() > 0]
    ranked = ranked.sort_values(
        ["_ratio", "net", "customer_id"], ascending=[False, False, True], kind="stable"
    )
    ranked = ranked.drop_duplicates("customer_id", keep="first")
    ranked = ranked.assign(group=groups.reindex(ranked["customer_id"]).to_numpy())
    treated_cost = np.where(ranked["group"].to_numpy() == HOLDOUT, 0.0, ranked["cost"].to_numpy())
    # The prefix of the ranking whose treated part fits the budget: the holdout in that prefix
    # are the customers the same rule would have sent to.
    within = np.cumsum(treated_cost) <= budget + 1e-9
    last = int(np.argmin(within)) if not within.all() else len(within)
    return ranked.iloc[:last].drop(columns="_ratio")
