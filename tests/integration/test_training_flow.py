"""The training flow on a real MLflow server and Prefect's test harness.

One small run is shared by the tests of this module: it tunes all three families (two trials
each), registers challengers for clv-spend and clv-churn, and is then run again unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clv.data.generator import GeneratorConfig, generate, write_synthetic
from tests.conftest import _start_mlflow_server, _stop_process_group

TRIALS = 2
FAMILIES = ["xgboost", "lightgbm", "keras_ziln"]


@pytest.fixture(scope="module")
def own_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server of this module's own: the flow registers the fixed names clv-spend/clv-churn."""
    folder = tmp_path_factory.mktemp("mlflow-flow")
    proc, url = _start_mlflow_server(f"sqlite:///{folder}/mlflow.db", folder)
    try:
        yield url
    finally:
        _stop_process_group(proc)


@pytest.fixture(scope="module")
def runs(
    own_mlflow: str, prefect_harness: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Run the flow twice on the same data inside the session's Prefect test harness."""
    from clv.settings import get_settings

    monkeypatch = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("flow-home")
    for key, value in {
        "CLV_HOME": str(home),
        "MLFLOW_TRACKING_URI": own_mlflow,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    data = generate(GeneratorConfig(n_customers=1200), seed=11)
    write_synthetic(data, home / "data", fmt="csv")
    transactions = str(home / "data" / "transactions.csv")
    try:
        from prefect.client.orchestration import get_client

        from flows.training import training_flow

        with get_client(sync_client=True) as client:
            # The harness is the session's: only this module's artifacts count below.
            before = {artifact.id for artifact in client.read_artifacts()}
        from clv.progress import reporting

        steps: list[str] = []
        with reporting(steps.append):
            first = training_flow(
                transactions=transactions, horizon_days=90, trials=TRIALS, families=FAMILIES
            )
        second = training_flow(
            transactions=transactions, horizon_days=90, trials=TRIALS, families=FAMILIES
        )
        with get_client(sync_client=True) as client:
            artifacts = [a for a in client.read_artifacts() if a.id not in before]
        yield {
            "first": first,
            "second": second,
            "artifacts": artifacts,
            "home": home,
            "steps": steps,
        }
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


@pytest.fixture
def tracking_env(own_mlflow: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", own_mlflow)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return own_mlflow


def test_first_run_registers_a_challenger_for_spend_and_churn(runs, tracking_env) -> None:  # type: ignore[no-untyped-def]
    from clv import tracking

    first = runs["first"]
    assert first["spend_created"] and first["churn_created"]
    spend = tracking.get_version(tracking.SPEND_MODEL, alias=tracking.CHALLENGER)
    churn = tracking.get_version(tracking.CHURN_MODEL, alias=tracking.CHALLENGER)
    assert spend is not None and spend.version == first["spend_version"]
    assert churn is not None and churn.version == first["churn_version"]
    assert tracking.CHAMPION not in spend.aliases  # only `clv promote` moves the champion
    for tag in ("data_hash", "as_of", "horizon_days", "code_version", tracking.FINGERPRINT_TAG):
        assert spend.tags.get(tag), tag
    assert float(spend.tags["metric.holdout_normalized_gini"]) > 0.5
    assert spend.tags["family"] in {*FAMILIES, "ensemble"}


def test_the_run_reports_each_long_step_in_order_for_the_cli_spinner(runs) -> None:  # type: ignore[no-untyped-def]
    steps: list[str] = runs["steps"]

    def first(prefix: str) -> int:
        found = [i for i, step in enumerate(steps) if step.startswith(prefix)]
        assert found, f"no step starting {prefix!r} in {steps}"
        return found[0]

    order = [
        first("reading and validating"),
        first("features at cut-off 1 of "),
        first("tuning xgboost: trial 1 complete, validation Gini 0."),
        first(f"tuning xgboost: trial {TRIALS} "),
        first("tuning keras_ziln: trial 1 "),
        first("holdout evaluation"),
        first("refitting "),
    ]
    assert order == sorted(order)
    cutoffs = [s for s in steps if s.startswith("features at cut-off ")]
    total = int(cutoffs[0].split(" of ")[1].split()[0])
    assert len(cutoffs) == total >= 2


def test_running_again_on_the_same_data_registers_nothing_new(runs) -> None:  # type: ignore[no-untyped-def]
    second = runs["second"]
    assert not second["spend_created"] and not second["churn_created"]
    assert second["spend_version"] == runs["first"]["spend_version"]
    assert second["fingerprint"] == runs["first"]["fingerprint"]


def test_every_trial_is_a_nested_run_of_the_training_run(runs, tracking_env) -> None:  # type: ignore[no-untyped-def]
    import mlflow

    mlflow.set_tracking_uri(tracking_env)
    parents = mlflow.search_runs(
        experiment_names=["clv-training"],
        filter_string=f"tags.`clv.fingerprint` = '{runs['first']['fingerprint']}'",
        output_format="list",
    )
    assert parents, "no training run was logged"
    first_parent = min(parents, key=lambda r: r.info.start_time)
    children = mlflow.search_runs(
        experiment_names=["clv-training"],
        filter_string=f"tags.`mlflow.parentRunId` = '{first_parent.info.run_id}'",
        output_format="list",
    )
    assert len(children) == TRIALS * len(FAMILIES)
    assert first_parent.data.params["n_trials"] == str(TRIALS)
    assert "holdout_normalized_gini" in first_parent.data.metrics
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(first_parent.info.run_id)}
    assert {"features.json", "data.json", "summary.md"} <= artifacts
    features = mlflow.artifacts.load_dict(f"{first_parent.info.artifact_uri}/features.json")
    # Mixed cohorts: customer age stays with the learnt models; whatever is left out is named.
    assert "T" in features["features"]
    assert "T" not in features["out_of_range"]
    # The default leaves out what most holdout customers lie outside of: on this short plan
    # at most the calendar position of the horizon, whose fit windows span three months.
    left_out = features["left_out_as_extrapolated"]
    assert set(left_out) <= {"horizon_doy_sin", "horizon_doy_cos", "horizon_peak_days"} | {
        c for c in features["features"] if "seasonal" in c
    }
    assert all(share > 0.5 for share in left_out.values())
    assert not set(left_out) & set(features["learnt_features"])
    assert first_parent.data.params["max_extrapolated_share"] == "0.5"
    assert first_parent.data.params["ziln_members"] == "3"
    assert first_parent.data.params["ziln_sigma_cap"] == "1.5"


def test_the_run_leaves_a_markdown_summary_artifact_in_prefect(runs) -> None:  # type: ignore[no-untyped-def]
    summaries = [a for a in runs["artifacts"] if a.key == "clv-training-summary"]
    assert len(summaries) == 2
    assert "| model |" in summaries[0].data and "bgnbd_gamma_gamma" in summaries[0].data


def test_the_optuna_studies_live_under_the_data_home(runs) -> None:  # type: ignore[no-untyped-def]
    import optuna

    storage = f"sqlite:///{Path(runs['home']).resolve() / 'optuna' / 'optuna.db'}"
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    assert names == {f"clv-{runs['first']['fingerprint']}-{f}" for f in FAMILIES}


def test_keras_ziln_is_tuned_on_one_network_and_kept_as_a_deep_ensemble_of_three(runs) -> None:  # type: ignore[no-untyped-def]
    from clv.models.keras_ziln import KerasZILNModel

    study = Path(runs["home"]).resolve() / "hpo" / f"clv-{runs['first']['fingerprint']}-keras_ziln"
    trials = sorted(study.glob("trial-*"))
    finals = sorted(study.glob("final-trial-*"))
    assert len(trials) == TRIALS and len(finals) == 1
    assert {KerasZILNModel.load(t).params["n_members"] for t in trials} == {1}
    assert KerasZILNModel.load(finals[0]).params["n_members"] == 3
