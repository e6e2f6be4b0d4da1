"""Flow-run state hooks shared by the flows: outcomes become Prometheus metrics."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def record_outcome(flow: Any, flow_run: Any, state: Any) -> None:
    """Count the finished run under ``clv_flow_runs_total{flow, state}`` and export the file.

    A metrics failure must never fail the flow: it is logged and swallowed.
    """
    try:
        from monitoring.metrics import record_flow_run, write_default_textfile

        record_flow_run(flow.name, state.type.value)
        write_default_textfile()
    except Exception:  # a hook must not turn a finished run into a failed one
        logger.exception("could not record the outcome of flow run %s", flow_run.id)


#: Keyword arguments for ``@flow``: record every terminal state.
OUTCOME_HOOKS: dict[str, Any] = {
    "on_completion": [record_outcome],
    "on_failure": [record_outcome],
    "on_crashed": [record_outcome],
    "on_cancellation": [record_outcome],
}
