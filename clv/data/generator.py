"""Synthetic retail data with known truth.

The generative story is the one the BTYD literature fits (Fader, Hardie & Lee 2005), made
realistic:

* Customers are acquired over the observation period (cohorts), more of them as the business grows
  and around holidays. Their first purchase is at acquisition.
* Each customer has a latent purchase rate ``lambda ~ Gamma(r, alpha)`` (per day) and a dropout
  probability ``p ~ Beta(a, b)``: after each repeat purchase they leave for good with probability
  ``p`` (BG/NBD).
* Purchases arrive as a Poisson process whose clock runs faster on busy days: a weekly profile, a
  yearly cycle and holiday peaks (Black Friday week, December). The process is simulated in
  "operational time" ``S(t) = integral of s(u) du``, which keeps BG/NBD exact in that clock.
* Order values follow Gamma-Gamma: ``z ~ Gamma(shape=p_gg, rate=nu)``, ``nu ~ Gamma(q, gamma)``.
* Population segments (mainstream and eco-conscious by default) have their own parameters, eco
  share of purchases, category mix and engagement with sustainability programmes.
* Orders carry a channel, a product category, an eco flag, CO2e, a quantity; some are returned
  later (negative amount, same ``order_id``).

Scenarios have a clear place: :class:`DriftScenario` (price level, eco-share shift, new channel mix
from a date on) and :class:`CampaignUplift` (treated customers buy faster during a window).

The truth table holds every latent parameter, whether each customer is alive at the observation
end, and the expected and realised purchases and spend over the following ``horizon_days``.
Same config and seed give identical bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

CHANNELS: tuple[str, ...] = ("web", "app", "store", "marketplace")
CATEGORIES: tuple[str, ...] = ("apparel", "home", "beauty", "electronics", "grocery", "outdoor")
REGIONS: tuple[str, ...] = ("north", "south", "east", "west", "central")
#: Share of orders returned, per category.
RETURN_RATE: dict[str, float] = {
    "apparel": 0.12,
    "home": 0.04,
    "beauty": 0.03,
    "electronics": 0.07,
    "grocery": 0.01,
    "outdoor": 0.05,
}
#: kg CO2e per currency unit spent, per category (conventional products).
CARBON_INTENSITY: dict[str, float] = {
    "apparel": 0.35,
    "home": 0.25,
    "beauty": 0.15,
    "electronics": 0.5,
    "grocery": 0.2,
    "outdoor": 0.3,
}
#: Eco products emit this fraction of a conventional product's CO2e.
ECO_CARBON_FACTOR = 0.55
WEEKDAY_PROFILE = (0.92, 0.88, 0.9, 0.95, 1.05, 1.2, 1.1)  # Monday..Sunday


@dataclass(frozen=True)
class SegmentParams:
    """Latent population parameters of one customer segment (time unit: days).

    Attributes
    ----------
    name : str
        Segment name, e.g. ``"eco_conscious"``.
    share : float
        Share of acquired customers.
    r, alpha : float
        Gamma shape and rate of the daily purchase rate (mean ``r / alpha``).
    a, b : float
        Beta parameters of the dropout probability after each repeat purchase.
    p, q, gamma : float
        Gamma-Gamma spend parameters: order value ``Gamma(p, nu)``, ``nu ~ Gamma(q, gamma)``;
        mean order value ``p * gamma / (q - 1)``.
    eco_a, eco_b : float
        Beta parameters of each customer's share of eco products.
    category_mix : tuple of float
        Probability of each of :data:`CATEGORIES`.
    """

    name: str
    share: float
    r: float
    alpha: float
    a: float
    b: float
    p: float
    q: float
    gamma: float
    eco_a: float
    eco_b: float
    category_mix: tuple[float, ...]


DEFAULT_SEGMENTS: tuple[SegmentParams, ...] = (
    SegmentParams(
        "mainstream",
        0.78,
        r=0.9,
        alpha=30.0,
        a=0.9,
        b=8.0,
        p=4.0,
        q=3.5,
        gamma=30.0,
        eco_a=1.2,
        eco_b=9.0,
        category_mix=(0.28, 0.18, 0.14, 0.14, 0.16, 0.10),
    ),
    SegmentParams(
        "eco_conscious",
        0.22,
        r=1.1,
        alpha=28.0,
        a=0.8,
        b=9.0,
        p=5.0,
        q=4.0,
        gamma=40.0,
        eco_a=6.0,
        eco_b=3.0,
        category_mix=(0.20, 0.20, 0.16, 0.06, 0.26, 0.12),
    ),
)


@dataclass(frozen=True)
class DriftScenario:
    """A change in the world from ``start`` on (applied to orders placed on or after it).

    Attributes
    ----------
    start : date
        First day of the drifted regime.
    price_level : float
        Multiplier on order values (1.1 = prices 10% higher).
    eco_share_shift : float
        Added to every customer's eco-product probability (clipped to [0, 1]).
    channel_mix : tuple of float or None
        New population channel mix over :data:`CHANNELS` (e.g. a shift to the app).
    """

    start: date
    price_level: float = 1.0
    eco_share_shift: float = 0.0
    channel_mix: tuple[float, ...] | None = None


@dataclass(frozen=True)
class CampaignUplift:
    """A campaign: treated customers' purchase rate is multiplied during ``[start, end)``.

    Attributes
    ----------
    start, end : date
        Campaign window.
    treated_share : float
        Share of customers randomly assigned to treatment.
    rate_multiplier : float
        Purchase-rate multiplier while the campaign runs (1.3 = 30% more purchases).
    """

    start: date
    end: date
    treated_share: float = 0.5
    rate_multiplier: float = 1.3


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything that determines a synthetic data set (with the seed).

    Attributes
    ----------
    n_customers : int
        Customers acquired during the observation period.
    start, end : date
        Observation period; ``end`` is the last observed day (inclusive).
    horizon_days : int
        Length of the future window simulated for the truth (not in the transactions table).
    seasonality : float
        0 turns weekly/yearly/holiday effects off; 1 is the default strength.
    growth : float
        Acquisition at the end of the period relative to the start, minus one.
    segments : tuple of SegmentParams
        Population segments; shares must sum to 1.
    channel_mix : tuple of float
        Population channel mix over :data:`CHANNELS`.
    return_probability_scale : float
        Multiplier on :data:`RETURN_RATE` (0 disables returns).
    sustainability_coverage : float
        Share of customers present in the sustainability table (programme members).
    drift, campaign : optional
        Scenarios, see :class:`DriftScenario` and :class:`CampaignUplift`.
    """

    n_customers: int = 10_000
    start: date = date(2023, 1, 1)
    end: date = date(2025, 12, 31)
    horizon_days: int = 90
    seasonality: float = 1.0
    growth: float = 0.5
    segments: tuple[SegmentParams, ...] = DEFAULT_SEGMENTS
    channel_mix: tuple[float, ...] = (0.45, 0.25, 0.2, 0.1)
    return_probability_scale: float = 1.0
    sustainability_coverage: float = 0.65
    drift: DriftScenario | None = None
    campaign: CampaignUplift | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.n_customers < 1:
            problems.append(f"n_customers must be at least 1, got {self.n_customers}")
        if self.end <= self.start:
            problems.append(f"end ({self.end}) must be after start ({self.start})")
        if self.horizon_days < 1:
            problems.append(f"horizon_days must be at least 1, got {self.horizon_days}")
        if not 0 <= self.seasonality <= 3:
            problems.append(f"seasonality must be within [0, 3], got {self.seasonality}")
        if not self.segments:
            problems.append("at least one segment is needed")
        elif abs(sum(s.share for s in self.segments) - 1) > 1e-9:
            problems.append("segment shares must sum to 1")
        for mix, label in ((self.channel_mix, "channel_mix"),) + (
            ((self.drift.channel_mix, "drift.channel_mix"),)
            if self.drift and self.drift.channel_mix
            else ()
        ):
            if len(mix) != len(CHANNELS) or abs(sum(mix) - 1) > 1e-9 or min(mix) < 0:
                problems.append(
                    f"{label} must have {len(CHANNELS)} non-negative shares summing to 1"
                )
        for seg in self.segments:
            if len(seg.category_mix) != len(CATEGORIES) or abs(sum(seg.category_mix) - 1) > 1e-9:
                problems.append(f"segment {seg.name}: category_mix must sum to 1 over {CATEGORIES}")
            if min(seg.r, seg.alpha, seg.a, seg.b, seg.p, seg.q, seg.gamma) <= 0:
                problems.append(f"segment {seg.name}: all parameters must be positive")
        if self.campaign and not (
            self.campaign.start < self.campaign.end and self.campaign.rate_multiplier > 0
        ):
            problems.append("campaign: start must precede end and rate_multiplier be positive")
        if problems:
            raise ValueError("invalid generator config: " + "; ".join(problems))


@dataclass
class SyntheticData:
    """Generated tables (pyarrow, for speed) and the truth.

    Attributes
    ----------
    customers, transactions, sustainability : pyarrow.Table
        The observed tables, satisfying the data contract.
    future_transactions : pyarrow.Table
        Transactions in ``(end, end + horizon_days]``: what a model should predict.
    truth : pyarrow.Table
        One row per customer with latent parameters, alive flag and expected/actual future spend.
    config : GeneratorConfig
        The configuration used.
    seed : int
        The seed used.
    """

    customers: pa.Table
    transactions: pa.Table
    sustainability: pa.Table
    future_transactions: pa.Table
    truth: pa.Table
    config: GeneratorConfig
    seed: int
    tables: tuple[str, ...] = field(
        default=("customers", "transactions", "sustainability", "future_transactions", "truth")
    )

    def frame(self, name: str) -> pd.DataFrame:
        """Return table ``name`` as a pandas DataFrame."""
        table: pa.Table = getattr(self, name)
        return table.to_pandas()

    def population(self) -> dict[str, object]:
        """Ground-truth population parameters and config, JSON-serialisable."""
        cfg = asdict(self.config)
        return json.loads(json.dumps({"seed": self.seed, "config": cfg}, default=str))


class _Clock:
    """Seasonal intensity on a daily grid and the maps between calendar and operational time."""

    def __init__(
        self, start: date, last_day: date, strength: float, *, normalise_days: int | None = None
    ) -> None:
        n_days = (last_day - start).days + 1
        days = pd.date_range(start, periods=n_days, freq="D")
        weekly = np.asarray(WEEKDAY_PROFILE)[days.dayofweek]
        doy = days.dayofyear.to_numpy()
        yearly = 1 + 0.12 * np.cos(2 * np.pi * (doy - 355) / 365.25)
        holiday = np.ones(n_days)
        month, dom = days.month.to_numpy(), days.day.to_numpy()
        # Black Friday week: the Friday after the fourth Thursday of November, to Cyber Monday.
        for year in range(start.year, last_day.year + 1):
            nov1 = date(year, 11, 1)
            thanksgiving = nov1 + timedelta(days=(3 - nov1.weekday()) % 7 + 21)
            lo = np.datetime64(thanksgiving + timedelta(days=1))
            hi = np.datetime64(thanksgiving + timedelta(days=5))
            holiday[(days.to_numpy() >= lo) & (days.to_numpy() < hi)] = 2.4
        holiday[(month == 12) & (dom >= 8) & (dom <= 23)] = 1.6
        holiday[(month == 1) & (dom >= 2) & (dom <= 10)] = 1.25  # January sales
        raw = weekly * yearly * holiday
        # The mean over the first `normalise_days` days is 1: a longer clock (a campaign simulated
        # after the horizon) keeps the generator's intensities on the days they share.
        raw = raw / raw[: normalise_days or n_days].mean()
        self.intensity = 1 + strength * (raw - 1)
        self.grid = np.arange(n_days + 1, dtype=np.float64)
        self.cumulative = np.concatenate([[0.0], np.cumsum(self.intensity)])
        self.n_days = n_days

    def op(self, t: np.ndarray | float) -> np.ndarray:
        """Operational time at calendar time ``t`` (days since start)."""
        return np.interp(t, self.grid, self.cumulative)

    def calendar(self, u: np.ndarray) -> np.ndarray:
        """Calendar time (days since start) at operational time ``u``."""
        return np.interp(u, self.cumulative, self.grid)


def operational_time(config: GeneratorConfig, days: np.ndarray | float) -> np.ndarray:
    """The generator's operational time at calendar time ``days`` (days since ``config.start``).

    Repeat purchases are a Poisson process in operational time, a clock that runs faster on busy
    days (weekly, yearly and holiday seasonality); without seasonality it is calendar time. A model
    that knew this clock would measure every history in it. A campaign's speed-up of its treated
    customers is not included.

    Parameters
    ----------
    config : GeneratorConfig
        The configuration the data were generated with.
    days : float or ndarray
        Calendar times, in days since ``config.start`` (fractions are times of day).

    Returns
    -------
    ndarray
        Operational times, in the same unit.
    """
    return np.asarray(_clock(config).op(np.asarray(days, dtype=np.float64)), dtype=np.float64)


def kept_after_returns(config: GeneratorConfig) -> np.ndarray:
    """Each segment's expected share of an order's value kept after returns, in segment order.

    A returned order gives back 85% of its value on average (70% plus half of the remaining
    30%); the chance of a return is the segment's category mix of :data:`RETURN_RATE`, scaled by
    ``config.return_probability_scale``. The truth's expected spend uses these shares.
    """
    mean_return_share = 0.7 + 0.3 * 0.5
    returned = np.array(
        [
            sum(m * RETURN_RATE[c] for m, c in zip(s.category_mix, CATEGORIES, strict=True))
            for s in config.segments
        ]
    )
    kept: np.ndarray = 1.0 - returned * config.return_probability_scale * mean_return_share
    return kept


def _clock(config: GeneratorConfig) -> _Clock:
    """The seasonal clock of ``config``'s observation period and horizon."""
    return _Clock(
        config.start, config.end + timedelta(days=config.horizon_days), config.seasonality
    )


def extended_clock(config: GeneratorConfig, last_day: date) -> _Clock:
    """``config``'s seasonal clock, continued to ``last_day`` when that is past the horizon.

    The generator's operational time on the days of its observation period and horizon is kept
    exactly; the days after follow the same weekly, yearly and holiday pattern.
    """
    own_last = config.end + timedelta(days=config.horizon_days)
    return _Clock(
        config.start,
        max(own_last, last_day),
        config.seasonality,
        normalise_days=(own_last - config.start).days + 1,
    )


def config_from_population(population: dict[str, object]) -> GeneratorConfig:
    """The :class:`GeneratorConfig` written to ``truth.json`` by :func:`write_synthetic`.

    Parameters
    ----------
    population : dict
        The parsed ``truth.json`` (``{"seed": ..., "config": {...}}``) or its ``config`` part.

    Returns
    -------
    GeneratorConfig
        The configuration the data were generated with.

    Raises
    ------
    ValueError
        If a field is missing or has the wrong type.
    """
    raw = population.get("config", population)
    if not isinstance(raw, dict):
        raise ValueError("truth.json: 'config' must be a mapping")
    try:
        fields = dict(raw)
        for key in ("start", "end"):
            fields[key] = date.fromisoformat(str(fields[key]))
        fields["segments"] = tuple(
            SegmentParams(**{**s, "category_mix": tuple(s["category_mix"])})
            for s in fields["segments"]
        )
        fields["channel_mix"] = tuple(fields["channel_mix"])
        if fields.get("drift") is not None:
            drift = dict(fields["drift"])
            drift["start"] = date.fromisoformat(str(drift["start"]))
            if drift.get("channel_mix") is not None:
                drift["channel_mix"] = tuple(drift["channel_mix"])
            fields["drift"] = DriftScenario(**drift)
        if fields.get("campaign") is not None:
            campaign = dict(fields["campaign"])
            for key in ("start", "end"):
                campaign[key] = date.fromisoformat(str(campaign[key]))
            fields["campaign"] = CampaignUplift(**campaign)
        return GeneratorConfig(**fields)
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"truth.json: not a generator configuration ({err})") from None


def _pad_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    text = pc.cast(pa.array(numbers, type=pa.int64()), pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(text, width=width, padding="0"), "")


def generate(config: GeneratorConfig | None = None, *, seed: int = 0) -> SyntheticData:
    """Generate customers, transactions, sustainability scores and the ground truth.

    Parameters
    ----------
    config : GeneratorConfig, optional
        What to generate (default: 10,000 customers over 2023-2025, 90-day horizon).
    seed : int
        Random seed; the same config and seed give identical tables.

    Returns
    -------
    SyntheticData
        The tables, as pyarrow tables (``.frame(name)`` gives pandas).
    """
    cfg = config or GeneratorConfig()
    rng = np.random.default_rng(seed)
    n = cfg.n_customers
    obs_days = float((cfg.end - cfg.start).days + 1)  # observation ends at the end of `end`
    horizon_end = obs_days + cfg.horizon_days
    clock = _clock(cfg)

    # --- customers: segment, latent parameters, acquisition time -------------------------------
    shares = np.array([s.share for s in cfg.segments])
    seg_idx = rng.choice(len(cfg.segments), size=n, p=shares)
    seg_arr = {
        k: np.array([getattr(s, k) for s in cfg.segments])[seg_idx]
        for k in ("r", "alpha", "a", "b", "p", "q", "gamma", "eco_a", "eco_b")
    }
    lam = rng.gamma(seg_arr["r"], 1.0 / seg_arr["alpha"])
    drop_p = rng.beta(seg_arr["a"], seg_arr["b"])
    nu = rng.gamma(seg_arr["q"], 1.0 / seg_arr["gamma"])
    eco_share = rng.beta(seg_arr["eco_a"], seg_arr["eco_b"])

    obs_grid_days = int(obs_days)
    weights = clock.intensity[:obs_grid_days] * (
        1 + cfg.growth * np.arange(obs_grid_days) / max(obs_grid_days - 1, 1)
    )
    cdf = np.cumsum(weights) / weights.sum()
    signup_day = np.searchsorted(cdf, rng.random(n), side="right").clip(0, obs_grid_days - 1)
    signup = signup_day + rng.random(n)
    order = np.argsort(signup, kind="stable")  # customer ids follow acquisition order
    for arr in (seg_idx, lam, drop_p, nu, eco_share, signup):
        arr[:] = arr[order]
    for key in seg_arr:
        seg_arr[key] = seg_arr[key][order]

    treated = np.zeros(n, dtype=bool)
    if cfg.campaign is not None:
        treated = rng.random(n) < cfg.campaign.treated_share

    def op_time(t: np.ndarray, who: np.ndarray) -> np.ndarray:
        """Customer-specific operational time (campaigns speed up the treated customers' clock)."""
        u = clock.op(t)
        if cfg.campaign is None:
            return u
        c0 = clock.op(float((cfg.campaign.start - cfg.start).days))
        c1 = clock.op(float((cfg.campaign.end - cfg.start).days))
        extra = (cfg.campaign.rate_multiplier - 1) * (np.clip(u, c0, c1) - c0)
        return np.where(treated[who], u + extra, u)

    def calendar_time(u: np.ndarray, who: np.ndarray) -> np.ndarray:
        if cfg.campaign is None:
            return clock.calendar(u)
        m = cfg.campaign.rate_multiplier
        c0 = clock.op(float((cfg.campaign.start - cfg.start).days))
        c1 = clock.op(float((cfg.campaign.end - cfg.start).days))
        stretched_end = c0 + m * (c1 - c0)
        base = np.where(
            u <= c0, u, np.where(u <= stretched_end, c0 + (u - c0) / m, u - (m - 1) * (c1 - c0))
        )
        return clock.calendar(np.where(treated[who], base, u))

    # --- repeat purchases: Poisson in operational time, truncated at dropout -------------------
    everyone = np.arange(n)
    u_start = op_time(signup, everyone)
    u_end = op_time(np.full(n, horizon_end), everyone)
    span = u_end - u_start
    n_poisson = rng.poisson(lam * span)
    dropout_after = rng.geometric(drop_p)  # dies right after this repeat purchase
    n_repeat = np.minimum(n_poisson, dropout_after)
    total_repeat = int(n_repeat.sum())
    owner = np.repeat(everyone, n_repeat)
    gaps = rng.standard_exponential(total_repeat)
    csum = np.concatenate([[0.0], np.cumsum(gaps)])
    first_pos = np.concatenate([[0], np.cumsum(n_repeat)[:-1]])
    before = csum[first_pos]
    within = csum[1:] - np.repeat(before, n_repeat)
    # The first m of N uniform order statistics: m exponential spacings plus Gamma(N + 1 - m).
    rest = rng.gamma(n_poisson - n_repeat + 1.0)
    total = csum[first_pos + n_repeat] - before + rest
    frac = within / np.repeat(total, n_repeat)
    repeat_time = calendar_time(
        np.repeat(u_start, n_repeat) + frac * np.repeat(span, n_repeat), owner
    )

    # Alive at the observation end: fewer repeat purchases so far than the dropout count.
    repeats_observed = np.bincount(owner[repeat_time < obs_days], minlength=n)
    alive_at_end = repeats_observed < dropout_after

    # --- orders -----------------------------------------------------------------------------------
    order_owner = np.concatenate([everyone, owner])
    order_time = np.concatenate([signup, repeat_time])
    sort = np.lexsort((order_owner, order_time))
    order_owner, order_time = order_owner[sort], order_time[sort]
    n_orders = len(order_owner)
    value = rng.gamma(seg_arr["p"][order_owner], 1.0 / nu[order_owner])
    drifted = np.zeros(n_orders, dtype=bool)
    if cfg.drift is not None:
        drifted = order_time >= float((cfg.drift.start - cfg.start).days)
        value = np.where(drifted, value * cfg.drift.price_level, value)
    value = np.maximum(np.round(value, 2), 0.5)

    # Inverse-CDF draw per segment: no (orders x categories) matrix, so memory stays linear.
    category_u = rng.random(n_orders)
    order_segment = seg_idx[order_owner]
    category = np.empty(n_orders, dtype=np.int8)
    for k, seg in enumerate(cfg.segments):
        in_seg = order_segment == k
        cdf_k = np.cumsum(seg.category_mix)
        category[in_seg] = np.searchsorted(cdf_k, category_u[in_seg], side="right")
    category = np.minimum(category, len(CATEGORIES) - 1)
    eco_prob = eco_share[order_owner]
    if cfg.drift is not None and cfg.drift.eco_share_shift:
        eco_prob = np.where(drifted, np.clip(eco_prob + cfg.drift.eco_share_shift, 0, 1), eco_prob)
    is_eco = rng.random(n_orders) < eco_prob

    acq_channel = rng.choice(len(CHANNELS), size=n, p=np.asarray(cfg.channel_mix))
    channel = np.where(
        rng.random(n_orders) < 0.6,
        acq_channel[order_owner],
        rng.choice(len(CHANNELS), size=n_orders, p=np.asarray(cfg.channel_mix)),
    )
    if cfg.drift is not None and cfg.drift.channel_mix is not None:
        redraw = rng.choice(len(CHANNELS), size=n_orders, p=np.asarray(cfg.drift.channel_mix))
        channel = np.where(drifted, redraw, channel)

    intensity = np.array([CARBON_INTENSITY[c] for c in CATEGORIES])[category]
    carbon = value * intensity * np.where(is_eco, ECO_CARBON_FACTOR, 1.0)
    carbon = np.round(carbon * rng.lognormal(0.0, 0.2, n_orders), 3)
    quantity = 1 + rng.poisson(value / 60.0)

    # --- returns --------------------------------------------------------------------------------
    ret_rate = (
        np.array([RETURN_RATE[c] for c in CATEGORIES])[category] * cfg.return_probability_scale
    )
    returned = rng.random(n_orders) < ret_rate
    ridx = np.flatnonzero(returned)
    full = rng.random(len(ridx)) < 0.7
    ret_frac = np.where(full, 1.0, rng.uniform(0.2, 0.8, len(ridx)))
    ret_amount = -np.round(value[ridx] * ret_frac, 2)
    ret_time = order_time[ridx] + rng.uniform(2.0, 30.0, len(ridx))
    ret_qty = -np.maximum(np.round(quantity[ridx] * ret_frac), 1).astype(np.int64)

    # --- assemble transactions (orders + returns), split observed / future -----------------------
    order_id_num = np.arange(1, n_orders + 1)
    rows_owner = np.concatenate([order_owner, order_owner[ridx]])
    rows_time = np.concatenate([order_time, ret_time])
    rows_amount = np.concatenate([value, ret_amount])
    rows_order = np.concatenate([order_id_num, order_id_num[ridx]])
    rows_qty = np.concatenate([quantity, ret_qty])
    rows_cat = np.concatenate([category, category[ridx]])
    rows_eco = np.concatenate([is_eco, is_eco[ridx]])
    rows_channel = np.concatenate([channel, channel[ridx]])
    rows_carbon = np.concatenate([carbon, np.zeros(len(ridx))])
    keep = rows_time < horizon_end
    rank = np.lexsort((rows_amount < 0, rows_order, rows_time))
    rank = rank[keep[rank]]
    seconds = np.floor(rows_time[rank] * 86_400).astype("int64")
    base = np.datetime64(cfg.start, "s")
    table = pa.table(
        {
            "customer_id": _pad_ids("C", rows_owner[rank] + 1, 8),
            "timestamp": pa.array(base + seconds.astype("timedelta64[s]"), type=pa.timestamp("s")),
            "amount": pa.array(rows_amount[rank], type=pa.float64()),
            "order_id": _pad_ids("O", rows_order[rank], 10),
            "quantity": pa.array(rows_qty[rank], type=pa.int64()),
            "product_category": pa.DictionaryArray.from_arrays(
                pa.array(rows_cat[rank], type=pa.int8()), pa.array(CATEGORIES)
            ).cast(pa.string()),
            "is_eco_product": pa.array(rows_eco[rank], type=pa.bool_()),
            "channel": pa.DictionaryArray.from_arrays(
                pa.array(rows_channel[rank], type=pa.int8()), pa.array(CHANNELS)
            ).cast(pa.string()),
            "carbon_kg": pa.array(rows_carbon[rank], type=pa.float64()),
        }
    )
    observed_mask = rows_time[rank] < obs_days
    n_observed = int(observed_mask.sum())  # rows are time-sorted: observed ones come first
    transactions = table.slice(0, n_observed)
    future = table.slice(n_observed)

    # --- truth -----------------------------------------------------------------------------------
    future_owner = rows_owner[rank][~observed_mask]
    future_amount = rows_amount[rank][~observed_mask]
    actual_spend = np.bincount(future_owner, weights=future_amount, minlength=n)
    actual_orders = np.bincount(future_owner[future_amount > 0], minlength=n)
    op_now = op_time(np.full(n, obs_days), everyone)
    op_later = op_time(np.full(n, horizon_end), everyone)
    expected_orders = np.where(
        alive_at_end, -np.expm1(-lam * drop_p * (op_later - op_now)) / drop_p, 0.0
    )
    mean_order_value = seg_arr["p"] / nu
    future_price = cfg.drift.price_level if cfg.drift is not None else 1.0
    expected_spend = (
        expected_orders * mean_order_value * future_price * kept_after_returns(cfg)[seg_idx]
    )
    h = cfg.horizon_days
    truth = pa.table(
        {
            "customer_id": _pad_ids("C", everyone + 1, 8),
            "segment": pa.array([cfg.segments[i].name for i in range(len(cfg.segments))]).take(
                pa.array(seg_idx)
            ),
            "purchase_rate_per_day": lam,
            "dropout_probability": drop_p,
            "spend_rate_nu": nu,
            "mean_order_value": mean_order_value,
            "eco_share": eco_share,
            "treated": treated,
            "signup_day": signup,
            "repeat_purchases_observed": repeats_observed,
            "alive_at_end": alive_at_end,
            f"expected_orders_{h}d": expected_orders,
            f"expected_spend_{h}d": expected_spend,
            f"actual_orders_{h}d": actual_orders,
            f"actual_spend_{h}d": np.round(actual_spend, 2),
        }
    )

    # --- customers and sustainability tables -----------------------------------------------------
    region_idx = rng.choice(len(REGIONS), size=n, p=[0.22, 0.2, 0.2, 0.2, 0.18])
    eco_pref = np.clip(eco_share + rng.normal(0, 0.12, n), 0, 1).round(3)
    pref_missing = rng.random(n) < 0.15
    signup_date = base.astype("datetime64[D]") + np.floor(signup).astype("int64").astype(
        "timedelta64[D]"
    )
    customers = pa.table(
        {
            "customer_id": _pad_ids("C", everyone + 1, 8),
            "signup_date": pa.array(signup_date, type=pa.date32()),
            "region": pa.array(np.asarray(REGIONS, dtype=object)[region_idx], type=pa.string()),
            "acquisition_channel": pa.array(
                np.asarray(CHANNELS, dtype=object)[acq_channel], type=pa.string()
            ),
            "eco_preference": pa.array(eco_pref, mask=pref_missing, type=pa.float64()),
            "marketing_opt_in": pa.array(rng.random(n) < 0.7, type=pa.bool_()),
        }
    )
    obs_owner = rows_owner[rank][observed_mask]
    obs_eco = rows_eco[rank][observed_mask] & (rows_amount[rank][observed_mask] > 0)
    obs_carbon = rows_carbon[rank][observed_mask]
    saved = np.bincount(
        obs_owner[obs_eco],
        weights=obs_carbon[obs_eco] * (1 / ECO_CARBON_FACTOR - 1),
        minlength=n,
    )
    member = rng.random(n) < cfg.sustainability_coverage
    engagement = np.clip(100 * rng.beta(1 + 6 * eco_share, 4.0), 0, 100).round(1)
    sustainability = pa.table(
        {
            "customer_id": _pad_ids("C", everyone[member] + 1, 8),
            "eco_engagement_score": engagement[member],
            "recycling_program": rng.random(n)[member] < 0.15 + 0.5 * eco_share[member],
            "carbon_offset_opt_in": rng.random(n)[member] < 0.05 + 0.45 * eco_share[member],
            "green_newsletter_clicks": rng.poisson(1 + 15 * eco_share)[member].astype(np.int64),
            "carbon_saved_kg": np.round(saved[member], 3),
        }
    )
    return SyntheticData(
        customers=customers,
        transactions=transactions,
        sustainability=sustainability,
        future_transactions=future,
        truth=truth,
        config=cfg,
        seed=seed,
    )


def write_synthetic(
    data: SyntheticData, out_dir: str | Path, *, fmt: Literal["parquet", "csv"] = "parquet"
) -> dict[str, str]:
    """Write every table (and ``truth.json`` with the population) to ``out_dir``, atomically.

    ``out_dir`` may be a local folder or an ``s3://bucket/prefix``.

    Returns
    -------
    dict of str to str
        Table name to the file (or object URI) written.
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from clv.data.io import is_s3, write_atomic

    base = str(out_dir).rstrip("/")
    written: dict[str, str] = {}

    def target(name: str) -> str:
        return f"{base}/{name}" if is_s3(base) else str(Path(base) / name)

    for name in data.tables:
        table: pa.Table = getattr(data, name)

        def write_one(path: Path, table: pa.Table = table) -> None:
            if fmt == "parquet":
                pq.write_table(table, path, compression="zstd")
            else:
                pacsv.write_csv(table, path)

        written[name] = target(f"{name}.{fmt}")
        write_atomic(written[name], write_one)
    meta = json.dumps(data.population(), indent=2, sort_keys=True)
    written["population"] = target("truth.json")
    write_atomic(written["population"], lambda p: p.write_text(meta, encoding="utf-8"))
    return written
