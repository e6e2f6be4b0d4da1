"""Campaign engagement events: what recipients did with a message, once per event id.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

``campaign_events`` holds one row per ``event_id`` (the provider's, or a SHA-256 of the event's
content), so ingesting the same events twice records them once. Each event belongs to a campaign
(deleted with it) and, checked by the store when it writes, to a message of that campaign's
outbox. The index on ``(campaign_id, occurred_at)`` serves a campaign's events in time order.
Nothing of the existing tables changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the events table and its index."""
    op.create_table(
        "campaign_events",
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("campaign_id", sa.String(128), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("ingested_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "event IN ('delivered', 'open', 'click', 'conversion', 'bounce', 'unsubscribe', "
            "'complaint')",
            name="ck_campaign_events_event",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.campaign_id"],
            name="fk_campaign_events_campaign_id_campaigns",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", name="pk_campaign_events"),
    )
    op.create_index(
        "ix_campaign_events_campaign_id_occurred_at",
        "campaign_events",
        ["campaign_id", "occurred_at"],
    )


def downgrade() -> None:
    """Drop everything :func:`upgrade` created."""
    op.drop_index("ix_campaign_events_campaign_id_occurred_at", table_name="campaign_events")
    op.drop_table("campaign_events")
