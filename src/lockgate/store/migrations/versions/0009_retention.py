"""retention, erasure, audit anchors and backups: project facts and the backups made

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 11:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "project_state",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_project_state")),
    )
    op.create_table(
        "backups",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("schema", sa.String(length=32), nullable=True),
        sa.Column("audit_head", sa.Integer(), nullable=True),
        sa.Column("decisions", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backups")),
    )
    # Retention and erasure find the review entries of given decisions by their subject.
    op.create_index(op.f("ix_audit_log_subject"), "audit_log", ["subject"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_log_subject"), table_name="audit_log")
    op.drop_table("backups")
    op.drop_table("project_state")
