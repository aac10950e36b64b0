"""Roll-up cells: decisions and verdicts counted once each into per-minute cells, compacted to
hours and days later (what to count is `lockgate.watch.history`'s business; this module keeps
the cells and the exactly-once bookkeeping).

Each decision and verdict carries `rolled_up_at`: NULL until a roll-up counts it, set in the
same transaction that adds it to the cells. A decision committed late (its id and
`created_at` older than others already counted) is still NULL, so the next roll-up counts it;
one counted is never counted again. Two replicas rolling up at once take disjoint rows
(`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one writer), and cells only grow by
atomic additions (`ON CONFLICT DO UPDATE SET value = value + excluded.value`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from lockgate.decide.decision import utcnow
from lockgate.store import database
from lockgate.store.database import aware
from lockgate.store.executor import StoreExecutor
from lockgate.store.tables import attempts, decisions, history_cells, reviews
from lockgate.watch.types import GAUGE_METRICS as GAUGES
from lockgate.watch.types import Backlog, Cell, Count, DecisionFacts, VerdictFacts

Summarize = Callable[[Sequence[DecisionFacts], Sequence[VerdictFacts]], Sequence[Count]]

_CHUNK = 500
_REVIEWED = ("approved", "corrected", "rejected", "delivered")
_PK = ("task", "release", "step", "bucket_start", "metric", "key")
_COARSER = {"minute": ("hour", 3600, timedelta(hours=6)), "hour": ("day", 86400, timedelta(days=7))}


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


def _pending_decisions(conn: Connection, limit: int) -> list[DecisionFacts]:
    c = decisions.c
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
        )
        .where(c.rolled_up_at.is_(None))
        .order_by(c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True, of=decisions)
    rows = conn.execute(statement).mappings().all()
    if not rows:
        return []
    tokens: dict[str, tuple[int, int]] = {}
    errors: dict[str, list[str]] = defaultdict(list)
    a = attempts.c
    for chunk in _chunks([r["id"] for r in rows]):
        for decision_id, used_in, used_out in conn.execute(
            select(a.decision_id, func.sum(a.input_tokens), func.sum(a.output_tokens))
            .where(a.decision_id.in_(chunk))
            .group_by(a.decision_id)
        ):
            tokens[decision_id] = (int(used_in or 0), int(used_out or 0))
        for decision_id, error_class in conn.execute(
            select(a.decision_id, a.error_class)
            .where(a.decision_id.in_(chunk), a.error_class.is_not(None))
            .order_by(a.decision_id, a.seq)
        ):
            errors[decision_id].append(error_class)
    # The label counted is the model's: a reviewed decision's first verdict kept it.
    model_output: dict[str, Any] = {}
    rv = reviews.c
    for chunk in _chunks([r["id"] for r in rows if r["status"] in _REVIEWED]):
        for decision_id, previous in conn.execute(
            select(rv.decision_id, rv.previous_output)
            .where(rv.decision_id.in_(chunk))
            .order_by(rv.id)
        ):
            model_output.setdefault(decision_id, previous)
    return [
        DecisionFacts(
            id=r["id"],
            task=r["task"],
            release=r["release"],
            created_at=aware(r["created_at"]),
            route=r["route"],
            status=r["status"],
            reason=r["reason"],
            cost=r["cost"],
            latency_ms=r["latency_ms"],
            confidence=r["confidence"],
            output=model_output.get(r["id"], r["output"]),
            input_tokens=tokens.get(r["id"], (0, 0))[0],
            output_tokens=tokens.get(r["id"], (0, 0))[1],
            attempt_errors=tuple(errors.get(r["id"], ())),
            cached=r["cached_from"] is not None,
        )
        for r in rows
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


def roll_up(conn: Connection, summarize: Summarize, limit: int, now: datetime) -> int:
    """Count up to `limit` decisions and `limit` verdicts not yet counted; how many."""
    facts = _pending_decisions(conn, limit)
    verdicts = _pending_verdicts(conn, limit)
    if not facts and not verdicts:
        return 0
    add_cells(
        conn,
        [
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
        ],
    )
    for chunk in _chunks([f.id for f in facts]):
        conn.execute(update(decisions).where(decisions.c.id.in_(chunk)).values(rolled_up_at=now))
    for chunk in _chunks([v.id for v in verdicts]):
        conn.execute(update(reviews).where(reviews.c.id.in_(chunk)).values(rolled_up_at=now))
    return max(len(facts), len(verdicts))


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
    backlog in the last hour and has none now gets a zero."""
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
    for row in rows:
        conn.execute(delete(history_cells).where(*(history_cells.c[k] == row[k] for k in _PK)))
    add_cells(conn, rows)


def compact(conn: Connection, step: str, before: datetime) -> int:
    """Fold `step` cells older than `before` into the next coarser step (minutes into hours,
    hours into days), a slice at a time; the number of cells folded."""
    coarser, seconds, slice_ = _COARSER[step]
    h = history_cells.c
    oldest = conn.execute(
        select(func.min(h.bucket_start)).where(h.step == step, h.bucket_start < before)
    ).scalar()
    if oldest is None:
        return 0
    upper = min(before, aware(oldest) + slice_)
    statement = select(history_cells).where(h.step == step, h.bucket_start < upper)
    if conn.dialect.name == "postgresql":
        statement = statement.with_for_update()
    found = conn.execute(statement).mappings().all()
    folded: dict[tuple[Any, ...], float] = {}
    for row in found:
        start = int(aware(row["bucket_start"]).timestamp())
        key = (
            row["task"],
            row["release"],
            coarser,
            datetime.fromtimestamp(start - start % seconds, UTC),
            row["metric"],
            row["key"],
        )
        if row["metric"] in GAUGES:
            folded[key] = max(folded.get(key, 0.0), row["value"])
        else:
            folded[key] = folded.get(key, 0.0) + row["value"]
    add_cells(conn, [{**dict(zip(_PK, key, strict=True)), "value": v} for key, v in folded.items()])
    pk = tuple_(*(h[k] for k in _PK))
    for chunk in _chunks([tuple(row[k] for k in _PK) for row in found]):
        conn.execute(delete(history_cells).where(pk.in_(chunk)))
    return len(found)


def cells(conn: Connection, task: str, start: datetime, end: datetime) -> list[Cell]:
    h = history_cells.c
    rows = conn.execute(
        select(history_cells).where(h.task == task, h.bucket_start >= start, h.bucket_start < end)
    ).mappings()
    return [
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
    ]


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

    def compact(
        self,
        now: datetime | None = None,
        hours_after: timedelta = timedelta(days=7),
        days_after: timedelta = timedelta(days=90),
    ) -> int:
        """Minutes older than `hours_after` into hours, hours older than `days_after` into
        days (one slice of each per call)."""
        now = now or utcnow()
        with self.engine.begin() as conn:
            done = compact(conn, "minute", now - hours_after)
        with self.engine.begin() as conn:
            return done + compact(conn, "hour", now - days_after)

    def cells(self, task: str, start: datetime, end: datetime) -> list[Cell]:
        """The task's cells whose bucket starts in [start, end), every step."""
        with database.read(self.engine) as conn:
            return cells(conn, task, start, end)

    def backlog(self, task: str | None = None) -> list[Backlog]:
        with database.read(self.engine) as conn:
            return backlog(conn, task)

    def last_decision_at(self, task: str) -> datetime | None:
        """The start of the last rolled-up minute (or coarser bucket) with a decision."""
        h = history_cells.c
        with database.read(self.engine) as conn:
            found = conn.execute(
                select(func.max(h.bucket_start)).where(h.task == task, h.metric == "decisions")
            ).scalar()
        return aware(found) if found is not None else None


class AsyncHistoryRepository:
    """The roll-up for serve's loop: writes through the store's writer thread."""

    def __init__(self, history: HistoryRepository, executor: StoreExecutor) -> None:
        self.history = history
        self.executor = executor

    async def roll_up(self, summarize: Summarize, limit: int) -> int:
        return await self.executor.write_idempotent(self.history.roll_up, summarize, limit)

    async def sample_backlog(self, now: datetime) -> None:
        await self.executor.write(self.history.sample_backlog, now)

    async def compact(self, now: datetime, hours_after: timedelta, days_after: timedelta) -> int:
        return await self.executor.write(self.history.compact, now, hours_after, days_after)

    async def cells(self, task: str, start: datetime, end: datetime) -> list[Cell]:
        return await self.executor.read(self.history.cells, task, start, end)
