"""Scoring flow: the champion scores every customer; the table lands where the API will read it.

Writes ``$CLV_HOME/scores/<as-of>-<h>d.parquet`` and replaces ``$CLV_HOME/scores/latest.parquet``
atomically (the same columns as ``clv score``), stores them in the platform database
(:class:`clv.store.Store`) and emits ``clv.scores.updated``, which starts the segmentation flow.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

from prefect import flow, task

from clv.settings import get_settings
from flows._dask import ClusterTaskRunner
from flows._hooks import OUTCOME_HOOKS
from flows.training import retry_on_io


@task(retries=2, retry_delay_seconds=5, retry_condition_fn=retry_on_io)
def score(
    transactions: str,
    horizon_days: int,
    as_of: str | None,
    alias: str,
    customers: str | None,
    sustainability: str | None,
    read_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score with ``clv-spend@alias`` (and ``clv-churn@alias``) and write the tables.

    ``read_options`` are :func:`clv.data.io.read_table`'s ``on_duplicate``, ``columns`` and
    ``future_tolerance_days`` for the transactions (the tolerance applies to every table).
    """
    import pandas as pd

    from clv import tracking
    from clv.data.io import read_table, write_table
    from clv.training.scoring import load_registered, score_customers
    from clv.training.windows import end_of_day

    tracking.configure()
    with tempfile.TemporaryDirectory(prefix="clv-scoring-") as tmp:
        models = load_registered(alias, Path(tmp))
    options = dict(read_options or {})
    tolerance = {"future_tolerance_days": options.get("future_tolerance_days")}
    tx = read_table(transactions, "transactions", **options)
    scores = score_customers(
        tx,
        spend=models.spend,
        churn=models.churn,
        horizon_days=horizon_days,
        as_of=None if as_of is None else end_of_day(pd.Timestamp(as_of)),
        customers=read_table(customers, "customers", **tolerance) if customers else None,
        sustainability=(
            read_table(sustainability, "sustainability", **tolerance) if sustainability else None
        ),
    )
    scores["model_version"] = models.spend_version
    folder = get_settings().home / "scores"
    cutoff = pd.Timestamp(scores["as_of"].iloc[0])
    dated = folder / f"{cutoff:%Y-%m-%d}-{horizon_days}d.parquet"
    write_table(scores, dated)
    write_table(scores, folder / "latest.parquet")
    from clv.store import Store

    run_id = Store().write_scores(
        scores, source=str(dated), model_name="clv-spend", model_version=str(models.spend_version)
    )
    return {
        "scores": str(dated),
        "scoring_run": run_id,
        "as_of": f"{cutoff:%Y-%m-%d}",
        "customers": len(scores),
        "predicted_total": float(scores["predicted_clv"].sum()),
        "model_version": models.spend_version,
    }


@flow(
    name="clv-scoring",
    task_runner=ClusterTaskRunner(),
    persist_result=True,
    result_serializer="json",
    log_prints=True,
    **OUTCOME_HOOKS,
)
def scoring_flow(
    transactions: str,
    horizon_days: int = 90,
    as_of: str | None = None,
    alias: str = "champion",
    customers: str | None = None,
    sustainability: str | None = None,
    on_duplicate: Literal["warn", "error", "drop"] = "warn",
    future_tolerance_days: float | None = None,
    columns: dict[str, str] | None = None,
    emit_event: bool = True,
    dask_address: str | None = None,
) -> dict[str, Any]:
    """Score every customer with the champion; see :func:`clv.training.scoring.score_customers`.

    Parameters
    ----------
    transactions : str
        Transactions file (local path or ``s3://`` URI).
    horizon_days : int
        Prediction horizon; must be the registered model's.
    as_of : str, optional
        Scoring cut-off ``YYYY-MM-DD`` (the end of that day); default: the last transaction's day.
    alias : str
        Registry alias of the models that score.
    customers, sustainability : str, optional
        Optional tables, as in training.
    on_duplicate : {"warn", "error", "drop"}
        What exact duplicate transactions without an ``order_id`` do (``clv score --on-duplicate``).
    future_tolerance_days : float, optional
        How far after now a timestamp may lie (default: ``CLV_FUTURE_TOLERANCE_DAYS`` or 1 day).
    columns : dict of str to str, optional
        The file's own column names, ``{contract name: file name}``.
    emit_event : bool
        Emit ``clv.scores.updated`` (the segmentation deployment's trigger) once the scores are
        written and stored.
    dask_address : str, optional
        Run the tasks on the Dask scheduler at this address (``tcp://HOST:8786``); default:
        ``CLV_DASK_ADDRESS``, and without it on this machine (see :mod:`flows._dask`).

    Returns
    -------
    dict
        The scores file written, the scoring run's id in the platform database, the number of
        customers, the predicted total, the version and the event id.
    """
    from monitoring.metrics import record_predictions, write_default_textfile

    read_options = {
        "on_duplicate": on_duplicate,
        "future_tolerance_days": future_tolerance_days,
        "columns": columns,
    }
    result = score.submit(
        transactions, horizon_days, as_of, alias, customers, sustainability, read_options
    ).result()
    record_predictions("clv-spend", result["customers"])
    write_default_textfile()
    print(f"{result['customers']:,} customers scored by clv-spend v{result['model_version']}")
    if emit_event:
        from flows.segmentation import emit_scores_event

        payload = {k: result[k] for k in ("scores", "scoring_run", "as_of", "customers")}
        result["event_id"] = emit_scores_event(payload)
    return result
