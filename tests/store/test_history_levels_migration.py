"""Migration 0012 on a database that already holds history (both backends): the old cells (one
per metric and time: minutes, hours folded from minutes after a week, days from hours after 90
days) become complete minute, hour and day levels with the same counts, and going back to the
revision before it (0013) gives the old cells again."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import command

from lockgate.store import Store, database
from lockgate.watch import history

TASK = "routing"


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# Cells as compaction left them before 0012 (step, start, metric, key, value). Days up to
# 1 June; one hour of 1 June not folded yet (a late decision's); hours of 1 November up to
# 11:00, where compaction stopped part way (11:30 still a minute); a late decision's minute
# at 10:15, not folded yet; and minutes of 20 November. The backlog is a gauge.
OLD: list[tuple[str, datetime, str, str, float]] = [
    ("day", at(2026, 5, 31), "decisions", "", 4.0),
    ("day", at(2026, 6, 1), "decisions", "", 5.0),
    ("day", at(2026, 6, 1), "route", "auto", 5.0),
    ("hour", at(2026, 6, 1, 15), "decisions", "", 2.0),
    ("hour", at(2026, 11, 1, 10), "decisions", "", 3.0),
    ("hour", at(2026, 11, 1, 10), "backlog", "count", 7.0),
    ("hour", at(2026, 11, 1, 11), "decisions", "", 2.0),
    ("minute", at(2026, 11, 1, 10, 15), "decisions", "", 1.0),
    ("minute", at(2026, 11, 1, 11, 30), "decisions", "", 1.0),
    ("minute", at(2026, 11, 20, 8, 1), "decisions", "", 4.0),
    ("minute", at(2026, 11, 20, 8, 1), "route", "auto", 3.0),
    ("minute", at(2026, 11, 20, 8, 1), "backlog", "count", 3.0),
    ("minute", at(2026, 11, 20, 8, 2), "decisions", "", 1.0),
    ("minute", at(2026, 11, 20, 8, 2), "backlog", "count", 5.0),
    ("minute", at(2026, 11, 20, 9, 59), "decisions", "", 2.0),
]
FIRST, LAST = at(2026, 5, 1), at(2026, 12, 1)
MINUTES_FROM = at(2026, 11, 1, 12)  # after the newest hour compaction made
HOURS_FROM = at(2026, 6, 2)  # after the newest day

cells_table = sa.table(
    "history_cells",
    sa.column("task", sa.String()),
    sa.column("release", sa.Integer()),
    sa.column("step", sa.String()),
    sa.column("bucket_start", sa.DateTime(timezone=True)),
    sa.column("metric", sa.String()),
    sa.column("key", sa.String()),
    sa.column("value", sa.Float()),
)


def expected(step_seconds: int) -> dict[tuple[datetime, str, str], float]:
    """The old cells merged into buckets of `step_seconds` (a gauge: the largest), as the new
    levels hold them: a count before the hours' start is in its day, one before the minutes'
    start in its hour."""
    found: dict[tuple[datetime, str, str], float] = Counter()
    for _, start, metric, key, value in OLD:
        if start < HOURS_FROM:
            start = history.bucket_start(start, 86400)
        elif start < MINUTES_FROM:
            start = history.bucket_start(start, 3600)
        bucket = (history.bucket_start(start, step_seconds), metric, key)
        if metric == "backlog":
            found[bucket] = max(found.get(bucket, 0.0), value)
        else:
            found[bucket] += value
    return dict(found)


def merged(rows: Any, step_seconds: int) -> dict[tuple[datetime, str, str], float]:
    found: dict[tuple[datetime, str, str], float] = Counter()
    for _, start, metric, key, value in rows:
        bucket = (history.bucket_start(start, step_seconds), metric, key)
        if metric == "backlog":
            found[bucket] = max(found.get(bucket, 0.0), value)
        else:
            found[bucket] += value
    return dict(found)


def old_database(url: str) -> sa.Engine:
    engine = database.make_engine(url)
    with engine.begin() as conn:
        command.upgrade(database.alembic_config(conn), "0011")
        conn.execute(
            cells_table.insert(),
            [
                {"task": TASK, "release": 1, "step": step, "bucket_start": start,
                 "metric": metric, "key": key, "value": value}
                for step, start, metric, key, value in OLD
            ],
        )  # fmt: skip
    return engine


def test_0012_builds_complete_hour_and_day_levels_from_the_cells_there(
    empty_database_url: str,
) -> None:
    old_database(empty_database_url).dispose()
    store = Store(empty_database_url)  # migrates to the newest revision
    try:
        # Minutes are complete after the newest hour compaction made, hours after the newest
        # day.
        assert store.history.complete_from() == {"minute": MINUTES_FROM, "hour": HOURS_FROM}
        # Read per minute, per hour and per day, the counts are the old cells'.
        for step_seconds in (60, 3600, 86400):
            cells = store.history.cells(TASK, FIRST, LAST, step_seconds)
            rows = [(c.step, c.start, c.metric, c.key, c.value) for c in cells]
            assert merged(rows, step_seconds) == expected(step_seconds), step_seconds
        # Per hour, from the hour level where it is kept; per day from the days alone.
        hours = store.history.cells(TASK, HOURS_FROM, LAST, 3600)
        assert {c.step for c in hours} == {"hour"}
        assert merged([(c.step, c.start, c.metric, c.key, c.value) for c in hours], 3600) == {
            k: v for k, v in expected(3600).items() if k[0] >= HOURS_FROM
        }
        assert {c.step for c in store.history.cells(TASK, FIRST, LAST, 86400)} == {"day"}
        # Every level on its own counts all 25 decisions of its time.
        with store.engine.connect() as conn:
            totals = dict(
                conn.execute(
                    sa.select(cells_table.c.step, sa.func.sum(cells_table.c.value))
                    .where(cells_table.c.metric == "decisions")
                    .group_by(cells_table.c.step)
                ).all()
            )
        assert totals["day"] == 25.0
        # The page reads one level: the release table sums the days.
        assert store.dashboard.release_totals(TASK, ("decisions",)) == {
            1: {"decisions": {"": 25.0}}
        }
    finally:
        store.close()


def test_0012_down_to_0013_gives_one_cell_per_count_again(empty_database_url: str) -> None:
    old_database(empty_database_url).dispose()
    Store(empty_database_url).close()
    engine = database.make_engine(empty_database_url)
    try:
        with engine.begin() as conn:
            command.downgrade(database.alembic_config(conn), "0013")
        with engine.connect() as conn:
            rows = [
                (r.step, database.aware(r.bucket_start), r.metric, r.key, r.value)
                for r in conn.execute(sa.select(cells_table))
            ]
        # The old reader summed every cell: each count is there once.
        for step_seconds in (60, 3600, 86400):
            assert merged(rows, step_seconds) == expected(step_seconds), step_seconds
    finally:
        engine.dispose()
