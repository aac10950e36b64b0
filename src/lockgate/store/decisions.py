"""Decision queries: idempotent batched inserts with their attempts and outbox rows."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, and_, bindparam, or_, select
from sqlalchemy.dialects import postgresql

from lockgate.decide.decision import Attempt, Decision
from lockgate.errors import Unavailable
from lockgate.store import database, driver, outbox, shadow_runs
from lockgate.store.database import aware
from lockgate.store.driver import (
    Driver,
    driver_rows,
    insert_rows,
    on_sqlite,
    placeholder,
    select_rows,
)
from lockgate.store.executor import StoreExecutor
from lockgate.store.tables import attempts, decisions
from lockgate.waits import waiting_on_database

_KEY_CHUNK = 500


def _row(d: Decision) -> dict[str, Any]:
    return {
        "id": d.id,
        "task": d.task,
        "release": d.release,
        "idempotency_key": d.idempotency_key,
        "input_hash": d.input_hash,
        "input": dict(d.input),
        "redacted_input": dict(d.redacted_input),
        "output": dict(d.output) if d.output is not None else None,
        "alternatives": dict(d.alternatives) if d.alternatives is not None else None,
        "confidence": d.confidence,
        "route": d.route,
        "status": d.status,
        "reason": d.reason,
        "cost": d.cost,
        "latency_ms": d.latency_ms,
        "metadata": dict(d.metadata),
        "submitted_by": d.submitted_by,
        "created_at": d.created_at,
        "updated_at": d.created_at,
        "priority": d.priority,
        "cached_from": d.cached_from,
    }


def from_row(row: RowMapping, attempt_rows: Sequence[Attempt] = ()) -> Decision:
    return Decision(
        id=row["id"],
        task=row["task"],
        release=row["release"],
        idempotency_key=row["idempotency_key"],
        input_hash=row["input_hash"],
        input=row["input"],
        redacted_input=row["redacted_input"],
        output=row["output"],
        confidence=row["confidence"],
        route=row["route"],
        status=row["status"],
        reason=row["reason"],
        cost=row["cost"],
        latency_ms=row["latency_ms"],
        created_at=aware(row["created_at"]),
        attempts=attempt_rows,
        alternatives=row["alternatives"],
        metadata=row["metadata"],
        submitted_by=row["submitted_by"],
        priority=row["priority"],
        cached_from=row["cached_from"],
    )


_BY_KEYS = select(decisions).where(
    decisions.c.task == bindparam("task"),
    decisions.c.idempotency_key.in_(bindparam("keys", expanding=True)),
)
"""Built once, as SQLAlchemy then skips building and hashing it on each call."""


def by_keys(conn: Connection | Driver, task: str, keys: Iterable[str]) -> dict[str, Decision]:
    """The stored decisions of `task` under these keys, by key.

    Most keys a server looks up are new: a plain query first says which keys are stored
    (usually none), and only those are read as decisions. On SQLite both run on the driver
    (`store.driver`); SQLAlchemy's compiled select with its expanding IN cost more CPU than
    the lookup itself in every group of decisions (benchmarks/RESULTS.md, issue 10, sixth
    and seventh sessions)."""
    keys = list(dict.fromkeys(keys))
    found: dict[str, Decision] = {}
    mark = placeholder(conn)
    for start in range(0, len(keys), _KEY_CHUNK):
        chunk = keys[start : start + _KEY_CHUNK]
        query = (
            f"SELECT idempotency_key FROM decisions WHERE task = {mark} "
            f"AND idempotency_key IN ({', '.join([mark] * len(chunk))})"
        )
        stored = [key for (key,) in driver_rows(conn, query, (task, *chunk))]
        if not stored:
            continue  # the usual case: every key is new
        if on_sqlite(conn):
            where = f"task = ? AND idempotency_key IN ({', '.join('?' * len(stored))})"
            rows: Iterable[Any] = select_rows(conn, decisions, where, (task, *stored))
        else:
            assert isinstance(conn, Connection)
            rows = conn.execute(_BY_KEYS, {"task": task, "keys": stored}).mappings()
        for row in rows:
            found[row["idempotency_key"]] = from_row(row)
    return found


def get(conn: Connection, decision_id: str) -> Decision | None:
    row = conn.execute(select(decisions).where(decisions.c.id == decision_id)).mappings().first()
    if row is None:
        return None
    return from_row(row, attempts_of(conn, decision_id))


def attempts_of(conn: Connection, decision_id: str) -> list[Attempt]:
    """A decision's attempt trail, in the order the attempts were made."""
    trail = conn.execute(
        select(attempts).where(attempts.c.decision_id == decision_id).order_by(attempts.c.seq)
    ).mappings()
    return [
        Attempt(**{k: v for k, v in a.items() if k not in ("id", "decision_id", "seq")})
        for a in trail
    ]


def insert_decisions(conn: Connection | Driver, batch: Sequence[Decision]) -> set[str]:
    """Insert the decision rows not yet stored under their key; the ids actually inserted.

    In (task, key) order: two writers inserting overlapping keys then lock them in the same
    order, which keeps PostgreSQL from deadlocking them. So a transaction of several batches
    inserts all its decisions here at once (`DecisionRepository.save_all`): batch by batch,
    one replica holding k-7 of its first batch could wait for k-1, which the other replica
    holds while it waits for k-7."""
    if not batch:
        return set()
    rows = [_row(d) for d in sorted(batch, key=lambda d: (d.task, d.idempotency_key))]
    if on_sqlite(conn):
        # Multi-row VALUES on the driver (`driver.insert_rows`); `OR IGNORE` skips a row
        # whose key another writer stored first, as `ON CONFLICT DO NOTHING` would, and back
        # come the ids actually inserted. A row skipped for another reason (a NOT NULL or
        # CHECK constraint) is caught by `save_all`, which then finds no decision under its key.
        inserted = set(insert_rows(conn, decisions, rows, or_ignore=True, returning="id"))
    else:
        assert isinstance(conn, Connection)
        statement = postgresql.insert(decisions).on_conflict_do_nothing(
            index_elements=["task", "idempotency_key"]
        )
        # psycopg's executemany (pipeline mode, one prepared statement) returns no rows through
        # SQLAlchemy: the ids found afterwards are the inserted ones, since ids are new and
        # unique. One more statement in the same transaction, not another one.
        conn.execute(statement, rows)
        ids = [d.id for d in batch]
        inserted = {
            row[0]
            for start in range(0, len(ids), _KEY_CHUNK)
            for row in conn.execute(
                select(decisions.c.id).where(decisions.c.id.in_(ids[start : start + _KEY_CHUNK]))
            )
        }
    return inserted


def insert_trails(
    conn: Connection | Driver, batch: Sequence[Decision], inserted: set[str], sinks: Sequence[str]
) -> None:
    """For the decisions of `batch` in `inserted`: their attempts, an outbox row per sink for
    the automated final ones, and their queued shadow runs."""
    attempt_rows = [
        {
            "decision_id": d.id,
            "seq": seq,
            "provider": a.provider,
            "model": a.model,
            "endpoint": a.endpoint,
            "latency_ms": a.latency_ms,
            "outcome": a.outcome,
            "error_class": a.error_class,
            "message": a.message,
            "input_tokens": a.input_tokens,
            "output_tokens": a.output_tokens,
            "cost": a.cost,
            "repair": a.repair,
        }
        for d in batch
        if d.id in inserted
        for seq, a in enumerate(d.attempts, start=1)
    ]
    driver.insert(conn, attempts, attempt_rows)
    outbox.enqueue(conn, (d for d in batch if d.id in inserted and d.status == "decided"), sinks)
    # Shadow releases run these inputs later, from a queue: same transaction, no model call.
    shadow_runs.queue_shadow_runs(conn, [d for d in batch if d.id in inserted])


def store_batches(
    conn: Connection | Driver, batches: Sequence[tuple[Sequence[Decision], Sequence[str]]]
) -> list[list[Decision]]:
    """Store several batches (with outbox rows for each one's sinks) inside `conn`'s
    transaction: their decisions in one insert in key order (`insert_decisions`). Where
    another writer stored a key first, its decision comes back in place of ours."""
    inserted = insert_decisions(conn, [d for batch, _ in batches for d in batch])
    saved: list[list[Decision]] = []
    for batch, sinks in batches:
        insert_trails(conn, batch, inserted, sinks)
        lost = [d.idempotency_key for d in batch if d.id not in inserted]
        winners = by_keys(conn, batch[0].task, lost) if lost else {}
        if len(winners) < len(set(lost)):
            raise RuntimeError("a decision was neither inserted nor found under its key")
        saved.append([d if d.id in inserted else winners[d.idempotency_key] for d in batch])
    return saved


@dataclass(frozen=True)
class DecisionFilter:
    """Which decisions of one task to list, newest first; `after` is the last (created_at, id)
    of the previous page."""

    task: str
    status: str | None = None
    route: str | None = None
    since: datetime | None = None
    submitted_by: str | None = None
    after: tuple[datetime, str] | None = None
    limit: int = 50


def page(conn: Connection, query: DecisionFilter) -> list[Decision]:
    """Up to `limit + 1` decisions, ordered by (created_at, id) descending; the extra one tells
    the caller that there is a next page."""
    c = decisions.c
    statement = select(decisions).where(c.task == query.task)
    if query.status is not None:
        statement = statement.where(c.status == query.status)
    if query.route is not None:
        statement = statement.where(c.route == query.route)
    if query.since is not None:
        statement = statement.where(c.created_at >= query.since)
    if query.submitted_by is not None:
        statement = statement.where(c.submitted_by == query.submitted_by)
    if query.after is not None:
        at, last_id = query.after
        statement = statement.where(
            or_(c.created_at < at, and_(c.created_at == at, c.id < last_id))
        )
    statement = statement.order_by(c.created_at.desc(), c.id.desc()).limit(query.limit + 1)
    return [from_row(row) for row in conn.execute(statement).mappings()]


class DecisionRepository:
    """Decisions over one engine (`Store.decisions`); each method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, decision_id: str) -> Decision | None:
        with database.read(self.engine) as conn:
            return get(conn, decision_id)

    def find(self, task: str, keys: Iterable[str]) -> dict[str, Decision]:
        """The stored decisions of `task` with these idempotency keys, by key."""
        with driver.read(self.engine) as conn:
            return by_keys(conn, task, keys)

    def save(self, batch: Sequence[Decision], sinks: Sequence[str] = ()) -> list[Decision]:
        """Commit a batch in one transaction. Where another writer stored a decision under the
        same idempotency key first, that stored decision is returned in its place."""
        (saved,) = self.save_all([(batch, sinks)])
        return saved

    def save_all(
        self, batches: Sequence[tuple[Sequence[Decision], Sequence[str]]]
    ) -> list[list[Decision]]:
        """`save` for several batches (of any tasks) in one transaction: one commit, one
        fsync, for all of them."""
        with driver.write(self.engine) as conn:
            return store_batches(conn, batches)

    def page(self, query: DecisionFilter) -> list[Decision]:
        """Decisions newest first, `query.limit + 1` at most (see `page`)."""
        with database.read(self.engine) as conn:
            return page(conn, query)


class AsyncDecisionRepository:
    """The decisions for async callers (the pipeline's `DecisionStore`): lookups run in a
    reader thread, saves in the database's one writer thread; the event loop never waits.

    Saves are committed together: while the writer thread commits, the saves that arrive
    wait, and the next commit takes all of them in one transaction (one fsync). If such a
    transaction fails, each of its saves is tried alone, so one bad batch fails only itself.
    """

    def __init__(self, decisions: DecisionRepository, executor: StoreExecutor) -> None:
        self.decisions = decisions
        self.executor = executor
        self._waiting: list[_Save] = []
        self._committing = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def find(self, task: str, keys: Sequence[str]) -> dict[str, Decision]:
        """The stored decisions of `task` with these idempotency keys, by key."""
        return await self.executor.read(self.decisions.find, task, keys)

    async def save(self, batch: Sequence[Decision], sinks: Sequence[str] = ()) -> list[Decision]:
        """Commit a batch, with the saves waiting beside it, in one transaction (see
        `DecisionRepository.save`); safe to repeat, so a dead pooled connection costs a retry,
        not an error."""
        loop = asyncio.get_running_loop()
        save = _Save(batch, sinks, loop.create_future())
        self._waiting.append(save)
        if not self._committing:
            self._committing = True
            task = loop.create_task(self._commit_waiting())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        with waiting_on_database():  # a caller stopped here gets the 503, not a 504
            return await save.done

    async def _commit_waiting(self) -> None:
        try:
            while self._waiting:
                saves, self._waiting = self._waiting, []
                # A save whose caller gave up while it waited is never made: its caller was
                # told it failed (a timeout or a 503), so committing it would be a write
                # nobody acknowledged. One already in a transaction is past that point.
                saves = [save for save in saves if not save.done.done()]
                if saves:
                    await self._commit(saves)
        finally:
            self._committing = False

    async def _commit(self, saves: list[_Save]) -> None:
        try:
            results = await self.executor.write_idempotent(
                self.decisions.save_all, [(s.batch, s.sinks) for s in saves]
            )
        except Exception as exc:
            # Unavailable: the database is locked or unreachable, and trying each save alone
            # would only wait that long again, once per save.
            if len(saves) == 1 or isinstance(exc, Unavailable):
                for save in saves:
                    save.fail(exc)
                return
            for save in saves:  # one bad batch must not fail the others: each alone
                try:
                    (alone,) = await self.executor.write_idempotent(
                        self.decisions.save_all, [(save.batch, save.sinks)]
                    )
                except Exception as one:
                    save.fail(one)
                else:
                    save.succeed(alone)
            return
        for save, saved in zip(saves, results, strict=True):
            save.succeed(saved)


@dataclass
class _Save:
    batch: Sequence[Decision]
    sinks: Sequence[str]
    done: asyncio.Future[list[Decision]]

    def succeed(self, saved: list[Decision]) -> None:
        if not self.done.done():  # its caller may have been stopped meanwhile
            self.done.set_result(saved)

    def fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)
