"""Who to contact, through which channel, under a budget: targeting by expected incremental value.

For each customer and channel the expected incremental value is ``uplift(segment, channel) ×
value(customer) − cost(channel)``: the relative uplift a message causes (measured on earlier
campaigns, shrunk towards the channel's global estimate; a configured prior where nothing was
measured) times the value at stake (the champion's predicted CLV times the margin), less what the
message costs. Customers who would buy anyway (large value, no uplift) are not worth a message;
"highest CLV first" pays for exactly those.

Selection is greedy by net value per unit of cost, one channel per customer (the one with the
best ratio), until the budget is spent; a candidate whose net value is not positive is never
sent. The two baselines a benchmark compares with — highest CLV first and random — use each
customer's cheapest channel and the same budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd

from clv.campaigns.errors import CampaignError

__all__ = [
    "STRATEGIES",
    "candidates",
    "select_under_budget",
    "shrink_uplift",
]

Strategy = Literal["incremental", "highest_clv", "random"]
STRATEGIES: tuple[str, ...] = ("incremental", "highest_clv", "random")
#: Columns of the frame :func:`shrink_uplift` reads (measured results of earlier campaigns).
MEASURED_COLUMNS = ("segment", "channel", "uplift", "standard_error")


def shrink_uplift(
    measured: pd.DataFrame | None,
    segments: list[str],
    channels: list[str],
    *,
    prior_rate: float,
    prior_sd: float,
) -> pd.DataFrame:
    """Relative uplift per (segment, channel): measured estimates shrunk by their precision.

    For each channel the measured segment estimates ``u_s ± se_s`` are pooled into a global
    estimate (precision-weighted, itself shrunk towards ``prior_rate`` with ``prior_sd``), the
    between-segment spread ``τ²`` is estimated by DerSimonian–Laird's method of moments (at
    least ``(prior_sd / 2)²``), and each segment's estimate becomes
    ``w u_s + (1 − w) global`` with ``w = τ² / (τ² + se_s²)``: a precise measurement keeps its
    value, a noisy one moves towards the global estimate. Segments never measured on a channel
    get the channel's global estimate (the prior when the channel was never measured).

    Parameters
    ----------
    measured : DataFrame or None
        Columns :data:`MEASURED_COLUMNS`; ``None`` or empty when nothing was measured yet.
    segments, channels : list of str
        The cells to fill.
    prior_rate, prior_sd : float
        The configured prior relative uplift and its standard deviation.

    Returns
    -------
    DataFrame
        ``segment``, ``channel``, ``uplift``, ``source`` (``measured``, ``channel`` or
        ``prior``), one row per cell.
    """
    if not prior_sd > 0:
        raise CampaignError(f"the uplift prior's sd must be positive (got {prior_sd!r})")
    rows = []
    table = measured if measured is not None else pd.DataFrame(columns=list(MEASURED_COLUMNS))
    missing = [c for c in MEASURED_COLUMNS if c not in table.columns]
    if missing:
        raise CampaignError(f"measured uplift lacks column(s) {', '.join(missing)}")
    for channel in channels:
        usable = table[table["standard_error"] > 0]
        here = usable[usable["channel"] == channel]
        # A multi-channel campaign measured its segments over all its channels ("all"): that
        # measurement stands for each channel that has none of its own.
        pooled_rows = usable[
            (usable["channel"] == "all") & ~usable["segment"].isin(here["segment"])
        ]
        here = pd.concat([here, pooled_rows], ignore_index=True) if len(pooled_rows) else here
        u = here["uplift"].to_numpy(dtype=float)
        se2 = here["standard_error"].to_numpy(dtype=float) ** 2
        if len(here):
            w = 1 / se2
            pooled = float((w * u).sum() / w.sum())
            pooled_var = float(1 / w.sum())
            # The channel's global estimate, itself shrunk towards the configured prior.
            k = prior_sd**2 / (prior_sd**2 + pooled_var)
            global_ = k * pooled + (1 - k) * prior_rate
            q = float((w * (u - pooled) ** 2).sum())
            c = float(w.sum() - (w**2).sum() / w.sum())
            tau2 = max((q - (len(u) - 1)) / c, 0.0) if c > 0 else 0.0
            tau2 = max(tau2, (prior_sd / 2) ** 2)
        else:
            global_ = prior_rate
        by_segment = dict(zip(here["segment"].astype(str), zip(u, se2, strict=True), strict=True))
        for segment in segments:
            if segment in by_segment:
                u_s, se2_s = by_segment[segment]
                weight = tau2 / (tau2 + se2_s)
                rows.append((segment, channel, weight * u_s + (1 - weight) * global_, "measured"))
            else:
                source = "channel" if len(here) else "prior"
                rows.append((segment, channel, global_, source))
    return pd.DataFrame(rows, columns=["segment", "channel", "uplift", "source"])


def candidates(
    customers: pd.DataFrame,
    channel_costs: Mapping[str, float],
    uplift: pd.DataFrame,
    *,
    margin: float,
    eligible: pd.DataFrame | None = None,
    window_share: float = 1.0,
) -> pd.DataFrame:
    """Every eligible (customer, channel) pair with its expected incremental value and cost.

    The expected incremental value is ``uplift × margin × predicted CLV × window_share``: the
    uplift is relative to the spend in the attribution window, which is ``window_share`` (the
    window over the CLV horizon) of the predicted CLV.

    Parameters
    ----------
    customers : DataFrame
        ``customer_id``, ``segment`` and ``predicted_clv``.
    channel_costs : mapping
        Channel name → cost per message.
    uplift : DataFrame
        From :func:`shrink_uplift`.
    margin : float
        Share of revenue that is margin: the value at stake is ``margin × predicted_clv``.
    eligible : DataFrame, optional
        Boolean, indexed by customer id, one column per channel (see
        :func:`clv.campaigns.eligibility.eligibility`); all eligible when omitted.

    Returns
    -------
    DataFrame
        ``customer_id``, ``segment``, ``channel``, ``predicted_clv``,
        ``expected_incremental_value`` (margin, before cost), ``cost`` and ``net``.
    """
    needed = [c for c in ("customer_id", "segment", "predicted_clv") if c not in customers]
    if needed:
        raise CampaignError(f"customers lack column(s) {', '.join(needed)}")
    if not 0 < margin <= 1:
        raise CampaignError(f"margin must be in (0, 1] (got {margin!r})")
    frames = []
    lookup = uplift.set_index(["segment", "channel"])["uplift"]
    for channel, cost in channel_costs.items():
        part = customers[["customer_id", "segment", "predicted_clv"]].copy()
        if eligible is not None:
            if channel not in eligible.columns:
                raise CampaignError(f"no eligibility column for channel {channel!r}")
            allowed = eligible[channel].reindex(part["customer_id"].to_numpy(), fill_value=False)
            part = part[allowed.to_numpy(dtype=bool)]
        keys = pd.MultiIndex.from_arrays([part["segment"].astype(str), [channel] * len(part)])
        rate = lookup.reindex(keys).to_numpy(dtype=float)
        unknown = np.isnan(rate)
        if unknown.any():
            first = part["segment"].to_numpy()[np.flatnonzero(unknown)[0]]
            raise CampaignError(f"no uplift for segment {first!r} on channel {channel!r}")
        part["channel"] = channel
        spend = np.clip(part["predicted_clv"].to_numpy(dtype=float), 0.0, None) * window_share
        value = margin * spend
        part["expected_incremental_value"] = rate * value
        part["cost"] = float(cost)
        part["net"] = part["expected_incremental_value"] - part["cost"]
        frames.append(part)
    return pd.concat(frames, ignore_index=True)


def select_under_budget(
    pairs: pd.DataFrame,
    budget: float,
    *,
    strategy: Strategy = "incremental",
    seed: int = 0,
) -> pd.DataFrame:
    """Choose at most one channel per customer and customers until the budget is spent.

    Parameters
    ----------
    pairs : DataFrame
        From :func:`candidates`.
    budget : float
        Total cost allowed.
    strategy : {"incremental", "highest_clv", "random"}
        ``incremental``: each customer's channel with the best net value per cost, customers by
        that ratio, positive net value only. ``highest_clv``: each customer's cheapest channel,
        customers by predicted CLV. ``random``: cheapest channel, a seeded random order.
    seed : int
        For ``random`` (and ties).

    Returns
    -------
    DataFrame
        The chosen rows of ``pairs`` in selection order, with ``cumulative_cost``; their total
        cost is at most ``budget``.
    """
    if not (np.isfinite(budget) and budget >= 0):
        raise CampaignError(f"budget must be a non-negative number (got {budget!r})")
    if strategy not in STRATEGIES:
        raise CampaignError(f"strategy must be one of {', '.join(STRATEGIES)}")
    if pairs.empty:
        return pairs.assign(cumulative_cost=pd.Series(dtype=float))
    rng = np.random.default_rng(seed)
    frame = pairs.assign(_tie=rng.random(len(pairs)))
    if strategy == "incremental":
        cost = frame["cost"].to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(cost > 0, frame["net"].to_numpy() / cost, np.inf)
        frame = frame.assign(_ratio=np.where(frame["net"].to_numpy() > 0, ratio, -np.inf))
        frame = frame[frame["_ratio"] > -np.inf]
        frame = frame.sort_values(["_ratio", "net", "_tie"], ascending=[False, False, True])
        frame = frame.drop_duplicates("customer_id", keep="first")
    else:
        frame = frame.sort_values(["cost", "_tie"]).drop_duplicates("customer_id", keep="first")
        if strategy == "highest_clv":
            frame = frame.sort_values(["predicted_clv", "_tie"], ascending=[False, True])
        else:
            frame = frame.sort_values("_tie")
    chosen = _fill(frame["cost"].to_numpy(dtype=float), budget)
    out = frame.iloc[chosen].drop(columns=[c for c in ("_tie", "_ratio") if c in frame])
    return out.assign(cumulative_cost=out["cost"].cumsum().to_numpy()).reset_index(drop=True)


def _fill(costs: np.ndarray, budget: float) -> np.ndarray:
    """Positions taken in order while they fit; later cheaper ones fill what is left."""
    taken = np.zeros(len(costs), dtype=bool)
    left = budget
    start = 0
    while start < len(costs):
        rest = costs[start:]
        fits = np.cumsum(rest) <= left + 1e-9
        run = int(np.argmin(fits)) if not fits.all() else len(rest)
        taken[start : start + run] = True
        left -= float(rest[:run].sum())
        start += run
        if start >= len(costs):
            break
        # The next one does not fit: skip every candidate dearer than what is left.
        affordable = np.flatnonzero(costs[start:] <= left + 1e-9)
        if affordable.size == 0:
            break
        start += int(affordable[0])
    return np.flatnonzero(taken)
