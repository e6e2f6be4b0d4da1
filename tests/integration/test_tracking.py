"""clv.tracking against a real ``mlflow server`` (and the local SQLite default under CLV_HOME).

The server is shared by the session, so every test registers its own model name. Names keep the
``clv-spend-`` / ``clv-churn-`` prefix so that the promotion gate knows their primary metric.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from clv import tracking
from clv.models.base import IntegrityError, write_manifest

GINI = "metric.holdout_normalized_gini"
BRIER = "metric.holdout_brier"


def _unique(family: str) -> str:
    return f"{family}-{uuid.uuid4().hex[:10]}"


def _bundle(folder: Path, content: str = "weights") -> Path:
    """A tiny bundle: one native file plus its manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.txt").write_text(content, encoding="utf-8")
    write_manifest(folder, name="clv-bundle", files=["model.txt"], meta={})
    return folder


EXAMPLE_IN = pd.DataFrame({"frequency": [1.0, 4.0], "recency_days": [30.0, 2.0]})
EXAMPLE_OUT = np.array([10.0, 55.0])


def _register(
    run: tracking.RunHandle,
    model_name: str,
    bundle: Path,
    *,
    fingerprint: str | None = None,
    tags: dict[str, str] | None = None,
) -> tracking.RegisteredVersion:
    return tracking.register_bundle(
        model_name,
        bundle,
        run=run,
        fingerprint=fingerprint or uuid.uuid4().hex,
        tags=tags or {},
        input_example=EXAMPLE_IN,
        output_example=EXAMPLE_OUT,
        description="test bundle",
    )


def _alias_version(name: str, alias: str) -> int | None:
    info = tracking.get_version(name, alias=alias)
    return None if info is None else info.version


@pytest.fixture
def run(mlflow_tracking: str) -> Iterator[tracking.RunHandle]:
    with tracking.training_run("clv-tests", "train", tags={"purpose": "test"}) as handle:
        yield handle


def test_registration_creates_a_version_aliased_challenger_with_its_tags(
    run: tracking.RunHandle, tmp_path: Path
) -> None:
    name = _unique(tracking.SPEND_MODEL)
    registered = _register(
        run,
        name,
        _bundle(tmp_path / "b"),
        fingerprint="fp-1",
        tags={GINI: "0.31", "data.rows": "300"},
    )

    assert registered == tracking.RegisteredVersion(name, 1, True, run.run_id)
    info = tracking.get_version(name, alias=tracking.CHALLENGER)
    assert info is not None
    assert info.version == 1
    assert info.aliases == [tracking.CHALLENGER]
    assert info.tags == {GINI: "0.31", "data.rows": "300", tracking.FINGERPRINT_TAG: "fp-1"}
    assert info.run_id == run.run_id
    assert info.description == "test bundle"
    assert tracking.get_version(name, latest=True) == info
    assert tracking.list_versions(name) == [info]
    assert tracking.find_by_fingerprint(name, "fp-1") == info
    assert tracking.find_by_fingerprint(name, "fp-2") is None


def test_the_same_fingerprint_twice_gives_one_version_and_logs_nothing_new(
    run: tracking.RunHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _unique(tracking.SPEND_MODEL)
    first = _register(run, name, _bundle(tmp_path / "b"), fingerprint="same")

    def must_not_log(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a known fingerprint must not log a model again")

    monkeypatch.setattr(tracking, "_log_bundle_model", must_not_log)
    second = _register(run, name, _bundle(tmp_path / "b2", "other bytes"), fingerprint="same")

    assert first.created and not second.created
    assert second.version == first.version == 1
    assert [v.version for v in tracking.list_versions(name)] == [1]


def test_a_registration_that_lost_a_race_on_its_fingerprint_keeps_the_older_version(
    run: tracking.RunHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _unique(tracking.SPEND_MODEL)
    winner = _register(run, name, _bundle(tmp_path / "a"), fingerprint="raced")
    # The loser looked before the winner's version existed, then registered its own.
    real_search = tracking._versions_with_fingerprint
    calls = iter([lambda *a: [], real_search])
    monkeypatch.setattr(tracking, "_versions_with_fingerprint", lambda *a: next(calls)(*a))

    loser = _register(run, name, _bundle(tmp_path / "b"), fingerprint="raced")

    assert loser == tracking.RegisteredVersion(name, winner.version, False, run.run_id)
    assert [v.version for v in tracking.list_versions(name)] == [winner.version]
    assert _alias_version(name, tracking.CHALLENGER) == winner.version


def test_a_version_is_added_per_new_fingerprint_and_listed_newest_first(
    run: tracking.RunHandle, tmp_path: Path
) -> None:
    name = _unique(tracking.CHURN_MODEL)
    for i in range(2):
        _register(run, name, _bundle(tmp_path / f"b{i}", f"v{i}"), fingerprint=f"fp-{i}")

    versions = tracking.list_versions(name)
    assert [v.version for v in versions] == [2, 1]
    assert versions[0].aliases == [tracking.CHALLENGER]  # the alias follows the newest
    assert versions[1].aliases == []


def test_download_returns_the_verified_bundle(run: tracking.RunHandle, tmp_path: Path) -> None:
    name = _unique(tracking.SPEND_MODEL)
    _register(run, name, _bundle(tmp_path / "b", "the weights"))

    path = tracking.download_bundle(name, alias=tracking.CHALLENGER, dst=tmp_path / "dl")

    assert path == tmp_path / "dl" / "bundle"
    assert (path / "model.txt").read_text(encoding="utf-8") == "the weights"
    assert json.loads((path / "manifest.json").read_text(encoding="utf-8"))["model"] == (
        "clv-bundle"
    )
    # Downloading again replaces the folder rather than mixing two versions.
    assert tracking.download_bundle(name, version=1, dst=tmp_path / "dl") == path


def test_a_tampered_stored_artifact_is_refused_on_download(
    run: tracking.RunHandle, tmp_path: Path
) -> None:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.tracking import MlflowClient

    name = _unique(tracking.SPEND_MODEL)
    _register(run, name, _bundle(tmp_path / "b", "honest weights"))
    # Overwrite the stored file through the server, as someone with write access could.
    root = MlflowClient().get_model_version_download_uri(name, "1")
    evil = tmp_path / "evil" / "model.txt"
    evil.parent.mkdir()
    evil.write_text("evil weights", encoding="utf-8")
    get_artifact_repository(f"{root}/artifacts/bundle").log_artifact(str(evil))

    with pytest.raises(IntegrityError, match=r"model\.txt: SHA-256 does not match"):
        tracking.download_bundle(name, version=1, dst=tmp_path / "dl")
    assert list((tmp_path / "dl").iterdir()) == []  # nothing unverified is left behind


def test_a_missing_champion_says_to_run_clv_promote(
    run: tracking.RunHandle, tmp_path: Path
) -> None:
    name = _unique(tracking.SPEND_MODEL)
    _register(run, name, _bundle(tmp_path / "b"))

    assert tracking.get_version(name, alias=tracking.CHAMPION) is None
    with pytest.raises(tracking.NoSuchModelError, match="`clv promote`"):
        tracking.download_bundle(name, alias=tracking.CHAMPION, dst=tmp_path / "dl")


def test_a_missing_model_is_none_or_no_such_model(mlflow_tracking: str, tmp_path: Path) -> None:
    name = _unique(tracking.SPEND_MODEL)
    assert tracking.get_version(name, alias=tracking.CHAMPION) is None
    assert tracking.get_version(name, version=1) is None
    assert tracking.get_version(name, latest=True) is None
    assert tracking.list_versions(name) == []
    with pytest.raises(tracking.NoSuchModelError, match="`clv promote`"):
        tracking.download_bundle(name, alias=tracking.CHAMPION, dst=tmp_path)
    with pytest.raises(tracking.NoSuchModelError, match="no version 3"):
        tracking.download_bundle(name, version=3, dst=tmp_path)
    with pytest.raises(LookupError):  # NoSuchModelError is a LookupError
        tracking.compare(name, 1)


REFS = {
    "reference_metric.bgnbd_gamma_gamma.holdout_normalized_gini": "0.20",
    "reference_metric.run_rate.holdout_normalized_gini": "0.10",
}


def test_the_promotion_gate(run: tracking.RunHandle, tmp_path: Path) -> None:
    name = _unique(tracking.SPEND_MODEL)

    def register(gini: float, **extra: str) -> int:
        tags = {GINI: str(gini), "metric.holdout_decile_mape": "0.2", **REFS, **extra}
        return _register(run, name, _bundle(tmp_path / uuid.uuid4().hex), tags=tags).version

    v1 = register(0.30)
    first = tracking.compare(name, v1)
    assert first.champion is None and first.passed
    assert first.columns == ["metric", f"v{v1} (challenger)", "BG/NBD + Gamma-Gamma", "run rate"]
    assert first.rows[0] == ("holdout_normalized_gini", "0.3000", "0.2000", "0.1000")
    champion = tracking.promote(name, v1, reviewer="ana", reason="first model")
    assert tracking.CHAMPION in champion.aliases
    assert champion.tags["previous_champion"] == ""
    assert champion.tags["promotion_forced"] == "false"

    # Worse than the champion on the same holdout (champion_metric tags measured for v1).
    v2 = register(
        0.25, **{"champion_metric.holdout_normalized_gini": "0.30"}, champion_version=str(v1)
    )
    assert _alias_version(name, tracking.CHAMPION) == v1  # registering never moves the champion
    worse = tracking.compare(name, v2)
    assert not worse.passed
    assert (worse.primary_metric, worse.higher_is_better) == ("holdout_normalized_gini", True)
    assert (worse.challenger_value, worse.champion_value) == (0.25, 0.30)
    assert worse.rows[0] == ("holdout_normalized_gini", "0.2500", "0.3000", "0.2000", "0.1000")
    with pytest.raises(tracking.PromotionRefused, match=f"champion v{v1}.*--force"):
        tracking.promote(name, v2, reviewer="ana", reason="looks fine")
    assert _alias_version(name, tracking.CHAMPION) == v1

    forced = tracking.promote(name, v2, reviewer="bo", reason="new data regime", force=True)
    assert tracking.CHAMPION in forced.aliases
    assert forced.tags["promoted_by"] == "bo"
    assert forced.tags["promotion_reason"] == "new data regime"
    assert forced.tags["promotion_forced"] == "true"
    assert "worse by 0.0500" in forced.tags["promotion_gate"]
    assert forced.tags["previous_champion"] == str(v1)
    promoted_at = forced.tags["promoted_at"]
    assert promoted_at.endswith("+00:00")

    again = tracking.promote(name, v2, reviewer="cy", reason="again")  # a no-op
    assert again.tags["promoted_by"] == "bo" and again.tags["promoted_at"] == promoted_at

    better = register(
        0.40, **{"champion_metric.holdout_normalized_gini": "0.35"}, champion_version=str(v2)
    )
    accepted = tracking.promote(name, better, reviewer="ana", reason="better gini")
    assert accepted.tags["promotion_forced"] == "false"
    assert accepted.tags["previous_champion"] == str(v2)
    assert [v.version for v in tracking.list_versions(name) if tracking.CHAMPION in v.aliases] == [
        better
    ]


def test_losing_to_bgnbd_refuses_even_the_first_promotion(
    run: tracking.RunHandle, tmp_path: Path
) -> None:
    name = _unique(tracking.SPEND_MODEL)
    tags = {**REFS, GINI: "0.15"}
    v1 = _register(run, name, _bundle(tmp_path / "a"), tags=tags).version
    with pytest.raises(tracking.PromotionRefused, match=r"BG/NBD \+ Gamma-Gamma.*worse by 0.0500"):
        tracking.promote(name, v1, reviewer="ana", reason="first")
    assert _alias_version(name, tracking.CHAMPION) is None


def test_the_champion_is_compared_only_on_the_challengers_holdout(
    run: tracking.RunHandle, tmp_path: Path
) -> None:
    name = _unique(tracking.CHURN_MODEL)  # Brier score: lower is better
    ref = {"reference_metric.bgnbd_p_no_purchase_in_horizon.holdout_brier": "0.30"}
    v1 = _register(run, name, _bundle(tmp_path / "a"), tags={**ref, BRIER: "0.10"}).version
    tracking.promote(name, v1, reviewer="ana", reason="first")
    # Worse than the champion's own holdout score, but better on the same (harder) holdout.
    fair = {
        **ref,
        BRIER: "0.12",
        "champion_metric.holdout_brier": "0.13",
        "champion_version": str(v1),
    }
    v2 = _register(run, name, _bundle(tmp_path / "b"), tags=fair).version

    comparison = tracking.compare(name, v2)
    assert (comparison.primary_metric, comparison.higher_is_better) == ("holdout_brier", False)
    assert comparison.champion_value == 0.13
    assert comparison.passed
    tracking.promote(name, v2, reviewer="ana", reason="better on the same holdout")

    # Scores measured for another champion are not used, nor the champion's own holdout score:
    # with no holdout rows to score the champion on, the gate refuses and says why.
    stale = {
        **ref,
        BRIER: "0.05",
        "champion_metric.holdout_brier": "0.2",
        "champion_version": str(v1),
    }
    v3 = _register(run, name, _bundle(tmp_path / "c"), tags=stale).version
    comparison = tracking.compare(name, v3)
    assert comparison.champion_value is None and not comparison.passed
    assert "logged no holdout rows" in comparison.verdict.message()


def test_nested_trial_runs_carry_the_parent_run_id(mlflow_tracking: str) -> None:
    from mlflow.tracking import MlflowClient

    with tracking.training_run(_unique("clv-hpo"), "search", tags={"k": "v"}) as parent:
        parent.log_params({"n_trials": 2})
        parent.log_metrics({"best_gini": 0.4}, step=1)
        parent.log_text("# report", "reports/summary.md")
        parent.log_dict({"a": 1}, "reports/best.json")
        parent.set_tags({"stage": "hpo"})
        trials = [
            parent.nested(f"trial-{i}", params={"depth": i}, metrics={"gini": 0.1 * i}, tags={})
            for i in range(2)
        ]
    assert parent.url == (
        f"{mlflow_tracking}/#/experiments/{parent.experiment_id}/runs/{parent.run_id}"
    )
    client = MlflowClient()
    for i, trial_id in enumerate(trials):
        trial = client.get_run(trial_id)
        assert trial.data.tags["mlflow.parentRunId"] == parent.run_id
        assert trial.data.params == {"depth": str(i)}
        assert trial.info.status == "FINISHED"
    attached = tracking.attach_run(parent.run_id)  # e.g. from a flow task, after the block
    assert (attached.experiment_id, attached.url) == (parent.experiment_id, parent.url)
    attached.log_metrics({"late_metric": 1.0})
    finished = client.get_run(parent.run_id)
    assert finished.info.status == "FINISHED"
    assert finished.data.metrics["late_metric"] == 1.0
    assert finished.data.tags["stage"] == "hpo"
    assert finished.data.params == {"n_trials": "2"}
    assert {a.path for a in client.list_artifacts(parent.run_id, "reports")} == {
        "reports/summary.md",
        "reports/best.json",
    }


def test_attaching_to_an_unknown_run_is_a_lookup_error(mlflow_tracking: str) -> None:
    with pytest.raises(LookupError, match="no MLflow run"):
        tracking.attach_run(uuid.uuid4().hex)


def test_a_failing_block_marks_the_run_failed(mlflow_tracking: str) -> None:
    from mlflow.tracking import MlflowClient

    with (
        pytest.raises(RuntimeError, match="boom"),
        tracking.training_run(_unique("clv-fail"), "r", tags={}) as handle,
    ):
        raise RuntimeError("boom")
    assert MlflowClient().get_run(handle.run_id).info.status == "FAILED"


def test_the_logged_model_is_code_not_a_pickle_and_predicts_through_the_bundle_loader(
    run: tracking.RunHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.pyfunc

    name = _unique(tracking.SPEND_MODEL)
    _register(run, name, _bundle(tmp_path / "b"))
    seen: list[Path] = []

    class FakeBundle:
        def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
            return pd.DataFrame({"predicted_clv": features["frequency"] * 2.0})

    def fake_load_bundle(path: Path) -> FakeBundle:
        seen.append(Path(path))
        return FakeBundle()

    # The real loader is the training package's business: stand in for it.
    monkeypatch.setitem(
        sys.modules,
        "clv.training.bundle",
        types.SimpleNamespace(load_bundle=fake_load_bundle),
    )
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    model = mlflow.pyfunc.load_model(f"models:/{name}@challenger", dst_path=str(model_dir))
    predicted = model.predict(EXAMPLE_IN)

    assert list(predicted["predicted_clv"]) == [2.0, 8.0]
    assert seen and (seen[0] / "manifest.json").exists() and seen[0].name == "bundle"
    assert not list(model_dir.rglob("*.pkl"))
    assert (model_dir / "mlflow_pyfunc.py").exists()


def test_the_default_store_lives_under_clv_home_never_in_the_cwd(
    isolated_settings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    home = isolated_settings.resolve()

    uri = tracking.configure()
    assert uri == f"sqlite:///{home}/mlflow/mlflow.db"
    assert "MLFLOW_TRACKING_URI" not in os.environ  # a derived default stays derived
    assert "--backend-store-uri sqlite:///" in tracking.ui_hint()

    with tracking.training_run("clv-local", "r", tags={}) as run:
        run.log_text("hello", "notes.txt")
        _register(run, tracking.SPEND_MODEL, _bundle(tmp_path / "b"))
    path = tracking.download_bundle(tracking.SPEND_MODEL, version=1, dst=tmp_path / "dl")

    assert (path / "model.txt").exists()
    assert run.url.startswith((home / "mlflow" / "artifacts").as_uri())
    stored = {p.name for p in (home / "mlflow" / "artifacts").rglob("*")}
    assert {"notes.txt", "model.txt", "MLmodel"} <= stored
    assert list(cwd.iterdir()) == []  # no ./mlruns, no ./mlflow.db


def test_ui_hint_names_the_server(mlflow_tracking: str) -> None:
    assert mlflow_tracking in tracking.ui_hint()


def test_a_dead_server_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    started = time.monotonic()
    with pytest.raises(Exception, match=str(port)):
        tracking.get_version(_unique(tracking.SPEND_MODEL), alias=tracking.CHAMPION)
    assert time.monotonic() - started < 20


@pytest.fixture
def postgres_mlflow_server(
    postgres_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An ``mlflow server`` on a throwaway PostgreSQL database (psycopg 3 driver)."""
    from tests.conftest import _start_mlflow_server, _stop_process_group

    folder = tmp_path_factory.mktemp("mlflow-postgres")
    store = f"postgresql+psycopg://postgres@127.0.0.1:5432/{postgres_database}"
    proc, url = _start_mlflow_server(store, folder)
    try:
        yield url
    finally:
        _stop_process_group(proc)


@pytest.mark.slow
def test_registration_and_promotion_on_a_postgres_backed_server(
    postgres_mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", postgres_mlflow_server)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    name = _unique(tracking.SPEND_MODEL)
    with tracking.training_run("clv-postgres", "r", tags={}) as run:
        first = _register(
            run, name, _bundle(tmp_path / "b"), fingerprint="pg", tags={**REFS, GINI: "0.3"}
        )
        again = _register(run, name, _bundle(tmp_path / "b"), fingerprint="pg")
    assert first.created and not again.created and again.version == first.version
    tracking.promote(name, first.version, reviewer="ana", reason="first")
    path = tracking.download_bundle(name, alias=tracking.CHAMPION, dst=tmp_path / "dl")
    assert (path / "model.txt").exists()
