"""Campaign flows: plan → send, and the analysis when the attribution window has closed.

Thin glue over :mod:`clv.campaigns.service`. :func:`campaign_flow` plans a campaign from its YAML
file (the same inputs give the same campaign, so a rerun plans nothing new) and sends it exactly
once through the providers the ``CLV_SMTP_*`` / ``CLV_*_WEBHOOK_URL`` settings configure (job
variables and secret references of the deployment). Run from a deployment, it then schedules one
run of the ``clv-campaign-analysis`` deployment for the moment the window closes.
:func:`campaign_analysis_flow` analyses one campaign on demand, or — its daily schedule, the
safety net for a scheduled run that never happened — every sent campaign whose window has closed
and that was not analysed since; each analysis stores the measured uplift that the next
campaign's targeting starts from, and writes a report.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import flow, task

from flows._dask import ClusterTaskRunner, on_this_tasks_cluster
from flows._hooks import OUTCOME_HOOKS

ANALYSIS_DEPLOYMENT = "clv-campaign-analysis/clv-campaign-analysis"
SENT_EVENT = "clv.campaign.sent"


@task
def plan_task(
    definition: str,
    transactions: str,
    customers: str,
    out: str | None,
    scores: str | None,
    contacts: str | None,
    suppress: str | None,
) -> dict[str, Any]:
    """Plan and store the campaign; return its id, status and plan summary."""
    from clv.campaigns import service

    # On a Dask worker (the run names a cluster), the transactions are summarised on it too.
    with on_this_tasks_cluster():
        planned = service.plan(
            definition,
            transactions=transactions,
            customers=customers,
            out=out,
            scores=scores,
            contacts=contacts,
            suppress=suppress,
        )
    return {
        "campaign_id": planned.campaign_id,
        "status": planned.info.status,
        "plan": str(planned.paths["plan"]),
        "folder": str(planned.paths["plan"].parent),
        "groups": planned.summary["groups"],
        "eligible": planned.summary["eligible"],
        "total_cost": planned.summary["total_cost"],
    }


@task
def send_task(campaign_id: str, limit: int | None) -> dict[str, Any]:
    """Send the campaign's pending messages (nothing new when all were sent)."""
    from clv.campaigns import service

    report = service.send(campaign_id, limit=limit)
    return {
        "sent": report.sent,
        "failed": report.failed,
        "deferred": report.deferred,
        "outbox": report.outbox,
        "stopped_because": report.stopped_because,
    }


@task
def preview_task(campaign_id: str, out: str, limit: int | None) -> int:
    """Render the messages to ``out/preview.jsonl`` without sending."""
    from clv.campaigns import service

    return service.preview(campaign_id, Path(out) / "preview.jsonl", limit=limit)


def _schedule_analysis(campaign_id: str, transactions: str | None) -> dict[str, Any] | None:
    """From a deployment run: one analysis run at the window's end (None when not deployed)."""
    from prefect.context import get_run_context
    from prefect.deployments import run_deployment

    from clv.campaigns.service import analysis_due_at
    from clv.store import Store

    run = get_run_context().flow_run  # type: ignore[union-attr]
    if run is None or run.deployment_id is None:
        return None
    due = analysis_due_at(Store(), campaign_id)
    if due is None:
        return None
    parameters: dict[str, Any] = {"campaign_id": campaign_id}
    if transactions:
        parameters["transactions"] = transactions
    scheduled = run_deployment(
        ANALYSIS_DEPLOYMENT,
        parameters=parameters,
        scheduled_time=due,
        timeout=0,  # schedule it and return
        idempotency_key=f"analysis-{campaign_id}",  # a rerun does not schedule a second one
        as_subflow=False,
    )
    return {"flow_run_id": str(scheduled.id), "scheduled_for": due.isoformat()}


def _emit_sent(campaign_id: str, payload: dict[str, Any]) -> None:
    from prefect.events import emit_event

    emit_event(
        event=SENT_EVENT,
        resource={"prefect.resource.id": f"clv.campaign.{campaign_id}"},
        payload=payload,
    )


@flow(
    name="clv-campaign",
    task_runner=ClusterTaskRunner(),
    persist_result=True,
    result_serializer="json",
    log_prints=True,
    **OUTCOME_HOOKS,
)
def campaign_flow(
    definition: str,
    transactions: str,
    customers: str,
    out: str | None = None,
    scores: str | None = None,
    contacts: str | None = None,
    suppress: str | None = None,
    dry_run: bool = False,
    limit: int | None = None,
    analysis_transactions: str | None = None,
    dask_address: str | None = None,
) -> dict[str, Any]:
    """Plan a campaign from its YAML file and send it exactly once.

    Parameters
    ----------
    definition : str
        The campaign's YAML file.
    transactions, customers : str
        Contract files (local or ``s3://``).
    out : str, optional
        Folder for ``plan.parquet``, ``summary.json`` (and a dry run's ``preview.jsonl``);
        default ``$CLV_HOME/campaigns/<campaign id>``.
    scores : str, optional
        Scores file; default the newest scores in the platform database.
    contacts : str, optional
        Addresses, first names and opt-outs.
    suppress : str, optional
        Customer ids never to contact.
    dry_run : bool
        Render the messages to ``out/preview.jsonl`` and send nothing.
    limit : int, optional
        Send at most this many messages (a canary).
    analysis_transactions : str, optional
        What the scheduled analysis reads (default: its deployment's transactions).
    dask_address : str, optional
        Plan on the Dask scheduler at this address (``tcp://HOST:8786``); default:
        ``CLV_DASK_ADDRESS``, and without it on this machine (see :mod:`flows._dask`). The
        messages are always rendered and sent from this flow run's process, which holds the
        providers' settings (the run's job variables do not reach the Dask workers).

    Returns
    -------
    dict
        The campaign id, its plan summary, what the send did and the analysis scheduled.
    """
    planned = plan_task.submit(
        definition, transactions, customers, out, scores, contacts, suppress
    ).result()
    campaign_id = planned["campaign_id"]
    print(f"campaign {campaign_id}: {planned['eligible']:,} eligible, groups {planned['groups']}")
    result: dict[str, Any] = {"campaign_id": campaign_id, "plan": planned}
    if dry_run:
        result["preview"] = preview_task(campaign_id, planned["folder"], limit)
        print(f"dry run: {result['preview']:,} messages rendered, none sent")
        return result
    sent = send_task(campaign_id, limit)
    result["send"] = sent
    print(f"campaign {campaign_id}: {sent['sent']:,} sent, {sent['failed']:,} failed")
    _emit_sent(campaign_id, {"campaign_id": campaign_id, **sent})
    result["analysis"] = _schedule_analysis(campaign_id, analysis_transactions)
    if result["analysis"]:
        print(f"analysis scheduled for {result['analysis']['scheduled_for']}")
    return result


@task
def analyze_task(
    campaign_id: str, transactions: str, report_dir: str | None, now: datetime | None
) -> dict[str, Any]:
    """Analyse one campaign, store its measured uplift, write its report."""
    from clv.campaigns import service
    from clv.campaigns.report import write_report
    from clv.data.io import read_table
    from clv.settings import get_settings
    from clv.store import Store

    store = Store()
    tx = read_table(transactions, "transactions")
    result = service.analyze(campaign_id, transactions=tx, store=store, analysed_at=now)
    folder = (
        Path(report_dir) / campaign_id
        if report_dir
        else Path(get_settings().home) / "campaigns" / campaign_id / "report"
    )
    info = store.campaign(campaign_id)
    plan = store.campaign_plan(campaign_id).rename(columns={"group_name": "group"})
    paths = write_report(
        result,
        plan,
        tx,
        folder,
        window_days=int(info.definition["attribution_window_days"]),
    )
    summary = result.to_dict()
    return {
        "campaign_id": campaign_id,
        "incremental_revenue": summary["incremental_revenue"],
        "roi": summary["roi"],
        "winner": summary["winner"],
        "reason": summary["reason"],
        "report": str(paths["html"]),
    }


@flow(
    name="clv-campaign-analysis",
    task_runner=ClusterTaskRunner(),
    persist_result=True,
    result_serializer="json",
    log_prints=True,
    **OUTCOME_HOOKS,
)
def campaign_analysis_flow(
    transactions: str,
    campaign_id: str | None = None,
    report_dir: str | None = None,
    now: datetime | None = None,
    dask_address: str | None = None,
) -> dict[str, Any]:
    """Analyse a campaign, or every sent campaign whose attribution window has closed.

    Parameters
    ----------
    transactions : str
        Contract transactions covering the windows (local or ``s3://``).
    campaign_id : str, optional
        Analyse this campaign now (on demand, even before its window closes); default every
        campaign that is due and was not analysed since its window closed.
    report_dir : str, optional
        Where reports go (``<report_dir>/<campaign_id>/``); default under ``$CLV_HOME``.
    now : datetime, optional
        The moment "due" is judged at (default: now).
    dask_address : str, optional
        Run the tasks on the Dask scheduler at this address (``tcp://HOST:8786``); default:
        ``CLV_DASK_ADDRESS``, and without it on this machine (see :mod:`flows._dask`).

    Returns
    -------
    dict
        ``analysed``: one entry per campaign (incremental revenue and ROI with intervals, the
        verdict, the report), and ``skipped``: campaigns whose window is still open.
    """
    from clv.campaigns.service import analysis_due_at, campaigns_due_for_analysis
    from clv.store import Store

    store = Store()
    if campaign_id is not None:
        store.campaign(campaign_id)  # an unknown id fails here, naming the ones there are
        targets = [campaign_id]
        due = analysis_due_at(store, campaign_id)
        if due is not None and now is not None and due > now:
            print(f"campaign {campaign_id}: window open until {due:%Y-%m-%d %H:%M} UTC (interim)")
    else:
        targets = campaigns_due_for_analysis(store, now=now)
        print(f"{len(targets)} campaign(s) due for analysis")
    analysed = []
    for target in targets:
        outcome = analyze_task.submit(target, transactions, report_dir, now).result()
        inc = outcome["incremental_revenue"]
        print(
            f"campaign {target}: incremental revenue {inc['estimate']:,.2f} "
            f"(95% CI {inc['ci_low']:,.2f} to {inc['ci_high']:,.2f}); "
            f"{outcome['winner'] or 'no winner'}; report {outcome['report']}"
        )
        analysed.append(outcome)
    return {"analysed": analysed}
