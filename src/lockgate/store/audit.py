"""The append-only, hash-chained audit log: each entry holds the hash of the one before."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, text

from lockgate.decide.decision import canonical_json, utcnow
from lockgate.store import database
from lockgate.store.database import aware
from lockgate.store.tables import audit_log

GENESIS = "0" * 64
_AUDIT_LOCK = 7_343_002


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    task: str | None
    subject: str | None
    details: Mapping[str, Any]
    prev_hash: str
    hash: str


def entry_hash(
    prev_hash: str,
    at: datetime,
    actor: str,
    action: str,
    task: str | None,
    subject: str | None,
    details: Mapping[str, Any],
) -> str:
    body = canonical_json(
        {
            "prev": prev_hash,
            "at": aware(at).isoformat(),
            "actor": actor,
            "action": action,
            "task": task,
            "subject": subject,
            "details": details,
        }
    )
    return hashlib.sha256(body.encode()).hexdigest()


def append(
    conn: Connection,
    *,
    actor: str,
    action: str,
    task: str | None = None,
    subject: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Add an entry inside the caller's transaction (serialised so the chain never forks)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _AUDIT_LOCK})
    last = conn.execute(select(audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)).first()
    prev = last[0] if last else GENESIS
    at = utcnow().replace(microsecond=utcnow().microsecond // 1000 * 1000)
    details = dict(details or {})
    conn.execute(
        audit_log.insert().values(
            at=at,
            actor=actor,
            action=action,
            task=task,
            subject=subject,
            details=details,
            prev_hash=prev,
            hash=entry_hash(prev, at, actor, action, task, subject, details),
        )
    )


def entries(
    conn: Connection,
    task: str | None = None,
    *,
    actor: str | None = None,
    action: str | None = None,
    limit: int | None = None,
) -> list[AuditEntry]:
    """Entries oldest first; with `limit`, the newest `limit` that match (still oldest first)."""
    query = select(audit_log)
    if task is not None:
        query = query.where(audit_log.c.task == task)
    if actor is not None:
        query = query.where(audit_log.c.actor == actor)
    if action is not None:
        query = query.where(audit_log.c.action == action)
    if limit is not None:
        query = query.order_by(audit_log.c.id.desc()).limit(limit)
        rows = list(reversed(conn.execute(query).all()))
    else:
        rows = list(conn.execute(query.order_by(audit_log.c.id)))
    return [AuditEntry(**{**row._asdict(), "at": aware(row.at)}) for row in rows]


def verify(conn: Connection) -> int | None:
    """The id of the first entry whose chain is broken, or None when the whole log holds."""
    broken = first_break(conn)
    return broken.entry.id if broken is not None else None


@dataclass(frozen=True)
class Break:
    """The first entry where the chain does not hold, and why."""

    entry: AuditEntry
    why: str


def first_break(conn: Connection) -> Break | None:
    """Walk the chain from the start. An entry whose own hash does not match its content was
    changed; one whose hash matches but whose link does not was moved or lost its
    predecessor: a gap in the ids before it means entries were deleted, a link to another
    entry's hash means entries were reordered. (Deleting the newest entries leaves no trace in
    the chain itself.)"""
    log = entries(conn)
    position = {e.hash: e for e in log}
    prev, prev_id = GENESIS, 0
    for entry in log:
        own = entry_hash(
            entry.prev_hash,
            entry.at,
            entry.actor,
            entry.action,
            entry.task,
            entry.subject,
            entry.details,
        )
        if entry.hash != own:
            return Break(entry, "its content does not match its hash: the entry was changed")
        if entry.prev_hash != prev:
            if entry.id != prev_id + 1 and entry.prev_hash not in position:
                return Break(
                    entry,
                    f"broken link after a gap in the ids ({prev_id + 1}-{entry.id - 1} missing): "
                    "entries were deleted",
                )
            if entry.prev_hash in position:
                after = position[entry.prev_hash]
                return Break(
                    entry,
                    f"it follows entry {after.id} in the chain, not entry {prev_id}: "
                    "entries were reordered",
                )
            return Break(entry, "its link does not match the entry before it")
        prev, prev_id = entry.hash, entry.id
    return None


class AuditRepository:
    """Reading and checking the audit log over one engine (`Store.audit`); entries are
    appended by the other repositories, inside the transaction of the change they record."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def entries(
        self,
        task: str | None = None,
        *,
        actor: str | None = None,
        action: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        with database.read(self.engine) as conn:
            return entries(conn, task, actor=actor, action=action, limit=limit)

    def first_break(self) -> Break | None:
        """The first entry where the hash chain fails, with why; None when it holds."""
        with database.read(self.engine) as conn:
            return first_break(conn)

    def verify(self) -> int | None:
        with database.read(self.engine) as conn:
            return verify(conn)
