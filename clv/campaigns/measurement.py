"""What a campaign earned: attributed metrics per customer, incremental revenue and ROI with CIs.

Each chosen customer — treated or held out — is followed from their (planned) send time for the
attribution window: revenue, orders, conversion, retention (a purchase within twice the window)
and eco adoption (an eco product bought in the window), with the same length of time before the
send as CUPED's covariate. Treated variants are compared with the holdout through step 7's engine
(CUPED on pre-period spend, Holm across variants, the SRM check against the planned shares).
Per segment, the relative uplift is measured on revenue and on the number of orders (CUPED on
the pre-period's orders): a message that changes how often people buy moves both by the same
share, and the count of orders is far less noisy than their value.

Incremental revenue of a variant is ``n_treated × (mean_treated − mean_holdout)`` with the
difference's interval scaled the same way; ROI is ``(margin × incremental revenue − cost) / cost``,
a linear function of the difference, so its interval is the same transform of the difference's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from clv.campaigns.definition import HOLDOUT, CampaignDefinition
from clv.campaigns.errors import CampaignError

__all__ = ["METRICS", "CampaignAnalysis", "analyze_campaign", "attributed_metrics"]

#: Primary metric name in a campaign file → column of :func:`attributed_metrics`.
METRICS: dict[str, str] = {
    "revenue": "revenue",
    "conversion": "converted",
    "retention": "retained",
    "eco_adoption": "eco_adopted",
}
#: Metric column → its pre-period column, CUPED's covariate.
PRE_PERIOD: dict[str, str] = {"revenue": "pre_spend", "orders": "pre_orders"}


def attributed_metrics(
    plan: pd.DataFrame, transactions: pd.DataFrame, *, window_days: int
) -> pd.DataFrame:
    """One row per planned customer with the metrics attributed to the campaign.

    Parameters
    ----------
    plan : DataFrame
        ``customer_id``, ``group``, ``segment``, ``channel``, ``send_at`` (naive UTC).
    transactions : DataFrame
        Contract transactions (``is_eco_product`` used when present).
    window_days : int
        The attribution window after each customer's send time.

    Returns
    -------
    DataFrame
        The plan's ``customer_id``, ``group``, ``segment``, ``channel`` and ``revenue``,
        ``orders``, ``converted``, ``retained``, ``eco_adopted``, ``pre_spend``, ``pre_orders``
        (the window before the send); zeros for customers without transactions.
    """
    window = np.timedelta64(int(window_days) * 86_400_000_000_000, "ns")
    send_at = pd.to_datetime(plan["send_at"])
    if getattr(send_at.dt, "tz", None) is not None:  # the store gives aware UTC
        send_at = send_at.dt.tz_convert("UTC").dt.tz_localize(None)
    ids = plan["customer_id"].astype(str)
    if ids.duplicated().any():
        raise CampaignError(f"the plan lists customer {ids[ids.duplicated()].iloc[0]!r} twice")
    n = len(ids)
    # Each purchase's customer is looked up once (a hash join on the text id); every metric is
    # then a bincount over those positions.
    codes = pd.Index(ids.to_numpy()).get_indexer(pd.Index(transactions["customer_id"].astype(str)))
    mine = codes >= 0
    codes = codes[mine]
    stamps = pd.to_datetime(transactions["timestamp"])
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    offset = stamps.to_numpy("datetime64[ns]")[mine] - send_at.to_numpy("datetime64[ns]")[codes]
    zero = np.timedelta64(0, "ns")
    during = (offset >= zero) & (offset < window)
    before = (offset < zero) & (offset >= -window)
    later = (offset >= zero) & (offset < 2 * window)
    amount = transactions["amount"].to_numpy(dtype=float)[mine]
    eco = (
        transactions["is_eco_product"].fillna(False).astype(bool).to_numpy()[mine]
        if "is_eco_product" in transactions.columns
        else np.zeros(len(codes), dtype=bool)
    )

    def total(mask: np.ndarray) -> np.ndarray:
        return np.bincount(codes[mask], weights=amount[mask], minlength=n)

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(codes[mask], minlength=n)

    orders = count(during & (amount > 0))
    return pd.DataFrame(
        {
            "customer_id": ids.to_numpy(),
            "group": plan["group"].to_numpy(),
            "segment": plan["segment"].to_numpy(),
            "channel": plan["channel"].to_numpy(),
            "revenue": total(during).astype(float),
            "orders": orders.astype(np.int64),
            "converted": (orders > 0).astype(np.int64),
            "retained": (count(later) > 0).astype(np.int64),
            "eco_adopted": (count(during & eco) > 0).astype(np.int64),
            "pre_spend": total(before).astype(float),
            "pre_orders": count(before & (amount > 0)).astype(np.int64),
        }
    )


@dataclass(frozen=True)
class CampaignAnalysis:
    """The measured result of a campaign; :meth:`to_dict` is the ``--json`` contract."""

    campaign_id: str
    metric: str
    incremental_revenue: dict[str, float]
    roi: dict[str, float | None]
    cost: float
    experiment: dict[str, Any]
    variants: list[dict[str, Any]]
    segments: list[dict[str, Any]]
    winner: str | None
    reason: str
    metrics: list[dict[str, Any]] = field(default_factory=list)
    engagement: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``campaign_id``, ``incremental_revenue``, ``roi``, ``srm``, ``variants``,
        ``segments``, ``winner``, ``reason`` (and ``metric``, ``cost``, ``cuped``, ``metrics``:
        every metric of all treated against the holdout, and ``engagement`` when known)."""
        return {
            "campaign_id": self.campaign_id,
            "metric": self.metric,
            "cost": self.cost,
            "incremental_revenue": dict(self.incremental_revenue),
            "roi": dict(self.roi),
            "srm": dict(self.experiment["srm"]),
            "cuped": self.experiment["cuped"],
            "variants": list(self.variants),
            "segments": list(self.segments),
            "winner": self.winner,
            "reason": self.reason,
            "metrics": list(self.metrics),
            "engagement": self.engagement,
        }


def _shares(definition: CampaignDefinition, groups: list[str]) -> dict[str, float]:
    weights = {v.name: float(v.weight) for v in definition.variants}
    total = sum(weights.values())
    h = float(definition.holdout_share)
    shares = {HOLDOUT: h, **{name: (1 - h) * w / total for name, w in weights.items()}}
    present = {g: shares[g] for g in groups if g in shares}
    scale = sum(present.values())
    return {g: s / scale for g, s in present.items()}


def _incremental(
    n_treated: int, absolute: dict[str, Any], cost: float, margin: float
) -> tuple[dict[str, float], dict[str, float | None]]:
    def scaled(key: str) -> float:
        return float(n_treated * float(absolute[key]))

    revenue = {k: scaled(k) for k in ("estimate", "ci_low", "ci_high")}
    if cost > 0:
        roi: dict[str, float | None] = {
            k: (margin * revenue[k] - cost) / cost for k in ("estimate", "ci_low", "ci_high")
        }
    else:
        roi = {"estimate": None, "ci_low": None, "ci_high": None}
    return revenue, roi


def analyze_campaign(
    campaign_id: str,
    definition: CampaignDefinition,
    plan: pd.DataFrame,
    transactions: pd.DataFrame,
    *,
    cost: float | None = None,
) -> CampaignAnalysis:
    """Measure a sent campaign against its holdout.

    Parameters
    ----------
    campaign_id : str
        The campaign.
    definition : CampaignDefinition
        Its definition (primary metric, margin, window, planned shares).
    plan : DataFrame
        Its plan rows (see :data:`clv.campaigns.planning.PLAN_COLUMNS`).
    transactions : DataFrame
        Contract transactions covering the attribution window and the pre-period.
    cost : float, optional
        What was actually spent (the outbox's sent messages); the plan's cost by default.

    Returns
    -------
    CampaignAnalysis
        Overall incremental revenue and ROI with intervals, per variant and per segment.
    """
    from clv.experiments.analysis import analyze
    from clv.experiments.errors import ExperimentInputError

    if not (plan["group"] == HOLDOUT).any():
        raise CampaignError(f"campaign {campaign_id!r} has no holdout: nothing to compare with")
    units = attributed_metrics(plan, transactions, window_days=definition.attribution_window_days)
    metric = METRICS[definition.primary_metric]
    spent = float(plan["cost"].sum()) if cost is None else float(cost)
    margin = float(definition.margin)
    groups = sorted(set(units["group"]))
    # CUPED on the same metric's pre-period value, where it varies (revenue and orders).
    covariates = {target: pre for target, pre in PRE_PERIOD.items() if units[pre].var() > 0}

    def run(frame: pd.DataFrame, target: str, shares: dict[str, float] | None) -> Any:
        return analyze(
            frame,
            metric=target,
            variant_col="group",
            control=HOLDOUT,
            covariate=covariates.get(target),
            expected_shares=shares,
            metric_type="mean" if target == "orders" else "auto",
        )

    try:
        result = run(units, metric, _shares(definition, groups))
        revenue_result = result if metric == "revenue" else run(units, "revenue", None)
        # All treated together against the holdout: the campaign's total effect.
        pooled = units.assign(group=np.where(units["group"] == HOLDOUT, HOLDOUT, "treated"))
        overall = run(pooled, "revenue", None).variant("treated")
    except ExperimentInputError as err:
        raise CampaignError(f"campaign {campaign_id!r}: {err}") from None
    treated = units[units["group"] != HOLDOUT]
    incremental, roi = _incremental(len(treated), overall.absolute.to_dict(), spent, margin)
    variants = []
    for variant in result.variants:
        entry = variant.to_dict()
        revenue_variant = revenue_result.variant(variant.variant)
        n = int((units["group"] == variant.variant).sum())
        variant_cost = float(plan.loc[plan["group"] == variant.variant, "cost"].sum())
        inc, variant_roi = _incremental(n, revenue_variant.absolute.to_dict(), variant_cost, margin)
        entry.update(incremental_revenue=inc, roi=variant_roi, cost=variant_cost)
        variants.append(entry)
    metrics = []
    for name, column in METRICS.items():
        # Conversion, retention and eco adoption beside revenue: all treated against the
        # holdout through the same engine (CUPED on pre-period spend for revenue only).
        try:
            effect = run(pooled, column, None).variant("treated").to_dict()
        except ExperimentInputError as err:
            metrics.append({"metric": name, "primary": name == definition.primary_metric,
                            "error": str(err)})  # fmt: skip
            continue
        metrics.append({"metric": name, "primary": name == definition.primary_metric, **effect})
    segments = []
    for segment, part in units.groupby("segment", sort=True):
        pooled_part = part.assign(group=np.where(part["group"] == HOLDOUT, HOLDOUT, "treated"))
        counts = pooled_part["group"].value_counts()
        if counts.get(HOLDOUT, 0) < 2 or counts.get("treated", 0) < 2:
            continue
        try:
            seg = run(pooled_part, "revenue", None).variant("treated")
        except ExperimentInputError:
            continue  # e.g. no revenue at all in a small segment: nothing to measure
        try:
            orders = run(pooled_part, "orders", None).variant("treated").relative.to_dict()
        except ExperimentInputError:
            orders = None  # no order at all in the segment
        seg_cost = float(plan.loc[plan["segment"] == segment, "cost"].sum())
        inc, seg_roi = _incremental(
            int(counts["treated"]), seg.absolute.to_dict(), seg_cost, margin
        )
        segments.append(
            {
                "segment": str(segment),
                "n_treated": int(counts["treated"]),
                "n_holdout": int(counts[HOLDOUT]),
                "relative": seg.relative.to_dict(),
                "relative_orders": orders,
                "incremental_revenue": inc,
                "roi": seg_roi,
                "cost": seg_cost,
            }
        )
    return CampaignAnalysis(
        campaign_id=campaign_id,
        metric=definition.primary_metric,
        incremental_revenue=incremental,
        roi=roi,
        cost=spent,
        experiment=result.to_dict(),
        variants=variants,
        segments=segments,
        winner=result.winner,
        reason=result.reason,
        metrics=metrics,
    )
