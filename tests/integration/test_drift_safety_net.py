"""The daily safety net re-emits a drift event that no retraining followed, and only then."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flows import drift_monitoring as monitoring


def _delete_training_runs() -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        for run in client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["clv-training"]))
        ):
            client.delete_flow_run(run.id)


@pytest.fixture
def harness(prefect_harness: None) -> Iterator[None]:
    """The session's Prefect harness without clv-training runs from other tests (or modules)."""
    _delete_training_runs()
    yield
    _delete_training_runs()


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    def record(payload: dict[str, Any], *, version: int | None) -> str:
        sent.append({"payload": payload, "version": version})
        return f"event-{len(sent)}"

    monkeypatch.setattr(monitoring, "emit_drift_event", record)
    return sent


def _detected(minutes_ago: float) -> None:
    monitoring._write_state(
        {
            "detected_at": (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat(),
            "event_id": "first",
            "payload": {"transactions": "t.parquet", "horizon_days": 90, "champion_version": 3},
            "handled": False,
        }
    )


def test_no_recorded_drift_means_nothing_to_do(harness: None, emitted: list[Any]) -> None:
    assert monitoring.drift_safety_net() == {"action": "none"}
    assert emitted == []


def test_a_recent_detection_is_given_time_to_be_handled(harness: None, emitted: list[Any]) -> None:
    _detected(minutes_ago=5)
    result = monitoring.drift_safety_net(grace_minutes=60)
    assert result["action"] == "waiting"
    assert emitted == []


def test_drift_without_a_training_run_is_emitted_again(harness: None, emitted: list[Any]) -> None:
    _detected(minutes_ago=120)
    result = monitoring.drift_safety_net(grace_minutes=60)
    assert result["action"] == "reemitted"
    assert len(emitted) == 1
    assert emitted[0]["payload"]["reemitted"] is True
    assert emitted[0]["version"] == 3
    state = monitoring.read_drift_state()
    assert state is not None and state["event_id"] == "event-1" and not state["handled"]


def test_a_training_run_after_the_detection_marks_it_handled(
    harness: None, emitted: list[Any]
) -> None:
    from prefect import flow

    _detected(minutes_ago=120)

    @flow(name="clv-training")
    def stand_in() -> None:
        """A run of a flow named like the training flow (its body is irrelevant here)."""

    stand_in()
    result = monitoring.drift_safety_net(grace_minutes=60)
    assert result["action"] == "handled"
    assert emitted == []
    state = monitoring.read_drift_state()
    assert state is not None and state["handled"]
    assert monitoring.drift_safety_net() == {"action": "none"}
