"""Parameters of the training flow that come from where the run was started."""

from __future__ import annotations

import pytest

from flows.training import extrapolated_share_to_use


@pytest.mark.parametrize(
    ("given", "trigger", "expected"),
    [
        (None, None, 0.5),
        (0.8, None, 0.8),
        (1, None, 1.0),
        (None, {"event": "clv.drift.detected", "max_extrapolated_share": 0.7}, 0.7),
        (0.8, {"max_extrapolated_share": 0.7}, 0.8),
        (None, {"max_extrapolated_share": None}, 1.0),
        (None, {"max_extrapolated_share": "0.7"}, 0.5),
        (None, {"max_extrapolated_share": True}, 0.5),
        (None, {"event": "unknown", "text": "not json"}, 0.5),
    ],
    ids=[
        "nothing-gives-the-default",
        "given",
        "one-keeps-everything",
        "carried-by-drift-event",
        "given-wins",
        "champion-kept-everything",
        "text-is-ignored",
        "bool-is-ignored",
        "unparsed-trigger",
    ],
)
def test_a_drift_retraining_keeps_the_champions_extrapolated_share(
    given: float | None, trigger: dict[str, object] | None, expected: float
) -> None:
    assert extrapolated_share_to_use(given, trigger) == expected
