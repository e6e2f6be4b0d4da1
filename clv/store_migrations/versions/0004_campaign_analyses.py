"""Campaign analyses, kept whole: the latest one is what a campaign's page shows.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

``campaign_analyses`` holds every analysis of a campaign as its JSON document (the one
``clv campaign analyze --json`` prints), with when it was made; the index on
``(campaign_id, analysed_at)`` finds the latest. It also tells the analysis flow's safety net
that a campaign was analysed after its window closed, analysed segments or not. Nothing of the
existing tables changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the analyses table and its index."""
    op.create_table(
        "campaign_analyses",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("campaign_id", sa.String(128), nullable=False),
        sa.Column("analysed_at", sa.DateTime(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.campaign_id"],
            name="fk_campaign_analyses_campaign_id_campaigns",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_campaign_analyses"),
    )
    op.create_index(
        "ix_campaign_analyses_campaign_id_analysed_at",
        "campaign_analyses",
        ["campaign_id", "analysed_at"],
    )


def downgrade() -> None:
    """Drop everything :func:`upgrade` created."""
    op.drop_index("ix_campaign_analyses_campaign_id_analysed_at", table_name="campaign_analyses")
    op.drop_table("campaign_analyses")
