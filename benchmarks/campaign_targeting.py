"""Benchmark: targeting by expected incremental value vs "highest CLV first" vs random, one budget.

Goal (issue: campaigns): at the same budget, on generated data with a known uplift, the true
incremental revenue of our targeting is at least 1.25 × that of "highest CLV first".

The loop a team runs, on generated data whose true response is known
(:mod:`clv.campaigns.simulation`):

1. **World.** ``clv generate`` data (``--customers``, seed = the repetition's seed), written to a
   folder and read back with :func:`clv.campaigns.simulation.load_generated`. The observation ends
   on 2025-12-31; nothing after it is shown to the scoring, segmentation or planning.
2. **Scores and segments.** ``--scores model`` (default): what ships, ``clv.CLVPredictor`` (one
   LightGBM study of one trial, 90-day horizon, the same seed) fitted and scored on the observed
   transactions. ``--scores truth``: the generator's ``expected_spend_90d`` as ``predicted_clv``
   (an oracle, for quick runs and the unit test). Segments: ``clv.segment(scores, method="rfm")``,
   the rule-table RFM segments (Champions, Loyal, At risk, ...), passed as ``segments=``: the
   plan's ``segment`` column.
3. **True uplift.** One :class:`~clv.campaigns.simulation.UpliftRule` per RFM segment
   (:data:`TRUE_UPLIFT`): the high-value regulars barely respond (Champions +2 %, Loyal +3 %: they
   buy anyway, the "sure things"), lapsing valuable ones respond strongly (Can't lose them +60 %,
   At risk +50 %), the dormant little (Lost +5 %). It is the purchase-rate multiplier during the
   attribution window (14 days) of a treated customer.
4. **Exploration.** A broad random campaign: every scored customer (``--exploration-share``
   below 1 draws a seeded random sample first; audience rules only see score columns), a budget
   that covers all of them, half held out at random; planned with
   :func:`~clv.campaigns.planning.plan_campaign` from the configured prior (so only customers
   whose expected net value under the prior is positive are sent or held out: most of the
   low-CLV At risk, Hibernating, Lost and Can't lose them are not explored), sent on 2026-01-05,
   simulated (:func:`~clv.campaigns.simulation.simulate_campaign`) and measured with
   :func:`~clv.campaigns.measurement.analyze_campaign`. Its per-segment relative uplift, in
   revenue (CUPED on pre-period spend) and in the number of orders (CUPED on pre-period orders),
   becomes the rows ``clv campaign analyze`` stores, built by the same function
   (:func:`clv.campaigns.service.measured_uplift_rows`: ``segment, channel, metric, uplift,
   standard_error, n_treated, n_holdout``, ``metric`` ``revenue`` or ``orders``), which the next
   plan reads as ``measured_uplift`` (it uses the orders rows where there are some:
   :data:`clv.campaigns.targeting.UPLIFT_METRICS`).
5. **Targeting at a fixed budget** (``--budget``; smaller than what messaging every eligible
   customer costs), one SMS channel at 0.05 per message, send on 2026-02-02 09:00 UTC, 10 %
   holdout (not charged, no effect):

   * **ours**: ``plan_campaign(..., measured_uplift=<the exploration's rows>)``, with its
     defaults: each segment's measured uplift shrunk towards a meta-regression on the segments'
     mean churn probability and mean log predicted CLV, the residual spread integrated over its
     posterior (:func:`clv.campaigns.targeting.shrink_uplift`);
   * **ours, prior only**: the same without ``measured_uplift`` (every segment gets the
     configured prior, so the ranking is predicted CLV, net of cost): what the loop adds;
   * **ours, true uplift (ceiling)**: the planner given :data:`TRUE_UPLIFT` as a measurement
     with a negligible standard error: what perfect learning would reach;
   * **highest CLV first** and **random**:
     :func:`~clv.campaigns.targeting.select_under_budget` (``highest_clv`` / ``random``) over the
     same eligible customers (opted in), with a budget equal to what ours spent on treated
     customers.

   Every selection is simulated with the same seed, the same send time and window, and scored by
   the simulation's truth: ``truth["incremental_revenue"]``, the expected incremental revenue of
   its treated customers given their latent parameters (no sampling noise; the noise is in the
   exploration's measurement and in the world). The exploration's response is not carried into
   the second campaign's world (both fork the generated world at its end).

Repeated over ``--seeds`` seeds (0, 1, ...): mean ± sd per strategy, and the ratio of ours (and of
ours with the prior only) to highest CLV first, per seed then averaged.

Usage: python benchmarks/campaign_targeting.py [--customers 20000] [--seeds 5] [--budget 100]
       [--scores model|truth] [--exploration-share 1.0]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from clv.campaigns.definition import HOLDOUT, CampaignDefinition
from clv.campaigns.eligibility import eligibility
from clv.campaigns.measurement import analyze_campaign
from clv.campaigns.planning import Plan, plan_campaign
from clv.campaigns.service import measured_uplift_rows
from clv.campaigns.simulation import (
    GeneratedWorld,
    UpliftRule,
    UpliftSpec,
    load_generated,
    simulate_campaign,
)
from clv.campaigns.targeting import candidates, select_under_budget, shrink_uplift

logger = logging.getLogger("campaign_targeting")

CHANNEL = "sms"
COST_PER_MESSAGE = 0.05
WINDOW_DAYS = 14
MARGIN = 0.3
PRIOR_RATE = 0.05
PRIOR_SD = 0.05
HOLDOUT_SHARE = 0.10
EXPLORATION_AUDIENCE = 1.0
EXPLORATION_HOLDOUT = 0.5
EXPLORATION_SEND = pd.Timestamp("2026-01-05T09:00:00Z")
TARGETING_SEND = pd.Timestamp("2026-02-02T09:00:00Z")
VARIANT = "offer"

#: True relative purchase-rate uplift of a treated customer, by RFM segment.
TRUE_UPLIFT: dict[str, float] = {
    "Champions": 0.02,
    "Loyal": 0.03,
    "Can't lose them": 0.60,
    "At risk": 0.50,
    "About to sleep": 0.40,
    "Need attention": 0.35,
    "Potential loyalist": 0.25,
    "Promising": 0.20,
    "New": 0.15,
    "Hibernating": 0.10,
    "Lost": 0.05,
}
DEFAULT_UPLIFT = 0.10

STRATEGIES: tuple[str, ...] = (
    "ours",
    "ours, prior only",
    "ours, true uplift (ceiling)",
    "highest CLV first",
    "random",
)
#: Columns of :func:`run_benchmark`'s per-seed frame.
RESULT_COLUMNS: tuple[str, ...] = (
    "seed",
    "strategy",
    "messages",
    "cost",
    "true_incremental_revenue",
    "true_roi",
    "expected_margin",
)


@dataclass(frozen=True)
class SeedResult:
    """One repetition: a row per strategy, and the exploration's measurement per segment."""

    rows: pd.DataFrame
    segments: pd.DataFrame
    seconds: dict[str, float]


def _definition(
    name: str, *, budget: float, holdout: float, start: pd.Timestamp
) -> CampaignDefinition:
    return CampaignDefinition.model_validate(
        {
            "name": name,
            "audience": {"rule": "predicted_clv >= 0"},  # everyone scored
            "budget": budget,
            "currency": "EUR",
            "channels": {CHANNEL: {"kind": "sms", "cost_per_message": COST_PER_MESSAGE}},
            "variants": [
                {
                    "name": VARIANT,
                    "templates": {CHANNEL: {"body": "Hi {{ first_name }}, 10% off this week."}},
                }
            ],
            "holdout_share": holdout,
            "attribution_window_days": WINDOW_DAYS,
            "start": start.to_pydatetime(),
            "end": (start + pd.Timedelta(hours=11)).to_pydatetime(),
            "uplift_prior": {"rate": PRIOR_RATE, "sd": PRIOR_SD},
            "margin": MARGIN,
            "send_hours": {"earliest": 9, "latest": 20},
        }
    )


def _spec_for(plan: pd.DataFrame) -> UpliftSpec:
    """The true uplift, with rules only for segments in this plan (the spec refuses others)."""
    present = set(plan["segment"].astype(str))
    return UpliftSpec(
        default=DEFAULT_UPLIFT,
        rules=[UpliftRule(segment=s, uplift=u) for s, u in TRUE_UPLIFT.items() if s in present],
    )


def _true_effect(plan: pd.DataFrame, world: GeneratedWorld, *, seed: int) -> float:
    """The expected incremental revenue of the plan's treated customers, sent at one instant."""
    at_once = plan.assign(send_at=TARGETING_SEND.tz_convert("UTC").tz_localize(None))
    result = simulate_campaign(
        at_once, world, window_days=WINDOW_DAYS, spec=_spec_for(at_once), seed=seed
    )
    return float(result.truth["incremental_revenue"])


def _scores(
    data_folder: Path, world: GeneratedWorld, *, how: str, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores (``customer_id``, ``predicted_clv``, RFM columns) and the observed transactions."""
    import clv
    from clv.data.validation import validate_frame

    observed = validate_frame(
        pd.read_parquet(data_folder / "transactions.parquet"),
        "transactions",
        source="generated transactions",
    )
    as_of = pd.Timestamp(world.config.end) + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    if how == "model":
        model = clv.CLVPredictor(horizon_days=90, families=("lightgbm",), trials=1, seed=seed)
        scores = model.fit(observed).predict(observed, as_of=as_of)
    elif how == "truth":
        truth = world.truth.set_index("customer_id")
        seen = observed["customer_id"].astype(str).unique()
        scores = pd.DataFrame(
            {
                "customer_id": seen,
                "predicted_clv": truth[f"expected_spend_{world.config.horizon_days}d"]
                .reindex(seen)
                .to_numpy(),
                "as_of": as_of,
            }
        )
    else:
        raise ValueError(f"--scores must be model or truth, got {how!r}")
    segmented = clv.segment(scores, observed, method="rfm")
    return segmented, observed


def run_seed(
    n_customers: int,
    seed: int,
    *,
    budget: float,
    scores_from: str = "model",
    exploration_share: float = EXPLORATION_AUDIENCE,
    work_dir: Path,
) -> SeedResult:
    """One repetition of the loop (see the module docstring)."""
    from clv.data.generator import GeneratorConfig, generate, write_synthetic

    seconds: dict[str, float] = {}
    started = time.perf_counter()
    folder = work_dir / f"generated-{n_customers}-{seed}"
    write_synthetic(generate(GeneratorConfig(n_customers=n_customers), seed=seed), folder)
    world = load_generated(folder)
    seconds["generate"] = time.perf_counter() - started

    started = time.perf_counter()
    scores, observed = _scores(folder, world, how=scores_from, seed=seed)
    segments = scores.set_index(scores["customer_id"].astype(str))["segment"].astype(str)
    seconds["scores"] = time.perf_counter() - started
    rng = np.random.default_rng(seed)
    sample = scores[rng.random(len(scores)) < exploration_share].reset_index(drop=True)

    # --- step 1: exploration -------------------------------------------------------------------
    started = time.perf_counter()
    explore = _definition(
        f"explore-s{seed}",
        budget=COST_PER_MESSAGE * len(scores),
        holdout=EXPLORATION_HOLDOUT,
        start=EXPLORATION_SEND,
    )

    def planned(
        definition: CampaignDefinition, chosen: pd.DataFrame, measured: pd.DataFrame | None
    ) -> Plan:
        return plan_campaign(
            definition,
            scores=chosen,
            customers=world.customers,
            transactions=observed,
            segments=segments,
            measured_uplift=measured,
        )

    explored = planned(explore, sample, None)
    simulated = simulate_campaign(
        explored.rows,
        world,
        window_days=WINDOW_DAYS,
        spec=_spec_for(explored.rows),
        seed=seed,
    )
    analysis = analyze_campaign(
        explored.campaign_id, explore, explored.rows, simulated.transactions
    )
    measured = measured_uplift_rows(analysis, explore)
    seconds["exploration"] = time.perf_counter() - started

    # --- step 2: the same budget, four ways ------------------------------------------------------
    started = time.perf_counter()
    target = _definition(
        f"target-s{seed}", budget=budget, holdout=HOLDOUT_SHARE, start=TARGETING_SEND
    )
    ours = planned(target, scores, measured)
    prior_only = planned(target, scores, None)
    known = pd.DataFrame(
        {
            "segment": sorted(set(segments)),
            "channel": CHANNEL,
            "uplift": [TRUE_UPLIFT.get(s, DEFAULT_UPLIFT) for s in sorted(set(segments))],
            "standard_error": 1e-6,
        }
    )
    ceiling = planned(target, scores, known)
    spent = _treated_cost(ours)
    pool = _eligible(scores, world.customers, segments)
    prior = shrink_uplift(
        None, sorted(set(pool["segment"])), [CHANNEL], prior_rate=PRIOR_RATE, prior_sd=PRIOR_SD
    )
    pairs = candidates(pool, {CHANNEL: COST_PER_MESSAGE}, prior, margin=MARGIN)
    keys: tuple[tuple[str, Literal["highest_clv", "random"]], ...] = (
        ("highest CLV first", "highest_clv"),
        ("random", "random"),
    )
    baselines = {
        strategy: select_under_budget(pairs, spent, strategy=key, seed=seed).assign(
            group=VARIANT, send_at=TARGETING_SEND.tz_convert("UTC").tz_localize(None)
        )
        for strategy, key in keys
    }
    plans = {
        "ours": ours.rows,
        "ours, prior only": prior_only.rows,
        "ours, true uplift (ceiling)": ceiling.rows,
        **baselines,
    }
    rows = []
    for strategy in STRATEGIES:
        plan = plans[strategy]
        treated = plan[plan["group"] != HOLDOUT]
        cost = float(treated["cost"].sum())
        effect = _true_effect(plan, world, seed=seed)
        rows.append(
            {
                "seed": seed,
                "strategy": strategy,
                "messages": len(treated),
                "cost": cost,
                "true_incremental_revenue": effect,
                "true_roi": (MARGIN * effect - cost) / cost if cost > 0 else float("nan"),
                # What the planner expected (uplift × margin × predicted CLV): ours only.
                "expected_margin": float(treated["expected_incremental_value"].sum())
                if strategy.startswith("ours")
                else float("nan"),
            }
        )
    seconds["targeting"] = time.perf_counter() - started

    used = ours.uplift.set_index("segment")["uplift"]
    by_metric = {
        metric: measured[measured["metric"] == metric].set_index("segment")
        for metric in ("revenue", "orders")
    }
    per_segment = pd.DataFrame({"segment": sorted(set(pool["segment"]))})
    per_segment = per_segment.assign(
        seed=seed,
        true_uplift=per_segment["segment"].map(TRUE_UPLIFT).fillna(DEFAULT_UPLIFT),
        measured=per_segment["segment"].map(by_metric["revenue"]["uplift"]),
        standard_error=per_segment["segment"].map(by_metric["revenue"]["standard_error"]),
        measured_orders=per_segment["segment"].map(by_metric["orders"]["uplift"]),
        standard_error_orders=per_segment["segment"].map(by_metric["orders"]["standard_error"]),
        shrunk=per_segment["segment"].map(used),
        eligible=per_segment["segment"].map(pool["segment"].value_counts()),
        explored=per_segment["segment"].map(
            by_metric["revenue"]["n_treated"] + by_metric["revenue"]["n_holdout"]
        ),
        ours=per_segment["segment"].map(_treated(ours.rows)["segment"].value_counts()),
        ceiling=per_segment["segment"].map(_treated(ceiling.rows)["segment"].value_counts()),
        highest_clv=per_segment["segment"].map(
            baselines["highest CLV first"]["segment"].value_counts()
        ),
    ).fillna({"ours": 0, "ceiling": 0, "highest_clv": 0, "explored": 0})
    return SeedResult(pd.DataFrame(rows, columns=list(RESULT_COLUMNS)), per_segment, seconds)


def _treated(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["group"] != HOLDOUT]


def _treated_cost(plan: Plan) -> float:
    return float(_treated(plan.rows)["cost"].sum())


def _eligible(scores: pd.DataFrame, customers: pd.DataFrame, segments: pd.Series) -> pd.DataFrame:
    """Everyone the targeting campaign may contact (the planner's own eligibility rule)."""
    frame = scores[["customer_id", "predicted_clv"]].assign(
        customer_id=scores["customer_id"].astype(str)
    )
    frame = frame.merge(
        customers.assign(customer_id=customers["customer_id"].astype(str))[
            ["customer_id", "marketing_opt_in"]
        ],
        on="customer_id",
        how="left",
    )
    allowed = eligibility(
        frame, [CHANNEL], now=TARGETING_SEND.tz_localize(None), channel_kinds={CHANNEL: "sms"}
    )
    pool = frame[frame["customer_id"].isin(allowed.eligible_ids)]
    return pool.assign(
        segment=segments.reindex(pool["customer_id"].to_numpy()).fillna("unsegmented").to_numpy()
    )[["customer_id", "segment", "predicted_clv"]].reset_index(drop=True)


def run_benchmark(
    n_customers: int,
    seeds: int,
    *,
    budget: float,
    scores_from: str = "model",
    exploration_share: float = EXPLORATION_AUDIENCE,
    work_dir: Path | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """Every repetition; the per-seed rows, the per-segment measurements and the seconds spent."""
    results = []
    with tempfile.TemporaryDirectory(prefix="clv-targeting-") as tmp:
        base = Path(work_dir) if work_dir is not None else Path(tmp)
        for seed in range(seeds):
            logger.info("seed %d of %d: %s customers", seed + 1, seeds, f"{n_customers:,}")
            results.append(
                run_seed(
                    n_customers,
                    seed,
                    budget=budget,
                    scores_from=scores_from,
                    exploration_share=exploration_share,
                    work_dir=base,
                )
            )
    seconds: dict[str, float] = {}
    for result in results:
        for step, value in result.seconds.items():
            seconds[step] = seconds.get(step, 0.0) + value
    return (
        pd.concat([r.rows for r in results], ignore_index=True),
        pd.concat([r.segments for r in results], ignore_index=True),
        seconds,
    )


def summary_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean ± sd per strategy over the seeds, and the ratio to highest CLV first per seed."""
    wide = rows.pivot(index="seed", columns="strategy", values="true_incremental_revenue")
    ratio = wide.div(wide["highest CLV first"], axis=0)
    out = []
    for strategy in STRATEGIES:
        mine = rows[rows["strategy"] == strategy]
        out.append(
            {
                "strategy": strategy,
                "messages": float(mine["messages"].mean()),
                "cost": float(mine["cost"].mean()),
                "revenue_mean": float(mine["true_incremental_revenue"].mean()),
                "revenue_sd": float(mine["true_incremental_revenue"].std(ddof=1))
                if len(mine) > 1
                else float("nan"),
                "roi_mean": float(mine["true_roi"].mean()),
                "expected_margin": float(mine["expected_margin"].mean()),
                "ratio_mean": float(ratio[strategy].mean()),
                "ratio_sd": float(ratio[strategy].std(ddof=1)) if len(ratio) > 1 else float("nan"),
                "ratio_min": float(ratio[strategy].min()),
            }
        )
    return pd.DataFrame(out)


def _pm(mean: float, sd: float, fmt: str) -> str:
    if np.isnan(mean):
        return "–"  # e.g. a segment the exploration never measured
    spread = fmt.lstrip("+")
    return f"{mean:{fmt}}" + ("" if np.isnan(sd) else f" ± {sd:{spread}}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="targeting budget in EUR (default: 0.5 %% of --customers, i.e. 100 at 20,000: "
        "2,000 messages at 0.05)",
    )
    parser.add_argument("--scores", choices=("model", "truth"), default="model")
    parser.add_argument(
        "--exploration-share",
        type=float,
        default=EXPLORATION_AUDIENCE,
        help="share of the scored customers drawn at random into the exploration (default "
        "all; half of them are held out)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("clv", "lightgbm", "optuna"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    budget = args.budget if args.budget is not None else 0.005 * args.customers

    from _data import git_revision  # benchmarks/ is on sys.path

    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    started = time.perf_counter()
    rows, segments, seconds = run_benchmark(
        args.customers,
        args.seeds,
        budget=budget,
        scores_from=args.scores,
        exploration_share=args.exploration_share,
    )
    total = time.perf_counter() - started
    print(f"# campaign_targeting — {date.today()} — {machine} — commit {git_revision()}\n")
    print(
        f"{args.customers:,} generated customers × {args.seeds} seeds; scores: {args.scores}; "
        f"budget {budget:,.2f} EUR ({CHANNEL} at {COST_PER_MESSAGE} per message), window "
        f"{WINDOW_DAYS} days, margin {MARGIN}, prior {PRIOR_RATE} ± {PRIOR_SD}; exploration "
        f"on {args.exploration_share:.0%} of the customers, half held out.\n"
    )
    table = summary_table(rows)
    print(
        "| strategy | messages | cost (EUR) | true incremental revenue (EUR), mean ± sd | "
        "true ROI | ÷ highest CLV first, mean ± sd | min over seeds | true incremental margin | "
        "planner's expected margin |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for record in table.to_dict("records"):
        r = {k: v if k == "strategy" else float(v) for k, v in record.items()}
        print(
            f"| {r['strategy']} | {r['messages']:,.0f} | {r['cost']:,.2f} | "
            f"{_pm(r['revenue_mean'], r['revenue_sd'], ',.0f')} | {r['roi_mean']:+.0%} | "
            f"{_pm(r['ratio_mean'], r['ratio_sd'], '.2f')} | {r['ratio_min']:.2f} | "
            f"{MARGIN * r['revenue_mean']:,.0f} | "
            + ("–" if np.isnan(r["expected_margin"]) else f"{r['expected_margin']:,.0f}")
            + " |"
        )
    ours = table.set_index("strategy").loc["ours"]
    met = ours["ratio_mean"] >= 1.25
    print(
        f"\nGoal (ours ≥ 1.25 × highest CLV first): {'met' if met else 'NOT met'} on the mean "
        f"({ours['ratio_mean']:.2f}); in {int((_ratios(rows) >= 1.25).sum())} of {args.seeds} "
        "seeds."
    )
    per_seed = ", ".join(f"{r:.2f}" for r in _ratios(rows))
    print(f"Ours ÷ highest CLV first, per seed: {per_seed}.")

    print("\nExploration, per RFM segment (mean over seeds):\n")
    print(
        "| segment | eligible | explored | true uplift | measured revenue uplift, mean ± sd "
        "over seeds | mean se | measured orders uplift, mean ± sd | mean se | used by the "
        "planner | messages: ours | ceiling | highest CLV first |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    grouped = segments.groupby("segment")
    order = grouped["true_uplift"].first().sort_values(ascending=False).index
    for name in order:
        part = grouped.get_group(name)
        print(
            f"| {name} | {part['eligible'].mean():,.0f} | {part['explored'].mean():,.0f} | "
            f"{part['true_uplift'].iloc[0]:+.0%} | "
            f"{_pm(part['measured'].mean(), part['measured'].std(ddof=1), '+.2f')} | "
            f"{_num(part['standard_error'].mean())} | "
            f"{_pm(part['measured_orders'].mean(), part['measured_orders'].std(ddof=1), '+.2f')} "
            f"| {_num(part['standard_error_orders'].mean())} | {part['shrunk'].mean():+.3f} | "
            f"{part['ours'].mean():,.0f} | {part['ceiling'].mean():,.0f} | "
            f"{part['highest_clv'].mean():,.0f} |"
        )
    steps = ", ".join(f"{k} {v:.0f}" for k, v in seconds.items())
    print(f"\nSeconds (all seeds): {steps}; total {total:.0f} s.")


def _num(value: float) -> str:
    return "–" if np.isnan(value) else f"{value:.2f}"


def _ratios(rows: pd.DataFrame) -> pd.Series:
    wide = rows.pivot(index="seed", columns="strategy", values="true_incremental_revenue")
    return wide["ours"] / wide["highest CLV first"]


if __name__ == "__main__":
    main()
