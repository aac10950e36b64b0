"""The append-only, hash-chained audit log: each entry holds the hash of the one before."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, text

from lockgate.decision import canonical_json, utcnow
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


def entries(conn: Connection, task: str | None = None) -> list[AuditEntry]:
    query = select(audit_log).order_by(audit_log.c.id)
    if task is not None:
        query = query.where(audit_log.c.task == task)
    return [AuditEntry(**{**row._asdict(), "at": aware(row.at)}) for row in conn.execute(query)]


def verify(conn: Connection) -> int | None:
    """The id of the first entry whose chain is broken, or None when the whole log holds."""
    prev = GENESIS
    for entry in entries(conn):
        expected = entry_hash(
            prev, entry.at, entry.actor, entry.action, entry.task, entry.subject, entry.details
        )
        if entry.prev_hash != prev or entry.hash != expected:
            return entry.id
        prev = entry.hash
    return None
