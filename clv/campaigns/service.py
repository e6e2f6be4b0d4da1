"""Campaigns end to end from files and the database: plan, send, analyse, and what is due.

The CLI (``clv campaign``) and the Prefect flows (:mod:`flows.campaigns`) are thin glue over
these functions, so a campaign planned from a terminal and one planned by a deployment are the
same campaign (same inputs → same id) and go through the same checks. Every function raises
:class:`~clv.campaigns.errors.CampaignError` (bad campaign input),
:class:`~clv.store.StoreError` (database) or :class:`~clv.data.validation.ContractError` /
``OSError`` (files), each with a message a user can act on.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clv.campaigns.definition import HOLDOUT
from clv.campaigns.errors import CampaignError

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

    from clv.campaigns.definition import CampaignDefinition
    from clv.campaigns.measurement import CampaignAnalysis
    from clv.campaigns.sending import SendReport
    from clv.store import CampaignInfo, Store

__all__ = [
    "PlannedCampaign",
    "analysis_due_at",
    "analyze",
    "campaigns_due_for_analysis",
    "plan",
    "read_keyed_table",
    "send",
]

#: The contact column each channel kind sends to.
ADDRESS = {"email": "email", "sms": "phone", "in_app": "app_user_id"}


@dataclass(frozen=True)
class PlannedCampaign:
    """A planned campaign as stored, and the files written for it.

    Attributes
    ----------
    info : CampaignInfo
        The stored campaign (the same campaign when the same inputs are planned again).
    rows : DataFrame
        The plan (``customer_id, group, segment, channel, send_at, ...``).
    summary : dict
        Audience, exclusions by reason, counts per group, cost and expected value.
    paths : dict
        ``plan`` and ``summary`` files in the output folder.
    """

    info: CampaignInfo
    rows: pd.DataFrame
    summary: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def campaign_id(self) -> str:
        """The campaign's id."""
        return self.info.campaign_id


def read_keyed_table(uri: str, role: str) -> pd.DataFrame:
    """A CSV or Parquet table (local or S3) with a ``customer_id`` column, read as text.

    Parameters
    ----------
    uri : str
        The file.
    role : str
        What it is, for messages (``"scores"``, ``"contacts"``, ...).

    Raises
    ------
    CampaignError
        When it cannot be read, is neither CSV nor Parquet, or lacks ``customer_id``.
    """
    import pandas as pd

    from clv.data.io import display_name, local_copy

    name = display_name(uri)
    lower = name.lower()
    if not lower.endswith((".csv", ".csv.gz", ".parquet", ".pq")):
        raise CampaignError(f"{name}: the {role} must be a .csv or .parquet file")
    try:
        with local_copy(uri) as path:
            if lower.endswith((".csv", ".csv.gz")):
                frame = pd.read_csv(path, dtype={"customer_id": str}, low_memory=False)
            else:
                frame = pd.read_parquet(path)
    except OSError as err:
        raise CampaignError(str(err) if name in str(err) else f"{name}: {err}") from None
    except (ValueError, TypeError) as err:
        raise CampaignError(f"{name}: cannot be read ({str(err).splitlines()[0]})") from None
    if "customer_id" not in frame.columns:
        raise CampaignError(f"{name}: the {role} need a customer_id column")
    return frame.assign(customer_id=frame["customer_id"].astype(str))


def _history(store: Store) -> pd.DataFrame:
    """Messages sent by earlier campaigns (``customer_id, sent_at``), for the frequency cap."""
    import pandas as pd

    parts = []
    for info in store.campaigns():
        sent = store.outbox(info.campaign_id, status="sent")
        if len(sent):
            parts.append(sent[["customer_id", "sent_at"]])
    return pd.concat(parts) if parts else pd.DataFrame(columns=["customer_id", "sent_at"])


def plan(
    definition_path: str | Path,
    *,
    transactions: str,
    customers: str,
    out: str | Path | None = None,
    scores: str | None = None,
    contacts: str | None = None,
    suppress: str | None = None,
    store: Store | None = None,
) -> PlannedCampaign:
    """Plan a campaign from its YAML file and the data files, store it, write ``out/plan.parquet``.

    Parameters
    ----------
    definition_path : str or Path
        The campaign's YAML file.
    transactions, customers : str
        Contract transactions (habits, content fields) and customers (opt-in, region). Inside
        :func:`clv.distributed.training.on_cluster` the transactions may also be a folder (or
        glob) of Parquet files: they are read and summarised on the Dask workers
        (:mod:`clv.distributed.campaigns`) and the plan is the same as on one machine.
    out : str or Path, optional
        Folder for ``plan.parquet`` and ``summary.json``; default
        ``$CLV_HOME/campaigns/<campaign id>``.
    scores : str, optional
        A scores file from ``clv score``; default the newest scores stored in the database.
    contacts : str, optional
        ``customer_id`` with ``email`` / ``phone`` / ``app_user_id``, ``first_name``, opt-outs.
    suppress : str, optional
        A file of customer ids never to contact.
    store : Store, optional
        The platform database (default: the configured one).

    Returns
    -------
    PlannedCampaign
        The stored campaign; planning the same inputs again returns the same campaign.
    """
    from clv.campaigns.definition import load_campaign
    from clv.campaigns.personalisation import CONTENT_FIELDS
    from clv.campaigns.planning import PLAN_COLUMNS, campaign_id_for, plan_campaign
    from clv.campaigns.rendering import render_messages
    from clv.data.io import read_table, sha256_of
    from clv.store import Store

    definition = load_campaign(Path(definition_path), fields=CONTENT_FIELDS)
    store = store or Store()
    store.migrate()
    if scores is not None:
        score_frame = read_keyed_table(scores, "scores")
        source: dict[str, Any] = {"scores": sha256_of(scores)}
    else:
        stored = store.latest_scores()
        if stored is None:
            raise CampaignError("no scores stored yet: run `clv score`, or pass the scores file")
        score_frame = stored.assign(customer_id=stored["customer_id"].astype(str))
        source = {"scores": "latest", "as_of": str(score_frame["as_of"].max())}
    segments = None
    segment_version = None
    active = store.active()
    if active is not None:
        assigned = store.assignments(active.version)
        segments = assigned.set_index(assigned["customer_id"].astype(str))["name"]
        segment_version = active.version
    from clv.distributed.training import active_client

    client = active_client()
    tx: pd.DataFrame | dd.DataFrame
    if client is None:
        tx = read_table(transactions, "transactions")
        transactions_digest = sha256_of(transactions)
    else:
        # Inside clv.distributed.training.on_cluster (``--dask-address``, a flow run on a
        # cluster): the transactions stay on the workers, partitioned by customer.
        from clv.distributed.campaigns import transactions_fingerprint, transactions_on_cluster

        tx = transactions_on_cluster(transactions, client)
        transactions_digest = transactions_fingerprint(transactions)
    people = read_table(customers, "customers")
    book = read_keyed_table(contacts, "contacts") if contacts else None
    suppressed: list[str] = (
        read_keyed_table(suppress, "suppression list")["customer_id"].tolist() if suppress else []
    )
    inputs = {
        **source,
        "transactions": transactions_digest,
        "customers": sha256_of(customers),
        "contacts": sha256_of(contacts) if contacts else None,
        "segment_version": segment_version,
    }
    campaign_id, _ = campaign_id_for(definition, inputs)
    if out is None:
        from clv.settings import get_settings

        out = Path(get_settings().home) / "campaigns" / campaign_id
    if campaign_id in {info.campaign_id for info in store.campaigns()}:
        # Planned before from the same definition and inputs: that campaign, unchanged (planning
        # again would see its own messages under the frequency cap).
        info = store.campaign(campaign_id)
        rows = store.campaign_plan(campaign_id).rename(columns={"group_name": "group"})
        rows = rows[[c for c in PLAN_COLUMNS if c in rows.columns]]
        return _written(info, rows, dict(info.summary or {}), Path(out))
    with contextlib.nullcontext() if client is None else client.as_current():
        planned = plan_campaign(
            definition,
            scores=score_frame,
            customers=people,
            transactions=tx,
            segments=segments,
            contacts=book,
            suppressed=suppressed,
            history=_history(store),
            measured_uplift=planning_uplift(store),
            inputs=inputs,
        )
    messages = render_messages(definition, planned.rows, planned.fields, book)
    info = store.create_campaign(
        planned.campaign_id,
        definition.name,
        planned.content_hash,
        definition.model_dump(mode="json"),
        planned.rows.rename(columns={"group": "group_name"}),
        budget=float(definition.budget),
        holdout_share=float(definition.holdout_share),
        segment_version=segment_version,
        scores_as_of=score_frame["as_of"].max() if "as_of" in score_frame else None,
        summary=planned.summary,
        messages=messages,
    )
    return _written(info, planned.rows, planned.summary, Path(out))


def _written(
    info: CampaignInfo, rows: pd.DataFrame, summary: dict[str, Any], folder: Path
) -> PlannedCampaign:
    """Write ``plan.parquet`` and ``summary.json`` atomically."""
    from clv.data.io import write_atomic, write_table

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"plan": folder / "plan.parquet", "summary": folder / "summary.json"}
    write_table(rows, paths["plan"])
    text = json.dumps({"campaign_id": info.campaign_id, **summary}, indent=2, default=str)
    write_atomic(paths["summary"], lambda p: p.write_text(text + "\n", encoding="utf-8"))
    return PlannedCampaign(info=info, rows=rows, summary=summary, paths=paths)


def send(
    campaign_id: str,
    *,
    store: Store | None = None,
    limit: int | None = None,
    providers: Mapping[str, Any] | None = None,
) -> SendReport:
    """Send a planned campaign's messages exactly once through the configured providers.

    Parameters
    ----------
    campaign_id : str
        The campaign.
    store : Store, optional
        The platform database (default: the configured one).
    limit : int, optional
        Send at most this many messages (a canary); the rest wait for the next run.
    providers : mapping, optional
        Channel kind → provider; default built from the ``CLV_SMTP_*`` / ``CLV_*_WEBHOOK_URL``
        settings (and closed afterwards).

    Returns
    -------
    SendReport
        Sent, failed and deferred counts, and the outbox afterwards.

    Raises
    ------
    clv.campaigns.channels.ChannelConfigError
        When a channel the campaign uses is not configured.
    """
    from clv.campaigns.channels import providers_from_settings
    from clv.campaigns.sending import send_campaign
    from clv.store import Store

    store = store or Store()
    info = store.campaign(campaign_id)
    kinds = {name: channel["kind"] for name, channel in info.definition["channels"].items()}
    own = providers is None
    built = providers_from_settings(channels=sorted(set(kinds.values()))) if own else providers
    assert built is not None
    try:
        return send_campaign(store, campaign_id, dict(built), limit=limit, channel_kinds=kinds)
    finally:
        if own:
            for provider in built.values():
                provider.close()


def preview(
    campaign_id: str, out: str | Path, *, store: Store | None = None, limit: int | None = None
) -> int:
    """Render the campaign's messages to a JSON-lines preview without sending (a dry run).

    Returns
    -------
    int
        Messages written.
    """
    from clv.campaigns.sending import preview_messages
    from clv.store import Store

    return preview_messages(store or Store(), campaign_id, Path(out), limit=limit)


def analyze(
    campaign_id: str,
    *,
    transactions: str | pd.DataFrame,
    store: Store | None = None,
    record: bool = True,
    analysed_at: datetime | None = None,
) -> CampaignAnalysis:
    """Measure a sent campaign against its holdout, and store the uplift per segment.

    The stored uplift is what the next campaign's targeting starts from (shrunk by its
    precision), so measuring closes the loop.

    Parameters
    ----------
    campaign_id : str
        The campaign.
    transactions : str or DataFrame
        Contract transactions covering the pre-period and the attribution window.
    store : Store, optional
        The platform database (default: the configured one).
    record : bool
        Store the measured uplift per segment (default), or only return the analysis.
    analysed_at : datetime, optional
        When the measurement counts as made (default: now).

    Returns
    -------
    CampaignAnalysis
        Incremental revenue and ROI with intervals, per variant and segment, every metric
        (revenue, conversion, retention, eco adoption), the verdict, and the engagement
        (opens, clicks, conversions) when events were ingested (``clv campaign events``).
    """
    from clv.campaigns.definition import CampaignDefinition
    from clv.campaigns.measurement import analyze_campaign
    from clv.data.io import read_table
    from clv.store import Store

    store = store or Store()
    info = store.campaign(campaign_id)
    definition = CampaignDefinition.model_validate(info.definition)
    rows = store.campaign_plan(campaign_id).rename(columns={"group_name": "group"})
    tx = read_table(transactions, "transactions") if isinstance(transactions, str) else transactions
    sent = store.outbox(campaign_id, status="sent")
    spent = float(rows.loc[rows["customer_id"].isin(sent["customer_id"]), "cost"].sum())
    result = analyze_campaign(campaign_id, definition, rows, tx, cost=spent or None)
    events = store.campaign_events(campaign_id)
    if len(events):
        from dataclasses import replace

        from clv.campaigns.engagement import engagement_summary

        result = replace(result, engagement=engagement_summary(events, rows, sent))
    if record:
        results = measured_uplift_rows(result, definition)
        if len(results):
            store.record_results(campaign_id, results, analysed_at=analysed_at)
        store.record_analysis(campaign_id, result.to_dict(), analysed_at=analysed_at)
    return result


def planning_uplift(store: Store) -> pd.DataFrame:
    """What earlier campaigns measured, for the next plan's targeting: every metric it reads.

    Parameters
    ----------
    store : Store
        The platform database.

    Returns
    -------
    DataFrame
        :meth:`clv.store.Store.measured_uplift`'s columns and ``metric``, for each of
        :data:`clv.campaigns.targeting.UPLIFT_METRICS`; the planner picks, per (segment,
        channel), the first metric measured (see
        :func:`clv.campaigns.targeting.measured_for_targeting`).
    """
    import pandas as pd

    from clv.campaigns.targeting import UPLIFT_METRICS

    frames = [store.measured_uplift(metric).assign(metric=metric) for metric in UPLIFT_METRICS]
    measured = [frame for frame in frames if not frame.empty]
    return pd.concat(measured, ignore_index=True) if measured else frames[0]


def measured_uplift_rows(result: CampaignAnalysis, definition: CampaignDefinition) -> pd.DataFrame:
    """The analysis's relative uplift per segment, as the store's results rows.

    Two rows per measured segment: ``metric`` ``revenue`` (the relative revenue uplift) and
    ``orders`` (the relative uplift in the number of orders, when the segment had any), both
    from :func:`~clv.campaigns.measurement.analyze_campaign`. The planner reads the orders rows
    where there are some (see :data:`clv.campaigns.targeting.UPLIFT_METRICS`).

    Parameters
    ----------
    result : CampaignAnalysis
        The campaign's analysis.
    definition : CampaignDefinition
        Its definition: one channel's name, or ``all`` for a multi-channel campaign.

    Returns
    -------
    DataFrame
        ``segment``, ``channel``, ``metric``, ``uplift``, ``standard_error``, ``n_treated``,
        ``n_holdout``; revenue rows first.
    """
    import math

    import pandas as pd

    channels = sorted(definition.channels)
    channel = channels[0] if len(channels) == 1 else "all"
    columns = ["segment", "channel", "metric", "uplift", "standard_error", "n_treated", "n_holdout"]
    rows = [
        {
            "segment": s["segment"],
            "channel": channel,
            "metric": metric,
            "uplift": s[key]["estimate"],
            "standard_error": _standard_error(s[key]),
            "n_treated": s["n_treated"],
            "n_holdout": s["n_holdout"],
        }
        for metric, key in (("revenue", "relative"), ("orders", "relative_orders"))
        for s in result.segments
        if s.get(key) is not None and s[key]["estimate"] is not None
    ]
    # The store refuses what is not a finite number (a segment whose holdout never bought).
    return pd.DataFrame(
        [r for r in rows if math.isfinite(r["uplift"]) and math.isfinite(r["standard_error"])],
        columns=columns,
    )


def _standard_error(summary: Mapping[str, Any]) -> float:
    # A normal interval's half-width over z(0.975) is the standard error.
    return float((summary["ci_high"] - summary["ci_low"]) / (2 * 1.959963984540054))


def analysis_due_at(store: Store, campaign_id: str) -> datetime | None:
    """When a campaign's attribution window has closed for every contacted customer.

    That is the later of the last planned send time and the last actual send, plus the
    window; ``None`` while nothing was sent.
    """
    import pandas as pd

    info = store.campaign(campaign_id)
    sent = store.outbox(campaign_id, status="sent")
    if not len(sent):
        return None
    rows = store.campaign_plan(campaign_id)
    planned = pd.to_datetime(rows.loc[rows["group_name"] != HOLDOUT, "send_at"], utc=True).max()
    actual = pd.to_datetime(sent["sent_at"], utc=True).max()
    last = max(t for t in (planned, actual) if pd.notna(t))
    window = timedelta(days=int(info.definition["attribution_window_days"]))
    due: datetime = (last + window).to_pydatetime()
    return due


def campaigns_due_for_analysis(store: Store, *, now: datetime | None = None) -> list[str]:
    """Sent campaigns whose window has closed and that were not analysed since it closed.

    Parameters
    ----------
    store : Store
        The platform database.
    now : datetime, optional
        Aware; default the current time.

    Returns
    -------
    list of str
        Campaign ids, oldest first.
    """
    import pandas as pd

    now = now or datetime.now(UTC)
    analysed = store.campaign_analysed_at()
    due = []
    for info in store.campaigns():
        if info.status not in ("sent", "sending"):
            continue
        closes = analysis_due_at(store, info.campaign_id)
        if closes is None or closes > now:
            continue
        last = analysed.get(info.campaign_id)
        if last is None or pd.Timestamp(last) < pd.Timestamp(closes):
            due.append(info.campaign_id)
    return due
