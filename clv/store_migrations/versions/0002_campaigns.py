"""Campaigns: the campaign, its plan, its outbox (with an event log) and its measured uplift.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-10

A campaign is planned once per content (``campaigns.content_hash`` is unique). Its outbox holds
one row per message, keyed by the SHA-256 of (campaign, customer, channel): planning the same
campaign twice cannot queue a message twice, and the key is what the providers pass on so that
the receiving side can drop a duplicate. Senders claim rows through the index on
``(campaign_id, status)``; ``outbox_events`` is the append-only log of claims and outcomes.
``campaign_results`` keeps the measured uplift per (segment, channel, metric), which later plans
read back. Nothing of the segmentation tables changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the campaign tables and their indexes."""
    op.create_table(
        "campaigns",
        sa.Column("campaign_id", sa.String(128), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("planned_at", sa.DateTime(), nullable=False),
        sa.Column("budget", sa.Float(), nullable=False),
        sa.Column("holdout_share", sa.Float(), nullable=False),
        sa.Column("segment_version", sa.Integer(), nullable=True),
        sa.Column("scores_as_of", sa.DateTime(), nullable=True),
        sa.Column("n_targeted", sa.Integer(), nullable=False),
        sa.Column("n_holdout", sa.Integer(), nullable=False),
        sa.Column("total_cost", sa.Float(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "status IN ('planned', 'sending', 'sent', 'cancelled')", name="ck_campaigns_status"
        ),
        sa.CheckConstraint("budget >= 0 AND total_cost >= 0", name="ck_campaigns_money"),
        sa.CheckConstraint(
            "holdout_share >= 0 AND holdout_share < 1", name="ck_campaigns_holdout_share"
        ),
        sa.CheckConstraint("n_targeted >= 0 AND n_holdout >= 0", name="ck_campaigns_counts"),
        sa.PrimaryKeyConstraint("campaign_id", name="pk_campaigns"),
        sa.UniqueConstraint("content_hash", name="uq_campaigns_content_hash"),
    )
    op.create_table(
        "campaign_plan",
        sa.Column("campaign_id", sa.String(128), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("group_name", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=True),
        sa.Column("segment", sa.Text(), nullable=True),
        sa.Column("send_at", sa.DateTime(), nullable=True),
        sa.Column("expected_incremental_value", sa.Float(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("predicted_clv", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "group_name = 'holdout' OR (channel IS NOT NULL AND cost IS NOT NULL)",
            name="ck_campaign_plan_targeted",
        ),
        sa.CheckConstraint("cost >= 0", name="ck_campaign_plan_cost"),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.campaign_id"],
            name="fk_campaign_plan_campaign_id_campaigns",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "customer_id", name="pk_campaign_plan"),
        sqlite_with_rowid=False,
    )
    # The outbox keeps its rowid on SQLite: rendered bodies make rows too large for a
    # WITHOUT ROWID table to pay off.
    op.create_table(
        "outbox",
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("campaign_id", sa.String(128), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_response", sa.Text(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed', 'dry_run')",
            name="ck_outbox_status",
        ),
        sa.CheckConstraint("attempts >= 0", name="ck_outbox_attempts"),
        sa.CheckConstraint(
            "(status <> 'sending' OR claimed_at IS NOT NULL)"
            " AND (status <> 'sent' OR sent_at IS NOT NULL)",
            name="ck_outbox_times",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.campaign_id"],
            name="fk_outbox_campaign_id_campaigns",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("idempotency_key", name="pk_outbox"),
    )
    op.create_index("ix_outbox_campaign_id_status", "outbox", ["campaign_id", "status"])
    op.create_table(
        "outbox_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("response", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "event IN ('claimed', 'retry', 'sent', 'failed', 'dry_run', 'released')",
            name="ck_outbox_events_event",
        ),
        sa.ForeignKeyConstraint(
            ["idempotency_key"],
            ["outbox.idempotency_key"],
            name="fk_outbox_events_idempotency_key_outbox",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_outbox_events"),
    )
    op.create_index("ix_outbox_events_idempotency_key", "outbox_events", ["idempotency_key"])
    op.create_table(
        "campaign_results",
        sa.Column("campaign_id", sa.String(128), nullable=False),
        sa.Column("segment", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("uplift", sa.Float(), nullable=False),
        sa.Column("standard_error", sa.Float(), nullable=True),
        sa.Column("n_treated", sa.Integer(), nullable=False),
        sa.Column("n_holdout", sa.Integer(), nullable=False),
        sa.Column("analysed_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("standard_error >= 0", name="ck_campaign_results_standard_error"),
        sa.CheckConstraint("n_treated >= 0 AND n_holdout >= 0", name="ck_campaign_results_counts"),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.campaign_id"],
            name="fk_campaign_results_campaign_id_campaigns",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "campaign_id", "segment", "channel", "metric", name="pk_campaign_results"
        ),
    )


def downgrade() -> None:
    """Drop everything :func:`upgrade` created."""
    op.drop_table("campaign_results")
    op.drop_index("ix_outbox_events_idempotency_key", table_name="outbox_events")
    op.drop_table("outbox_events")
    op.drop_index("ix_outbox_campaign_id_status", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("campaign_plan")
    op.drop_table("campaigns")
