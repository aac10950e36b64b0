"""intake sources take the general named leases: drop intake_sources.lease_owner/lease_until

Revision ID: 0013
Revises: 0011
Create Date: 2026-11-29 15:00:00.000000

A polled source's replica now holds the lease `intake:TASK:SOURCE` in `leases` (as the
roll-up, the alert evaluator and the retention sweep do). A lease held at upgrade time is
dropped with its columns; the source is taken again by a replica within one poll.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("intake_sources", schema=None) as batch_op:
        batch_op.drop_column("lease_until")
        batch_op.drop_column("lease_owner")


def downgrade() -> None:
    with op.batch_alter_table("intake_sources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
