"""The segmentation flow stores each scoring run as a version and activates only unchanged ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clv.store import ACTIVE, PENDING, Store
from flows.segmentation import FLOW_REVIEWER, segmentation_flow
from tests.unit.test_cli_segment import scores_frame  # noqa: F401 (the shared fixture)


@pytest.fixture
def lenient_config(tmp_path: Path) -> str:
    # Rules the generated data always pass, so automatic activation depends on matching and
    # migration only.
    path = tmp_path / "segmentation.yaml"
    path.write_text(
        "min_segment_customers: 1\nmin_segment_share: 0.0\nmin_centroid_distance: 0.0\n"
        "max_top_customer_clv_share: 1.0\nmax_auto_migration_share: 0.1\n",
        encoding="utf-8",
    )
    return str(path)


def test_the_first_version_waits_for_review_and_an_unchanged_rerun_is_activated_on_its_own(
    prefect_harness: None,
    scores_frame: pd.DataFrame,  # noqa: F811
    lenient_config: str,
    tmp_path: Path,
) -> None:
    path = tmp_path / "scores.parquet"
    scores_frame.to_parquet(path)
    first = segmentation_flow(scores=str(path), config=lenient_config)
    assert first["status"] == PENDING and not first["activated"]
    assert "first version is reviewed" in first["reason"]
    store = Store()
    store.approve(first["version"], by="ana", reason="reviewed")

    # 1% of customers change their spend: every segment matches, few customers move.
    changed = scores_frame.copy()
    picked = np.random.default_rng(1).choice(len(changed), len(changed) // 100, replace=False)
    changed.loc[picked, "predicted_clv"] *= 2.0
    changed.to_parquet(path)
    second = segmentation_flow(scores=str(path), config=lenient_config)
    assert second["activated"] and second["status"] == ACTIVE, second
    assert second["migration_share"] <= 0.1
    info = store.version(second["version"])
    assert info.automatic and info.decided_by == FLOW_REVIEWER
    assert store.version(first["version"]).status == "superseded"

    # The same scores again: nothing new is stored.
    again = segmentation_flow(scores=str(path), config=lenient_config)
    assert again["version"] == second["version"] and again["status"] == ACTIVE
    assert len(store.versions()) == 2
    # A big change waits for review.
    moved = scores_frame.copy()
    moved["churn_probability"] = 1.0 - moved["churn_probability"]
    moved.to_parquet(path)
    third = segmentation_flow(scores=str(path), config=lenient_config)
    assert third["status"] == PENDING and not third["activated"]
    assert store.active().version != third["version"]  # type: ignore[union-attr]


def test_bad_flow_parameters_are_refused_before_anything_is_stored(
    prefect_harness: None, tmp_path: Path
) -> None:
    from prefect.exceptions import ParameterTypeError

    with pytest.raises(ParameterTypeError):
        segmentation_flow(scores=str(tmp_path / "x.parquet"), method="clusters")  # type: ignore[arg-type]
    assert Store().versions() == []
