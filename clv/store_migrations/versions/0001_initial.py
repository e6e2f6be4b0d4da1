"""Segment versions, segments, assignments, rule results, scoring runs and scores.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the step-6 schema."""
    op.create_table(
        "segment_versions",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("scores_as_of", sa.DateTime),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False, index=True),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("model", sa.Text),
        sa.Column("n_customers", sa.Integer, nullable=False),
        sa.Column("n_segments", sa.Integer, nullable=False),
        sa.Column("rules_passed", sa.Boolean, nullable=False),
        sa.Column("activated_at", sa.DateTime),
        sa.Column("deactivated_at", sa.DateTime),
        sa.Column("decided_by", sa.Text),
        sa.Column("decided_at", sa.DateTime),
        sa.Column("reason", sa.Text),
        sa.Column("automatic", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "segments",
        sa.Column(
            "version",
            sa.Integer,
            sa.ForeignKey("segment_versions.version", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("segment_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("profile", sa.Text, nullable=False),
        sa.Column("new", sa.Boolean, nullable=False),
        sa.Column("matched_from", sa.String(64)),
    )
    op.create_table(
        "segment_assignments",
        sa.Column(
            "version",
            sa.Integer,
            sa.ForeignKey("segment_versions.version", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("customer_id", sa.String(128), primary_key=True),
        sa.Column("segment_id", sa.String(64), nullable=False),
        sa.Column("predicted_clv", sa.Float),
        sa.Column("churn_probability", sa.Float),
        sa.Column("eco_spend_share", sa.Float),
        sa.Column("eco_engagement_score", sa.Float),
        sa.Column("r_score", sa.Integer),
        sa.Column("f_score", sa.Integer),
        sa.Column("m_score", sa.Integer),
        sa.Column("rfm_segment", sa.Text),
    )
    op.create_index(
        "ix_segment_assignments_customer", "segment_assignments", ["customer_id", "version"]
    )
    op.create_table(
        "rule_results",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "version",
            sa.Integer,
            sa.ForeignKey("segment_versions.version", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("segment", sa.Text),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("threshold", sa.Float),
        sa.Column("message", sa.Text, nullable=False),
    )
    op.create_table(
        "scoring_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("content_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("as_of", sa.DateTime),
        sa.Column("horizon_days", sa.Integer),
        sa.Column("model_name", sa.Text),
        sa.Column("model_version", sa.Text),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("n_customers", sa.Integer, nullable=False),
    )
    op.create_table(
        "scores",
        sa.Column(
            "run_id",
            sa.Integer,
            sa.ForeignKey("scoring_runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("customer_id", sa.String(128), primary_key=True),
        sa.Column("predicted_clv", sa.Float, nullable=False),
        sa.Column("predicted_clv_lower", sa.Float),
        sa.Column("predicted_clv_upper", sa.Float),
        sa.Column("churn_probability", sa.Float),
        sa.Column("days_since_last_purchase", sa.Float),
        sa.Column("purchase_days", sa.Float),
        sa.Column("avg_purchase_day_value", sa.Float),
        sa.Column("eco_spend_share", sa.Float),
        sa.Column("eco_engagement_score", sa.Float),
    )
    op.create_index("ix_scores_customer", "scores", ["customer_id", "run_id"])


def downgrade() -> None:
    """Drop the step-6 schema."""
    op.drop_index("ix_scores_customer", "scores")
    op.drop_table("scores")
    op.drop_table("scoring_runs")
    op.drop_table("rule_results")
    op.drop_index("ix_segment_assignments_customer", "segment_assignments")
    op.drop_table("segment_assignments")
    op.drop_table("segments")
    op.drop_table("segment_versions")
