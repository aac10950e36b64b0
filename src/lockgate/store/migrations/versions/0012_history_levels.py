"""history levels: hour and day cells beside the minutes, spot checks rolled up, indexes for
the dashboard

Revision ID: 0012
Revises: 0013
Create Date: 2026-11-29 15:00:00.000000

(After 0013: that one was written on 0011 while this one was under way, and databases at
0013 exist; the numbers were handed out before either was written.)

Before: each decision was counted in one cell per metric, a minute's, folded into an hour's
after `history_hours_after_days` and into a day's after `history_days_after_days`. After: every
level (minute, hour, day) is a complete count of the time it covers, written by the roll-up in
one transaction; old minutes and hours are dropped (the coarser level holds them), and
`history_levels` says from when each level is complete. This migration builds the hour and day
levels from the cells already there and records where the minutes and hours begin.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0013"
branch_labels = None
depends_on = None

_GAUGES = ("backlog",)
_NOT_ROLLED_UP = sa.text("rolled_up_at IS NULL")
_COLUMNS = "task, release, step, bucket_start, metric, key, value"
_PK = "task, release, step, bucket_start, metric, key"


def _truncated(dialect: str, unit: str) -> str:
    """The start of the UTC hour or day holding `bucket_start`, in SQL."""
    if dialect == "postgresql":
        return f"date_trunc('{unit}', bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    # SQLite keeps the time as text, 'YYYY-MM-DD HH:MM:SS.ffffff', in UTC.
    if unit == "hour":
        return "substr(bucket_start, 1, 13) || ':00:00.000000'"
    return "substr(bucket_start, 1, 10) || ' 00:00:00.000000'"


def _fold(conn: sa.Connection, finer: str, coarser: str) -> None:
    """Add every `finer` cell into the `coarser` cell holding it (a gauge keeps the largest)."""
    dialect = conn.dialect.name
    start = _truncated(dialect, coarser)
    gauges = ", ".join(f"'{g}'" for g in _GAUGES)
    larger = "greatest" if dialect == "postgresql" else "max"
    conn.execute(
        sa.text(
            f"INSERT INTO history_cells ({_COLUMNS}) "
            f"SELECT task, release, '{coarser}', {start}, metric, key, "
            f"CASE WHEN metric IN ({gauges}) THEN max(value) ELSE sum(value) END "
            f"FROM history_cells WHERE step = '{finer}' "
            f"GROUP BY task, release, {start}, metric, key "
            f"ON CONFLICT ({_PK}) DO UPDATE SET value = CASE "
            f"WHEN history_cells.metric IN ({gauges}) "
            f"THEN {larger}(history_cells.value, excluded.value) "
            "ELSE history_cells.value + excluded.value END"
        )
    )


def _latest_end(conn: sa.Connection, step: str, size: timedelta) -> datetime | None:
    found = conn.execute(
        sa.text("SELECT max(bucket_start) FROM history_cells WHERE step = :step"), {"step": step}
    ).scalar()
    if found is None:
        return None
    if isinstance(found, str):  # SQLite returns the stored text
        found = datetime.fromisoformat(found)
    at = found if found.tzinfo is not None else found.replace(tzinfo=UTC)
    return at.astimezone(UTC) + size


def upgrade() -> None:
    op.create_table(
        "history_levels",
        sa.Column("step", sa.String(length=8), nullable=False),
        sa.Column("complete_from", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("step", name=op.f("pk_history_levels")),
    )
    op.drop_index("ix_history_cells_task_bucket_start", table_name="history_cells")
    op.create_index(
        "ix_history_cells_task_step_bucket_start",
        "history_cells",
        ["task", "step", "bucket_start"],
    )
    # The dashboard's judgment counts (live accuracy per bucket, and per release) read an
    # index alone.
    op.create_index("ix_spot_checks_task_at", "spot_checks", ["task", "at", "release", "verdict"])
    op.create_index(
        "ix_spot_checks_task_release_verdict", "spot_checks", ["task", "release", "verdict"]
    )
    # Spot-check verdicts are rolled up too (the dashboard's live accuracy per bucket): those
    # judged before this migration on the first round.
    op.add_column(
        "spot_checks", sa.Column("rolled_up_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_spot_checks_not_rolled_up",
        "spot_checks",
        ["decision_id"],
        sqlite_where=_NOT_ROLLED_UP,
        postgresql_where=_NOT_ROLLED_UP,
    )
    # Drift's window: a release's newest decisions.
    op.create_index(
        "ix_decisions_release_task_created", "decisions", ["release", "task", "created_at"]
    )

    conn = op.get_bind()
    # Where the old compaction had got to: minutes are complete after the newest hour or day
    # it made, hours after the newest day. Read before the levels are built.
    hour_end = _latest_end(conn, "hour", timedelta(hours=1))
    day_end = _latest_end(conn, "day", timedelta(days=1))
    minutes_from = max((t for t in (hour_end, day_end) if t is not None), default=None)
    # Hours from the minutes (beside the hours compaction made), then days from every hour.
    _fold(conn, "minute", "hour")
    _fold(conn, "hour", "day")
    levels = sa.table(
        "history_levels",
        sa.column("step", sa.String()),
        sa.column("complete_from", sa.DateTime(timezone=True)),
    )
    rows = [
        {"step": step, "complete_from": at}
        for step, at in (("minute", minutes_from), ("hour", day_end))
        if at is not None
    ]
    if rows:
        conn.execute(levels.insert(), rows)


def downgrade() -> None:
    """Back to one cell per metric and time: minutes where they are complete, hours before
    them, days before the hours; the other cells of each level are dropped."""
    conn = op.get_bind()
    found: dict[str, Any] = {
        step: at
        for step, at in conn.execute(sa.text("SELECT step, complete_from FROM history_levels"))
    }

    def at(step: str) -> datetime | None:
        value = found.get(step)
        if isinstance(value, str):  # SQLite returns the stored text
            value = datetime.fromisoformat(value)
        return value

    hours_from = at("hour")
    minutes_from = max((t for t in (at("minute"), hours_from) if t is not None), default=None)
    cells = sa.table(
        "history_cells", sa.column("step", sa.String()), sa.column("bucket_start", sa.DateTime())
    )
    conn.execute(
        cells.delete().where(
            cells.c.step == "day",
            *(() if hours_from is None else (cells.c.bucket_start >= hours_from,)),
        )
    )
    conn.execute(
        cells.delete().where(
            cells.c.step == "hour",
            sa.or_(
                *(() if hours_from is None else (cells.c.bucket_start < hours_from,)),
                *(() if minutes_from is None else (cells.c.bucket_start >= minutes_from,)),
                sa.false(),
            )
            if hours_from is not None or minutes_from is not None
            else sa.true(),
        )
    )
    if minutes_from is not None:
        conn.execute(
            cells.delete().where(cells.c.step == "minute", cells.c.bucket_start < minutes_from)
        )
    op.drop_index("ix_decisions_release_task_created", table_name="decisions")
    op.drop_index("ix_spot_checks_not_rolled_up", table_name="spot_checks")
    with op.batch_alter_table("spot_checks") as batch:
        batch.drop_column("rolled_up_at")
    op.drop_index("ix_spot_checks_task_release_verdict", table_name="spot_checks")
    op.drop_index("ix_spot_checks_task_at", table_name="spot_checks")
    op.drop_index("ix_history_cells_task_step_bucket_start", table_name="history_cells")
    op.create_index("ix_history_cells_task_bucket_start", "history_cells", ["task", "bucket_start"])
    op.drop_table("history_levels")
