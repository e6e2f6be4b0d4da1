"""Batch scoring on a real LocalCluster gives the single-machine scores, written and stored once.

One generated data set (400 customers, seed 5) and a LightGBM spend model plus a churn model,
fitted in-process on its features in a few seconds, are shared by the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clv.data.generator import GeneratorConfig, generate
from clv.data.validation import validate_frame
from clv.models.churn import ChurnModel
from clv.models.intervals import BinnedRatioInterval
from clv.models.trees import LightGBMModel
from clv.training.bundle import ChurnBundle, SpendBundle
from clv.training.scoring import customer_features, score_customers
from clv.training.windows import end_of_day

HORIZON = 60
AS_OF = end_of_day(pd.Timestamp("2025-09-30"))  # the generated data run to 2025-12-31


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    return validate_frame(generate(GeneratorConfig(n_customers=400), seed=5).frame("transactions"))


@pytest.fixture(scope="module")
def features(transactions: pd.DataFrame) -> pd.DataFrame:
    return customer_features(transactions, as_of=AS_OF, horizon_days=HORIZON)


def _spend_after(transactions: pd.DataFrame, index: pd.Index) -> pd.Series:
    window = transactions[
        (transactions["timestamp"] > AS_OF)
        & (transactions["timestamp"] <= AS_OF + pd.Timedelta(days=HORIZON))
    ]
    spend = window.groupby(window["customer_id"].astype(str))["amount"].sum()
    return spend.clip(lower=0.0).reindex(index.astype(str), fill_value=0.0).set_axis(index)


@pytest.fixture(scope="module")
def bundles(transactions: pd.DataFrame, features: pd.DataFrame) -> tuple[SpendBundle, ChurnBundle]:
    X = features.select_dtypes("number").astype("float64")
    y = _spend_after(transactions, X.index)
    half = len(X) // 2
    spend_model = LightGBMModel({"n_estimators": 40}).fit(
        X.iloc[:half], y.iloc[:half], X_val=X.iloc[half:], y_val=y.iloc[half:]
    )
    churned = (y == 0).astype(int).to_numpy()
    churn_model = ChurnModel({"n_estimators": 40}).fit(
        X.iloc[:half], churned[:half], X_val=X.iloc[half:], churned_val=churned[half:]
    )
    spend = SpendBundle(
        model=spend_model,
        family="lightgbm",
        feature_columns=list(X.columns),
        horizon_days=HORIZON,
        as_of=AS_OF,
        level_factor=1.05,
        intervals=BinnedRatioInterval.fit(y.iloc[half:], spend_model.predict(X.iloc[half:])),
    )
    churn = ChurnBundle(
        model=churn_model, feature_columns=list(X.columns), horizon_days=HORIZON, as_of=AS_OF
    )
    return spend, churn


@pytest.fixture(scope="module")
def client(dask_cluster: str) -> Iterator[object]:
    from clv.distributed.cluster import connect

    with connect(dask_cluster) as connected:
        yield connected


def _gathered(scores_ddf: object, client: object) -> pd.DataFrame:
    frame = client.compute(scores_ddf).result()  # type: ignore[attr-defined]
    return frame.sort_values("customer_id").reset_index(drop=True)


def test_scores_on_the_cluster_equal_the_single_machine_scores(
    transactions: pd.DataFrame,
    features: pd.DataFrame,
    bundles: tuple[SpendBundle, ChurnBundle],
    client: object,
) -> None:
    import dask.dataframe as dd

    from clv.distributed.scoring import score_features_dask

    spend, churn = bundles
    expected = score_customers(
        transactions, spend=spend, churn=churn, horizon_days=HORIZON, as_of=AS_OF
    )
    features_ddf = dd.from_pandas(features, npartitions=3, sort=False)
    scores_ddf = score_features_dask(
        features_ddf, spend=spend, churn=churn, horizon_days=HORIZON, as_of=AS_OF
    )
    assert list(scores_ddf.columns) == list(expected.columns)
    got = _gathered(scores_ddf, client)

    pd.testing.assert_frame_equal(got, expected, rtol=1e-9)
    assert len(expected) > 100 and expected["churn_probability"].between(0, 1).all()


def test_scoring_from_transactions_defaults_to_the_last_day_like_the_single_machine_path(
    transactions: pd.DataFrame,
    bundles: tuple[SpendBundle, ChurnBundle],
    client: object,
) -> None:
    import dask.dataframe as dd

    from clv.distributed.scoring import score_customers_dask

    spend, _ = bundles
    expected = score_customers(transactions, spend=spend, horizon_days=HORIZON)
    # Partitioned by customer, as clv.distributed.io.read_transactions partitions them.
    by_customer = transactions.set_index("customer_id").sort_index(kind="stable")
    tx = dd.from_pandas(by_customer, npartitions=2).reset_index()
    got = _gathered(score_customers_dask(tx, spend=spend, horizon_days=HORIZON), client)

    pd.testing.assert_frame_equal(got, expected, rtol=1e-9)


def test_another_horizon_is_refused_before_any_work_with_the_single_machine_message(
    features: pd.DataFrame, bundles: tuple[SpendBundle, ChurnBundle]
) -> None:
    import dask.dataframe as dd

    from clv.distributed.scoring import score_features_dask

    spend, _ = bundles
    with pytest.raises(ValueError, match="60-day horizon, not 90; score with --horizon-days 60"):
        score_features_dask(
            dd.from_pandas(features, npartitions=2), spend=spend, horizon_days=90, as_of=AS_OF
        )


def test_written_scores_are_partitioned_parquet_and_one_stored_run_however_often_rerun(
    features: pd.DataFrame,
    transactions: pd.DataFrame,
    bundles: tuple[SpendBundle, ChurnBundle],
    client: object,
    tmp_path: Path,
) -> None:
    import dask.dataframe as dd

    from clv.distributed.scoring import score_features_dask, write_scores_dask
    from clv.store import Store

    spend, churn = bundles
    scores_ddf = score_features_dask(
        dd.from_pandas(features, npartitions=3, sort=False),
        spend=spend,
        churn=churn,
        horizon_days=HORIZON,
        as_of=AS_OF,
    )
    out = tmp_path / "scores"
    out.mkdir()
    (out / "stale.parquet").write_bytes(b"left from an earlier run")
    store = Store()
    store.migrate()

    options = {"source": str(out), "model_name": "clv-spend", "model_version": "7"}
    with client.as_current():  # type: ignore[attr-defined]
        first = write_scores_dask(scores_ddf, out, store=store, **options)
        again = write_scores_dask(scores_ddf, out, store=store, **options)

    assert first == again
    assert sorted(p.name for p in out.iterdir()) == [f"part.{i}.parquet" for i in range(3)]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".scores")]
    written = pd.read_parquet(out).sort_values("customer_id").reset_index(drop=True)
    expected = score_customers(
        transactions, spend=spend, churn=churn, horizon_days=HORIZON, as_of=AS_OF
    )
    written["customer_id"] = written["customer_id"].astype(object)
    written["as_of"] = written["as_of"].astype("datetime64[ns]")
    pd.testing.assert_frame_equal(written, expected, rtol=1e-9)
    stored = store.latest_scores()
    assert stored is not None
    assert stored["customer_id"].tolist() == expected["customer_id"].tolist()
    np.testing.assert_allclose(stored["predicted_clv"], expected["predicted_clv"], rtol=1e-9)
    assert (stored["model_version"] == "7").all()

    single = Store(url=None)
    assert single.write_scores(expected, **options) == first  # the same run as one machine's


def test_a_customer_in_two_partitions_stores_nothing_after_the_parquet_is_written(
    features: pd.DataFrame, bundles: tuple[SpendBundle, ChurnBundle], tmp_path: Path
) -> None:
    import dask
    import dask.dataframe as dd

    from clv.distributed.scoring import score_features_dask, write_scores_dask
    from clv.store import Store, StoreError

    spend, _ = bundles
    # The first customer's features twice, in the first and the last partition.
    doubled = pd.concat([features, features.iloc[:1]])
    scores_ddf = score_features_dask(
        dd.from_pandas(doubled, npartitions=3, sort=False),
        spend=spend,
        horizon_days=HORIZON,
        as_of=AS_OF,
    )
    store = Store()
    store.migrate()
    with (
        dask.config.set(scheduler="synchronous"),
        pytest.raises(StoreError, match="appears twice"),
    ):
        write_scores_dask(
            scores_ddf,
            tmp_path / "scores",
            store=store,
            source="s",
            model_name=None,
            model_version=None,
        )
    assert len(pd.read_parquet(tmp_path / "scores")) == len(doubled)
    assert store.latest_scores() is None
    assert store.latest_scoring_run_id() is None


# ---------------------------------------------------------------------------------------------
# clv score --dask-address (the registry is stubbed: what is tested is the path to the cluster)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def registered(
    bundles: tuple[SpendBundle, ChurnBundle],
    transactions: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Path:
    """The bundles as ``clv-spend@champion`` (v3) and ``clv-churn@champion``; transactions."""
    from clv.training import scoring

    spend, churn = bundles
    models = scoring.RegisteredModels(spend=spend, spend_version=3, churn=churn, churn_version=2)
    monkeypatch.setattr(scoring, "load_registered", lambda alias, folder: models)
    monkeypatch.setattr("clv.tracking.configure", lambda: "stub")
    path = tmp_path / "transactions.parquet"
    transactions.to_parquet(path, index=False)
    return path


def _clv_score(path: Path, out: Path | str, *extra: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from clv.cli import app

    runner = CliRunner(env={"COLUMNS": "240", "TERMINAL_WIDTH": "240"})
    args = ["score", "--transactions", str(path), "--horizon-days", str(HORIZON)]
    result = runner.invoke(app, [*args, "--as-of", "2025-09-30", "--out", str(out), *extra])
    return result.exit_code, result.output


def test_clv_score_on_the_cluster_writes_the_file_and_says_what_the_single_machine_run_says(
    registered: Path, dask_cluster: str, tmp_path: Path
) -> None:
    code, alone = _clv_score(registered, tmp_path / "alone.parquet")
    assert code == 0, alone
    code, on_cluster = _clv_score(
        registered, tmp_path / "cluster.parquet", "--dask-address", dask_cluster
    )
    assert code == 0, on_cluster

    assert on_cluster.replace("cluster.parquet", "alone.parquet") == alone
    assert "customers scored with clv-spend@champion (v3)" in alone
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "cluster.parquet"),
        pd.read_parquet(tmp_path / "alone.parquet"),
        rtol=1e-9,
    )


def test_clv_score_on_the_cluster_from_a_folder_into_a_folder_writes_partitioned_parquet(
    registered: Path,
    transactions: pd.DataFrame,
    bundles: tuple[SpendBundle, ChurnBundle],
    dask_cluster: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLV_DASK_ADDRESS", dask_cluster)  # the setting, not the flag
    from clv.settings import get_settings

    get_settings.cache_clear()
    folder = tmp_path / "transactions"
    folder.mkdir()
    half = len(transactions) // 2  # in time order: most customers' rows lie in both files
    transactions.iloc[:half].to_parquet(folder / "a.parquet", index=False)
    transactions.iloc[half:].to_parquet(folder / "b.parquet", index=False)
    code, output = _clv_score(folder, tmp_path / "scores")
    assert code == 0, output

    parts = sorted(p.name for p in (tmp_path / "scores").iterdir())
    assert parts and all(p.startswith("part.") and p.endswith(".parquet") for p in parts)
    written = pd.read_parquet(tmp_path / "scores")
    assert f"{len(written):,} customers scored with clv-spend@champion (v3)" in output
    assert f"total predicted {written['predicted_clv'].sum():,.2f} over {HORIZON} days" in output
    spend, churn = bundles
    expected = score_customers(
        transactions, spend=spend, churn=churn, horizon_days=HORIZON, as_of=AS_OF
    ).assign(model_version=3)
    written = written.sort_values("customer_id").reset_index(drop=True)
    written["customer_id"] = written["customer_id"].astype(object)
    written["as_of"] = written["as_of"].astype("datetime64[ns]")
    pd.testing.assert_frame_equal(written, expected, rtol=1e-9)


def test_a_scheduler_that_does_not_answer_ends_clv_score_with_one_line(
    registered: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import functools
    import socket

    import clv.distributed.cluster as cluster

    monkeypatch.setattr(cluster, "connect", functools.partial(cluster.connect, timeout=1.0))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, output = _clv_score(
        registered, tmp_path / "s.parquet", "--dask-address", f"tcp://127.0.0.1:{port}"
    )

    assert code == 1
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}" in output
    assert "Traceback" not in output and not (tmp_path / "s.parquet").exists()


def test_a_malformed_scheduler_address_is_refused_with_an_example(
    registered: Path, tmp_path: Path
) -> None:
    code, output = _clv_score(registered, tmp_path / "s.csv", "--dask-address", "localhost:8786")
    assert code == 1
    assert "is not a Dask scheduler address: use tcp://HOST:PORT" in output
