"""model artifacts kept in the database, content-addressed by sha256

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # -- a release pins its artifacts by sha256; the bytes live here too, so a replica on
    #    another machine loads the live release without a shared project folder
    op.create_table(
        "model_artifacts",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_model_artifacts")),
    )


def downgrade() -> None:
    op.drop_table("model_artifacts")
