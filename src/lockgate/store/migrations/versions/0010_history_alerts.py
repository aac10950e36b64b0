"""history roll-ups and alert state

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 11:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_NOT_ROLLED_UP = sa.text("rolled_up_at IS NULL")


def upgrade() -> None:
    # Decisions and verdicts stored before this migration are rolled up on the first round.
    for table in ("decisions", "reviews"):
        op.add_column(table, sa.Column("rolled_up_at", sa.DateTime(timezone=True), nullable=True))
        op.create_index(
            f"ix_{table}_not_rolled_up",
            table,
            ["id"],
            sqlite_where=_NOT_ROLLED_UP,
            postgresql_where=_NOT_ROLLED_UP,
        )
    op.create_table(
        "history_cells",
        sa.Column("task", sa.String(length=64), nullable=False),
        sa.Column("release", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=8), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "task",
            "release",
            "step",
            "bucket_start",
            "metric",
            "key",
            name=op.f("pk_history_cells"),
        ),
    )
    op.create_index("ix_history_cells_task_bucket_start", "history_cells", ["task", "bucket_start"])
    op.create_index("ix_history_cells_step_bucket_start", "history_cells", ["step", "bucket_start"])
    op.create_table(
        "alert_state",
        sa.Column("task", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("firing", sa.Boolean(), nullable=False),
        sa.Column("episode", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("task", "rule", name=op.f("pk_alert_state")),
    )
    op.create_table(
        "alert_silences",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("task", sa.String(length=64), nullable=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_silences")),
    )
    op.create_index(op.f("ix_alert_silences_until"), "alert_silences", ["until"])


def downgrade() -> None:
    op.drop_index(op.f("ix_alert_silences_until"), table_name="alert_silences")
    op.drop_table("alert_silences")
    op.drop_table("alert_state")
    op.drop_index("ix_history_cells_step_bucket_start", table_name="history_cells")
    op.drop_index("ix_history_cells_task_bucket_start", table_name="history_cells")
    op.drop_table("history_cells")
    for table in ("reviews", "decisions"):
        op.drop_index(f"ix_{table}_not_rolled_up", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("rolled_up_at")
