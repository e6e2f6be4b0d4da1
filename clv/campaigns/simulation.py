"""The known truth of a campaign: how generated customers respond to a plan.

Generated data (:mod:`clv.data.generator`) come with every customer's latent BG/NBD and
Gamma-Gamma parameters. Given a campaign plan, :func:`simulate_campaign` forks that world at each
planned customer's send time: what the customer did before it is kept, and what they do from then
on is drawn again from their own parameters, the same laws the generator uses (purchases are a
Poisson process in the generator's seasonal operational time, the customer drops out after each
repeat purchase with their dropout probability, order values are Gamma), except that a treated
customer's purchase rate is multiplied by ``1 + uplift`` during the attribution window. Holdout
customers are simulated the same way without the uplift. The uplift can differ by variant, plan
segment, channel and latent segment (:class:`UpliftSpec`).

Because the parameters are known, so is the campaign's true effect: a treated customer alive at
the send with rate ``λ``, dropout probability ``p`` and mean order value ``m`` buys, in the window's
operational length ``U``, ``(1 - exp(-λ p (1 + u) U)) / p`` orders on average instead of
``(1 - exp(-λ p U)) / p``. The expected difference times ``m``, summed over the treated customers,
is the true incremental revenue that :class:`SimulationResult` records, overall and per segment,
variant, channel and latent segment; the analysis (:mod:`clv.campaigns.measurement`) has to
recover it from the transactions alone.

Simulated orders are not returned within the window (returns of orders placed before the send
still arrive), so the truth is the gross order value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from clv.campaigns.definition import HOLDOUT
from clv.campaigns.errors import CampaignError

__all__ = [
    "SimulationResult",
    "UpliftRule",
    "UpliftSpec",
    "load_generated",
    "load_uplift_spec",
    "simulate_campaign",
    "write_simulation",
]

ANY = "*"
#: Plan columns (and the latent segment) an uplift rule can match on.
RULE_KEYS = ("variant", "segment", "channel", "latent_segment")
_TX_COLUMNS = (
    "customer_id",
    "timestamp",
    "amount",
    "order_id",
    "quantity",
    "product_category",
    "is_eco_product",
    "channel",
    "carbon_kg",
)


class UpliftRule(BaseModel):
    """A true uplift for the treated customers a rule matches (``*`` matches anything).

    Attributes
    ----------
    variant, segment, channel : str
        The plan's ``group`` (a variant), ``segment`` and ``channel``.
    latent_segment : str
        The generator's latent segment (``mainstream``, ``eco_conscious``).
    uplift : float
        Relative purchase-rate uplift during the window (0.2 = 20% more purchases); above -1.
    """

    model_config = ConfigDict(extra="forbid")

    variant: str = ANY
    segment: str = ANY
    channel: str = ANY
    latent_segment: str = ANY
    uplift: float = Field(gt=-1, le=10)


class UpliftSpec(BaseModel):
    """The true response to a campaign: a default uplift and more specific rules.

    The first rule (in file order) that matches a treated customer gives their uplift; customers
    no rule matches get ``default``. Holdout customers never get one.

    Attributes
    ----------
    default : float
        Uplift of treated customers no rule matches.
    rules : list of UpliftRule
        Rules, first match wins.
    """

    model_config = ConfigDict(extra="forbid")

    default: float = Field(default=0.2, gt=-1, le=10)
    rules: list[UpliftRule] = Field(default_factory=list)

    def check_against(self, plan: pd.DataFrame, latent: pd.Series) -> None:
        """Refuse a rule naming a variant, segment, channel or latent segment the plan lacks.

        Raises
        ------
        CampaignError
            Naming the rule (1-based) and the values that exist.
        """
        known = {
            "variant": set(plan.loc[plan["group"] != HOLDOUT, "group"].astype(str)),
            "segment": set(plan["segment"].astype(str)),
            "channel": set(plan["channel"].astype(str)),
            "latent_segment": set(latent.astype(str)),
        }
        problems = []
        for number, rule in enumerate(self.rules, start=1):
            for key in RULE_KEYS:
                value = getattr(rule, key)
                if value != ANY and value not in known[key]:
                    choices = ", ".join(sorted(known[key])) or "none"
                    problems.append(
                        f"uplift rule {number}: {key} {value!r} is not in the plan "
                        f"(there: {choices})"
                    )
        if problems:
            raise CampaignError("; ".join(problems))

    def uplift_for(self, frame: pd.DataFrame) -> np.ndarray:
        """Each row's uplift; holdout rows get 0.

        ``frame`` has ``group``, ``segment``, ``channel`` and ``latent_segment``.
        """
        values = np.full(len(frame), float(self.default))
        decided = np.zeros(len(frame), dtype=bool)
        columns = {"variant": "group"}
        for rule in self.rules:
            match = ~decided
            for key in RULE_KEYS:
                value = getattr(rule, key)
                if value != ANY:
                    match &= frame[columns.get(key, key)].astype(str).to_numpy() == value
            values[match] = rule.uplift
            decided |= match
        values[frame["group"].to_numpy() == HOLDOUT] = 0.0
        return values


def load_uplift_spec(path: str | Path) -> UpliftSpec:
    """Read an uplift file: ``default: 0.1`` and ``rules: [{variant: eco, uplift: 0.4}, ...]``.

    Raises
    ------
    clv.config.ConfigError
        With the line and field of every problem.
    """
    from clv.config import _load

    return _load(Path(path), UpliftSpec)


@dataclass(frozen=True)
class GeneratedWorld:
    """What the simulation needs of a generated data set."""

    config: Any  # clv.data.generator.GeneratorConfig
    seed: int
    transactions: pd.DataFrame  # observed and future, contract columns
    truth: pd.DataFrame
    customers: pd.DataFrame


def load_generated(folder: str | Path) -> GeneratedWorld:
    """Read a folder written by ``clv generate`` (``truth.json`` and the tables).

    Raises
    ------
    CampaignError
        If the folder is not generated data (no ``truth.json`` or truth table).
    """
    from clv.data.generator import config_from_population

    base = Path(folder)
    meta = base / "truth.json"
    if not base.is_dir():
        raise CampaignError(f"{base}: no such folder of generated data")
    if not meta.is_file():
        raise CampaignError(
            f"{base}: no truth.json here; simulate works on data made by `clv generate` only "
            "(real customers' latent parameters are unknown)"
        )
    try:
        population = json.loads(meta.read_text(encoding="utf-8"))
        config = config_from_population(population)
    except (json.JSONDecodeError, ValueError) as err:
        raise CampaignError(f"{meta}: {err}") from None
    tables = {}
    for name in ("transactions", "truth", "customers", "future_transactions"):
        path = _table_path(base, name)
        if path is None:
            if name == "future_transactions":
                continue
            raise CampaignError(f"{base}: {name}.parquet (or .csv) is missing")
        tables[name] = _read(path)
    tx = pd.concat(
        [tables["transactions"], tables.get("future_transactions", tables["transactions"][:0])],
        ignore_index=True,
    )
    return GeneratedWorld(
        config=config,
        seed=int(population.get("seed", 0)),
        transactions=tx,
        truth=tables["truth"],
        customers=tables["customers"],
    )


def _table_path(base: Path, name: str) -> Path | None:
    for suffix in (".parquet", ".csv"):
        if (base / f"{name}{suffix}").is_file():
            return base / f"{name}{suffix}"
    return None


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path, dtype={"customer_id": str})
        if "timestamp" in frame:
            frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    return frame.assign(customer_id=frame["customer_id"].astype(str))


@dataclass(frozen=True)
class SimulationResult:
    """Transactions of the simulated world and the campaign's true effect.

    Attributes
    ----------
    transactions : DataFrame
        Contract transactions: the generated history, with every planned customer's purchases
        from their send on replaced by the simulated ones.
    customers : DataFrame
        One row per planned customer: ``customer_id``, ``group``, ``segment``, ``channel``,
        ``latent_segment``, ``uplift``, ``alive_at_send`` (probability) and
        ``true_incremental_revenue``.
    truth : dict
        JSON-able: the true incremental revenue overall and per segment, variant, channel and
        latent segment, with the counts, the uplift specification, window and seed.
    """

    transactions: pd.DataFrame
    customers: pd.DataFrame
    truth: dict[str, Any] = field(default_factory=dict)


def simulate_campaign(
    plan: pd.DataFrame,
    world: GeneratedWorld,
    *,
    window_days: int,
    spec: UpliftSpec | None = None,
    seed: int = 0,
) -> SimulationResult:
    """Simulate the response of generated customers to a plan, with a known true uplift.

    Parameters
    ----------
    plan : DataFrame
        ``customer_id``, ``group`` (``holdout`` or a variant), ``segment``, ``channel``,
        ``send_at`` (UTC; naive is read as UTC).
    world : GeneratedWorld
        The generated data the plan was made from (:func:`load_generated`).
    window_days : int
        The attribution window; purchases are simulated to twice its length after each send
        (the retention metric looks that far).
    spec : UpliftSpec, optional
        The true uplift (default: 20% for every treated customer).
    seed : int
        Random seed; the same inputs and seed give the same transactions.

    Returns
    -------
    SimulationResult
        The transactions to analyse and the truth to compare with.

    Raises
    ------
    CampaignError
        If a planned customer is not in the generated data, a rule names what the plan lacks,
        or the window is not positive.
    """
    from clv.data.generator import CATEGORIES, CHANNELS, extended_clock

    spec = spec or UpliftSpec()
    if window_days < 1:
        raise CampaignError(f"the attribution window must be at least 1 day, got {window_days}")
    cfg = world.config
    truth = world.truth.set_index("customer_id")
    ids = plan["customer_id"].astype(str)
    unknown = ids[~ids.isin(truth.index)]
    if len(unknown):
        raise CampaignError(
            f"{len(unknown):,} planned customers are not in the generated data (first: "
            f"{unknown.iloc[0]!r}); simulate needs the generated folder the plan was made from"
        )
    if ids.duplicated().any():
        raise CampaignError(f"the plan lists customer {ids[ids.duplicated()].iloc[0]!r} twice")
    rng = np.random.default_rng(seed)
    t = truth.reindex(pd.Index(ids))
    frame = pd.DataFrame(
        {
            "customer_id": ids.to_numpy(),
            "group": plan["group"].astype(str).to_numpy(),
            "segment": plan["segment"].astype(str).to_numpy(),
            "channel": plan["channel"].astype(str).to_numpy(),
            "latent_segment": t["segment"].astype(str).to_numpy(),
        }
    )
    spec.check_against(plan, frame["latent_segment"])
    uplift = spec.uplift_for(frame)
    multiplier = 1.0 + uplift

    origin = pd.Timestamp(cfg.start)
    send_at = pd.to_datetime(plan["send_at"])
    if getattr(send_at.dt, "tz", None) is not None:
        send_at = send_at.dt.tz_convert("UTC").dt.tz_localize(None)
    send = ((send_at - origin) / pd.Timedelta(days=1)).to_numpy(dtype=float)
    obs_end = float((cfg.end - cfg.start).days + 1)
    if (send < 0).any():
        raise CampaignError("a planned send is before the generated data begin")
    signup = t["signup_day"].to_numpy(dtype=float)
    # Someone who becomes a customer only after the send cannot respond to it: their generated
    # history is kept as it is and their true effect is zero.
    customer = signup <= send
    fork = np.where(customer, np.minimum(send, obs_end), np.inf)
    last_day = cfg.start + timedelta(days=math.ceil(float(send.max()) + 2 * window_days) + 1)
    clock = extended_clock(cfg, last_day)

    # --- the generated history up to each planned customer's fork ---------------------------
    tx = world.transactions
    tx_ids = tx["customer_id"].astype(str)
    tx_time = ((tx["timestamp"] - origin) / pd.Timedelta(days=1)).to_numpy(dtype=float)
    position = pd.Series(np.arange(len(ids)), index=ids.to_numpy())
    who = position.reindex(tx_ids.to_numpy()).to_numpy()
    planned_row = ~np.isnan(who)
    row_fork = np.full(len(tx), np.inf)
    row_fork[planned_row] = fork[who[planned_row].astype(np.int64)]
    amount = tx["amount"].to_numpy(dtype=float)
    before = tx_time < row_fork
    # Returns that arrive after the fork of orders placed before it still arrive.
    early_orders = set(tx.loc[before & planned_row & (amount > 0), "order_id"].astype(str))
    returned_early = tx["order_id"].astype(str).isin(early_orders).to_numpy()
    late_returns = (~before) & (amount < 0) & returned_early
    history = tx[before | late_returns]

    # Alive at the fork: alive at the end, or a repeat purchase at or after the fork (dropout
    # happens only right after a repeat purchase).
    first_order = tx[amount > 0].groupby(tx_ids[amount > 0])["timestamp"].transform("min")
    repeat = np.zeros(len(tx), dtype=bool)
    repeat[np.flatnonzero(amount > 0)] = (
        tx.loc[amount > 0, "timestamp"].to_numpy() > first_order.to_numpy()
    )
    later_repeat = planned_row & repeat & (tx_time >= row_fork)
    has_later = np.zeros(len(ids), dtype=bool)
    has_later[np.unique(who[later_repeat].astype(np.int64))] = True
    alive_fork = (t["alive_at_end"].to_numpy(dtype=bool) | has_later) & customer

    # --- operational times: the uplift stretches the treated customers' clock in the window ----
    lam = t["purchase_rate_per_day"].to_numpy(dtype=float)
    drop = t["dropout_probability"].to_numpy(dtype=float)
    a = clock.op(np.where(customer, fork, send))
    s0 = clock.op(send)
    s1 = clock.op(send + window_days)
    e = clock.op(send + 2 * window_days)
    extra = (multiplier - 1.0) * (s1 - s0)
    v_end = e + extra

    v = a.copy()
    alive = alive_fork.copy()
    active = alive & (v < v_end)
    owners: list[np.ndarray] = []
    times: list[np.ndarray] = []
    while active.any():
        idx = np.flatnonzero(active)
        v[idx] += rng.standard_exponential(len(idx)) / lam[idx]
        hit = v[idx] < v_end[idx]
        buyers = idx[hit]
        owners.append(buyers)
        times.append(v[buyers].copy())
        dies = rng.random(len(buyers)) < drop[buyers]
        active[idx[~hit]] = False
        active[buyers[dies]] = False
    owner = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)
    vt = np.concatenate(times) if times else np.zeros(0)
    m = multiplier[owner]
    x = np.where(
        vt <= s0[owner],
        vt,
        np.where(
            vt <= s0[owner] + m * (s1[owner] - s0[owner]),
            s0[owner] + (vt - s0[owner]) / m,
            vt - extra[owner],
        ),
    )
    order_time = clock.calendar(x)
    simulated = _orders(
        world, t, owner, order_time, ids.to_numpy(), rng, categories=CATEGORIES, channels=CHANNELS
    )
    result_tx = pd.concat([history[list(_TX_COLUMNS)], simulated], ignore_index=True)
    result_tx = result_tx.sort_values(["timestamp", "customer_id", "order_id"], kind="stable")

    # --- the truth ----------------------------------------------------------------------------
    price = np.ones(len(ids))
    if cfg.drift is not None:
        drift_day = float((cfg.drift.start - cfg.start).days)
        price = np.where(send >= drift_day, cfg.drift.price_level, 1.0)
    alive_at_send = alive_fork * np.exp(-lam * drop * np.maximum(s0 - a, 0.0))
    span = s1 - s0
    base_orders = -np.expm1(-lam * drop * span) / drop
    treated_orders = -np.expm1(-lam * drop * multiplier * span) / drop
    mean_value = t["mean_order_value"].to_numpy(dtype=float) * price
    true_incremental = alive_at_send * mean_value * (treated_orders - base_orders)
    true_incremental[frame["group"].to_numpy() == HOLDOUT] = 0.0
    customers = frame.assign(
        uplift=uplift, alive_at_send=alive_at_send, true_incremental_revenue=true_incremental
    )
    summary = _truth_summary(customers, spec=spec, window_days=window_days, seed=seed)
    summary["not_yet_customers"] = int((~customer).sum())
    summary["generated"] = {"seed": world.seed, "start": str(cfg.start), "end": str(cfg.end)}
    return SimulationResult(result_tx.reset_index(drop=True), customers, summary)


def _orders(
    world: GeneratedWorld,
    t: pd.DataFrame,
    owner: np.ndarray,
    order_time: np.ndarray,
    ids: np.ndarray,
    rng: np.random.Generator,
    *,
    categories: tuple[str, ...],
    channels: tuple[str, ...],
) -> pd.DataFrame:
    """Simulated orders as contract transactions, drawn as the generator draws them."""
    from clv.data.generator import CARBON_INTENSITY, ECO_CARBON_FACTOR

    cfg = world.config
    n = len(owner)
    by_name = {s.name: s for s in cfg.segments}
    latent = t["segment"].astype(str).to_numpy()[owner]
    shape = np.array([by_name[s].p for s in latent]) if n else np.zeros(0)
    nu = t["spend_rate_nu"].to_numpy(dtype=float)[owner]
    value = rng.gamma(shape, 1.0 / nu) if n else np.zeros(0)
    eco_prob = t["eco_share"].to_numpy(dtype=float)[owner]
    if cfg.drift is not None:
        drifted = order_time >= float((cfg.drift.start - cfg.start).days)
        value = np.where(drifted, value * cfg.drift.price_level, value)
        eco_prob = np.where(drifted, np.clip(eco_prob + cfg.drift.eco_share_shift, 0, 1), eco_prob)
    value = np.maximum(np.round(value, 2), 0.5)
    category = np.empty(n, dtype=np.int64)
    u = rng.random(n)
    for name, seg in by_name.items():
        mine = latent == name
        category[mine] = np.searchsorted(np.cumsum(seg.category_mix), u[mine], side="right")
    category = np.minimum(category, len(categories) - 1)
    is_eco = rng.random(n) < eco_prob
    acquisition = (
        world.customers.set_index("customer_id")["acquisition_channel"]
        .reindex(ids[owner])
        .fillna(channels[0])
        .to_numpy()
    )
    mix = np.asarray(cfg.channel_mix)
    channel = np.where(
        rng.random(n) < 0.6, acquisition, np.asarray(channels)[rng.choice(len(channels), n, p=mix)]
    )
    intensity = np.array([CARBON_INTENSITY[c] for c in categories])[category]
    carbon = value * intensity * np.where(is_eco, ECO_CARBON_FACTOR, 1.0)
    carbon = np.round(carbon * rng.lognormal(0.0, 0.2, n), 3)
    numbers = world.transactions["order_id"].astype(str).str.extract(r"(\d+)$")[0]
    first = int(pd.to_numeric(numbers, errors="coerce").max() or 0) + 1
    seconds = np.floor(order_time * 86_400).astype("int64")
    return pd.DataFrame(
        {
            "customer_id": ids[owner],
            "timestamp": pd.Timestamp(cfg.start) + pd.to_timedelta(seconds, unit="s"),
            "amount": value,
            "order_id": [f"S{number:010d}" for number in range(first, first + n)],
            "quantity": 1 + rng.poisson(value / 60.0),
            "product_category": np.asarray(categories)[category],
            "is_eco_product": is_eco,
            "channel": channel,
            "carbon_kg": carbon,
        }
    )


def _truth_summary(
    customers: pd.DataFrame, *, spec: UpliftSpec, window_days: int, seed: int
) -> dict[str, Any]:
    treated = customers[customers["group"] != HOLDOUT]

    def breakdown(column: str) -> dict[str, dict[str, float | int]]:
        out: dict[str, dict[str, float | int]] = {}
        for key, part in customers.groupby(column, sort=True):
            mine = part[part["group"] != HOLDOUT]
            out[str(key)] = {
                "incremental_revenue": float(mine["true_incremental_revenue"].sum()),
                "n_treated": len(mine),
                "n_holdout": int((part["group"] == HOLDOUT).sum()),
                "mean_uplift": float(mine["uplift"].mean()) if len(mine) else 0.0,
            }
        return out

    variants = breakdown("group")
    variants.pop(HOLDOUT, None)
    return {
        "incremental_revenue": float(treated["true_incremental_revenue"].sum()),
        "n_treated": len(treated),
        "n_holdout": int((customers["group"] == HOLDOUT).sum()),
        "per_segment": breakdown("segment"),
        "per_variant": variants,
        "per_channel": breakdown("channel"),
        "per_latent_segment": breakdown("latent_segment"),
        "window_days": window_days,
        "seed": seed,
        "uplift": spec.model_dump(),
    }


def write_simulation(result: SimulationResult, out_dir: str | Path) -> Mapping[str, Path]:
    """Write ``transactions.parquet``, ``customers.parquet`` and ``truth.json``, atomically.

    Returns
    -------
    mapping of str to Path
        What was written.
    """
    from clv.data.io import write_atomic, write_table

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "transactions": out / "transactions.parquet",
        "customers": out / "customers.parquet",
        "truth": out / "truth.json",
    }
    write_table(result.transactions, paths["transactions"])
    write_table(result.customers, paths["customers"])
    text = json.dumps(result.truth, indent=2, sort_keys=True)
    write_atomic(paths["truth"], lambda p: p.write_text(text + "\n", encoding="utf-8"))
    return paths
