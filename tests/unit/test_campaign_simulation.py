"""The known truth of a campaign: simulated responses, and the analysis recovering them."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from clv.campaigns.definition import HOLDOUT, CampaignDefinition
from clv.campaigns.errors import CampaignError
from clv.campaigns.measurement import analyze_campaign
from clv.campaigns.simulation import (
    GeneratedWorld,
    UpliftRule,
    UpliftSpec,
    load_generated,
    load_uplift_spec,
    simulate_campaign,
    write_simulation,
)
from clv.cli import app
from clv.data.generator import GeneratorConfig, generate, write_synthetic

WINDOW = 28
SEND = pd.Timestamp("2025-04-07 10:00")  # a week after the generated data end


def _definition(variants: tuple[str, ...]) -> CampaignDefinition:
    text = f"""
name: simulated
audience: {{rule: predicted_clv > 0}}
budget: 1000
channels:
  email: {{kind: email, cost_per_message: 0.01}}
variants:
{
        "".join(
            f'''  - name: {v}
    templates:
      email: {{subject: "hi", body: "hello"}}
'''
            for v in variants
        )
    }
holdout_share: 0.5
attribution_window_days: {WINDOW}
start: 2025-04-07T08:00:00Z
end: 2025-04-08T20:00:00Z
"""
    return CampaignDefinition.model_validate(yaml.safe_load(text))


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("generated")
    data = generate(
        GeneratorConfig(n_customers=3000, start=date(2023, 1, 1), end=date(2025, 3, 31)), seed=11
    )
    write_synthetic(data, folder)
    return folder


@pytest.fixture(scope="module")
def world(generated: Path) -> GeneratedWorld:
    return load_generated(generated)


def _plan(world: GeneratedWorld, groups: tuple[str, ...], seed: int, n: int = 2000) -> pd.DataFrame:
    """A random assignment of ``n`` customers: half holdout, the rest spread over ``groups``."""
    rng = np.random.default_rng(10_000 + seed)
    ids = rng.choice(world.truth["customer_id"].to_numpy(), size=n, replace=False)
    treated = rng.random(n) >= 0.5
    group = np.where(treated, np.asarray(groups)[rng.integers(0, len(groups), n)], HOLDOUT)
    return pd.DataFrame(
        {
            "customer_id": ids,
            "group": group,
            "segment": np.where(rng.random(n) < 0.5, "loyal", "at_risk"),
            "channel": "email",
            "send_at": SEND,
            "cost": np.where(treated, 0.01, 0.0),
        }
    )


def test_the_95_percent_interval_covers_the_true_incremental_revenue_about_95_times_in_100(
    world: GeneratedWorld,
) -> None:
    definition = _definition(("a",))
    covered, errors = 0, []
    for seed in range(50):
        plan = _plan(world, ("a",), seed)
        result = simulate_campaign(
            plan, world, window_days=WINDOW, spec=UpliftSpec(default=0.3), seed=seed
        )
        analysis = analyze_campaign("sim", definition, plan, result.transactions)
        truth = result.truth["incremental_revenue"]
        inc = analysis.incremental_revenue
        covered += inc["ci_low"] <= truth <= inc["ci_high"]
        errors.append(inc["estimate"] - truth)
    # 95% intervals: between 45 and 49 of 50 (90–99%), and no systematic error.
    assert 45 <= covered <= 49, covered
    assert abs(np.mean(errors)) < 2 * np.std(errors) / np.sqrt(len(errors))


def test_the_variant_with_the_much_larger_true_uplift_wins(world: GeneratedWorld) -> None:
    definition = _definition(("plain", "strong"))
    spec = UpliftSpec(default=0.0, rules=[UpliftRule(variant="strong", uplift=2.0)])
    for seed in range(3):
        plan = _plan(world, ("plain", "strong"), seed, n=3000)
        result = simulate_campaign(plan, world, window_days=WINDOW, spec=spec, seed=seed)
        analysis = analyze_campaign("sim", definition, plan, result.transactions)
        assert analysis.winner == "strong", analysis.reason


def test_no_winner_is_declared_when_no_variant_has_an_effect(world: GeneratedWorld) -> None:
    definition = _definition(("a", "b"))
    winners = []
    for seed in range(20):
        plan = _plan(world, ("a", "b"), seed)
        result = simulate_campaign(
            plan, world, window_days=WINDOW, spec=UpliftSpec(default=0.0), seed=seed
        )
        assert result.truth["incremental_revenue"] == 0.0
        winners.append(analyze_campaign("sim", definition, plan, result.transactions).winner)
    assert sum(w is not None for w in winners) <= 2, winners


def test_the_truth_adds_up_and_holdout_customers_have_none(world: GeneratedWorld) -> None:
    plan = _plan(world, ("a", "b"), seed=1)
    spec = UpliftSpec(default=0.1, rules=[UpliftRule(segment="loyal", variant="b", uplift=0.8)])
    result = simulate_campaign(plan, world, window_days=WINDOW, spec=spec, seed=1)
    truth, customers = result.truth, result.customers
    assert (customers.loc[customers["group"] == HOLDOUT, "true_incremental_revenue"] == 0).all()
    assert (customers["true_incremental_revenue"] >= 0).all()
    for kind in ("per_segment", "per_variant", "per_channel", "per_latent_segment"):
        total = sum(part["incremental_revenue"] for part in truth[kind].values())
        assert total == pytest.approx(truth["incremental_revenue"])
    loyal_b = customers[(customers["segment"] == "loyal") & (customers["group"] == "b")]
    assert (loyal_b["uplift"] == 0.8).all()
    assert truth["n_treated"] + truth["n_holdout"] == len(plan)


def test_history_before_the_send_is_kept_and_the_same_seed_gives_the_same_world(
    world: GeneratedWorld,
) -> None:
    plan = _plan(world, ("a",), seed=2)
    first = simulate_campaign(plan, world, window_days=WINDOW, seed=5)
    again = simulate_campaign(plan, world, window_days=WINDOW, seed=5)
    other = simulate_campaign(plan, world, window_days=WINDOW, seed=6)
    pd.testing.assert_frame_equal(first.transactions, again.transactions)
    assert not first.transactions.equals(other.transactions)
    # Everything up to the end of the generated observation stays; from there on the planned
    # customers' purchases are drawn again (the send is a week after the data end).
    data_end = pd.Timestamp("2025-04-01")
    before = world.transactions[world.transactions["timestamp"] < data_end]
    kept = first.transactions[first.transactions["timestamp"] < data_end]
    assert len(kept) == len(before) and kept["amount"].sum() == pytest.approx(
        before["amount"].sum()
    )
    simulated = first.transactions[first.transactions["order_id"].str.startswith("S")]
    assert simulated["customer_id"].isin(plan["customer_id"]).all()
    assert (simulated["timestamp"] >= data_end).all()


def test_a_rule_naming_a_variant_the_plan_lacks_is_refused(world: GeneratedWorld) -> None:
    plan = _plan(world, ("a",), seed=3)
    spec = UpliftSpec(
        rules=[UpliftRule(variant="a", uplift=0.1), UpliftRule(variant="z", uplift=1)]
    )
    with pytest.raises(CampaignError, match=r"uplift rule 2: variant 'z' is not in the plan"):
        simulate_campaign(plan, world, window_days=WINDOW, spec=spec)


def test_customers_not_in_the_generated_data_are_refused(world: GeneratedWorld) -> None:
    plan = _plan(world, ("a",), seed=3)
    plan.loc[0, "customer_id"] = "nobody"
    with pytest.raises(CampaignError, match=r"not in the generated data.*'nobody'"):
        simulate_campaign(plan, world, window_days=WINDOW)


def test_a_folder_that_is_not_generated_data_is_refused(tmp_path: Path) -> None:
    (tmp_path / "transactions.parquet").write_bytes(b"")
    with pytest.raises(CampaignError, match=r"no truth\.json here"):
        load_generated(tmp_path)


def test_an_uplift_file_with_a_bad_value_names_the_line(tmp_path: Path) -> None:
    from clv.config import ConfigError

    path = tmp_path / "uplift.yaml"
    path.write_text("default: 0.1\nrules:\n  - variant: A\n    uplift: -3\n")
    with pytest.raises(ConfigError, match="line"):
        load_uplift_spec(path)


def test_simulate_command_writes_the_truth_and_refuses_real_data(
    world: GeneratedWorld, generated: Path, tmp_path: Path
) -> None:
    plan_dir = tmp_path / "plan"
    plan_dir.mkdir()
    _plan(world, ("a",), seed=4).to_parquet(plan_dir / "plan.parquet")
    (plan_dir / "summary.json").write_text('{"campaign_id": "not-stored-1234"}')
    runner = CliRunner()
    out = tmp_path / "sim"
    ok = runner.invoke(
        app,
        ["campaign", "simulate", str(plan_dir), "--data", str(generated), "--out", str(out),
         "--window", str(WINDOW), "--uplift", "0.5", "--seed", "3"],
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    written = load_truth = (out / "truth.json").read_text()
    assert '"incremental_revenue"' in written and (out / "transactions.parquet").is_file()
    assert str(load_truth).count('"uplift"') >= 1

    real = tmp_path / "real"
    real.mkdir()
    refused = runner.invoke(
        app,
        ["campaign", "simulate", str(plan_dir), "--data", str(real), "--out", str(out),
         "--window", str(WINDOW)],
    )  # fmt: skip
    assert refused.exit_code == 2
    assert "no truth.json here" in refused.output and "Traceback" not in refused.output

    no_window = runner.invoke(
        app, ["campaign", "simulate", str(plan_dir), "--data", str(generated), "--out", str(out)]
    )
    assert no_window.exit_code == 1 and "--window" in no_window.output


def test_writing_a_simulation_leaves_no_partial_files(
    world: GeneratedWorld, tmp_path: Path
) -> None:
    result = simulate_campaign(_plan(world, ("a",), seed=5), world, window_days=WINDOW)
    paths = write_simulation(result, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        p.name for p in paths.values()
    )


def test_a_sustainability_campaign_is_judged_on_eco_adoption_with_the_other_metrics_beside(
    world: GeneratedWorld,
) -> None:
    definition = _definition(("plain", "green")).model_copy(
        update={"primary_metric": "eco_adoption"}
    )
    spec = UpliftSpec(default=0.0, rules=[UpliftRule(variant="green", uplift=3.0)])
    plan = _plan(world, ("plain", "green"), seed=7, n=3000)
    result = simulate_campaign(plan, world, window_days=WINDOW, spec=spec, seed=7)
    analysis = analyze_campaign("eco", definition, plan, result.transactions)
    assert analysis.metric == "eco_adoption"
    assert analysis.winner == "green", analysis.reason
    metrics = {m["metric"]: m for m in analysis.metrics}
    assert set(metrics) == {"revenue", "conversion", "retention", "eco_adoption"}
    assert [name for name, m in metrics.items() if m["primary"]] == ["eco_adoption"]
    # Buying faster means more customers buy, and more of them an eco product.
    assert metrics["conversion"]["absolute"]["estimate"] > 0
    assert metrics["eco_adoption"]["absolute"]["estimate"] > 0
