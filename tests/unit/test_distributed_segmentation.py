"""Segmentation on a real LocalCluster assigns every customer as the single-machine path does.

The scores are generated: the RFM inputs of 400 generated customers (seed 5) with a predicted CLV
and a churn probability drawn from a seeded generator, split into three partitions.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from clv.config import SegmentationConfig
from clv.data.generator import GeneratorConfig, generate
from clv.data.validation import validate_frame
from clv.segmentation.inputs import segment_inputs
from clv.segmentation.runs import build_segmentation
from clv.training.scoring import customer_features
from clv.training.windows import end_of_day

AS_OF = end_of_day(pd.Timestamp("2025-09-30"))
#: Small k range: the equality, not the choice of k, is under test (and k-means costs time).
FAST = {"k_min": 3, "k_max": 4}


@pytest.fixture(scope="module")
def scores() -> pd.DataFrame:
    tx = validate_frame(generate(GeneratorConfig(n_customers=400), seed=5).frame("transactions"))
    features = customer_features(tx, as_of=AS_OF, horizon_days=60)
    rng = np.random.default_rng(11)
    frame = features[["days_since_last_purchase", "purchase_days", "avg_purchase_day_value"]]
    frame = frame.rename_axis("customer_id").reset_index()
    frame["customer_id"] = frame["customer_id"].astype(str)
    frame["predicted_clv"] = frame["avg_purchase_day_value"] * rng.gamma(2.0, 0.5, len(frame))
    frame["churn_probability"] = rng.uniform(0.0, 1.0, len(frame))
    frame["as_of"] = AS_OF
    # Rows in no particular order: the result must not depend on it.
    return frame.sample(frac=1.0, random_state=2).reset_index(drop=True)


@pytest.fixture(scope="module")
def client(dask_cluster: str) -> Iterator[object]:
    from clv.distributed.cluster import connect

    with connect(dask_cluster) as connected, connected.as_current():
        yield connected


def _ddf(scores: pd.DataFrame) -> object:
    import dask.dataframe as dd

    return dd.from_pandas(scores, npartitions=3, sort=False)


def test_segment_inputs_on_the_cluster_equal_the_single_machine_inputs(
    scores: pd.DataFrame, client: object
) -> None:
    from clv.distributed.segmentation import segment_inputs_dask

    expected = segment_inputs(scores)
    got = segment_inputs_dask(_ddf(scores)).compute().sort_index()  # type: ignore[arg-type]

    pd.testing.assert_frame_equal(got, expected, rtol=1e-9, check_index_type=False)
    assert expected["r_score"].nunique() == 5 and expected["segment"].nunique() > 3


@pytest.mark.parametrize("method", ["both", "rfm"], ids=["value-segments", "rfm-segments"])
def test_every_customer_gets_the_single_machine_segment_when_the_sample_is_everyone(
    scores: pd.DataFrame, client: object, method: str
) -> None:
    from clv.distributed.segmentation import gather_segmentation, segment_dask

    config = SegmentationConfig(method=method, **FAST)  # type: ignore[arg-type]
    expected = build_segmentation(segment_inputs(scores), config=config)
    got = segment_dask(_ddf(scores), config=config)  # type: ignore[arg-type]

    ids = got.segment_ids.compute().sort_index()
    pd.testing.assert_series_equal(ids, expected.segment_ids, check_index_type=False)
    columns = ["segment_id", "name", "description", "new", "matched_from"]
    pd.testing.assert_frame_equal(got.segments, expected.segments[columns])
    if method == "both":
        assert got.model is not None and expected.model is not None
        assert got.model.to_json() == expected.model.to_json()

    gathered = gather_segmentation(got, config=config)
    assert gathered.content_hash == expected.content_hash  # the same version, once stored
    pd.testing.assert_frame_equal(gathered.inputs, expected.inputs)
    pd.testing.assert_frame_equal(gathered.segments, expected.segments)
    pd.testing.assert_frame_equal(gathered.profiles, expected.profiles)
    assert gathered.rules == expected.rules


def test_a_smaller_sample_is_the_customers_the_single_machine_path_samples(
    scores: pd.DataFrame, client: object
) -> None:
    from clv.distributed.segmentation import fit_value_model_dask, segment_inputs_dask
    from clv.segmentation.values import fit_value_segments

    config = SegmentationConfig(sample_size=150, **FAST)  # type: ignore[arg-type]
    inputs = segment_inputs(scores)
    expected = fit_value_segments(inputs, sample_size=150, **FAST)
    got = fit_value_model_dask(segment_inputs_dask(_ddf(scores)), config=config)  # type: ignore[arg-type]

    # No optional feature is missing here, so the fill (the sample's median) changes nothing.
    assert got.centroids == expected.centroids and got.segment_ids == expected.segment_ids
    assert (got.sample_size, got.customers) == (150, len(inputs))


def _segment_run(*args: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from clv.cli import app

    result = CliRunner(env={"COLUMNS": "240"}).invoke(app, ["segment", "run", *args])
    return result.exit_code, result.output


def test_clv_segment_run_on_the_cluster_stores_the_version_the_single_machine_run_stores(
    scores: pd.DataFrame, dask_cluster: str, tmp_path: object
) -> None:
    from pathlib import Path

    from clv.store import Store

    folder = Path(str(tmp_path)) / "scores"
    folder.mkdir()
    for i, start in enumerate(range(0, len(scores), 150)):  # as `clv score` writes on a cluster
        scores.iloc[start : start + 150].to_parquet(folder / f"part.{i}.parquet", index=False)
    args = ["--method", "both", "--k-min", "3", "--k-max", "4"]
    code, on_cluster = _segment_run("--scores", str(folder), *args, "--dask-address", dask_cluster)
    assert code == 0, on_cluster
    assert "Traceback" not in on_cluster and "segment version 1" in on_cluster

    single = Path(str(tmp_path)) / "scores.parquet"
    scores.to_parquet(single, index=False)
    code, alone = _segment_run("--scores", str(single), *args)
    assert code == 0, alone
    # The same content, so the same version: nothing new stored.
    assert "segment version 1 (both, pending)" in alone
    assert [v.version for v in Store().versions()] == [1]


def test_clv_segment_run_with_a_scheduler_that_does_not_answer_says_so_in_one_line(
    scores: pd.DataFrame, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import functools
    import socket
    from pathlib import Path

    import clv.distributed.cluster as cluster

    monkeypatch.setattr(cluster, "connect", functools.partial(cluster.connect, timeout=1.0))
    path = Path(str(tmp_path)) / "scores.parquet"
    scores.to_parquet(path, index=False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, output = _segment_run("--scores", str(path), "--dask-address", f"tcp://127.0.0.1:{port}")

    assert code == 1 and "Traceback" not in output
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}" in output
