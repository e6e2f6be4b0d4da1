"""The platform database: segment versions, their history, approvals, scores and campaigns.

This is the only module that talks SQL (SQLAlchemy 2.0 Core). The schema is created and upgraded
by Alembic migrations (``clv/store_migrations/``), run programmatically by :class:`Store` on first
use; the tables below describe the same schema for the queries (a test checks that they agree).

Segmentation versions
    Each segmentation run is a *version*: ``pending`` when stored, then ``active`` when approved
    (the previous active version becomes ``superseded``) or ``rejected``. At most one version is
    active (a unique partial index enforces it). A version's activation interval
    ``[activated_at, deactivated_at)`` is the validity of its assignments: the view
    ``segment_history`` lists every activated assignment with its ``valid_from`` / ``valid_to``.

Scores
    ``clv score`` writes each scoring run's scores here too (``scoring_runs`` + ``scores``); the
    same scores twice are one run.

Campaigns
    A campaign is planned once per content (``content_hash``): its plan (one row per customer,
    ``holdout`` or a variant) and its outbox (one rendered message per contacted customer) are
    stored with it in one transaction. Status: ``planned`` → ``sending`` → ``sent``, or
    ``cancelled``. Measured uplift per (segment, channel, metric) goes to ``campaign_results``
    and comes back, the latest per cell, through :meth:`Store.measured_uplift`.

Exactly-once sending
    Each outbox row is keyed by :func:`idempotency_key` (SHA-256 of campaign, customer and
    channel). Senders :meth:`~Store.claim_messages` (``pending`` → ``sending``, atomically;
    concurrent claimers get disjoint rows), deliver with the key passed to the provider, and
    record the outcome (:meth:`~Store.mark_sent`, :meth:`~Store.mark_failed`,
    :meth:`~Store.release`); a ``sent`` row is never claimed or counted again. A sender that
    crashes leaves its rows ``sending``: once the claim's lease expires another sender claims
    them again (``retry``), and since the previous attempt may have been delivered, the
    provider side drops the duplicate by its idempotency key. Every claim and outcome is
    logged in ``outbox_events``.

Engagement events
    What recipients did with a message (delivered, open, click, conversion, bounce, unsubscribe,
    complaint), reported by the provider, goes to ``campaign_events``, one row per ``event_id``:
    :meth:`Store.record_events` inserts only ids not recorded yet, so ingesting the same events
    twice records them once. An event must belong to a message in its campaign's outbox (a
    holdout customer has none).

Timestamps
    Stored as naive UTC. Arguments may be timezone-aware (any zone; converted to UTC) or naive
    (taken as UTC). Everything returned is timezone-aware UTC: ``datetime`` objects in
    :class:`VersionInfo` and :meth:`Store.segment_of`, ``datetime64[ns, UTC]`` columns in frames.

Concurrency
    Every write is one transaction that first takes the store's write lock (SQLite:
    ``BEGIN IMMEDIATE``; PostgreSQL: ``LOCK TABLE ... IN SHARE ROW EXCLUSIVE MODE``), so version
    numbers, the single active version and idempotency hold with several writers. Readers are not
    blocked (SQLite runs in WAL mode). The outbox's claims and outcomes lock only the rows they
    change on PostgreSQL (``SELECT ... FOR UPDATE [SKIP LOCKED]``), so senders run in parallel.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

#: Segmentation methods a version may have (``both``: value segments plus the RFM segments).
METHODS = ("rfm", "kmeans", "both")
#: Version statuses: ``pending`` → ``active`` → ``superseded``, or ``pending`` → ``rejected``.
PENDING, ACTIVE, SUPERSEDED, REJECTED = "pending", "active", "superseded", "rejected"
STATUSES = (PENDING, ACTIVE, SUPERSEDED, REJECTED)
#: Alembic's version table: not the default ``alembic_version``, which MLflow and Prefect also
#: use when they share the database.
VERSION_TABLE = "clv_alembic_version"
#: The Alembic migrations' folder.
MIGRATIONS = Path(__file__).resolve().with_name("store_migrations")
#: How long a SQLite writer waits for another one before giving up.
SQLITE_BUSY_TIMEOUT_S = 60.0
#: PostgreSQL advisory lock held while the schema is upgraded (two processes starting at once).
_SCHEMA_LOCK_KEY = 0x636C_7673_746F_7265  # "clvstore"

#: Optional per-customer columns kept with an assignment (the profile inputs an export shows).
ASSIGNMENT_FEATURES: dict[str, Literal["float", "int", "text"]] = {
    "predicted_clv": "float",
    "churn_probability": "float",
    "eco_spend_share": "float",
    "eco_engagement_score": "float",
    "r_score": "int",
    "f_score": "int",
    "m_score": "int",
    "rfm_segment": "text",
}
#: The same columns in export order.
ASSIGNMENT_COLUMNS = tuple(ASSIGNMENT_FEATURES)
#: Per-customer columns of a scoring run besides ``customer_id`` and ``predicted_clv``.
SCORE_FEATURES = (
    "predicted_clv_lower",
    "predicted_clv_upper",
    "churn_probability",
    "days_since_last_purchase",
    "purchase_days",
    "avg_purchase_day_value",
    "eco_spend_share",
    "eco_engagement_score",
)
#: Every per-customer score column stored, besides ``customer_id``.
SCORE_COLUMNS = ("predicted_clv", *SCORE_FEATURES)
#: Columns of a scores frame that describe the run, not the customer.
_SCORE_RUN_COLUMNS = ("as_of", "horizon_days", "model_version", "model_name")
_BULK_CHUNK_ROWS = 50_000


class StoreError(Exception):
    """A request the store refuses; the message says what is wrong and what to do."""


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """``DateTime`` stored as naive UTC: aware or naive (= UTC) values in, aware UTC out."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        """Naive UTC for the database."""
        return None if value is None else _naive_utc(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        """Aware UTC for the caller."""
        if value is None:
            return None
        stamp: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


# --- schema (created by the migrations; these tables are what the queries use) ---------------

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

segment_versions = sa.Table(
    "segment_versions",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("scores_as_of", UTCDateTime),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("model", sa.Text),
    sa.Column("n_customers", sa.Integer, nullable=False),
    sa.Column("n_segments", sa.Integer, nullable=False),
    sa.Column("rules_passed", sa.Boolean, nullable=False),
    sa.Column("activated_at", UTCDateTime),
    sa.Column("deactivated_at", UTCDateTime),
    sa.Column("decided_by", sa.Text),
    sa.Column("decided_at", UTCDateTime),
    sa.Column("reason", sa.Text),
    sa.Column("automatic", sa.Boolean, nullable=False),
    sa.CheckConstraint("method IN ('rfm', 'kmeans', 'both')", name="method"),
    sa.CheckConstraint("status IN ('pending', 'active', 'superseded', 'rejected')", name="status"),
    sa.CheckConstraint(
        "(status IN ('pending', 'rejected') AND activated_at IS NULL AND deactivated_at IS NULL)"
        " OR (status = 'active' AND activated_at IS NOT NULL AND deactivated_at IS NULL)"
        " OR (status = 'superseded' AND activated_at IS NOT NULL"
        " AND deactivated_at IS NOT NULL AND deactivated_at >= activated_at)",
        name="interval",
    ),
    sa.Index(
        "uq_segment_versions_one_active",
        "status",
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    ),
    sa.Index(
        "uq_segment_versions_open_content_hash",
        "content_hash",
        unique=True,
        sqlite_where=sa.text("status IN ('pending', 'active')"),
        postgresql_where=sa.text("status IN ('pending', 'active')"),
    ),
)

segments_table = sa.Table(
    "segments",
    metadata,
    sa.Column(
        "version",
        sa.Integer,
        sa.ForeignKey("segment_versions.version", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("segment_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("profile", sa.Text, nullable=False),
    sa.Column("new", sa.Boolean, nullable=False),
    sa.Column("matched_from", sa.Text),
    sa.UniqueConstraint("version", "name"),
)

_FEATURE_TYPES: dict[str, type[sa.types.TypeEngine[Any]]] = {
    "float": sa.Float,
    "int": sa.SmallInteger,
    "text": sa.Text,
}

segment_assignments = sa.Table(
    "segment_assignments",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("segment_id", sa.Text, nullable=False),
    *(sa.Column(name, _FEATURE_TYPES[kind]) for name, kind in ASSIGNMENT_FEATURES.items()),
    # No foreign key to segments: PostgreSQL checks one row at a time (1M rows: COPY 6 s
    # without, 23 s with). create_version checks every segment_id against the version's
    # segments before it writes, in the same transaction.
    sa.Index("ix_segment_assignments_customer_id_version", "customer_id", "version"),
    sqlite_with_rowid=False,
)

rule_results_table = sa.Table(
    "rule_results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "version",
        sa.Integer,
        sa.ForeignKey("segment_versions.version", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("segment", sa.Text),
    sa.Column("rule", sa.Text, nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("threshold", sa.Float),
    sa.Column("message", sa.Text, nullable=False),
)

scoring_runs = sa.Table(
    "scoring_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("content_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("as_of", UTCDateTime),
    sa.Column("horizon_days", sa.Integer),
    sa.Column("model_name", sa.Text),
    sa.Column("model_version", sa.Text),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("n_customers", sa.Integer, nullable=False),
)

scores_table = sa.Table(
    "scores",
    metadata,
    sa.Column(
        "run_id",
        sa.Integer,
        sa.ForeignKey("scoring_runs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("predicted_clv", sa.Float, nullable=False),
    *(sa.Column(name, sa.Float) for name in SCORE_FEATURES),
    sqlite_with_rowid=False,
)

# --- campaigns ----------------------------------------------------------------------------------

#: Campaign statuses: ``planned`` → ``sending`` → ``sent``; ``planned`` or ``sending`` →
#: ``cancelled``.
PLANNED, SENDING, SENT, CANCELLED = "planned", "sending", "sent", "cancelled"
CAMPAIGN_STATUSES = (PLANNED, SENDING, SENT, CANCELLED)
#: The status changes :meth:`Store.set_campaign_status` allows.
CAMPAIGN_TRANSITIONS: dict[str, tuple[str, ...]] = {
    PLANNED: (SENDING, CANCELLED),
    SENDING: (SENT, CANCELLED),
    SENT: (),
    CANCELLED: (),
}
#: The plan's group of customers kept out of the campaign (the other groups are variants).
HOLDOUT_GROUP = "holdout"
#: Outbox statuses: ``pending`` → ``sending`` (claimed) → ``sent``, ``failed`` or ``dry_run``;
#: ``sending`` → ``pending`` when released, or re-claimed once its lease expired.
OUTBOX_STATUSES = ("pending", "sending", "sent", "failed", "dry_run")
#: What the outbox event log records: a claim, a re-claim after an expired lease (``retry``),
#: an outcome, or a release back to ``pending``.
OUTBOX_EVENTS = ("claimed", "retry", "sent", "failed", "dry_run", "released")
#: What a provider reports a recipient did with a message (``campaign_events.event``).
CAMPAIGN_EVENT_KINDS = (
    "delivered",
    "open",
    "click",
    "conversion",
    "bounce",
    "unsubscribe",
    "complaint",
)
#: Columns of an events frame for :meth:`Store.record_events` (``value`` is optional).
CAMPAIGN_EVENT_COLUMNS = (
    "event_id",
    "campaign_id",
    "customer_id",
    "channel",
    "event",
    "occurred_at",
    "value",
)
#: Longest ``event_id`` kept (providers' own ids are far shorter; the default is 64 hex digits).
MAX_EVENT_ID_LENGTH = 200
#: Columns of a plan frame besides ``customer_id`` and ``group_name`` (each optional).
PLAN_COLUMNS: dict[str, Literal["float", "text", "time"]] = {
    "channel": "text",
    "segment": "text",
    "send_at": "time",
    "expected_incremental_value": "float",
    "cost": "float",
    "predicted_clv": "float",
}
#: Columns of a messages frame (``subject`` may be missing or empty: SMS and in-app have none).
MESSAGE_COLUMNS = ("customer_id", "channel", "recipient", "subject", "body")
#: Columns of a results frame (``analysed_at`` is optional).
RESULT_COLUMNS = (
    "segment",
    "channel",
    "metric",
    "uplift",
    "standard_error",
    "n_treated",
    "n_holdout",
)


def _in(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


campaigns_table = sa.Table(
    "campaigns",
    metadata,
    sa.Column("campaign_id", sa.String(128), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("definition", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("planned_at", UTCDateTime, nullable=False),
    sa.Column("budget", sa.Float, nullable=False),
    sa.Column("holdout_share", sa.Float, nullable=False),
    sa.Column("segment_version", sa.Integer),
    sa.Column("scores_as_of", UTCDateTime),
    sa.Column("n_targeted", sa.Integer, nullable=False),
    sa.Column("n_holdout", sa.Integer, nullable=False),
    sa.Column("total_cost", sa.Float, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.CheckConstraint(f"status IN ({_in(CAMPAIGN_STATUSES)})", name="status"),
    sa.CheckConstraint("budget >= 0 AND total_cost >= 0", name="money"),
    sa.CheckConstraint("holdout_share >= 0 AND holdout_share < 1", name="holdout_share"),
    sa.CheckConstraint("n_targeted >= 0 AND n_holdout >= 0", name="counts"),
)

campaign_plan_table = sa.Table(
    "campaign_plan",
    metadata,
    sa.Column(
        "campaign_id",
        sa.String(128),
        sa.ForeignKey("campaigns.campaign_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("group_name", sa.Text, nullable=False),
    sa.Column("channel", sa.Text),
    sa.Column("segment", sa.Text),
    sa.Column("send_at", UTCDateTime),
    sa.Column("expected_incremental_value", sa.Float),
    sa.Column("cost", sa.Float),
    sa.Column("predicted_clv", sa.Float),
    # A contacted customer has a channel and a cost; a holdout customer may carry the channel
    # (and cost) they would have had, which the per-channel measurement compares against.
    sa.CheckConstraint(
        "group_name = 'holdout' OR (channel IS NOT NULL AND cost IS NOT NULL)", name="targeted"
    ),
    sa.CheckConstraint("cost >= 0", name="cost"),
    sqlite_with_rowid=False,
)

outbox_table = sa.Table(
    "outbox",
    metadata,
    sa.Column("idempotency_key", sa.String(64), primary_key=True),
    sa.Column(
        "campaign_id",
        sa.String(128),
        sa.ForeignKey("campaigns.campaign_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_response", sa.Text),
    sa.Column("subject", sa.Text),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("recipient", sa.Text, nullable=False),
    sa.Column("claimed_at", UTCDateTime),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.CheckConstraint(f"status IN ({_in(OUTBOX_STATUSES)})", name="status"),
    sa.CheckConstraint("attempts >= 0", name="attempts"),
    sa.CheckConstraint(
        "(status <> 'sending' OR claimed_at IS NOT NULL)"
        " AND (status <> 'sent' OR sent_at IS NOT NULL)",
        name="times",
    ),
    # The claim query's range: a campaign's pending (and stale sending) rows.
    sa.Index("ix_outbox_campaign_id_status", "campaign_id", "status"),
)

outbox_events_table = sa.Table(
    "outbox_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "idempotency_key",
        sa.String(64),
        sa.ForeignKey("outbox.idempotency_key", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("response", sa.Text),
    sa.CheckConstraint(f"event IN ({_in(OUTBOX_EVENTS)})", name="event"),
)

campaign_results_table = sa.Table(
    "campaign_results",
    metadata,
    sa.Column(
        "campaign_id",
        sa.String(128),
        sa.ForeignKey("campaigns.campaign_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("segment", sa.Text, primary_key=True),
    sa.Column("channel", sa.Text, primary_key=True),
    sa.Column("metric", sa.Text, primary_key=True),
    sa.Column("uplift", sa.Float, nullable=False),
    sa.Column("standard_error", sa.Float),
    sa.Column("n_treated", sa.Integer, nullable=False),
    sa.Column("n_holdout", sa.Integer, nullable=False),
    sa.Column("analysed_at", UTCDateTime, nullable=False),
    sa.CheckConstraint("standard_error >= 0", name="standard_error"),
    sa.CheckConstraint("n_treated >= 0 AND n_holdout >= 0", name="counts"),
)

#: Every analysis of a campaign, whole (the ``clv campaign analyze --json`` document), newest
#: last: what the API shows as a campaign's latest analysis, and what tells the scheduler that a
#: campaign was analysed after its window closed.
campaign_analyses_table = sa.Table(
    "campaign_analyses",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "campaign_id",
        sa.String(128),
        sa.ForeignKey("campaigns.campaign_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("analysed_at", UTCDateTime, nullable=False),
    sa.Column("result", sa.Text, nullable=False),
    sa.Index("ix_campaign_analyses_campaign_id_analysed_at", "campaign_id", "analysed_at"),
)

campaign_events_table = sa.Table(
    "campaign_events",
    metadata,
    sa.Column("event_id", sa.String(MAX_EVENT_ID_LENGTH), primary_key=True),
    sa.Column(
        "campaign_id",
        sa.String(128),
        sa.ForeignKey("campaigns.campaign_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("ingested_at", UTCDateTime, nullable=False),
    sa.CheckConstraint(f"event IN ({_in(CAMPAIGN_EVENT_KINDS)})", name="event"),
    # A campaign's events in time order (Store.campaign_events).
    sa.Index("ix_campaign_events_campaign_id_occurred_at", "campaign_id", "occurred_at"),
)

#: The view ``segment_history`` (created by the migrations): every assignment of an activated
#: version with its validity ``[valid_from, valid_to)``; ``valid_to`` is NULL while active.
segment_history = sa.table(
    "segment_history",
    sa.column("customer_id", sa.Text),
    sa.column("version", sa.Integer),
    sa.column("segment_id", sa.Text),
    sa.column("name", sa.Text),
    sa.column("valid_from", UTCDateTime),
    sa.column("valid_to", UTCDateTime),
)

# PostgreSQL write locks: they conflict with each other and with row changes, never with SELECT.
_LOCK_VERSIONS = sa.text("LOCK TABLE segment_versions IN SHARE ROW EXCLUSIVE MODE")
_LOCK_SCORING_RUNS = sa.text("LOCK TABLE scoring_runs IN SHARE ROW EXCLUSIVE MODE")
_LOCK_CAMPAIGNS = sa.text("LOCK TABLE campaigns IN SHARE ROW EXCLUSIVE MODE")
_LOCK_CAMPAIGN_EVENTS = sa.text("LOCK TABLE campaign_events IN SHARE ROW EXCLUSIVE MODE")
#: Keys per ``IN (...)`` list of the claim's statements (well under SQLite's variable limit).
_KEYS_PER_STATEMENT = 1_000
#: :meth:`Store.mark_outcomes`: outcome → (status, event name, statuses it may come from).
_BATCH_OUTCOMES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "sent": ("sent", "sent", ("sending", "pending", "failed")),
    "failed": ("failed", "failed", ("sending",)),
    "released": ("pending", "released", ("sending",)),
}


@dataclass(frozen=True)
class VersionInfo:
    """One segmentation version as stored.

    Attributes
    ----------
    version : int
        1, 2, ... in the order the versions were stored.
    method : str
        ``rfm``, ``kmeans`` or ``both``.
    status : str
        ``pending``, ``active``, ``superseded`` or ``rejected``.
    created_at : datetime
        When it was stored (aware UTC, as every time here).
    scores_as_of : datetime or None
        The cut-off of the scores it segments.
    source : str
        The scores file or scoring run it came from.
    content_hash : str
        SHA-256 of the inputs and settings: storing the same content again returns this version
        while it is pending or active.
    n_customers, n_segments : int
        How many customers were assigned, to how many segments.
    rules_passed : bool
        Whether every business rule passed.
    activated_at, deactivated_at : datetime or None
        Its activation interval ``[activated_at, deactivated_at)``, when its assignments were
        served; ``deactivated_at`` is None while it is active.
    decided_by, decided_at, reason : str, datetime, str or None
        Who approved or rejected it, when and why.
    automatic : bool
        Whether the segmentation flow activated it without review.
    config : dict
        The run's settings (and what the caller added, e.g. the version it was compared with).
    model : str or None
        The k-means model as JSON.
    """

    version: int
    method: str
    status: str
    created_at: datetime
    scores_as_of: datetime | None
    source: str
    content_hash: str
    n_customers: int
    n_segments: int
    rules_passed: bool
    activated_at: datetime | None
    deactivated_at: datetime | None
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None
    automatic: bool
    config: dict[str, Any]
    model: str | None


@dataclass(frozen=True)
class CampaignInfo:
    """One campaign as stored.

    Attributes
    ----------
    campaign_id : str
        E.g. ``winback-1a2b3c4d``: the definition's slug and the start of its content hash.
    name : str
        The definition's name.
    content_hash : str
        SHA-256 of the definition and its inputs: planning the same again returns this campaign.
    status : str
        ``planned``, ``sending``, ``sent`` or ``cancelled``.
    created_at : datetime
        When it was stored (aware UTC, as every time here).
    planned_at : datetime
        The instant the plan was computed for.
    budget : float
        The definition's budget.
    holdout_share : float
        Share of the audience kept out, in ``[0, 1)``.
    segment_version : int or None
        The segmentation version the audience was drawn from.
    scores_as_of : datetime or None
        The cut-off of the scores the plan used.
    n_targeted, n_holdout : int
        Customers contacted, and kept out (plan rows of a variant, of ``holdout``).
    total_cost : float
        Cost of the contacted customers' messages.
    definition : dict
        The campaign definition as planned.
    summary : dict
        What the planner reported: customers excluded by reason, counts per variant and channel.
    """

    campaign_id: str
    name: str
    content_hash: str
    status: str
    created_at: datetime
    planned_at: datetime
    budget: float
    holdout_share: float
    segment_version: int | None
    scores_as_of: datetime | None
    n_targeted: int
    n_holdout: int
    total_cost: float
    definition: dict[str, Any]
    summary: dict[str, Any]


# --- engine and migrations --------------------------------------------------------------------


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling is off: SQLAlchemy's "begin" event (below) emits
    # BEGIN itself, so DDL is transactional and writers take the write lock up front.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    writing = connection.get_execution_options().get("clv_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def create_store_engine(url: str | URL) -> Engine:
    """The engine :class:`Store` and the migrations use for ``url``.

    SQLite gets its folder created, foreign keys on, WAL, a generous busy timeout and
    transactions begun by SQLAlchemy (``BEGIN IMMEDIATE`` for writers); other databases get
    pre-pinged connections.

    Parameters
    ----------
    url : str or URL
        A SQLAlchemy URL, e.g. ``sqlite:///path/clv.db`` or
        ``postgresql+psycopg://user@host:5432/clv``.

    Returns
    -------
    Engine
        A new engine; dispose of it when done.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            parsed, future=True, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return sa.create_engine(parsed, future=True, pool_pre_ping=True)


def alembic_config(url: str | URL, connection: Connection | None = None) -> Config:
    """An Alembic configuration for the store's migrations, without an ``alembic.ini``.

    Parameters
    ----------
    url : str or URL
        The database (``env.py`` connects to it when no connection is given; ``--sql`` mode
        renders for its dialect).
    connection : Connection, optional
        Run the migrations on this connection, inside its transaction.

    Returns
    -------
    alembic.config.Config
        For ``alembic.command``, e.g. ``command.upgrade(alembic_config(url), "head")``.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    rendered = make_url(url).render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str:
    """The newest migration's revision id (what every database is upgraded to)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    if head is None:  # pragma: no cover - the migrations ship with the package
        raise StoreError(f"no migrations found in {MIGRATIONS}")
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database behind ``connection`` is at (None: no schema yet)."""
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


# --- values -----------------------------------------------------------------------------------


def _naive_utc(value: Any) -> datetime:
    """``value`` (datetime, Timestamp, numpy datetime64 or ISO text) as naive UTC."""
    if type(value) is datetime:  # the common case, without pandas
        return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)
    stamp = pd.Timestamp(value)
    if pd.isna(stamp):
        raise StoreError(f"not a time: {value!r}")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    result: datetime = stamp.floor("us").to_pydatetime()
    return result


def _optional_time(value: Any) -> datetime | None:
    if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
        return None
    return _naive_utc(value)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _plain(value: Any) -> Any:
    """A JSON-friendly copy: numpy scalars to Python, NaN / NaT / NA to None, times to ISO."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):  # pandas' Timestamp and NaT too
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


def _json(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True, default=str, allow_nan=False)


def _texts(values: pd.Series) -> list[str | None]:
    objects = values.astype(object)
    result: list[str | None] = []
    result.extend(objects.astype(str).tolist())
    for i in np.flatnonzero(objects.isna().to_numpy()):
        result[i] = None
    return result


def _floats(values: pd.Series, what: str) -> list[float | None]:
    try:
        numbers = pd.to_numeric(values, errors="raise").to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError) as err:
        raise StoreError(f"{what} must hold numbers ({err})") from None
    objects = numbers.astype(object)
    objects[np.isnan(numbers)] = None
    result: list[float | None] = objects.tolist()
    return result


def _ints(values: pd.Series, what: str) -> list[int | None]:
    return [None if v is None else round(v) for v in _floats(values, what)]


def _column_values(frame: pd.DataFrame, name: str, kind: str, what: str) -> list[Any]:
    if kind == "float":
        return _floats(frame[name], f"{what} column {name}")
    if kind == "int":
        return _ints(frame[name], f"{what} column {name}")
    return _texts(frame[name])


# --- the store --------------------------------------------------------------------------------


class Store:
    """The platform database: segment versions, their history, approvals, scores and campaigns.

    Parameters
    ----------
    url : str, optional
        SQLAlchemy URL; default :attr:`clv.settings.Settings.database` (``CLV_DATABASE_URL``,
        else SQLite at ``$CLV_HOME/clv.db``). The schema is upgraded to the newest migration
        when it is not there yet; two processes starting at once wait for each other.

    Raises
    ------
    StoreError
        When the database's schema is at a revision this version of clv does not know.
    """

    def __init__(self, url: str | None = None) -> None:
        if url is None:
            from clv.settings import get_settings

            url = get_settings().database
        self._url = str(url)
        self._engine = create_store_engine(url)
        self._postgresql = self._engine.dialect.name == "postgresql"
        self._copy = self._postgresql and self._engine.dialect.driver == "psycopg"
        self._writer = self._engine.execution_options(clv_write=True)
        # PostgreSQL reads run in autocommit (no BEGIN / ROLLBACK round trips); each statement
        # sees committed data only, and every write is one transaction.
        self._reader = (
            self._engine.execution_options(isolation_level="AUTOCOMMIT")
            if self._postgresql
            else self._engine
        )
        try:
            self.migrate()
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def url(self) -> str:
        """The database URL, as given (``Store(store.url)`` opens the same database)."""
        return self._url

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (dispose of it, or call :meth:`close`, when done)."""
        return self._engine

    def _shown_url(self) -> str:
        return self._engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        """Close the store's database connections."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- schema ---------------------------------------------------------------------------

    def schema_revision(self) -> str | None:
        """The migration the database is at (None before any)."""
        with self._engine.connect() as conn:
            return current_revision(conn)

    def migrate(self) -> None:
        """Upgrade the schema to the newest migration; nothing happens when it is there.

        Raises
        ------
        StoreError
            When the database is at a revision this version of clv does not know.
        """
        head = head_revision()
        current = self.schema_revision()
        if current == head:
            return
        from alembic import command
        from alembic.util import CommandError

        with self._writer.connect() as conn, conn.begin():
            if self._postgresql:
                # Held until the transaction ends: a second process waits here, then finds the
                # schema at head and Alembic does nothing.
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))
            try:
                command.upgrade(alembic_config(self._engine.url, connection=conn), "head")
            except CommandError as err:
                raise StoreError(
                    f"the platform database {self._shown_url()} is at schema revision "
                    f"{current!r}, which this version of clv does not know (its newest is "
                    f"{head!r}): upgrade clv, or point CLV_DATABASE_URL at another database "
                    f"({err})"
                ) from None
        logger.info("platform database %s: schema %s → %s", self._shown_url(), current, head)

    # --- transactions ---------------------------------------------------------------------

    @contextmanager
    def _write(self, lock: sa.TextClause | None = _LOCK_VERSIONS) -> Iterator[Connection]:
        """One write transaction holding the store's write lock; rolled back on any error.

        ``lock=None``: on PostgreSQL no table lock; the transaction locks the rows it changes
        (the outbox's claims and outcomes). SQLite always takes its one write lock.
        """
        with self._writer.connect() as conn, conn.begin():
            if self._postgresql and lock is not None:
                conn.execute(lock)
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._reader.connect() as conn:
            yield conn

    # --- versions -------------------------------------------------------------------------

    def create_version(
        self,
        *,
        method: str,
        segments: pd.DataFrame,
        assignments: pd.DataFrame,
        rules: Sequence[Mapping[str, Any]],
        config: Mapping[str, Any],
        model: str | None,
        scores_as_of: Any,
        source: str,
        content_hash: str,
    ) -> VersionInfo:
        """Store a segmentation run as a new ``pending`` version, in one transaction.

        Parameters
        ----------
        method : str
            ``rfm``, ``kmeans`` or ``both``.
        segments : DataFrame
            One row per segment: ``segment_id``, ``name``, and optionally ``description``,
            ``profile`` (a dict or its JSON), ``new`` (bool) and ``matched_from``.
        assignments : DataFrame
            One row per customer: ``customer_id``, ``segment_id``, and optionally the
            :data:`ASSIGNMENT_FEATURES` columns (kept for review and export). Other columns
            are refused.
        rules : sequence of mappings
            Business rule results: ``segment`` (a segment's name or id; None for the whole
            segmentation), ``rule``, ``passed``, ``value``, ``threshold``, ``message``.
        config : mapping
            The run's settings, stored as JSON.
        model : str or None
            The k-means model as JSON.
        scores_as_of : datetime-like or None
            The scores' cut-off.
        source : str
            The scores file or scoring run.
        content_hash : str
            SHA-256 of the inputs and settings.

        Returns
        -------
        VersionInfo
            The new version; or, when a ``pending`` or ``active`` version has the same
            ``content_hash``, that version (and nothing is stored).

        Raises
        ------
        StoreError
            On an unknown method, missing columns, repeated customers or segments, or an
            assignment or rule naming no segment of the version. Nothing is stored then, nor
            when anything else fails during the transaction.
        """
        if method not in METHODS:
            raise StoreError(f"unknown segmentation method {method!r}; use one of {METHODS}")
        if not content_hash:
            raise StoreError("a version needs its content hash (SHA-256 of inputs and settings)")
        segment_rows = _segment_rows(segments)
        names = {row["name"]: row["segment_id"] for row in segment_rows if row["name"]}
        features = _check_assignments(assignments, {row["segment_id"] for row in segment_rows})
        rule_rows = _rule_rows(rules, names)
        config_json = _json(dict(config))
        as_of = _optional_time(scores_as_of)
        with self._write() as conn:
            existing = conn.execute(
                sa.select(segment_versions.c.version).where(
                    segment_versions.c.content_hash == content_hash,
                    segment_versions.c.status.in_(("pending", "active")),
                )
            ).scalar_one_or_none()
            if existing is not None:
                logger.info("segment version %s has the same content; nothing stored", existing)
                return _version_info(_version_row(conn, existing))
            latest = conn.execute(sa.select(sa.func.max(segment_versions.c.version))).scalar()
            number = int(latest or 0) + 1
            conn.execute(
                segment_versions.insert().values(
                    version=number,
                    method=method,
                    status="pending",
                    created_at=_now(),
                    scores_as_of=as_of,
                    source=str(source),
                    content_hash=content_hash,
                    config=config_json,
                    model=model,
                    n_customers=len(assignments),
                    n_segments=len(segment_rows),
                    rules_passed=all(bool(r["passed"]) for r in rule_rows),
                    automatic=False,
                )
            )
            self._insert_segments(conn, number, segment_rows)
            self._insert_assignments(conn, number, assignments, features)
            self._insert_rules(conn, number, rule_rows)
            info = _version_info(_version_row(conn, number))
        logger.info(
            "stored segment version %s (%s): %s customers in %s segments",
            number,
            method,
            f"{info.n_customers:,}",
            info.n_segments,
        )
        return info

    def _insert_segments(self, conn: Connection, version: int, rows: list[dict[str, Any]]) -> None:
        conn.execute(segments_table.insert(), [{"version": version, **r} for r in rows])

    def _insert_assignments(
        self, conn: Connection, version: int, assignments: pd.DataFrame, features: list[str]
    ) -> None:
        columns = ["version", "customer_id", "segment_id", *features]
        values: list[list[Any]] = [
            [version] * len(assignments),
            _texts(assignments["customer_id"]),
            _texts(assignments["segment_id"]),
        ]
        values += [
            _column_values(assignments, f, ASSIGNMENT_FEATURES[f], "assignments") for f in features
        ]
        self._bulk_insert(conn, segment_assignments, columns, values)

    def _insert_rules(self, conn: Connection, version: int, rows: list[dict[str, Any]]) -> None:
        if rows:
            conn.execute(rule_results_table.insert(), [{"version": version, **r} for r in rows])

    def _bulk_insert(
        self, conn: Connection, table: sa.Table, columns: list[str], values: list[list[Any]]
    ) -> None:
        """Insert column-wise ``values``: COPY on PostgreSQL (psycopg), else ``executemany``."""
        # The two fast paths hand values to the driver: times are converted here, as
        # UTCDateTime converts them on SQLAlchemy's own path (naive UTC; SQLite's text form).
        fast = self._copy or conn.dialect.paramstyle == "qmark"
        if fast and any(isinstance(table.c[c].type, UTCDateTime) for c in columns):
            values = list(values)
            for i, name in enumerate(columns):
                kind = table.c[name].type
                if not isinstance(kind, UTCDateTime):
                    continue
                convert = (
                    functools.partial(kind.process_bind_param, dialect=conn.dialect)
                    if self._copy
                    else kind.bind_processor(conn.dialect)
                )
                if convert is not None:
                    values[i] = [convert(v) for v in values[i]]
        if self._copy:
            from psycopg import sql

            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns))
            )
            raw: Any = conn.connection.dbapi_connection  # psycopg's, in the same transaction
            dbapi = conn.dialect.loaded_dbapi
            try:
                with raw.cursor() as cursor, cursor.copy(statement) as copy:
                    for row in zip(*values, strict=True):
                        copy.write_row(row)
            except dbapi.Error as err:  # raised as SQLAlchemy raises everything else
                raise sa.exc.DBAPIError.instance(
                    statement.as_string(raw), None, err, dbapi.Error
                ) from err
            return
        if conn.dialect.paramstyle == "qmark":
            # Positional tuples straight to the driver's executemany, no dict per row; the
            # statement is SQLAlchemy's own INSERT with placeholders, never values.
            compiled = table.insert().compile(dialect=conn.dialect, column_keys=columns)
            by_name = dict(zip(columns, values, strict=True))
            order = list(compiled.positiontup or columns)
            rows: Iterator[tuple[Any, ...]] = zip(*(by_name[c] for c in order), strict=True)
            while chunk := list(itertools.islice(rows, _BULK_CHUNK_ROWS)):
                conn.exec_driver_sql(str(compiled), chunk)
            return
        records = (dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True))
        while batch := list(itertools.islice(records, _BULK_CHUNK_ROWS)):
            conn.execute(table.insert(), batch)  # insertmanyvalues batches

    def versions(self) -> list[VersionInfo]:
        """Every version, oldest first.

        Returns
        -------
        list of VersionInfo
            Empty when no segmentation was stored yet.
        """
        with self._read() as conn:
            rows = conn.execute(
                sa.select(segment_versions).order_by(segment_versions.c.version)
            ).all()
        return [_version_info(r) for r in rows]

    def version(self, version: int) -> VersionInfo:
        """One version.

        Parameters
        ----------
        version : int
            Its number.

        Returns
        -------
        VersionInfo
            As stored.

        Raises
        ------
        StoreError
            When there is no such version (the message gives the versions there are).
        """
        with self._read() as conn:
            return _version_info(_version_row(conn, version))

    def active(self) -> VersionInfo | None:
        """The active version, or None when none was approved yet."""
        with self._read() as conn:
            row = conn.execute(
                sa.select(segment_versions).where(segment_versions.c.status == "active")
            ).one_or_none()
        return None if row is None else _version_info(row)

    def segments(self, version: int) -> pd.DataFrame:
        """The segments of a version.

        Parameters
        ----------
        version : int
            The version.

        Returns
        -------
        DataFrame
            ``segment_id``, ``name``, ``description``, ``profile`` (dict), ``new`` (bool),
            ``matched_from`` (str or None); sorted by ``segment_id``.

        Raises
        ------
        StoreError
            When there is no such version.
        """
        t = segments_table
        columns = ["segment_id", "name", "description", "profile", "new", "matched_from"]
        statement = (
            sa.select(*(t.c[c] for c in columns))
            .where(t.c.version == version)
            .order_by(t.c.segment_id)
        )
        with self._read() as conn:
            _version_row(conn, version)
            rows = conn.execute(statement).all()
        frame = pd.DataFrame(rows, columns=columns)
        frame["profile"] = pd.Series([json.loads(p) for p in frame["profile"]], dtype=object)
        frame["new"] = frame["new"].astype(bool)
        return frame

    def assignments(self, version: int) -> pd.DataFrame:
        """Every customer's segment in a version, sorted by ``customer_id``.

        Parameters
        ----------
        version : int
            The version.

        Returns
        -------
        DataFrame
            ``customer_id``, ``segment_id``, ``name`` (the segment's), then those
            :data:`ASSIGNMENT_FEATURES` columns that hold a value for the version.

        Raises
        ------
        StoreError
            When there is no such version.
        """
        a, s = segment_assignments, segments_table
        features = list(ASSIGNMENT_FEATURES)
        statement = (
            sa.select(a.c.customer_id, a.c.segment_id, s.c.name, *(a.c[f] for f in features))
            .join(s, sa.and_(s.c.version == a.c.version, s.c.segment_id == a.c.segment_id))
            .where(a.c.version == version)
            .order_by(a.c.customer_id)
        )
        with self._read() as conn:
            _version_row(conn, version)
            rows = conn.execute(statement).all()
        frame = pd.DataFrame(rows, columns=["customer_id", "segment_id", "name", *features])
        keep = ["customer_id", "segment_id", "name"]
        for name in features:
            if not frame[name].notna().any():
                continue
            keep.append(name)
            if ASSIGNMENT_FEATURES[name] == "float":
                frame[name] = frame[name].astype("float64")
            elif ASSIGNMENT_FEATURES[name] == "int":
                frame[name] = frame[name].astype("Int64")
        return frame[keep]

    def rule_results(self, version: int) -> pd.DataFrame:
        """The business rules' results of a version, in the order they were stored.

        Parameters
        ----------
        version : int
            The version.

        Returns
        -------
        DataFrame
            ``segment`` (the segment's name; None for a rule about the whole segmentation),
            ``rule``, ``passed`` (bool), ``value``, ``threshold``, ``message``.

        Raises
        ------
        StoreError
            When there is no such version.
        """
        r = rule_results_table
        columns = ["segment", "rule", "passed", "value", "threshold", "message"]
        statement = (
            sa.select(*(r.c[c] for c in columns)).where(r.c.version == version).order_by(r.c.id)
        )
        with self._read() as conn:
            _version_row(conn, version)
            rows = conn.execute(statement).all()
        frame = pd.DataFrame(rows, columns=columns)
        frame["passed"] = frame["passed"].astype(bool)
        for name in ("value", "threshold"):
            frame[name] = frame[name].astype("float64")
        return frame

    def approve(
        self,
        version: int,
        *,
        by: str,
        reason: str,
        automatic: bool = False,
        at: datetime | None = None,
    ) -> VersionInfo:
        """Make a pending version the active one; the previous active one is superseded.

        Both changes are one transaction, and the previous version's ``deactivated_at`` is the
        new one's ``activated_at``: the validity intervals of successive versions meet exactly.

        Parameters
        ----------
        version : int
            A pending version.
        by : str
            Who approves (a user, or the segmentation flow).
        reason : str
            Why; recorded.
        automatic : bool
            Whether the flow activated it without review.
        at : datetime, optional
            The activation instant (default: now); not before the active version's
            activation, not in the future.

        Returns
        -------
        VersionInfo
            The version, now active.

        Raises
        ------
        StoreError
            When the version does not exist or is not pending, ``by`` or ``reason`` is blank,
            or ``at`` is before the active version's activation or in the future.
        """
        by, reason = _decider(by, reason)
        now = _now()
        when = now if at is None else _naive_utc(at)
        if when > now:
            raise StoreError(
                f"cannot activate version {version} at {when:%Y-%m-%d %H:%M:%S} UTC: that is in "
                "the future"
            )
        with self._write() as conn:
            _require_pending(_version_row(conn, version), "approved")
            current = conn.execute(
                sa.select(segment_versions.c.version, segment_versions.c.activated_at).where(
                    segment_versions.c.status == "active"
                )
            ).one_or_none()
            if current is not None:
                since: datetime = current.activated_at
                if when < since.replace(tzinfo=None):
                    raise StoreError(
                        f"cannot activate version {version} at {when:%Y-%m-%d %H:%M:%S} UTC: the "
                        f"active version {current.version} was activated later, at "
                        f"{since:%Y-%m-%d %H:%M:%S} UTC"
                    )
                self._supersede(conn, current.version, when)
            self._activate(conn, version, when, by=by, reason=reason, automatic=automatic)
            info = _version_info(_version_row(conn, version))
        how = "automatically" if automatic else "on review"
        logger.info("segment version %s activated by %s (%s)", version, by, how)
        return info

    def _supersede(self, conn: Connection, version: int, at: datetime) -> None:
        conn.execute(
            segment_versions.update()
            .where(segment_versions.c.version == version)
            .values(status="superseded", deactivated_at=at)
        )

    def _activate(
        self,
        conn: Connection,
        version: int,
        at: datetime,
        *,
        by: str,
        reason: str,
        automatic: bool,
    ) -> None:
        conn.execute(
            segment_versions.update()
            .where(segment_versions.c.version == version)
            .values(
                status="active",
                activated_at=at,
                decided_by=by,
                decided_at=_now(),
                reason=reason,
                automatic=bool(automatic),
            )
        )

    def reject(self, version: int, *, by: str, reason: str) -> VersionInfo:
        """Reject a pending version: it is kept for the record and never served.

        Parameters
        ----------
        version : int
            A pending version.
        by : str
            Who rejects.
        reason : str
            Why; recorded.

        Returns
        -------
        VersionInfo
            The version, now rejected.

        Raises
        ------
        StoreError
            When the version does not exist or is not pending, or ``by`` / ``reason`` is blank.
        """
        by, reason = _decider(by, reason)
        with self._write() as conn:
            _require_pending(_version_row(conn, version), "rejected")
            conn.execute(
                segment_versions.update()
                .where(segment_versions.c.version == version)
                .values(status="rejected", decided_by=by, decided_at=_now(), reason=reason)
            )
            info = _version_info(_version_row(conn, version))
        logger.info("segment version %s rejected by %s", version, by)
        return info

    # --- serving --------------------------------------------------------------------------

    def segment_of(self, customer_id: str, on: datetime | None = None) -> dict[str, Any] | None:
        """The segment a customer was in at an instant: one query on the customer's index.

        Parameters
        ----------
        customer_id : str
            The customer.
        on : datetime, optional
            The instant (default: now); naive means UTC.

        Returns
        -------
        dict or None
            ``customer_id``, ``version``, ``segment_id``, ``name``, ``valid_from`` and
            ``valid_to`` (aware UTC; ``valid_to`` None while the version is active). None when
            no version active at that instant held the customer.
        """
        when = _now() if on is None else _naive_utc(on)
        with self._read() as conn:
            row = conn.execute(
                _SEGMENT_OF, {"customer_id": str(customer_id), "on": when}
            ).one_or_none()
        if row is None:
            return None
        return {
            "customer_id": str(customer_id),
            "version": int(row.version),
            "segment_id": row.segment_id,
            "name": row.name,
            "valid_from": row.valid_from,
            "valid_to": row.valid_to,
        }

    def history(self, customer_id: str) -> pd.DataFrame:
        """Every activated assignment of a customer, oldest first.

        Parameters
        ----------
        customer_id : str
            The customer.

        Returns
        -------
        DataFrame
            ``version``, ``segment_id``, ``name``, ``valid_from``, ``valid_to``
            (``datetime64[ns, UTC]``; NaT for the active version), ascending by ``valid_from``.
            Empty when the customer was never in an activated version.
        """
        with self._read() as conn:
            rows = conn.execute(_HISTORY, {"customer_id": str(customer_id)}).all()
        columns = list(zip(*rows, strict=True)) or [(), (), (), (), ()]
        data: dict[str, Any] = {
            "version": np.asarray(columns[0], dtype="int64"),
            "segment_id": np.asarray(columns[1], dtype=object),
            "name": np.asarray(columns[2], dtype=object),
        }
        for name, values in zip(_VALIDITY, columns[3:], strict=True):
            naive = [None if v is None else v.replace(tzinfo=None) for v in values]
            stamps = np.asarray(naive, dtype="datetime64[us]").astype("datetime64[ns]")
            data[name] = pd.DatetimeIndex(stamps).tz_localize("UTC")
        return pd.DataFrame(data)

    # --- scores ---------------------------------------------------------------------------

    def write_scores(
        self,
        scores: pd.DataFrame,
        *,
        source: str,
        model_name: str | None,
        model_version: str | None,
    ) -> int:
        """Store a scoring run's scores in one transaction; the same scores twice are one run.

        Parameters
        ----------
        scores : DataFrame
            One row per customer, as ``clv score`` writes them: ``customer_id``,
            ``predicted_clv``, optionally the :data:`SCORE_FEATURES` columns and the run's
            ``as_of`` and ``horizon_days`` (one value each). Other columns are not stored.
        source : str
            The scores file written alongside.
        model_name, model_version : str or None
            The model that scored (each defaults to the frame's column of that name, when it
            holds one value).

        Returns
        -------
        int
            The scoring run's id; the existing run's when the same scores were stored before.

        Raises
        ------
        StoreError
            When a required column is missing, customers repeat or are missing, or a column of
            the run holds several values.
        """
        frame, run = _normalise_scores(scores, model_name=model_name, model_version=model_version)
        digest = _ScoresDigest()
        digest.add(frame, run)
        return self._insert_scores(lambda: iter([frame]), digest, run, source=source)

    def write_scores_parts(
        self,
        parts: Callable[[], Iterable[pd.DataFrame]],
        *,
        source: str,
        model_name: str | None,
        model_version: str | None,
    ) -> int:
        """Store a scoring run given in parts, in one transaction, never holding it all.

        What :meth:`write_scores` stores for the parts put together (the same run, the same
        content hash: the same scores stored either way are one run), for runs larger than the
        memory of the machine that stores them: the parts are read twice, first to check them
        and compute the content hash, then to insert them, one part in memory at a time.

        Parameters
        ----------
        parts : callable
            Called twice; each call yields the same frames, in the same order: every customer in
            one part (e.g. the files of a partitioned Parquet folder). Empty parts are skipped.
        source, model_name, model_version
            As in :meth:`write_scores`.

        Returns
        -------
        int
            The scoring run's id; the existing run's when the same scores were stored before.

        Raises
        ------
        StoreError
            As :meth:`write_scores`, naming the part (counted from 1), and when a customer
            is in two parts or the parts change between the two reads; nothing is stored.
        """

        def normalised() -> Iterator[pd.DataFrame]:
            for number, part in enumerate(parts(), start=1):
                if len(part) == 0:
                    continue
                try:
                    frame, part_run = _normalise_scores(
                        part, model_name=model_name, model_version=model_version
                    )
                except StoreError as err:
                    raise StoreError(f"scores part {number}: {err}") from None
                if part_run != run_values.setdefault("run", part_run):
                    raise StoreError(
                        f"scores part {number} is of another run ({_json(part_run)}) than the "
                        f"first part ({_json(run_values['run'])})"
                    )
                yield frame

        run_values: dict[str, dict[str, Any]] = {}
        digest = _ScoresDigest()
        for frame in normalised():
            digest.add(frame, run_values["run"])
        if "run" not in run_values:
            raise StoreError("the scores hold no rows")
        return self._insert_scores(normalised, digest, run_values["run"], source=source)

    def _insert_scores(
        self,
        frames: Callable[[], Iterator[pd.DataFrame]],
        digest: _ScoresDigest,
        run: Mapping[str, Any],
        *,
        source: str,
    ) -> int:
        content_hash = digest.hexdigest(run)
        try:
            with self._write(_LOCK_SCORING_RUNS) as conn:
                existing = conn.execute(
                    sa.select(scoring_runs.c.id).where(scoring_runs.c.content_hash == content_hash)
                ).scalar_one_or_none()
                if existing is not None:
                    logger.info("scoring run %s holds the same scores; nothing stored", existing)
                    return int(existing)
                result = conn.execute(
                    scoring_runs.insert().values(
                        **run,
                        source=str(source),
                        created_at=_now(),
                        content_hash=content_hash,
                        n_customers=digest.rows,
                    )
                )
                key = result.inserted_primary_key
                if key is None:  # pragma: no cover - every supported database returns it
                    raise StoreError("the database did not return the new scoring run's id")
                run_id = int(key[0])
                check = _ScoresDigest()
                for frame in frames():
                    check.add(frame, run)
                    columns = ["run_id", *map(str, frame.columns)]
                    values: list[list[Any]] = [[run_id] * len(frame), _texts(frame["customer_id"])]
                    values += [_floats(frame[c], f"scores column {c}") for c in frame.columns[1:]]
                    self._bulk_insert(conn, scores_table, columns, values)
                if check.hexdigest(run) != content_hash:
                    raise StoreError(
                        "the scores changed while they were stored (the parts read twice "
                        "differ); nothing was stored"
                    )
        except sa.exc.IntegrityError:
            raise StoreError(
                "a customer appears twice in the scores (in two parts): a scoring run holds one "
                "row per customer; nothing was stored"
            ) from None
        logger.info("stored scoring run %s: %s customers", run_id, f"{digest.rows:,}")
        return run_id

    def ping(self) -> None:
        """Run ``SELECT 1``: raises the driver's error when the database does not answer."""
        with self._read() as conn:
            conn.execute(sa.text("SELECT 1"))

    def latest_scoring_run_id(self) -> int | None:
        """The id of the newest scoring run (a cheap check for new scores), None when none."""
        r = scoring_runs
        statement = sa.select(r.c.id).order_by(r.c.created_at.desc(), r.c.id.desc()).limit(1)
        with self._read() as conn:
            found = conn.execute(statement).scalar_one_or_none()
        return None if found is None else int(found)

    def latest_scores(self) -> pd.DataFrame | None:
        """The newest scoring run's scores, as ``clv score`` wrote them.

        Returns
        -------
        DataFrame or None
            ``customer_id``, ``predicted_clv``, those :data:`SCORE_FEATURES` columns that hold
            a value, then the run's ``as_of`` (naive UTC, as in the scores files),
            ``horizon_days`` and ``model_version`` (each when recorded); sorted by
            ``customer_id``. None when no scores were stored.
        """
        r, s = scoring_runs, scores_table
        columns = ["customer_id", "predicted_clv", *SCORE_FEATURES]
        with self._read() as conn:
            run = conn.execute(
                sa.select(r).order_by(r.c.created_at.desc(), r.c.id.desc()).limit(1)
            ).one_or_none()
            if run is None:
                return None
            rows = conn.execute(
                sa.select(*(s.c[c] for c in columns))
                .where(s.c.run_id == run.id)
                .order_by(s.c.customer_id)
            ).all()
        frame = pd.DataFrame(rows, columns=columns)
        keep = ["customer_id", "predicted_clv"]
        keep += [c for c in SCORE_FEATURES if frame[c].notna().any()]
        frame = frame[keep].copy()
        for name in keep[1:]:
            frame[name] = frame[name].astype("float64")
        if run.as_of is not None:
            frame["as_of"] = pd.Timestamp(run.as_of).tz_convert("UTC").tz_localize(None)
        if run.horizon_days is not None:
            frame["horizon_days"] = int(run.horizon_days)
        if run.model_version is not None:
            frame["model_version"] = run.model_version
        return frame

    # --- campaigns ------------------------------------------------------------------------

    def create_campaign(
        self,
        campaign_id: str,
        name: str,
        content_hash: str,
        definition: Mapping[str, Any],
        plan: pd.DataFrame,
        *,
        budget: float,
        holdout_share: float,
        segment_version: int | None,
        scores_as_of: Any,
        summary: Mapping[str, Any],
        messages: pd.DataFrame,
        planned_at: Any = None,
    ) -> CampaignInfo:
        """Store a planned campaign, its plan and its outbox, in one transaction.

        Parameters
        ----------
        campaign_id : str
            E.g. ``winback-1a2b3c4d`` (at most 128 characters, no ``|``).
        name : str
            The definition's name.
        content_hash : str
            SHA-256 of the definition and its inputs.
        definition : mapping
            The campaign definition, stored as JSON.
        plan : DataFrame
            One row per customer of the audience: ``customer_id``, ``group_name``
            (``holdout`` or a variant), and optionally :data:`PLAN_COLUMNS` (``send_at`` naive
            means UTC). A contacted customer needs a channel and a cost; a holdout customer may
            carry the channel and cost they would have had. Other columns are not stored.
        budget : float
            The definition's budget (≥ 0).
        holdout_share : float
            Share of the audience kept out, in ``[0, 1)``.
        segment_version : int or None
            The segmentation version the audience came from.
        scores_as_of : datetime-like or None
            The scores' cut-off.
        summary : mapping
            The planner's counts (excluded by reason, per variant and channel), stored as JSON.
        messages : DataFrame
            One rendered message per contacted customer: :data:`MESSAGE_COLUMNS`
            (``subject`` optional). Each becomes a ``pending`` outbox row keyed by
            :func:`idempotency_key`.
        planned_at : datetime-like, optional
            The instant the plan was computed for (default: now).

        Returns
        -------
        CampaignInfo
            The new campaign (``planned``); or, when a campaign with the same
            ``content_hash`` exists, that campaign as it is (and nothing is stored).

        Raises
        ------
        StoreError
            On missing columns or values, repeated customers, a message for a customer the
            plan does not contact (a holdout customer above all) or a contacted customer
            without a message, or a ``campaign_id`` taken by other content. Nothing is stored
            then, nor when anything else fails during the transaction.
        """
        key = _campaign_key(campaign_id)
        title = str(name or "").strip()
        if not title:
            raise StoreError(f"campaign {key!r} needs a name")
        if not content_hash:
            raise StoreError("a campaign needs its content hash (SHA-256 of definition and inputs)")
        money = _finite(budget, "the budget")
        share = _finite(holdout_share, "the holdout share")
        if money < 0:
            raise StoreError(f"the budget must not be negative (got {money!r})")
        if not 0 <= share < 1:
            raise StoreError(f"the holdout share must be in [0, 1) (got {share!r})")
        t = campaigns_table
        same_content = sa.select(t).where(t.c.content_hash == content_hash)
        with self._read() as conn:  # planned before: skip the checks (checked again below)
            existing = conn.execute(same_content).one_or_none()
        if existing is not None:
            logger.info("campaign %s has the same content; nothing stored", existing.campaign_id)
            return _campaign_info(existing)
        plan_columns, plan_values = _plan_values(plan)
        by_name = dict(zip(plan_columns, plan_values, strict=True))
        customers, groups, costs = by_name["customer_id"], by_name["group_name"], by_name["cost"]
        contacted = {
            c: channel
            for c, group, channel in zip(customers, groups, by_name["channel"], strict=True)
            if group != HOLDOUT_GROUP
        }
        outbox_columns, outbox_values = _message_values(messages, key, contacted, set(customers))
        total_cost = math.fsum(
            cost for group, cost in zip(groups, costs, strict=True) if group != HOLDOUT_GROUP
        )
        with self._write(_LOCK_CAMPAIGNS) as conn:
            existing = conn.execute(same_content).one_or_none()
            if existing is not None:  # stored by a concurrent writer meanwhile
                logger.info(
                    "campaign %s has the same content; nothing stored", existing.campaign_id
                )
                return _campaign_info(existing)
            if conn.execute(sa.select(t.c.campaign_id).where(t.c.campaign_id == key)).first():
                raise StoreError(
                    f"campaign id {key!r} is taken by a campaign with other content; give this "
                    "one another id (its content hash's first characters make one)"
                )
            now = _now()
            conn.execute(
                t.insert().values(
                    campaign_id=key,
                    name=title,
                    content_hash=content_hash,
                    definition=_json(dict(definition)),
                    status=PLANNED,
                    created_at=now,
                    planned_at=now if planned_at is None else _naive_utc(planned_at),
                    budget=money,
                    holdout_share=share,
                    segment_version=None if segment_version is None else int(segment_version),
                    scores_as_of=_optional_time(scores_as_of),
                    n_targeted=len(contacted),
                    n_holdout=len(customers) - len(contacted),
                    total_cost=total_cost,
                    summary=_json(dict(summary)),
                )
            )
            rows = len(customers)
            self._bulk_insert(
                conn,
                campaign_plan_table,
                ["campaign_id", *plan_columns],
                [[key] * rows, *plan_values],
            )
            messages_n = len(outbox_values[0])
            constant: dict[str, Any] = {
                "campaign_id": key,
                "status": "pending",
                "attempts": 0,
                "updated_at": now,
            }
            self._bulk_insert(
                conn,
                outbox_table,
                [*constant, *outbox_columns],
                [*([v] * messages_n for v in constant.values()), *outbox_values],
            )
            info = _campaign_info(_campaign_row(conn, key))
        self._analyze("campaign_plan", "outbox")
        logger.info(
            "stored campaign %s: %s contacted, %s held out, %s messages pending",
            key,
            f"{info.n_targeted:,}",
            f"{info.n_holdout:,}",
            f"{messages_n:,}",
        )
        return info

    def _analyze(self, *tables: str) -> None:
        """Refresh PostgreSQL's statistics after a bulk load (autovacuum may come much later).

        Without them the planner guesses the sizes of freshly loaded tables, and the claim
        query may scan instead of using the outbox's index. After the commit, so no lock is
        held for it; a failure only costs the statistics.
        """
        if not self._postgresql:
            return
        try:
            with self._reader.connect() as conn:
                conn.exec_driver_sql(f"ANALYZE {', '.join(tables)}")
        except sa.exc.DBAPIError as err:  # pragma: no cover - e.g. not the tables' owner
            logger.warning("ANALYZE %s failed (statistics left as they were): %s", tables, err)

    def campaign(self, campaign_id: str) -> CampaignInfo:
        """One campaign.

        Parameters
        ----------
        campaign_id : str
            Its id.

        Returns
        -------
        CampaignInfo
            As stored.

        Raises
        ------
        StoreError
            When there is no such campaign (the message names some there are).
        """
        with self._read() as conn:
            return _campaign_info(_campaign_row(conn, campaign_id))

    def campaigns(self) -> list[CampaignInfo]:
        """Every campaign, oldest first (empty when none was planned yet)."""
        t = campaigns_table
        with self._read() as conn:
            rows = conn.execute(sa.select(t).order_by(t.c.created_at, t.c.campaign_id)).all()
        return [_campaign_info(r) for r in rows]

    def campaign_plan(self, campaign_id: str) -> pd.DataFrame:
        """A campaign's plan, sorted by ``customer_id``.

        Parameters
        ----------
        campaign_id : str
            The campaign.

        Returns
        -------
        DataFrame
            ``customer_id``, ``group_name``, ``channel``, ``segment``, ``send_at``
            (``datetime64[ns, UTC]``), ``expected_incremental_value``, ``cost``,
            ``predicted_clv`` (float64).

        Raises
        ------
        StoreError
            When there is no such campaign.
        """
        t = campaign_plan_table
        columns = ["customer_id", "group_name", *PLAN_COLUMNS]
        with self._read() as conn:
            _campaign_row(conn, campaign_id)
            rows = conn.execute(
                sa.select(*(t.c[c] for c in columns))
                .where(t.c.campaign_id == campaign_id)
                .order_by(t.c.customer_id)
            ).all()
        floats = [c for c, kind in PLAN_COLUMNS.items() if kind == "float"]
        return _frame(rows, columns, floats=floats, times=["send_at"])

    def outbox(self, campaign_id: str, status: str | None = None) -> pd.DataFrame:
        """A campaign's outbox rows, sorted by ``customer_id`` and ``channel``.

        Parameters
        ----------
        campaign_id : str
            The campaign.
        status : str, optional
            Only rows of this status (one of :data:`OUTBOX_STATUSES`).

        Returns
        -------
        DataFrame
            Every column of the ``outbox`` table; ``attempts`` int64, the times
            ``datetime64[ns, UTC]``.

        Raises
        ------
        StoreError
            When there is no such campaign, or ``status`` is not an outbox status.
        """
        if status is not None and status not in OUTBOX_STATUSES:
            raise StoreError(f"unknown outbox status {status!r}; use one of {OUTBOX_STATUSES}")
        t = outbox_table
        statement = sa.select(t).where(t.c.campaign_id == campaign_id)
        if status is not None:
            statement = statement.where(t.c.status == status)
        with self._read() as conn:
            _campaign_row(conn, campaign_id)
            rows = conn.execute(statement.order_by(t.c.customer_id, t.c.channel)).all()
        return _frame(
            rows,
            [c.name for c in t.columns],
            ints=["attempts"],
            times=["claimed_at", "sent_at", "updated_at"],
        )

    def outbox_counts(self, campaign_id: str) -> dict[str, int]:
        """How many of a campaign's messages are in each outbox status.

        Parameters
        ----------
        campaign_id : str
            The campaign.

        Returns
        -------
        dict
            Every status of :data:`OUTBOX_STATUSES` (zero included) → count.

        Raises
        ------
        StoreError
            When there is no such campaign.
        """
        with self._read() as conn:
            _campaign_row(conn, campaign_id)
            return _outbox_counts(conn, campaign_id)

    def outbox_events(self, campaign_id: str) -> pd.DataFrame:
        """The event log of a campaign's messages, in the order it was written.

        Parameters
        ----------
        campaign_id : str
            The campaign.

        Returns
        -------
        DataFrame
            ``id``, ``idempotency_key``, ``customer_id``, ``channel``, ``at``
            (``datetime64[ns, UTC]``), ``event`` (one of :data:`OUTBOX_EVENTS`), ``attempt``
            (the message's attempts after the event), ``response``.

        Raises
        ------
        StoreError
            When there is no such campaign.
        """
        e, o = outbox_events_table, outbox_table
        columns = ["id", "idempotency_key", "customer_id", "channel", "at", "event", "attempt"]
        statement = (
            sa.select(
                e.c.id,
                e.c.idempotency_key,
                o.c.customer_id,
                o.c.channel,
                e.c.at,
                e.c.event,
                e.c.attempt,
                e.c.response,
            )
            .join(o, o.c.idempotency_key == e.c.idempotency_key)
            .where(o.c.campaign_id == campaign_id)
            .order_by(e.c.id)
        )
        with self._read() as conn:
            _campaign_row(conn, campaign_id)
            rows = conn.execute(statement).all()
        return _frame(rows, [*columns, "response"], ints=["id", "attempt"], times=["at"])

    def set_campaign_status(self, campaign_id: str, status: str) -> CampaignInfo:
        """Move a campaign along ``planned`` → ``sending`` → ``sent``, or to ``cancelled``.

        Setting the status it has is a no-op. ``sent`` needs every message to have an outcome
        (none ``pending`` or ``sending``). A cancelled campaign's messages are never claimed
        again; outcomes of messages already claimed are still recorded.

        Parameters
        ----------
        campaign_id : str
            The campaign.
        status : str
            The new status: see :data:`CAMPAIGN_TRANSITIONS`.

        Returns
        -------
        CampaignInfo
            The campaign, as it now is.

        Raises
        ------
        StoreError
            When there is no such campaign, the change is not allowed, or messages are still
            waiting for an outcome.
        """
        if status not in CAMPAIGN_STATUSES:
            raise StoreError(f"unknown campaign status {status!r}; use one of {CAMPAIGN_STATUSES}")
        with self._write(None) as conn:
            row = _campaign_row(conn, campaign_id, lock="update" if self._postgresql else None)
            current = row._mapping["status"]
            if current == status:
                return _campaign_info(row)
            allowed = CAMPAIGN_TRANSITIONS[current]
            if status not in allowed:
                to = f"only to {' or '.join(allowed)}" if allowed else "no further"
                raise StoreError(
                    f"campaign {campaign_id!r} is {current}: it can go {to}, not to {status}"
                )
            if status == SENT:
                counts = _outbox_counts(conn, campaign_id)
                waiting = {s: counts[s] for s in ("pending", "sending") if counts[s]}
                if waiting:
                    shown = ", ".join(f"{n:,} {s}" for s, n in waiting.items())
                    raise StoreError(
                        f"campaign {campaign_id!r} still has messages without an outcome "
                        f"({shown}): send them, or cancel the campaign"
                    )
            t = campaigns_table
            conn.execute(t.update().where(t.c.campaign_id == campaign_id).values(status=status))
            info = _campaign_info(_campaign_row(conn, campaign_id))
        logger.info("campaign %s: %s → %s", campaign_id, current, status)
        return info

    # --- the outbox: claims and outcomes --------------------------------------------------

    def claim_messages(
        self,
        campaign_id: str,
        limit: int,
        *,
        lease_seconds: float = 300.0,
        now: datetime | None = None,
    ) -> pd.DataFrame:
        """Claim up to ``limit`` of a sending campaign's messages for one sender, atomically.

        A message is claimable when it is ``pending``, or ``sending`` under a claim older than
        the lease (its sender crashed, or gave no outcome in time). The claimed rows become
        ``sending`` with ``claimed_at = now``, and a ``claimed`` (or, for an expired claim,
        ``retry``) event is logged, all in one transaction. Concurrent claimers get disjoint
        rows: PostgreSQL locks the rows it picks (``FOR UPDATE SKIP LOCKED``: a claimer skips
        rows another is claiming rather than waiting; a row another claimer has just taken is
        re-checked and is no longer claimable), SQLite claims inside ``BEGIN IMMEDIATE`` (one
        writer at a time).

        Parameters
        ----------
        campaign_id : str
            A campaign with status ``sending``.
        limit : int
            The most rows to claim (≥ 0).
        lease_seconds : float
            How long a claim holds (> 0); after that another sender may claim the row again.
        now : datetime, optional
            The claim's instant (default: now; naive means UTC).

        Returns
        -------
        DataFrame
            ``idempotency_key``, ``campaign_id``, ``customer_id``, ``channel``, ``variant``
            (the plan's group), ``recipient``, ``subject``, ``body``, ``attempts`` (before this
            claim), ``claimed_at``; sorted by ``customer_id`` and ``channel``. Empty when
            nothing is claimable, or the campaign is ``cancelled`` or ``sent``.

        Raises
        ------
        StoreError
            When there is no such campaign, it is still ``planned``, or ``limit`` or
            ``lease_seconds`` is out of range.
        """
        count, lease = int(limit), float(lease_seconds)
        if count < 0:
            raise StoreError(f"the claim limit must not be negative (got {limit!r})")
        if not (math.isfinite(lease) and lease > 0):
            raise StoreError(f"the lease must be a positive number of seconds (got {lease!r})")
        when = _now() if now is None else _naive_utc(now)
        expired = when - timedelta(seconds=lease)
        o, p = outbox_table, campaign_plan_table
        with self._write(None) as conn:
            # FOR SHARE: a concurrent status change waits for the claim, and the claim for it.
            row = _campaign_row(conn, campaign_id, lock="share" if self._postgresql else None)
            status = row._mapping["status"]
            if status == PLANNED:
                raise StoreError(
                    f"campaign {campaign_id!r} is planned, not sending: set its status to "
                    "sending first"
                )
            if status != SENDING or count == 0:
                return _frame([], list(_CLAIM_COLUMNS), ints=["attempts"], times=["claimed_at"])
            query = (
                sa.select(
                    o.c.idempotency_key,
                    o.c.customer_id,
                    o.c.channel,
                    o.c.status,
                    o.c.attempts,
                    o.c.recipient,
                    o.c.subject,
                    o.c.body,
                    p.c.group_name,
                )
                .join(
                    p,
                    sa.and_(p.c.campaign_id == o.c.campaign_id, p.c.customer_id == o.c.customer_id),
                )
                .where(
                    o.c.campaign_id == campaign_id,
                    sa.or_(
                        o.c.status == "pending",
                        sa.and_(o.c.status == "sending", o.c.claimed_at < expired),
                    ),
                )
                .limit(count)
            )
            if self._postgresql:
                query = query.with_for_update(skip_locked=True, of=o)
            picked = conn.execute(query).all()
            keys = [r.idempotency_key for r in picked]
            for start in range(0, len(keys), _KEYS_PER_STATEMENT):
                conn.execute(
                    o.update()
                    .where(o.c.idempotency_key.in_(keys[start : start + _KEYS_PER_STATEMENT]))
                    .values(status="sending", claimed_at=when, updated_at=when)
                )
            if picked:
                conn.execute(
                    outbox_events_table.insert(),
                    [
                        {
                            "idempotency_key": r.idempotency_key,
                            "at": when,
                            "event": "claimed" if r.status == "pending" else "retry",
                            "attempt": int(r.attempts),
                            "response": None,
                        }
                        for r in picked
                    ],
                )
        claimed = [
            (
                r.idempotency_key,
                campaign_id,
                r.customer_id,
                r.channel,
                r.group_name,
                r.recipient,
                r.subject,
                r.body,
                int(r.attempts),
                when.replace(tzinfo=UTC),
            )
            for r in sorted(picked, key=lambda r: (r.customer_id, r.channel))
        ]
        retried = sum(r.status == "sending" for r in picked)
        if picked:
            logger.info(
                "campaign %s: claimed %s message(s)%s",
                campaign_id,
                f"{len(picked):,}",
                f", {retried:,} after an expired lease" if retried else "",
            )
        return _frame(claimed, list(_CLAIM_COLUMNS), ints=["attempts"], times=["claimed_at"])

    def mark_sent(self, key: str, response: str | None, attempts: int) -> bool:
        """Record that the provider accepted a message.

        Accepted from ``sending``, and also from ``pending`` or ``failed``: a late report of a
        sender whose claim had expired or been released is still a delivery. A message that is
        already ``sent`` (or was a dry run) is left alone, so a delivery is never counted twice.

        Parameters
        ----------
        key : str
            The message's idempotency key.
        response : str or None
            The provider's reply.
        attempts : int
            The message's delivery attempts so far: the claimed row's ``attempts`` plus this
            sender's tries (the stored count never decreases).

        Returns
        -------
        bool
            True when the message became ``sent``; False when it already had that outcome.

        Raises
        ------
        StoreError
            When there is no such message, or ``attempts`` is negative.
        """
        return self._outcome(
            key, "sent", "sent", response, attempts, allowed=("sending", "pending", "failed")
        )

    def mark_failed(self, key: str, response: str | None, attempts: int) -> bool:
        """Record that a claimed message failed for good (it is never claimed again).

        Parameters
        ----------
        key : str
            The message's idempotency key.
        response : str or None
            What went wrong (the provider's reply).
        attempts : int
            The message's delivery attempts so far: the claimed row's ``attempts`` plus this
            sender's tries (the stored count never decreases).

        Returns
        -------
        bool
            True when the message became ``failed``; False when it is not ``sending`` (it was
            sent — a delivery is never undone —, or another sender has it, or it was released).

        Raises
        ------
        StoreError
            When there is no such message, or ``attempts`` is negative.
        """
        return self._outcome(key, "failed", "failed", response, attempts, allowed=("sending",))

    def mark_dry_run(self, key: str, response: str | None = None) -> bool:
        """Record that a claimed message was rendered but deliberately not delivered.

        Parameters
        ----------
        key : str
            The message's idempotency key.
        response : str, optional
            A note for the log.

        Returns
        -------
        bool
            True when the message became ``dry_run``; False when it is not ``sending``.

        Raises
        ------
        StoreError
            When there is no such message.
        """
        return self._outcome(key, "dry_run", "dry_run", response, 0, allowed=("sending",))

    def release(self, key: str, response: str | None, *, attempts: int = 0) -> bool:
        """Give a claimed message back (``pending``): a transient failure to retry later.

        Parameters
        ----------
        key : str
            The message's idempotency key.
        response : str or None
            The transient failure.
        attempts : int
            The message's delivery attempts so far: the claimed row's ``attempts`` plus this
            sender's tries (the stored count never decreases).

        Returns
        -------
        bool
            True when the message became ``pending``; False when it is not ``sending``.

        Raises
        ------
        StoreError
            When there is no such message, or ``attempts`` is negative.
        """
        return self._outcome(key, "pending", "released", response, attempts, allowed=("sending",))

    def mark_outcomes(self, outcomes: Sequence[tuple[str, str, str | None, int]]) -> int:
        """Record many messages' outcomes in one transaction (what a sender does per batch).

        Each entry is ``(key, outcome, response, attempts)`` with ``outcome`` one of ``sent``,
        ``failed``, ``released``; each follows the rules of :meth:`mark_sent`,
        :meth:`mark_failed` and :meth:`release` (a message not in an allowed status is left
        alone, attempts never decrease). One commit for the batch instead of one per message:
        a crash before it leaves the batch claimed, to be sent again after its lease — what
        can repeat is the batch in flight, as with one commit per message.

        Returns
        -------
        int
            Messages whose status changed.

        Raises
        ------
        StoreError
            When a key is unknown, an outcome is not one of those, or attempts are negative;
            then nothing of the batch is recorded.
        """
        if not outcomes:
            return 0
        for key, outcome, _, attempts in outcomes:
            if outcome not in _BATCH_OUTCOMES:
                raise StoreError(
                    f"unknown outcome {outcome!r} for {key!r}; use sent, failed, released"
                )
            if int(attempts) < 0:
                raise StoreError(f"attempts must not be negative (got {attempts!r})")
        o = outbox_table
        keys = [k for k, _, _, _ in outcomes]
        changed = 0
        with self._write(None) as conn:
            current: dict[str, tuple[str, int]] = {}
            for start in range(0, len(keys), _KEYS_PER_STATEMENT):
                chunk = keys[start : start + _KEYS_PER_STATEMENT]
                query = sa.select(o.c.idempotency_key, o.c.status, o.c.attempts).where(
                    o.c.idempotency_key.in_(chunk)
                )
                if self._postgresql:
                    query = query.with_for_update()
                for row in conn.execute(query):
                    current[row.idempotency_key] = (row.status, int(row.attempts))
            unknown = [k for k in keys if k not in current]
            if unknown:
                raise StoreError(f"no outbox message with idempotency key {unknown[0]!r}")
            now = _now()
            updates: list[dict[str, Any]] = []
            events: list[dict[str, Any]] = []
            for key, outcome, response, attempts in outcomes:
                status, event_name, allowed = _BATCH_OUTCOMES[outcome]
                was, stored = current[key]
                if was not in allowed:
                    logger.info("outbox %s is %s: %s not recorded", key, was, event_name)
                    continue
                total = max(stored, int(attempts))
                reply = None if response is None else str(response)
                updates.append(
                    {
                        "key": key,
                        "new_status": status,
                        "new_attempts": total,
                        "reply": reply,
                        "now": now,
                        "sent": now if status == "sent" else None,
                    }
                )
                events.append(
                    {"idempotency_key": key, "at": now, "event": event_name, "attempt": total,
                     "response": reply}
                )  # fmt: skip
                current[key] = (status, total)  # a key twice in one batch: the second sees it
                changed += 1
            if updates:
                statement = (
                    o.update()
                    .where(o.c.idempotency_key == sa.bindparam("key"))
                    .values(
                        status=sa.bindparam("new_status"),
                        attempts=sa.bindparam("new_attempts"),
                        last_response=sa.bindparam("reply"),
                        updated_at=sa.bindparam("now"),
                        sent_at=sa.func.coalesce(
                            sa.bindparam("sent", type_=UTCDateTime), o.c.sent_at
                        ),
                    )
                )
                conn.execute(statement, updates)
                conn.execute(outbox_events_table.insert(), events)
        return changed

    def _outcome(
        self,
        key: str,
        status: str,
        event_name: str,
        response: str | None,
        attempts: int,
        *,
        allowed: tuple[str, ...],
    ) -> bool:
        """Move one message to ``status`` (from one of ``allowed``) and log the event."""
        tries = int(attempts)
        if tries < 0:
            raise StoreError(f"attempts must not be negative (got {attempts!r})")
        reply = None if response is None else str(response)
        o = outbox_table
        with self._write(None) as conn:
            query = sa.select(o.c.status, o.c.attempts).where(o.c.idempotency_key == key)
            if self._postgresql:
                query = query.with_for_update()  # concurrent outcomes of one message queue up
            row = conn.execute(query).one_or_none()
            if row is None:
                raise StoreError(f"no outbox message with idempotency key {key!r}")
            if row.status not in allowed:
                logger.info("outbox %s is %s: %s not recorded", key, row.status, event_name)
                return False
            now = _now()
            total = max(int(row.attempts), tries)  # a stale report never lowers the count
            values: dict[str, Any] = {
                "status": status,
                "attempts": total,
                "last_response": reply,
                "updated_at": now,
            }
            if status == "sent":
                values["sent_at"] = now
            conn.execute(o.update().where(o.c.idempotency_key == key).values(**values))
            conn.execute(
                outbox_events_table.insert().values(
                    idempotency_key=key, at=now, event=event_name, attempt=total, response=reply
                )
            )
        return True

    # --- measured results -----------------------------------------------------------------

    def record_results(
        self, campaign_id: str, results: pd.DataFrame, *, analysed_at: Any = None
    ) -> int:
        """Store a campaign's measured uplift; a cell measured again is replaced (upsert).

        Parameters
        ----------
        campaign_id : str
            The campaign.
        results : DataFrame
            One row per (``segment``, ``channel``, ``metric``): :data:`RESULT_COLUMNS`
            (``uplift`` relative to the holdout, e.g. 0.05 for +5 %; ``standard_error`` may be
            missing), and optionally ``analysed_at``.
        analysed_at : datetime-like, optional
            When it was measured, for rows without their own (default: now).

        Returns
        -------
        int
            The rows written.

        Raises
        ------
        StoreError
            When there is no such campaign, a column or value is missing or out of range, or a
            cell repeats.
        """
        rows = _result_rows(results, _now() if analysed_at is None else _naive_utc(analysed_at))
        t = campaign_results_table
        if self._postgresql:
            from sqlalchemy.dialects.postgresql import insert as upsert_pg

            statement: Any = upsert_pg(t)
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert_sqlite

            statement = upsert_sqlite(t)
        keys = [c.name for c in t.primary_key.columns]
        statement = statement.on_conflict_do_update(
            index_elements=keys,
            set_={c.name: statement.excluded[c.name] for c in t.columns if c.name not in keys},
        )
        with self._write(None) as conn:
            _campaign_row(conn, campaign_id)
            if rows:
                conn.execute(statement, [{"campaign_id": campaign_id, **r} for r in rows])
        logger.info("campaign %s: %s measured result(s) stored", campaign_id, len(rows))
        return len(rows)

    def record_analysis(
        self, campaign_id: str, result: Mapping[str, Any], *, analysed_at: Any = None
    ) -> None:
        """Keep one analysis of a campaign whole (the JSON document of ``analyze --json``).

        Parameters
        ----------
        campaign_id : str
            The campaign.
        result : mapping
            JSON-able analysis.
        analysed_at : datetime-like, optional
            When it was measured (default: now).

        Raises
        ------
        StoreError
            When there is no such campaign, or the result is not JSON-able.
        """
        try:
            text = json.dumps(result, default=str, allow_nan=False, sort_keys=True)
        except (TypeError, ValueError) as err:
            raise StoreError(
                f"campaign {campaign_id!r}: the analysis is not JSON ({err})"
            ) from None
        at = _now() if analysed_at is None else _naive_utc(analysed_at)
        with self._write(_LOCK_CAMPAIGNS) as conn:
            _campaign_row(conn, campaign_id)
            conn.execute(
                campaign_analyses_table.insert().values(
                    campaign_id=campaign_id, analysed_at=at, result=text
                )
            )

    def latest_analysis(self, campaign_id: str) -> dict[str, Any] | None:
        """A campaign's most recent analysis (with ``analysed_at``), or None if never analysed.

        Raises
        ------
        StoreError
            When there is no such campaign.
        """
        t = campaign_analyses_table
        statement = (
            sa.select(t.c.analysed_at, t.c.result)
            .where(t.c.campaign_id == campaign_id)
            .order_by(t.c.analysed_at.desc(), t.c.id.desc())
            .limit(1)
        )
        with self._read() as conn:
            _campaign_row(conn, campaign_id)
            row = conn.execute(statement).one_or_none()
        if row is None:
            return None
        payload: dict[str, Any] = json.loads(row.result)
        payload["analysed_at"] = row.analysed_at.isoformat()
        return payload

    def campaign_analysed_at(self) -> dict[str, pd.Timestamp]:
        """When each analysed campaign was last analysed (aware UTC), by campaign id."""
        r = campaign_analyses_table
        statement = sa.select(r.c.campaign_id, sa.func.max(r.c.analysed_at)).group_by(
            r.c.campaign_id
        )
        with self._read() as conn:
            rows = conn.execute(statement).all()
        stamps = {str(cid): pd.Timestamp(at) for cid, at in rows}
        return {
            cid: at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
            for cid, at in stamps.items()
        }

    def measured_uplift(self, metric: str = "revenue") -> pd.DataFrame:
        """The latest measured uplift per (segment, channel), for the planner's shrinkage.

        "Latest" is the most recently planned campaign that measured the cell (then the most
        recent analysis): re-analysing an old campaign does not hide a newer one's result.

        Parameters
        ----------
        metric : str
            The metric measured (``revenue``, ``conversion``, ...).

        Returns
        -------
        DataFrame
            ``segment``, ``channel``, ``uplift``, ``standard_error`` (float64; NaN when not
            measured), ``n_treated``, ``n_holdout`` (int64), ``campaign_id``, ``analysed_at``
            (``datetime64[ns, UTC]``); sorted by segment and channel. Empty when nothing was
            measured for ``metric``.
        """
        r, c = campaign_results_table, campaigns_table
        rank = (
            sa.func.row_number()
            .over(
                partition_by=(r.c.segment, r.c.channel),
                order_by=(c.c.planned_at.desc(), r.c.analysed_at.desc(), r.c.campaign_id.desc()),
            )
            .label("rank")
        )
        columns = [
            "segment",
            "channel",
            "uplift",
            "standard_error",
            "n_treated",
            "n_holdout",
            "campaign_id",
            "analysed_at",
        ]
        ranked = (
            sa.select(*(r.c[name] for name in columns), rank)
            .join(c, c.c.campaign_id == r.c.campaign_id)
            .where(r.c.metric == metric)
            .subquery()
        )
        statement = (
            sa.select(*(ranked.c[name] for name in columns))
            .where(ranked.c.rank == 1)
            .order_by(ranked.c.segment, ranked.c.channel)
        )
        with self._read() as conn:
            rows = conn.execute(statement).all()
        return _frame(
            rows,
            columns,
            floats=["uplift", "standard_error"],
            ints=["n_treated", "n_holdout"],
            times=["analysed_at"],
        )

    # --- engagement events ----------------------------------------------------------------

    def record_events(self, events: pd.DataFrame) -> int:
        """Store engagement events; an ``event_id`` recorded before is skipped (idempotent).

        Parameters
        ----------
        events : DataFrame
            :data:`CAMPAIGN_EVENT_COLUMNS`, e.g. from
            :func:`clv.campaigns.engagement.read_events`: ``event`` one of
            :data:`CAMPAIGN_EVENT_KINDS`, ``occurred_at`` (or ``timestamp``; naive means UTC),
            ``value`` optional (a conversion's value). Other columns are not stored.

        Returns
        -------
        int
            How many events were new (the rest were recorded already).

        Raises
        ------
        StoreError
            On a missing column or value, an unknown event kind, one ``event_id`` for two
            different events, an event of an unknown campaign, or of a customer and channel
            the campaign's outbox has no message for (a holdout customer above all). The
            message names the first offending event, and nothing is written: the events are
            one transaction.
        """
        columns, values = _event_values(events)
        by_name = dict(zip(columns, values, strict=True))
        ids: list[str] = by_name["event_id"]
        if not ids:
            return 0
        e = campaign_events_table
        with self._write(_LOCK_CAMPAIGN_EVENTS) as conn:
            _check_event_messages(conn, by_name)
            known: set[str] = set()
            for start in range(0, len(ids), _KEYS_PER_STATEMENT):
                chunk = ids[start : start + _KEYS_PER_STATEMENT]
                known.update(
                    conn.execute(sa.select(e.c.event_id).where(e.c.event_id.in_(chunk))).scalars()
                )
            new = [i for i, event_id in enumerate(ids) if event_id not in known]
            if new:
                self._bulk_insert(
                    conn,
                    e,
                    [*columns, "ingested_at"],
                    [*([column[i] for i in new] for column in values), [_now()] * len(new)],
                )
        logger.info(
            "campaign events: %s new, %s recorded before", f"{len(new):,}", f"{len(known):,}"
        )
        return len(new)

    def campaign_events(self, campaign_id: str) -> pd.DataFrame:
        """A campaign's engagement events, in the order they happened.

        Parameters
        ----------
        campaign_id : str
            The campaign.

        Returns
        -------
        DataFrame
            ``event_id``, ``campaign_id``, ``customer_id``, ``channel``, ``event``,
            ``occurred_at`` (``datetime64[ns, UTC]``), ``value`` (float64; NaN when none),
            ``ingested_at`` (``datetime64[ns, UTC]``); sorted by ``occurred_at`` and
            ``event_id``. Empty when none was recorded.

        Raises
        ------
        StoreError
            When there is no such campaign.
        """
        e = campaign_events_table
        columns = [c.name for c in e.columns]
        with self._read() as conn:
            _campaign_row(conn, campaign_id)
            rows = conn.execute(
                sa.select(e)
                .where(e.c.campaign_id == campaign_id)
                .order_by(e.c.occurred_at, e.c.event_id)
            ).all()
        return _frame(rows, columns, floats=["value"], times=["occurred_at", "ingested_at"])

    def messages_for_keys(self, keys: Sequence[str]) -> pd.DataFrame:
        """The outbox messages sent with these idempotency keys (a provider's callbacks carry
        them), to resolve a key to its campaign, customer and channel.

        Parameters
        ----------
        keys : sequence of str
            Idempotency keys (:func:`idempotency_key`); repeats and unknown ones are fine.

        Returns
        -------
        DataFrame
            ``idempotency_key``, ``campaign_id``, ``customer_id``, ``channel``, ``status``: one
            row per key found, sorted by key; keys no message has are absent.
        """
        o = outbox_table
        columns = ["idempotency_key", "campaign_id", "customer_id", "channel", "status"]
        unique = sorted({str(k) for k in keys})
        rows: list[Any] = []
        with self._read() as conn:
            for start in range(0, len(unique), _KEYS_PER_STATEMENT):
                chunk = unique[start : start + _KEYS_PER_STATEMENT]
                rows.extend(
                    conn.execute(
                        sa.select(*(o.c[c] for c in columns)).where(o.c.idempotency_key.in_(chunk))
                    ).all()
                )
        return _frame(sorted(rows, key=lambda r: r[0]), columns)


# --- queries and helpers ----------------------------------------------------------------------

_VALIDITY = ("valid_from", "valid_to")


_h = segment_history
# Built once (serving is the hot path): the customer and the instant are bound parameters.
_SEGMENT_OF = (
    sa.select(_h.c.version, _h.c.segment_id, _h.c.name, _h.c.valid_from, _h.c.valid_to)
    .where(
        _h.c.customer_id == sa.bindparam("customer_id", type_=sa.Text),
        _h.c.valid_from <= sa.bindparam("on", type_=UTCDateTime),
        sa.or_(_h.c.valid_to.is_(None), _h.c.valid_to > sa.bindparam("on", type_=UTCDateTime)),
    )
    .order_by(_h.c.valid_from.desc())
    .limit(1)
)
_HISTORY = (
    sa.select(_h.c.version, _h.c.segment_id, _h.c.name, _h.c.valid_from, _h.c.valid_to)
    .where(_h.c.customer_id == sa.bindparam("customer_id", type_=sa.Text))
    .order_by(_h.c.valid_from, _h.c.version)
)


def segment_of_query(customer_id: str, on: datetime) -> sa.Select[Any]:
    """The one query behind :meth:`Store.segment_of` (exposed so its plan can be checked).

    Parameters
    ----------
    customer_id : str
        The customer.
    on : datetime
        The instant (naive means UTC).

    Returns
    -------
    Select
        ``version``, ``segment_id``, ``name``, ``valid_from``, ``valid_to``: at most one row.
    """
    return _SEGMENT_OF.params(customer_id=customer_id, on=on)


def _version_info(row: sa.Row[Any]) -> VersionInfo:
    m = row._mapping
    return VersionInfo(
        version=int(m["version"]),
        method=m["method"],
        status=m["status"],
        created_at=m["created_at"],
        scores_as_of=m["scores_as_of"],
        source=m["source"],
        n_customers=int(m["n_customers"]),
        n_segments=int(m["n_segments"]),
        rules_passed=bool(m["rules_passed"]),
        activated_at=m["activated_at"],
        deactivated_at=m["deactivated_at"],
        decided_by=m["decided_by"],
        decided_at=m["decided_at"],
        reason=m["reason"],
        automatic=bool(m["automatic"]),
        config=json.loads(m["config"]),
        model=m["model"],
        content_hash=m["content_hash"],
    )


def _version_row(conn: Connection, version: int) -> sa.Row[Any]:
    """The version's row, or a StoreError naming the versions there are."""
    try:
        number = int(version)
    except (TypeError, ValueError):
        raise StoreError(f"not a version number: {version!r}") from None
    row = conn.execute(
        sa.select(segment_versions).where(segment_versions.c.version == number)
    ).one_or_none()
    if row is not None:
        return row
    low, high = conn.execute(
        sa.select(sa.func.min(segment_versions.c.version), sa.func.max(segment_versions.c.version))
    ).one()
    if low is None:
        raise StoreError(
            f"no segment version {number}: there are no segment versions yet; run "
            "`clv segment run` first"
        )
    known = f"the only version is {low}" if low == high else f"the versions are {low}–{high}"
    raise StoreError(f"no segment version {number}: {known} (`clv segment list`)")


def _require_pending(row: sa.Row[Any], action: str) -> None:
    version, status = row._mapping["version"], row._mapping["status"]
    if status != "pending":
        raise StoreError(
            f"version {version} is {status}; only a pending version can be {action} "
            "(`clv segment list` shows their status)"
        )


def _decider(by: str, reason: str) -> tuple[str, str]:
    who, why = str(by or "").strip(), str(reason or "").strip()
    if not who:
        raise StoreError("say who decides: a reviewer name is required")
    if not why:
        raise StoreError("say why: a reason is required and recorded with the decision")
    return who, why


def _segment_rows(segments: pd.DataFrame) -> list[dict[str, Any]]:
    missing = [c for c in ("segment_id", "name") if c not in segments.columns]
    if missing:
        raise StoreError(
            f"segments lack the column(s) {', '.join(missing)}; they have "
            f"{', '.join(map(str, segments.columns))}"
        )
    if len(segments) == 0:
        raise StoreError("a version needs at least one segment")
    rows: list[dict[str, Any]] = []
    for record in segments.to_dict("records"):
        profile = record.get("profile")
        if isinstance(profile, str):
            try:
                profile = json.loads(profile)
            except json.JSONDecodeError as err:
                raise StoreError(
                    f"segment {record['segment_id']!r}: its profile is not JSON ({err})"
                ) from None
        matched = _plain(record.get("matched_from"))
        rows.append(
            {
                "segment_id": str(record["segment_id"]),
                # a missing name stays NULL: the database refuses it (NOT NULL)
                "name": None if _plain(record["name"]) is None else str(record["name"]),
                "description": str(_plain(record.get("description")) or ""),
                "profile": _json(profile if profile is not None else {}),
                "new": bool(_plain(record.get("new")) or False),
                "matched_from": None if matched is None else str(matched),
            }
        )
    for key in ("segment_id", "name"):
        seen: set[str] = set()
        for row in rows:
            if row[key] is None:
                continue
            if row[key] in seen:
                raise StoreError(f"segments repeat the {key} {row[key]!r}; each must be unique")
            seen.add(row[key])
    return rows


def _check_assignments(assignments: pd.DataFrame, segment_ids: set[str]) -> list[str]:
    """Refuse assignments that cannot be stored; return the feature columns they carry."""
    missing = [c for c in ("customer_id", "segment_id") if c not in assignments.columns]
    if missing:
        raise StoreError(
            f"assignments lack the column(s) {', '.join(missing)}; they have "
            f"{', '.join(map(str, assignments.columns))}"
        )
    unknown = [
        str(c)
        for c in assignments.columns
        if c not in ("customer_id", "segment_id") and c not in ASSIGNMENT_FEATURES
    ]
    if unknown:
        raise StoreError(
            f"assignments have column(s) the store does not keep: {', '.join(unknown)}; it "
            f"keeps customer_id, segment_id and {', '.join(ASSIGNMENT_FEATURES)}"
        )
    customers = assignments["customer_id"]
    if customers.isna().any():
        raise StoreError(f"assignments miss the customer_id in {int(customers.isna().sum())} rows")
    text = customers.astype(str)
    repeated = text[text.duplicated()]
    if len(repeated):
        raise StoreError(
            f"{repeated.nunique():,} customer(s) are assigned more than once (e.g. "
            f"{repeated.iloc[0]!r}); a version assigns each customer exactly one segment"
        )
    given = assignments["segment_id"].astype(object)
    stray = given[given.isna().to_numpy() | ~given.astype(str).isin(segment_ids).to_numpy()]
    if len(stray):
        raise StoreError(
            f"{len(stray):,} assignment(s) name no segment of the version, e.g. "
            f"{stray.iloc[0]!r}; its segments are {', '.join(sorted(segment_ids))}"
        )
    return [c for c in ASSIGNMENT_FEATURES if c in assignments.columns]


def _rule_rows(
    rules: Sequence[Mapping[str, Any]], names: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Rule results as rows; ``segment`` is the segment's name (a segment id is translated)."""
    # Any other label is kept as given (the rules are checked by clv.segmentation, not here).
    by_id = {segment_id: name for name, segment_id in names.items()}
    rows: list[dict[str, Any]] = []
    for number, rule in enumerate(rules, start=1):
        missing = [k for k in ("rule", "passed", "message") if k not in rule]
        if missing:
            raise StoreError(f"rule result {number} lacks {', '.join(missing)}")
        label = _plain(rule.get("segment"))
        segment = None if label is None else by_id.get(str(label), str(label))
        value, threshold = _plain(rule.get("value")), _plain(rule.get("threshold"))
        rows.append(
            {
                "segment": segment,
                "rule": str(rule["rule"]),
                "passed": bool(_plain(rule["passed"])),
                "value": None if value is None else float(value),
                "threshold": None if threshold is None else float(threshold),
                "message": str(rule["message"]),
            }
        )
    return rows


def _single(frame: pd.DataFrame, column: str) -> Any:
    values = frame[column].dropna().unique()
    if len(values) > 1:
        raise StoreError(
            f"scores column {column} holds {len(values)} different values; store one scoring run "
            "at a time"
        )
    return values[0] if len(values) else None


def _normalise_scores(
    scores: pd.DataFrame, *, model_name: str | None, model_version: str | None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The stored per-customer columns (sorted by customer) and the run's own values."""
    missing = [c for c in ("customer_id", "predicted_clv") if c not in scores.columns]
    if missing:
        raise StoreError(
            f"scores lack the column(s) {', '.join(missing)}; they have "
            f"{', '.join(map(str, scores.columns))}"
        )
    if len(scores) == 0:
        raise StoreError("the scores hold no rows")
    ids = scores["customer_id"]
    if ids.isna().any():
        raise StoreError(f"scores miss the customer_id in {int(ids.isna().sum())} rows")
    text = ids.astype(str)
    if text.duplicated().any():
        raise StoreError(
            f"scores repeat customer {text[text.duplicated()].iloc[0]!r}: a scoring run holds "
            "one row per customer"
        )
    known = ("customer_id", "predicted_clv", *SCORE_FEATURES, *_SCORE_RUN_COLUMNS)
    ignored = [str(c) for c in scores.columns if c not in known]
    if ignored:
        logger.debug("scores columns not stored: %s", ", ".join(ignored))
    columns = ["customer_id", "predicted_clv", *(c for c in SCORE_FEATURES if c in scores)]
    frame = scores[columns].copy()
    frame["customer_id"] = text.to_numpy()
    for column in columns[1:]:
        try:
            frame[column] = pd.to_numeric(frame[column], errors="raise").astype("float64")
        except (TypeError, ValueError) as err:
            raise StoreError(f"scores column {column} must hold numbers ({err})") from None
    if frame["predicted_clv"].isna().any():
        raise StoreError(
            f"scores miss predicted_clv for {int(frame['predicted_clv'].isna().sum())} customers"
        )
    frame = frame.sort_values("customer_id", kind="stable").reset_index(drop=True)
    as_of = _single(scores, "as_of") if "as_of" in scores else None
    horizon = _single(scores, "horizon_days") if "horizon_days" in scores else None
    if model_version is None and "model_version" in scores:
        found = _single(scores, "model_version")
        model_version = None if found is None else str(found)
    if model_name is None and "model_name" in scores:
        found = _single(scores, "model_name")
        model_name = None if found is None else str(found)
    run = {
        "as_of": _optional_time(as_of),
        "horizon_days": None if horizon is None else int(horizon),
        "model_name": model_name,
        "model_version": model_version,
    }
    return frame, run


class _ScoresDigest:
    """A scoring run's content hash, whatever the order of its rows and of its parts.

    Each row is hashed by pandas with two keys; the sums of the row hashes (modulo 2**64: a
    set of distinct rows, so no pair cancels out) are combined with the row count, the columns
    and the run's values. The rows are unique per customer, so the sums identify the set.
    """

    _KEYS = ("clv-scores-key-1", "clv-scores-key-2")

    def __init__(self) -> None:
        self.rows = 0
        self._sums = [np.uint64(0), np.uint64(0)]
        self._columns: list[str] | None = None

    def add(self, frame: pd.DataFrame, run: Mapping[str, Any]) -> None:
        columns = list(map(str, frame.columns))
        if self._columns is None:
            self._columns = columns
        elif columns != self._columns:
            raise StoreError(
                f"scores parts have different columns: {', '.join(self._columns)} and "
                f"{', '.join(columns)}"
            )
        for i, key in enumerate(self._KEYS):
            hashed = pd.util.hash_pandas_object(frame, index=False, hash_key=key).to_numpy()
            with np.errstate(over="ignore"):
                self._sums[i] = np.uint64(self._sums[i] + hashed.sum(dtype=np.uint64))
        self.rows += len(frame)

    def hexdigest(self, run: Mapping[str, Any]) -> str:
        digest = hashlib.sha256()
        digest.update(json.dumps(self._columns or []).encode())
        digest.update(f"{self.rows}:{int(self._sums[0])}:{int(self._sums[1])}".encode())
        digest.update(_json(dict(run)).encode())
        return digest.hexdigest()


# --- campaign helpers -------------------------------------------------------------------------

_CLAIM_COLUMNS = (
    "idempotency_key",
    "campaign_id",
    "customer_id",
    "channel",
    "variant",
    "recipient",
    "subject",
    "body",
    "attempts",
    "claimed_at",
)


def idempotency_key(campaign_id: str, customer_id: str, channel: str) -> str:
    """The outbox key of one message: SHA-256 hex of ``campaign_id|customer_id|channel``.

    The same message always gets the same key, in any process: the outbox's primary key (one
    row per message, however often a campaign is planned) and what the providers pass on
    (``Message-ID``, ``Idempotency-Key``) so that the receiving side can drop a duplicate.

    Parameters
    ----------
    campaign_id : str
        The campaign (no ``|``).
    customer_id : str
        The customer.
    channel : str
        ``email``, ``sms``, ``in_app`` (no ``|``).

    Returns
    -------
    str
        64 lowercase hex digits.

    Raises
    ------
    StoreError
        When ``campaign_id`` or ``channel`` contains ``|`` (the key would be ambiguous).
    """
    for what, part in (("campaign id", campaign_id), ("channel", channel)):
        if "|" in str(part):
            raise StoreError(f"the {what} {part!r} contains '|', which the outbox key separates on")
    return hashlib.sha256(f"{campaign_id}|{customer_id}|{channel}".encode()).hexdigest()


def _campaign_key(campaign_id: Any) -> str:
    text = str(campaign_id if campaign_id is not None else "")
    if not text.strip() or text != text.strip():
        raise StoreError(f"not a campaign id: {campaign_id!r} (non-empty, no surrounding spaces)")
    if len(text) > campaigns_table.c.campaign_id.type.length:  # type: ignore[attr-defined]
        raise StoreError(f"the campaign id {text[:40]!r}... is longer than 128 characters")
    if "|" in text:
        raise StoreError(
            f"the campaign id {text!r} contains '|', which the outbox key separates on"
        )
    return text


def _finite(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise StoreError(f"{what} must be a number (got {value!r})") from None
    if not math.isfinite(number):
        raise StoreError(f"{what} must be a finite number (got {value!r})")
    return number


def _time_values(values: pd.Series, what: str) -> list[datetime | None]:
    """Times as naive UTC datetimes (naive input means UTC); missing ones as None."""
    try:
        stamps = pd.to_datetime(values, utc=True)
    except (TypeError, ValueError, OverflowError) as err:
        raise StoreError(f"{what} must hold times ({err})") from None
    naive = stamps.dt.tz_localize(None).dt.floor("us")
    return [None if pd.isna(v) else v.to_pydatetime() for v in naive]


def _example(values: Sequence[Any]) -> str:
    return f"{len(values):,} (e.g. {values[0]!r})"


def _plan_values(plan: pd.DataFrame) -> tuple[list[str], list[list[Any]]]:
    """The plan's stored columns and their values, column-wise; refuse what cannot be stored."""
    missing = [c for c in ("customer_id", "group_name") if c not in plan.columns]
    if missing:
        raise StoreError(
            f"the plan lacks the column(s) {', '.join(missing)}; it has "
            f"{', '.join(map(str, plan.columns))}"
        )
    ignored = [
        str(c) for c in plan.columns if c not in ("customer_id", "group_name", *PLAN_COLUMNS)
    ]
    if ignored:
        logger.debug("plan columns not stored: %s", ", ".join(ignored))
    for name in ("customer_id", "group_name"):
        if plan[name].isna().any():
            raise StoreError(f"the plan misses the {name} in {int(plan[name].isna().sum())} rows")
    customers = plan["customer_id"].astype(str)
    repeated = customers[customers.duplicated()]
    if len(repeated):
        raise StoreError(
            f"the plan repeats customer(s) {_example(repeated.tolist())}: a campaign plans each "
            "customer once, in one group"
        )
    n = len(plan)
    values: list[list[Any]] = [customers.tolist(), plan["group_name"].astype(str).tolist()]
    for name, kind in PLAN_COLUMNS.items():
        if name not in plan.columns:
            values.append([None] * n)
        elif kind == "float":
            values.append(_floats(plan[name], f"plan column {name}"))
        elif kind == "time":
            values.append(_time_values(plan[name], f"plan column {name}"))
        else:
            values.append(_texts(plan[name]))
    columns = ["customer_id", "group_name", *PLAN_COLUMNS]
    by_name = dict(zip(columns, values, strict=True))
    contacted = [g != HOLDOUT_GROUP for g in by_name["group_name"]]
    for name in ("channel", "cost"):
        lacking = [
            c
            for c, value, sent in zip(by_name["customer_id"], by_name[name], contacted, strict=True)
            if sent and value is None
        ]
        if lacking:
            raise StoreError(
                f"{_example(lacking)} contacted customer(s) have no {name} in the plan; only "
                "holdout customers may go without"
            )
    negative = [
        c
        for c, cost in zip(by_name["customer_id"], by_name["cost"], strict=True)
        if cost is not None and cost < 0
    ]
    if negative:
        raise StoreError(f"{_example(negative)} customer(s) have a negative cost in the plan")
    piped = sorted({ch for ch in by_name["channel"] if ch is not None and "|" in ch})
    if piped:
        raise StoreError(f"channel {piped[0]!r} contains '|', which the outbox key separates on")
    return columns, values


def _message_values(
    messages: pd.DataFrame, campaign_id: str, contacted: Mapping[str, str], planned: set[str]
) -> tuple[list[str], list[list[Any]]]:
    """The outbox's per-message columns (keyed), checked against the plan's contacts."""
    required = ("customer_id", "channel", "recipient", "body")
    missing = [c for c in required if c not in messages.columns]
    if missing:
        raise StoreError(
            f"the messages lack the column(s) {', '.join(missing)}; they have "
            f"{', '.join(map(str, messages.columns))}"
        )
    for name in required:
        if messages[name].isna().any():
            count = int(messages[name].isna().sum())
            raise StoreError(f"the messages miss the {name} in {count} rows")
    customers = messages["customer_id"].astype(str).tolist()
    channels = messages["channel"].astype(str).tolist()
    seen: set[tuple[str, str]] = set()
    repeated: list[str] = []
    unknown: list[str] = []
    held_out: list[str] = []
    elsewhere: list[str] = []
    for customer, channel in zip(customers, channels, strict=True):
        if (customer, channel) in seen:
            repeated.append(customer)
        seen.add((customer, channel))
        expected = contacted.get(customer)
        if expected is None:
            (held_out if customer in planned else unknown).append(customer)
        elif expected != channel:
            elsewhere.append(f"{customer} by {channel}, planned: {expected}")
    problems = [
        (repeated, "repeat a customer and channel: a customer gets one message per campaign"),
        (unknown, "are for customers the plan does not hold"),
        (held_out, "are for holdout customers, who are never contacted"),
        (elsewhere, "use another channel than the plan gives the customer"),
    ]
    for found, what in problems:
        if found:
            raise StoreError(f"{_example(found)} message(s) {what}")
    unsent = sorted(set(contacted) - set(customers))
    if unsent:
        raise StoreError(
            f"{_example(unsent)} contacted customer(s) have no message: render one for every "
            "customer of a variant"
        )
    subjects = (
        _texts(messages["subject"]) if "subject" in messages.columns else [None] * len(customers)
    )
    keys = [
        idempotency_key(campaign_id, customer, channel)
        for customer, channel in zip(customers, channels, strict=True)
    ]
    columns = ["idempotency_key", "customer_id", "channel", "recipient", "subject", "body"]
    values = [
        keys,
        customers,
        channels,
        messages["recipient"].astype(str).tolist(),
        subjects,
        messages["body"].astype(str).tolist(),
    ]
    return columns, values


def _result_rows(results: pd.DataFrame, default_time: datetime) -> list[dict[str, Any]]:
    """Measured results as rows; refuse what cannot be stored."""
    required = [c for c in RESULT_COLUMNS if c != "standard_error"]
    missing = [c for c in required if c not in results.columns]
    if missing:
        raise StoreError(
            f"the results lack the column(s) {', '.join(missing)}; they have "
            f"{', '.join(map(str, results.columns))}"
        )
    n = len(results)
    for name in ("segment", "channel", "metric"):
        if results[name].isna().any():
            count = int(results[name].isna().sum())
            raise StoreError(f"the results miss the {name} in {count} rows")
    uplift = _floats(results["uplift"], "results column uplift")
    errors = (
        _floats(results["standard_error"], "results column standard_error")
        if "standard_error" in results.columns
        else [None] * n
    )
    if any(u is None or not math.isfinite(u) for u in uplift):
        raise StoreError("the results' uplift must be a finite number in every row")
    if any(e is not None and not (math.isfinite(e) and e >= 0) for e in errors):
        raise StoreError("the results' standard_error must be a finite number ≥ 0 (or missing)")
    counts = {
        name: _ints(results[name], f"results column {name}") for name in ("n_treated", "n_holdout")
    }
    for name, values in counts.items():
        if any(v is None or v < 0 for v in values):
            raise StoreError(f"the results' {name} must be a count ≥ 0 in every row")
    times: list[datetime | None] = (
        _time_values(results["analysed_at"], "results column analysed_at")
        if "analysed_at" in results.columns
        else [None] * n
    )
    rows = [
        {
            "segment": segment,
            "channel": channel,
            "metric": metric,
            "uplift": u,
            "standard_error": e,
            "n_treated": treated,
            "n_holdout": holdout,
            "analysed_at": default_time if at is None else at,
        }
        for segment, channel, metric, u, e, treated, holdout, at in zip(
            results["segment"].astype(str),
            results["channel"].astype(str),
            results["metric"].astype(str),
            uplift,
            errors,
            counts["n_treated"],
            counts["n_holdout"],
            times,
            strict=True,
        )
    ]
    seen: set[tuple[str, str, str]] = set()
    for row in rows:
        cell = (row["segment"], row["channel"], row["metric"])
        if cell in seen:
            raise StoreError(
                f"the results repeat the cell (segment, channel, metric) = {cell!r}; each is "
                "measured once per campaign"
            )
        seen.add(cell)
    return rows


def _campaign_row(
    conn: Connection, campaign_id: str, lock: Literal["share", "update"] | None = None
) -> sa.Row[Any]:
    """The campaign's row (locked on PostgreSQL when asked), or a StoreError naming some."""
    t = campaigns_table
    query = sa.select(t).where(t.c.campaign_id == str(campaign_id))
    if lock is not None:
        query = query.with_for_update(read=lock == "share")
    row = conn.execute(query).one_or_none()
    if row is not None:
        return row
    latest = conn.execute(
        sa.select(t.c.campaign_id).order_by(t.c.created_at.desc(), t.c.campaign_id).limit(3)
    ).scalars()
    known = ", ".join(map(repr, latest))
    if not known:
        raise StoreError(f"no campaign {campaign_id!r}: no campaign was planned yet")
    total = conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
    raise StoreError(f"no campaign {campaign_id!r}; the latest are {known} ({total} in all)")


def _campaign_info(row: sa.Row[Any]) -> CampaignInfo:
    m = row._mapping
    return CampaignInfo(
        campaign_id=m["campaign_id"],
        name=m["name"],
        content_hash=m["content_hash"],
        status=m["status"],
        created_at=m["created_at"],
        planned_at=m["planned_at"],
        budget=float(m["budget"]),
        holdout_share=float(m["holdout_share"]),
        segment_version=None if m["segment_version"] is None else int(m["segment_version"]),
        scores_as_of=m["scores_as_of"],
        n_targeted=int(m["n_targeted"]),
        n_holdout=int(m["n_holdout"]),
        total_cost=float(m["total_cost"]),
        definition=json.loads(m["definition"]),
        summary=json.loads(m["summary"]),
    )


def _outbox_counts(conn: Connection, campaign_id: str) -> dict[str, int]:
    o = outbox_table
    found = conn.execute(
        sa.select(o.c.status, sa.func.count())
        .where(o.c.campaign_id == campaign_id)
        .group_by(o.c.status)
    ).all()
    counts = dict.fromkeys(OUTBOX_STATUSES, 0)
    counts.update({status: int(n) for status, n in found})
    return counts


def _frame(
    rows: Sequence[Any],
    columns: list[str],
    *,
    floats: Sequence[str] = (),
    ints: Sequence[str] = (),
    times: Sequence[str] = (),
) -> pd.DataFrame:
    """Rows as a frame: float64 / int64 columns, times as ``datetime64[ns, UTC]``."""
    frame = pd.DataFrame(list(rows), columns=columns)
    for name in floats:
        frame[name] = frame[name].astype("float64")
    for name in ints:
        frame[name] = frame[name].astype("int64")
    for name in times:
        frame[name] = pd.to_datetime(frame[name], utc=True).astype("datetime64[ns, UTC]")
    return frame


# --- engagement event helpers ---------------------------------------------------------------


def _event_text(by_name: Mapping[str, list[Any]], i: int) -> str:
    """One event as a person recognises it, for messages."""
    at = by_name["occurred_at"][i]
    return (
        f"the {by_name['event'][i]!r} event of customer {by_name['customer_id'][i]!r} by "
        f"{by_name['channel'][i]} at {at:%Y-%m-%d %H:%M:%S} UTC (campaign "
        f"{by_name['campaign_id'][i]!r}, event_id {str(by_name['event_id'][i])[:20]!r})"
    )


def _event_values(events: pd.DataFrame) -> tuple[list[str], list[list[Any]]]:
    """The events' columns, column-wise, without exact repeats; refuse what cannot be kept."""
    frame = events
    if "occurred_at" not in frame.columns and "timestamp" in frame.columns:
        frame = frame.rename(columns={"timestamp": "occurred_at"})
    required = [c for c in CAMPAIGN_EVENT_COLUMNS if c != "value"]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise StoreError(
            f"the events lack the column(s) {', '.join(missing)}; they have "
            f"{', '.join(map(str, frame.columns))} (clv.campaigns.engagement.read_events gives "
            "every one)"
        )
    for name in required:
        if frame[name].isna().any():
            count = int(frame[name].isna().sum())
            raise StoreError(f"the events miss the {name} in {count:,} row(s)")
    n = len(frame)
    values: dict[str, list[Any]] = {
        name: [str(v) for v in frame[name].astype(object)]
        for name in ("event_id", "campaign_id", "customer_id", "channel", "event")
    }
    values["occurred_at"] = _time_values(frame["occurred_at"], "the events' occurred_at")
    values["value"] = (
        _floats(frame["value"], "the events' value") if "value" in frame.columns else [None] * n
    )
    if any(v is not None and not math.isfinite(v) for v in values["value"]):
        raise StoreError("the events' value must be a finite number (or missing)")
    for i, kind in enumerate(values["event"]):
        if kind not in CAMPAIGN_EVENT_KINDS:
            raise StoreError(
                f"unknown event kind {kind!r} (event_id {values['event_id'][i][:20]!r}); use "
                f"one of {', '.join(CAMPAIGN_EVENT_KINDS)}"
            )
    for event_id in values["event_id"]:
        if not event_id.strip() or len(event_id) > MAX_EVENT_ID_LENGTH:
            raise StoreError(
                f"not an event id: {event_id[:40]!r} (1 to {MAX_EVENT_ID_LENGTH} characters)"
            )
    columns = list(CAMPAIGN_EVENT_COLUMNS)
    rows = list(zip(*(values[c] for c in columns), strict=True))
    first: dict[str, tuple[Any, ...]] = {}
    keep: list[int] = []
    for i, row in enumerate(rows):
        earlier = first.get(row[0])
        if earlier is None:
            first[row[0]] = row
            keep.append(i)
        elif earlier != row:
            raise StoreError(
                f"the event_id {row[0][:20]!r} is given to two different events; give each "
                "event its own id"
            )
    if len(keep) < n:
        values = {c: [values[c][i] for i in keep] for c in columns}
    return columns, [values[c] for c in columns]


def _check_event_messages(conn: Connection, by_name: Mapping[str, list[Any]]) -> None:
    """Refuse events of unknown campaigns, or of messages their campaign's outbox lacks."""
    campaigns = sorted(set(by_name["campaign_id"]))
    t, o, p = campaigns_table, outbox_table, campaign_plan_table
    found: set[str] = set()
    for start in range(0, len(campaigns), _KEYS_PER_STATEMENT):
        chunk = campaigns[start : start + _KEYS_PER_STATEMENT]
        found.update(
            conn.execute(sa.select(t.c.campaign_id).where(t.c.campaign_id.in_(chunk))).scalars()
        )
    for i, campaign in enumerate(by_name["campaign_id"]):
        if campaign not in found:
            try:
                _campaign_row(conn, campaign)
            except StoreError as err:
                raise StoreError(
                    f"{_event_text(by_name, i)} is for an unknown campaign: {err}; nothing was "
                    "recorded"
                ) from None
    keys = [
        idempotency_key(c, customer, channel)
        for c, customer, channel in zip(
            by_name["campaign_id"], by_name["customer_id"], by_name["channel"], strict=True
        )
    ]
    unique = sorted(set(keys))
    sent: set[str] = set()
    for start in range(0, len(unique), _KEYS_PER_STATEMENT):
        chunk = unique[start : start + _KEYS_PER_STATEMENT]
        sent.update(
            conn.execute(
                sa.select(o.c.idempotency_key).where(o.c.idempotency_key.in_(chunk))
            ).scalars()
        )
    unknown = [i for i, key in enumerate(keys) if key not in sent]
    if not unknown:
        return
    i = unknown[0]
    campaign, customer = by_name["campaign_id"][i], by_name["customer_id"][i]
    planned = conn.execute(
        sa.select(p.c.group_name, p.c.channel).where(
            p.c.campaign_id == campaign, p.c.customer_id == customer
        )
    ).one_or_none()
    if planned is None:
        why = f"customer {customer!r} is not in the campaign's plan"
    elif planned.group_name == HOLDOUT_GROUP:
        why = f"customer {customer!r} is in the holdout, which is never contacted"
    else:
        why = (
            f"the campaign's outbox has no {by_name['channel'][i]} message for customer "
            f"{customer!r} (planned: {planned.channel})"
        )
    more = f" ({len(unknown) - 1:,} more such event(s))" if len(unknown) > 1 else ""
    raise StoreError(
        f"{_event_text(by_name, i)} is for no message the campaign sent: {why}{more}; "
        "nothing was recorded"
    )
