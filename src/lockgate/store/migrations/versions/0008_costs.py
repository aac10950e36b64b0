"""costs: budget ledger and reservations, decision cache

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 11:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budget_ledger",
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("spent_nano", sa.BigInteger(), nullable=False),
        sa.Column("spent_calls", sa.Integer(), nullable=False),
        sa.Column("reserved_nano", sa.BigInteger(), nullable=False),
        sa.Column("reserved_calls", sa.Integer(), nullable=False),
        sa.Column("lapsed_calls", sa.Integer(), nullable=False),
        sa.Column("soft_usd_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("soft_calls_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "period", name=op.f("pk_budget_ledger")),
    )
    op.create_table(
        "budget_holds",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("task", sa.String(length=64), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("month", sa.String(length=10), nullable=False),
        sa.Column("nano", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_holds")),
    )
    op.create_index(
        "ix_budget_holds_task_expires_at", "budget_holds", ["task", "expires_at"], unique=False
    )
    op.create_table(
        "decision_cache",
        sa.Column("task", sa.String(length=64), nullable=False),
        sa.Column("release_hash", sa.String(length=64), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("decision_id", sa.String(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "task", "release_hash", "input_hash", name=op.f("pk_decision_cache")
        ),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cached_from", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_column("cached_from")
    op.drop_table("decision_cache")
    op.drop_index("ix_budget_holds_task_expires_at", table_name="budget_holds")
    op.drop_table("budget_holds")
    op.drop_table("budget_ledger")
