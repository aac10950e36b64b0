"""Outbox queries: a final outcome becomes one row per sink, in the transaction that made it
final; delivery workers claim due rows with a lease, send them and record what happened.

Claiming is safe with several workers: on PostgreSQL the due rows are selected `FOR UPDATE
SKIP LOCKED`, so concurrent workers take disjoint rows without waiting; on SQLite the claim
runs in a `BEGIN IMMEDIATE` transaction (see `database`), which holds the only write lock.
A row whose lease (`claimed_until`) has passed is due again: a crashed worker's rows return.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, and_, func, or_, select, update

from lockgate.decide.decision import Decision, utcnow
from lockgate.delivery.types import DeliveryResult, OutboxRow
from lockgate.errors import Conflict, NotFound
from lockgate.store import audit, database
from lockgate.store.database import aware
from lockgate.store.driver import Driver, insert
from lockgate.store.tables import decisions, outbox

_CHUNK = 500


def enqueue(conn: Connection | Driver, finals: Iterable[Decision], sinks: Sequence[str]) -> int:
    """Add one pending outbox row per (decision, sink) for decisions that just became final.

    Call it inside the transaction that stores the final outcome, so a crash either keeps both
    or neither. The unique (decision_id, sink) constraint refuses a second row for the same
    pair. Returns the number of rows added."""
    now = utcnow()
    rows = [
        {
            "decision_id": d.id,
            "sink": sink,
            "payload": d.public(),
            "status": "pending",
            "tries": 0,
            "created_at": now,
        }
        for d in finals
        for sink in sinks
    ]
    insert(conn, outbox, rows)
    return len(rows)


def _select() -> Any:
    return select(outbox, decisions.c.task, decisions.c.release).join(
        decisions, decisions.c.id == outbox.c.decision_id
    )


def _row(m: RowMapping) -> OutboxRow:
    def when(value: datetime | None) -> datetime | None:
        return aware(value) if value is not None else None

    return OutboxRow(
        id=m["id"],
        decision_id=m["decision_id"],
        task=m["task"],
        release=m["release"],
        sink=m["sink"],
        payload=m["payload"],
        status=m["status"],
        tries=m["tries"],
        created_at=aware(m["created_at"]),
        next_try_at=when(m["next_try_at"]),
        last_error=m["last_error"],
        delivered_at=when(m["delivered_at"]),
        claimed_by=m["claimed_by"],
        claimed_until=when(m["claimed_until"]),
    )


def _due(now: datetime) -> Any:
    c = outbox.c
    return and_(
        c.status == "pending",
        or_(c.next_try_at.is_(None), c.next_try_at <= now),
        or_(c.claimed_until.is_(None), c.claimed_until <= now),
    )


def claim(
    conn: Connection, worker: str, limit: int, lease_seconds: float, now: datetime | None = None
) -> list[OutboxRow]:
    """Lease up to `limit` due rows, oldest first, to `worker` until now + `lease_seconds`."""
    now = now or utcnow()
    c = outbox.c
    ids = list(
        conn.execute(
            select(c.id)
            .where(_due(now))
            .order_by(c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    if not ids:
        return []
    conn.execute(
        update(outbox)
        .where(c.id.in_(ids))
        .values(claimed_by=worker, claimed_until=now + timedelta(seconds=lease_seconds))
    )
    rows = conn.execute(_select().where(c.id.in_(ids)).order_by(c.id)).mappings()
    return [_row(m) for m in rows]


def finish(
    conn: Connection, worker: str, results: Sequence[DeliveryResult], now: datetime | None = None
) -> int:
    """Record what became of claimed rows; rows whose lease another worker took over meanwhile
    are left to it. Returns the number of rows updated."""
    now = now or utcnow()
    c = outbox.c
    updated = 0
    for result in results:
        values: dict[str, Any] = {
            "status": result.status,
            "tries": result.tries,
            "next_try_at": result.next_try_at,
            "last_error": result.error,
            "claimed_by": None,
            "claimed_until": None,
        }
        if result.status == "delivered":
            values["delivered_at"] = now
        updated += conn.execute(
            update(outbox).where(c.id == result.id, c.claimed_by == worker).values(**values)
        ).rowcount
    return updated


def depth(conn: Connection) -> dict[str, int]:
    """Rows waiting (`pending`) and dead-lettered (`dead`)."""
    c = outbox.c
    counts = {"pending": 0, "dead": 0}
    query = select(c.status, func.count()).where(c.status.in_(list(counts))).group_by(c.status)
    for status, count in conn.execute(query):
        counts[status] = int(count)
    return counts


def listing(
    conn: Connection,
    *,
    status: str | None = None,
    task: str | None = None,
    decision_id: str | None = None,
    limit: int = 100,
) -> list[OutboxRow]:
    """Rows oldest first, filtered."""
    query = _select()
    if status is not None:
        query = query.where(outbox.c.status == status)
    if task is not None:
        query = query.where(decisions.c.task == task)
    if decision_id is not None:
        query = query.where(outbox.c.decision_id == decision_id)
    query = query.order_by(outbox.c.id).limit(limit)
    return [_row(m) for m in conn.execute(query).mappings()]


def _by_ids(conn: Connection, ids: Sequence[int]) -> list[OutboxRow]:
    found: list[OutboxRow] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        found.extend(
            _row(m) for m in conn.execute(_select().where(outbox.c.id.in_(chunk))).mappings()
        )
    return sorted(found, key=lambda r: r.id)


def _requeue(conn: Connection, ids: Sequence[int]) -> None:
    for start in range(0, len(ids), _CHUNK):
        conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(ids[start : start + _CHUNK]))
            .values(
                status="pending",
                tries=0,
                next_try_at=None,
                claimed_by=None,
                claimed_until=None,
            )
        )


def retry(conn: Connection, refs: Sequence[str], actor: str) -> list[OutboxRow]:
    """Put dead rows back in the queue with fresh tries. `refs` are outbox row ids or decision
    ids (all of that decision's dead rows). Refuses the whole request when a row is not dead."""
    rows: list[OutboxRow] = []
    for ref in refs:
        if ref.isdigit() and len(ref) < 20:  # a row id; decision ids are 26 hex digits
            found = _by_ids(conn, [int(ref)])
            if not found:
                raise NotFound(f"no outbox row {ref}", hint="see `lockgate deliveries list`")
        else:
            found = listing(conn, decision_id=ref, limit=1000)
            if not found:
                raise NotFound(
                    "no outbox row for that decision", hint="see `lockgate deliveries list`"
                )
            found = [r for r in found if r.status == "dead"] or found
        for row in found:
            if row.status != "dead":
                raise Conflict(
                    f"outbox row {row.id} is {row.status}, not dead; only dead rows are retried",
                    hint="a delivered row is sent again with `lockgate deliveries replay`",
                )
        rows.extend(found)
    ids = sorted({r.id for r in rows})
    _requeue(conn, ids)
    for task in sorted({r.task for r in rows}):
        audit.append(
            conn,
            actor=actor,
            action="delivery.retry",
            task=task,
            subject=",".join(str(r.id) for r in rows if r.task == task)[:255],
            details={"rows": [r.id for r in rows if r.task == task]},
        )
    return _by_ids(conn, ids)


def replay(
    conn: Connection,
    actor: str,
    *,
    decision_id: str | None = None,
    since: datetime | None = None,
    task: str | None = None,
) -> list[OutboxRow]:
    """Send delivered rows again (receivers de-duplicate by Idempotency-Key): one decision's,
    or every row delivered at or after `since` (of one task, if given)."""
    c = outbox.c
    query = _select().where(c.status == "delivered")
    if decision_id is not None:
        query = query.where(c.decision_id == decision_id)
    if since is not None:
        query = query.where(c.delivered_at >= since)
    if task is not None:
        query = query.where(decisions.c.task == task)
    rows = [_row(m) for m in conn.execute(query.order_by(c.id)).mappings()]
    ids = [r.id for r in rows]
    _requeue(conn, ids)
    for name in sorted({r.task for r in rows}):
        of_task = [r for r in rows if r.task == name]
        audit.append(
            conn,
            actor=actor,
            action="delivery.replay",
            task=name,
            subject=decision_id or (f"since {since.isoformat()}" if since else None),
            details={
                "rows": len(of_task),
                "decision_id": decision_id,
                "since": since.isoformat() if since else None,
            },
        )
    return _by_ids(conn, ids)


class OutboxRepository:
    """The delivery outbox over one engine (`Store.outbox`); each method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def claim(
        self, worker: str, limit: int, lease_seconds: float, now: datetime | None = None
    ) -> list[OutboxRow]:
        """Lease up to `limit` due rows to `worker` (see `claim`)."""
        with self.engine.begin() as conn:
            return claim(conn, worker, limit, lease_seconds, now)

    def finish(self, worker: str, results: Sequence[DeliveryResult]) -> int:
        with self.engine.begin() as conn:
            return finish(conn, worker, results)

    def depth(self) -> dict[str, int]:
        with database.read(self.engine) as conn:
            return depth(conn)

    def listing(
        self,
        *,
        status: str | None = None,
        task: str | None = None,
        decision_id: str | None = None,
        limit: int = 100,
    ) -> list[OutboxRow]:
        with database.read(self.engine) as conn:
            return listing(conn, status=status, task=task, decision_id=decision_id, limit=limit)

    def retry(self, refs: Sequence[str], actor: str) -> list[OutboxRow]:
        """Dead rows (by outbox id or decision id) back to pending, audited."""
        with self.engine.begin() as conn:
            return retry(conn, refs, actor)

    def replay(
        self,
        actor: str,
        *,
        decision_id: str | None = None,
        since: datetime | None = None,
        task: str | None = None,
    ) -> list[OutboxRow]:
        """Delivered rows back to pending, to be sent again; audited."""
        with self.engine.begin() as conn:
            return replay(conn, actor, decision_id=decision_id, since=since, task=task)
