"""Roll-up cells: decisions and verdicts counted once each into minute, hour and day cells
(what to count is `lockgate.watch.history`'s business; this module keeps the cells and the
exactly-once bookkeeping).

Each step is a *level*: a complete count on its own. The roll-up adds a decision to its
minute, its hour and its day in one transaction, so the levels never disagree. Minutes older
than `history_hours_after_days` and hours older than `history_days_after_days` are dropped
(`expire`): the next coarser level holds them, and `history_levels` records from when the
minutes and the hours are complete. A reader takes each stretch of time from one level
(`spans`): a chart over 30 days sums a few hundred day or hour cells, not 40,000 minutes.

Each decision and verdict carries `rolled_up_at`: NULL until a roll-up counts it, set in the
same transaction that adds it to the cells. A decision committed late (its id and
`created_at` older than others already counted) is still NULL, so the next roll-up counts it;
one counted is never counted again. Two replicas rolling up at once take disjoint rows
(`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one writer), and cells only grow by
atomic additions (`ON CONFLICT DO UPDATE SET value = value + excluded.value`).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from lockgate.decide.decision import utcnow
from lockgate.store import database
from lockgate.store.database import aware
from lockgate.store.executor import StoreExecutor
from lockgate.store.tables import (
    attempts,
    decisions,
    history_cells,
    history_levels,
    reviews,
    spot_checks,
)
from lockgate.watch.types import GAUGE_METRICS as GAUGES
from lockgate.watch.types import STEP_SECONDS, Backlog, Cell, Count, DecisionFacts, VerdictFacts

Summarize = Callable[[Sequence[DecisionFacts], Sequence[VerdictFacts]], Sequence[Count]]

_CHUNK = 500
_REVIEWED = ("approved", "corrected", "rejected", "delivered")
_PK = ("task", "release", "step", "bucket_start", "metric", "key")
LEVELS = ("minute", "hour", "day")
"""The steps the cells are kept at, finest first; each one counts everything it covers."""
_EXPIRED_BY = {"minute": ("hour", timedelta(hours=6)), "hour": ("day", timedelta(days=7))}
"""A level dropped when older than a setting: the step its cut-off is aligned to (the next
coarser one, which holds the counts) and the most one call drops at a time."""


def _floor(at: datetime, seconds: int) -> datetime:
    start = int(at.timestamp())
    return datetime.fromtimestamp(start - start % seconds, UTC)


def with_coarser_levels(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Minute rows, and the hour and day rows holding them (summed; a gauge's largest)."""
    out: list[dict[str, Any]] = list(rows)
    for step in LEVELS[1:]:
        folded: dict[tuple[Any, ...], float] = {}
        for row in rows:
            key = (
                row["task"],
                row["release"],
                step,
                _floor(row["bucket_start"], STEP_SECONDS[step]),
                row["metric"],
                row["key"],
            )
            if row["metric"] in GAUGES:
                folded[key] = max(folded.get(key, row["value"]), row["value"])
            else:
                folded[key] = folded.get(key, 0.0) + row["value"]
        out.extend({**dict(zip(_PK, key, strict=True)), "value": v} for key, v in folded.items())
    return out


def _chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


def _dialect(conn: Connection) -> Any:
    return postgresql if conn.dialect.name == "postgresql" else sqlite


def add_cells(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Add each row's value to its cell (a gauge's replaces it, or keeps the larger with
    `keep_max`), in primary-key order so two writers never deadlock."""
    if not rows:
        return
    dialect = _dialect(conn)
    rows = sorted(rows, key=lambda r: tuple(r[k] for k in _PK))
    adds = [r for r in rows if r["metric"] not in GAUGES]
    gauges = [r for r in rows if r["metric"] in GAUGES]
    statement = dialect.insert(history_cells)
    if adds:
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=list(_PK),
                set_={"value": history_cells.c.value + statement.excluded.value},
            ),
            adds,
        )
    if gauges:
        larger = (
            func.greatest(history_cells.c.value, statement.excluded.value)
            if dialect is postgresql
            else func.max(history_cells.c.value, statement.excluded.value)
        )
        conn.execute(
            statement.on_conflict_do_update(index_elements=list(_PK), set_={"value": larger}),
            gauges,
        )


def _pending_statement(postgres: bool) -> Any:
    """Decisions not rolled up yet, oldest id first, each with its attempts' token sums and
    how many of its attempts failed (per-row subqueries: one statement, built once)."""
    c, a = decisions.c, attempts.c
    mine = a.decision_id == c.id
    statement = (
        select(
            c.id,
            c.task,
            c.release,
            c.created_at,
            c.route,
            c.status,
            c.reason,
            c.cost,
            c.latency_ms,
            c.confidence,
            c.output,
            c.cached_from,
            select(func.coalesce(func.sum(a.input_tokens), 0)).where(mine).scalar_subquery(),
            select(func.coalesce(func.sum(a.output_tokens), 0)).where(mine).scalar_subquery(),
            select(func.count())
            .where(mine, a.error_class.is_not(None))
            .scalar_subquery()
            .label("failed_attempts"),
        )
        .where(c.rolled_up_at.is_(None))
        .order_by(c.id)
        .limit(bindparam("limit"))
    )
    if postgres:
        statement = statement.with_for_update(skip_locked=True, of=decisions)
    return statement


_PENDING = {False: _pending_statement(False), True: _pending_statement(True)}


def _pending_decisions(conn: Connection, limit: int) -> list[DecisionFacts]:
    rows = conn.execute(_PENDING[conn.dialect.name == "postgresql"], {"limit": limit}).all()
    if not rows:
        return []
    errors: dict[str, list[str]] = defaultdict(list)
    a = attempts.c
    for chunk in _chunks([r.id for r in rows if r.failed_attempts]):  # the few that have them
        for decision_id, error_class in conn.execute(
            select(a.decision_id, a.error_class)
            .where(a.decision_id.in_(chunk), a.error_class.is_not(None))
            .order_by(a.decision_id, a.seq)
        ):
            errors[decision_id].append(error_class)
    # The label counted is the model's: a reviewed decision's first verdict kept it.
    model_output: dict[str, Any] = {}
    rv = reviews.c
    for chunk in _chunks([r.id for r in rows if r.status in _REVIEWED]):
        for decision_id, previous in conn.execute(
            select(rv.decision_id, rv.previous_output)
            .where(rv.decision_id.in_(chunk))
            .order_by(rv.id)
        ):
            model_output.setdefault(decision_id, previous)
    return [
        DecisionFacts(
            id=id_,
            task=task,
            release=release,
            created_at=aware(created_at),
            route=route,
            status=status,
            reason=reason,
            cost=cost,
            latency_ms=latency_ms,
            confidence=confidence,
            output=model_output.get(id_, output),
            input_tokens=int(used_in),
            output_tokens=int(used_out),
            attempt_errors=tuple(errors.get(id_, ())),
            cached=cached_from is not None,
        )
        for (
            id_,
            task,
            release,
            created_at,
            route,
            status,
            reason,
            cost,
            latency_ms,
            confidence,
            output,
            cached_from,
            used_in,
            used_out,
            _,
        ) in rows
    ]


def _pending_verdicts(conn: Connection, limit: int) -> list[VerdictFacts]:
    r, d = reviews.c, decisions.c
    statement = (
        select(r.id, r.task, d.release, r.at, r.verdict)
        .join(decisions, d.id == r.decision_id)
        .where(r.rolled_up_at.is_(None))
        .order_by(r.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True, of=reviews)
    return [
        VerdictFacts(row.id, row.task, row.release, aware(row.at), row.verdict)
        for row in conn.execute(statement)
    ]


def _pending_spot_checks(conn: Connection, limit: int) -> list[VerdictFacts]:
    s = spot_checks.c
    statement = (
        select(s.decision_id, s.task, s.release, s.at, s.verdict)
        .where(s.rolled_up_at.is_(None), s.verdict.is_not(None))
        .order_by(s.decision_id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True, of=spot_checks)
    return [
        VerdictFacts(row[0], row[1], row[2], aware(row[3]), row[4], spot_check=True)
        for row in conn.execute(statement)
    ]


def roll_up(conn: Connection, summarize: Summarize, limit: int, now: datetime) -> int:
    """Count up to `limit` decisions, `limit` review verdicts and `limit` spot-check verdicts
    not yet counted; how many (of the most numerous)."""
    facts = _pending_decisions(conn, limit)
    reviewed = _pending_verdicts(conn, limit)
    checked = _pending_spot_checks(conn, limit)
    verdicts = [*reviewed, *checked]
    if not facts and not verdicts:
        return 0
    minutes = [
        {
            "task": c.task,
            "release": c.release,
            "step": "minute",
            "bucket_start": c.start,
            "metric": c.metric,
            "key": c.key,
            "value": c.value,
        }
        for c in summarize(facts, verdicts)
    ]
    add_cells(conn, with_coarser_levels(minutes))
    for chunk in _chunks([f.id for f in facts]):
        conn.execute(update(decisions).where(decisions.c.id.in_(chunk)).values(rolled_up_at=now))
    for chunk in _chunks([v.id for v in reviewed]):
        conn.execute(update(reviews).where(reviews.c.id.in_(chunk)).values(rolled_up_at=now))
    for chunk in _chunks([v.id for v in checked]):
        conn.execute(
            update(spot_checks).where(spot_checks.c.decision_id.in_(chunk)).values(rolled_up_at=now)
        )
    return max(len(facts), len(reviewed), len(checked))


def backlog(conn: Connection, task: str | None = None) -> list[Backlog]:
    """Review items waiting now, per task and release."""
    c = decisions.c
    statement = (
        select(c.task, c.release, func.count(), func.min(c.created_at))
        .where(c.status == "pending_review")
        .group_by(c.task, c.release)
    )
    if task is not None:
        statement = statement.where(c.task == task)
    return [
        Backlog(row[0], row[1], int(row[2]), aware(row[3]) if row[3] is not None else None)
        for row in conn.execute(statement)
    ]


def sample_backlog(conn: Connection, now: datetime) -> None:
    """Keep the backlog now in the current minute's cells; a task and release that had a
    backlog in the last hour and has none now gets a zero. The hour's and the day's cells
    become the largest sample of their minutes and hours, as the other levels hold."""
    at = now.astimezone(UTC).replace(second=0, microsecond=0)
    waiting = {(b.task, b.release): b for b in backlog(conn)}
    h = history_cells.c
    recent = conn.execute(
        select(h.task, h.release)
        .where(h.metric == "backlog", h.step == "minute", h.bucket_start >= at - timedelta(hours=1))
        .distinct()
    ).all()
    rows: list[dict[str, Any]] = []
    for task, release in set(waiting) | {(t, r) for t, r in recent}:
        b = waiting.get((task, release))
        oldest = (now - b.oldest_at).total_seconds() if b and b.oldest_at else 0.0
        for key, value in (("count", float(b.count) if b else 0.0), ("oldest_s", oldest)):
            rows.append(
                {
                    "task": task,
                    "release": release,
                    "step": "minute",
                    "bucket_start": at,
                    "metric": "backlog",
                    "key": key,
                    "value": value,
                }
            )
    # A new sample replaces the minute's (a gauge); delete then add keeps it simple.
    _replace(conn, rows)
    for finer, step in itertools.pairwise(LEVELS):
        coarser = []
        for row in rows:
            start = _floor(at, STEP_SECONDS[step])
            largest = conn.execute(
                select(func.max(h.value)).where(
                    h.task == row["task"],
                    h.release == row["release"],
                    h.step == finer,
                    h.bucket_start >= start,
                    h.bucket_start < start + timedelta(seconds=STEP_SECONDS[step]),
                    h.metric == "backlog",
                    h.key == row["key"],
                )
            ).scalar()
            coarser.append({**row, "step": step, "bucket_start": start, "value": largest})
        _replace(conn, coarser)


def _replace(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    for row in rows:
        conn.execute(delete(history_cells).where(*(history_cells.c[k] == row[k] for k in _PK)))
    add_cells(conn, rows)


def complete_from(conn: Connection) -> dict[str, datetime]:
    """From when the minutes and the hours hold every count (a level not named: from the
    start; days always)."""
    v = history_levels.c
    return {step: aware(at) for step, at in conn.execute(select(v.step, v.complete_from))}


def level_of(step_seconds: int) -> str:
    """The coarsest level whose cells fit whole in buckets of `step_seconds`."""
    return next(
        (step for step in reversed(LEVELS) if step_seconds % STEP_SECONDS[step] == 0), "minute"
    )


def spans(
    complete: Mapping[str, datetime], level: str, start: datetime, end: datetime
) -> list[tuple[str, datetime, datetime]]:
    """Where to read [start, end) at `level` so that each count is read once: (step, from,
    to), newest first. `level` where it is complete, the next coarser level before that, and
    so on down to the days. A level is complete where it and every coarser level but the days
    are (a minute is read only where its hour would be)."""
    found: list[tuple[str, datetime, datetime]] = []
    upper = end
    for step in LEVELS[LEVELS.index(level) :]:
        frontier = max(
            (complete[s] for s in LEVELS[LEVELS.index(step) :] if s in complete), default=None
        )
        lower = start if frontier is None else max(start, frontier)
        if lower < upper:
            found.append((step, lower, upper))
        if frontier is None or frontier <= start:
            break
        upper = min(upper, frontier)
    return found


def expire(conn: Connection, step: str, before: datetime) -> int:
    """Drop `step` cells older than `before` (rounded down to the next coarser step, which
    holds their counts), a slice at a time, and record that the level is complete from there
    on; the number of cells dropped. A late decision's cell below that point (rolled up after
    its minute was dropped) is dropped by the next call; no reader counts it meanwhile."""
    coarser, slice_ = _EXPIRED_BY[step]
    cutoff = _floor(before, STEP_SECONDS[coarser])
    h = history_cells.c
    oldest = conn.execute(
        select(func.min(h.bucket_start)).where(h.step == step, h.bucket_start < cutoff)
    ).scalar()
    if oldest is None:  # nothing older is left: the level is complete from the cut-off
        _complete_from(conn, step, cutoff)
        return 0
    upper = min(cutoff, _floor(aware(oldest) + slice_, STEP_SECONDS[coarser]))
    _complete_from(conn, step, upper)
    done = conn.execute(delete(history_cells).where(h.step == step, h.bucket_start < upper))
    return int(done.rowcount or 0)


def _complete_from(conn: Connection, step: str, at: datetime) -> None:
    """Record that `step` is complete from `at` on, unless it is from a later time already."""
    v = history_levels.c
    known = conn.execute(select(v.complete_from).where(v.step == step)).scalar()
    if known is not None and aware(known) >= at:
        return
    statement = _dialect(conn).insert(history_levels).values(step=step, complete_from=at)
    later = statement.excluded.complete_from > v.complete_from
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["step"],
            set_={
                "complete_from": case(
                    (later, statement.excluded.complete_from), else_=v.complete_from
                )
            },
        )
    )


def cells(
    conn: Connection, task: str, start: datetime, end: datetime, step_seconds: int = 60
) -> list[Cell]:
    h = history_cells.c
    found: list[Cell] = []
    for step, lower, upper in spans(complete_from(conn), level_of(step_seconds), start, end):
        rows = conn.execute(
            select(history_cells).where(
                h.task == task, h.step == step, h.bucket_start >= lower, h.bucket_start < upper
            )
        ).mappings()
        found.extend(
            Cell(
                r["task"],
                r["release"],
                r["step"],
                aware(r["bucket_start"]),
                r["metric"],
                r["key"],
                r["value"],
            )
            for r in rows
        )
    return found


class HistoryRepository:
    """Roll-up cells over one engine (`Store.history`); each method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def roll_up(self, summarize: Summarize, limit: int = 2000, now: datetime | None = None) -> int:
        """Count up to `limit` decisions (and verdicts) not yet rolled up; how many."""
        with self.engine.begin() as conn:
            return roll_up(conn, summarize, limit, now or utcnow())

    def sample_backlog(self, now: datetime | None = None) -> None:
        with self.engine.begin() as conn:
            sample_backlog(conn, now or utcnow())

    def expire(
        self,
        now: datetime | None = None,
        hours_after: timedelta = timedelta(days=7),
        days_after: timedelta = timedelta(days=90),
    ) -> int:
        """Drop minutes older than `hours_after` and hours older than `days_after` (one slice
        of each per call); the number of cells dropped."""
        now = now or utcnow()
        with self.engine.begin() as conn:
            done = expire(conn, "minute", now - hours_after)
        with self.engine.begin() as conn:
            return done + expire(conn, "hour", now - days_after)

    def cells(
        self, task: str, start: datetime, end: datetime, step_seconds: int = 60
    ) -> list[Cell]:
        """The task's cells whose bucket starts in [start, end), each count once: from the
        coarsest level whose cells fit in buckets of `step_seconds` where it is kept, from
        coarser ones before (per minute by default: the minutes of the last days, then hours,
        then days). One snapshot: the levels' starts and their cells as one commit left them."""
        with database.snapshot(self.engine) as conn:
            return cells(conn, task, start, end, step_seconds)

    def complete_from(self) -> dict[str, datetime]:
        with database.read(self.engine) as conn:
            return complete_from(conn)

    def backlog(self, task: str | None = None) -> list[Backlog]:
        with database.read(self.engine) as conn:
            return backlog(conn, task)

    def last_decision_at(self, task: str) -> datetime | None:
        """The start of the newest rolled-up minute (or hour or day, where no minute is kept)
        with a decision."""
        h = history_cells.c
        with database.read(self.engine) as conn:
            for step in LEVELS:
                found = conn.execute(
                    select(h.bucket_start)
                    .where(h.task == task, h.step == step, h.metric == "decisions")
                    .order_by(h.bucket_start.desc())
                    .limit(1)
                ).scalar()
                if found is not None:
                    return aware(found)
        return None


class AsyncHistoryRepository:
    """The roll-up for serve's loop: writes through the store's writer thread."""

    def __init__(self, history: HistoryRepository, executor: StoreExecutor) -> None:
        self.history = history
        self.executor = executor

    async def roll_up(self, summarize: Summarize, limit: int) -> int:
        return await self.executor.write_idempotent(self.history.roll_up, summarize, limit)

    async def sample_backlog(self, now: datetime) -> None:
        await self.executor.write(self.history.sample_backlog, now)

    async def expire(self, now: datetime, hours_after: timedelta, days_after: timedelta) -> int:
        return await self.executor.write(self.history.expire, now, hours_after, days_after)

    async def cells(self, task: str, start: datetime, end: datetime) -> list[Cell]:
        return await self.executor.read(self.history.cells, task, start, end)
