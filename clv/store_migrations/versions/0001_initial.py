"""Initial schema: segment versions, segments, assignments, rule results, history view, scores.

Revision ID: 0001
Revises:
Create Date: 2026-12-03

The assignment table is keyed by ``(version, customer_id)`` (clustered on SQLite: WITHOUT ROWID)
and indexed by ``(customer_id, version)``, so a customer's history, or their segment at an
instant, is one index range of at most one row per version. ``segment_history`` joins each
activated version's assignments to its activation interval.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HISTORY_VIEW = """
CREATE VIEW segment_history AS
SELECT a.customer_id AS customer_id,
       a.version AS version,
       a.segment_id AS segment_id,
       s.name AS name,
       v.activated_at AS valid_from,
       v.deactivated_at AS valid_to
FROM segment_assignments AS a
JOIN segment_versions AS v ON v.version = a.version
JOIN segments AS s ON s.version = a.version AND s.segment_id = a.segment_id
WHERE v.activated_at IS NOT NULL
"""


def upgrade() -> None:
    """Create the tables, their indexes and the history view."""
    op.create_table(
        "segment_versions",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("scores_as_of", sa.DateTime(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("n_customers", sa.Integer(), nullable=False),
        sa.Column("n_segments", sa.Integer(), nullable=False),
        sa.Column("rules_passed", sa.Boolean(), nullable=False),
        sa.Column("activated_at", sa.DateTime(), nullable=True),
        sa.Column("deactivated_at", sa.DateTime(), nullable=True),
        sa.Column("decided_by", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("automatic", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "method IN ('rfm', 'kmeans', 'both')", name="ck_segment_versions_method"
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'superseded', 'rejected')",
            name="ck_segment_versions_status",
        ),
        sa.CheckConstraint(
            "(status IN ('pending', 'rejected') AND activated_at IS NULL"
            " AND deactivated_at IS NULL)"
            " OR (status = 'active' AND activated_at IS NOT NULL AND deactivated_at IS NULL)"
            " OR (status = 'superseded' AND activated_at IS NOT NULL"
            " AND deactivated_at IS NOT NULL AND deactivated_at >= activated_at)",
            name="ck_segment_versions_interval",
        ),
        sa.PrimaryKeyConstraint("version", name="pk_segment_versions"),
    )
    # At most one active version; one open (pending or active) version per content.
    op.create_index(
        "uq_segment_versions_one_active",
        "segment_versions",
        ["status"],
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_index(
        "uq_segment_versions_open_content_hash",
        "segment_versions",
        ["content_hash"],
        unique=True,
        sqlite_where=sa.text("status IN ('pending', 'active')"),
        postgresql_where=sa.text("status IN ('pending', 'active')"),
    )
    op.create_table(
        "segments",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("profile", sa.Text(), nullable=False),
        sa.Column("new", sa.Boolean(), nullable=False),
        sa.Column("matched_from", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["version"],
            ["segment_versions.version"],
            name="fk_segments_version_segment_versions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("version", "segment_id", name="pk_segments"),
        sa.UniqueConstraint("version", "name", name="uq_segments_version_name"),
    )
    op.create_table(
        "segment_assignments",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("segment_id", sa.Text(), nullable=False),
        sa.Column("predicted_clv", sa.Float(), nullable=True),
        sa.Column("churn_probability", sa.Float(), nullable=True),
        sa.Column("eco_spend_share", sa.Float(), nullable=True),
        sa.Column("eco_engagement_score", sa.Float(), nullable=True),
        sa.Column("r_score", sa.SmallInteger(), nullable=True),
        sa.Column("f_score", sa.SmallInteger(), nullable=True),
        sa.Column("m_score", sa.SmallInteger(), nullable=True),
        sa.Column("rfm_segment", sa.Text(), nullable=True),
        # No foreign key to segments (see clv.store.segment_assignments): a per-row check
        # makes a 1M-row COPY about four times slower; create_version checks the ids first.
        sa.PrimaryKeyConstraint("version", "customer_id", name="pk_segment_assignments"),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_segment_assignments_customer_id_version",
        "segment_assignments",
        ["customer_id", "version"],
    )
    op.create_table(
        "rule_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("segment", sa.Text(), nullable=True),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version"],
            ["segment_versions.version"],
            name="fk_rule_results_version_segment_versions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_rule_results"),
    )
    op.create_index("ix_rule_results_version", "rule_results", ["version"])
    op.execute(HISTORY_VIEW)
    op.create_table(
        "scoring_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=True),
        sa.Column("horizon_days", sa.Integer(), nullable=True),
        sa.Column("model_name", sa.Text(), nullable=True),
        sa.Column("model_version", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("n_customers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_scoring_runs"),
        sa.UniqueConstraint("content_hash", name="uq_scoring_runs_content_hash"),
    )
    op.create_table(
        "scores",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("predicted_clv", sa.Float(), nullable=False),
        sa.Column("predicted_clv_lower", sa.Float(), nullable=True),
        sa.Column("predicted_clv_upper", sa.Float(), nullable=True),
        sa.Column("churn_probability", sa.Float(), nullable=True),
        sa.Column("days_since_last_purchase", sa.Float(), nullable=True),
        sa.Column("purchase_days", sa.Float(), nullable=True),
        sa.Column("avg_purchase_day_value", sa.Float(), nullable=True),
        sa.Column("eco_spend_share", sa.Float(), nullable=True),
        sa.Column("eco_engagement_score", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["scoring_runs.id"],
            name="fk_scores_run_id_scoring_runs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "customer_id", name="pk_scores"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    """Drop everything :func:`upgrade` created."""
    op.drop_table("scores")
    op.drop_table("scoring_runs")
    op.execute("DROP VIEW segment_history")
    op.drop_index("ix_rule_results_version", table_name="rule_results")
    op.drop_table("rule_results")
    op.drop_index("ix_segment_assignments_customer_id_version", table_name="segment_assignments")
    op.drop_table("segment_assignments")
    op.drop_table("segments")
    op.drop_index("uq_segment_versions_open_content_hash", table_name="segment_versions")
    op.drop_index("uq_segment_versions_one_active", table_name="segment_versions")
    op.drop_table("segment_versions")
