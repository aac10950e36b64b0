"""The append-only, hash-chained audit log: each entry holds the hash of the one before.

Free text that people type (the `reason` of a verdict, a promotion, a rollback, a gate
override) is kept beside the chain, in `audit_texts`, so that it can be erased later: the
chained entry holds only a reference, `{"text_sha256": HASH}`, the sha256 of a random salt and
the text. Erasing the text (and its salt) leaves every hash of the chain as it was, so the log
still verifies; the entry then shows the text as erased. While the text is there, `first_break`
checks it against its hash too.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, text, update

from lockgate.decide.decision import canonical_json, utcnow
from lockgate.store import database
from lockgate.store.database import aware
from lockgate.store.tables import audit_log, audit_texts

GENESIS = "0" * 64
_AUDIT_LOCK = 7_343_002
FREE_TEXT = ("reason",)
"""Detail fields holding free text typed by people: stored beside the chain, erasable."""
TEXT_REF = "text_sha256"
ERASED = "[erased]"
"""What an entry's details show in place of an erased text."""
_CHUNK = 500
APPENDED = "lockgate_audit_appended"
"""Set in a connection's `info` when an entry was appended on it (see `store.anchor`)."""


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    task: str | None
    subject: str | None
    details: Mapping[str, Any]
    """What the entry says: free text resolved from `audit_texts`, or `ERASED`."""
    prev_hash: str
    hash: str
    chained: Mapping[str, Any] = field(default_factory=dict)
    """The details as hashed into the chain: free text only as `{"text_sha256": HASH}`."""
    erased: tuple[str, ...] = ()
    """The detail fields whose text was erased."""


def text_hash(salt: str, free_text: str) -> str:
    """The reference the chain holds for a free text: sha256 of its salt and the text."""
    return hashlib.sha256(f"{salt}\n{free_text}".encode()).hexdigest()


def _reference(value: Any) -> str | None:
    if isinstance(value, Mapping) and set(value) == {TEXT_REF}:
        ref = value[TEXT_REF]
        return ref if isinstance(ref, str) else None
    return None


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
    for name in FREE_TEXT:
        if isinstance(details.get(name), str):
            details[name] = {TEXT_REF: _keep_text(conn, details[name], at)}
    conn.info[APPENDED] = True  # the audit anchor, when kept, is written after the commit
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


def _keep_text(conn: Connection, free_text: str, at: datetime) -> str:
    salt = secrets.token_hex(16)
    ref = text_hash(salt, free_text)
    conn.execute(audit_texts.insert().values(hash=ref, salt=salt, text=free_text, created_at=at))
    return ref


def _texts(conn: Connection, refs: Iterable[str]) -> dict[str, tuple[str, str]]:
    """(salt, text) by reference, for the references whose text is still there."""
    wanted = sorted(set(refs))
    found: dict[str, tuple[str, str]] = {}
    t = audit_texts.c
    for start in range(0, len(wanted), _CHUNK):
        rows = conn.execute(
            select(t.hash, t.salt, t.text).where(
                t.hash.in_(wanted[start : start + _CHUNK]), t.text.is_not(None)
            )
        )
        found.update({row.hash: (row.salt or "", row.text) for row in rows})
    return found


def _shown(
    chained: Mapping[str, Any], texts: Mapping[str, tuple[str, str]]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    shown, erased = dict(chained), []
    for name, value in chained.items():
        ref = _reference(value)
        if ref is None:
            continue
        if ref in texts:
            shown[name] = texts[ref][1]
        else:
            shown[name] = ERASED
            erased.append(name)
    return shown, tuple(erased)


def text_refs(details: Mapping[str, Any]) -> list[str]:
    """The references to free texts an entry's chained details hold."""
    return [ref for ref in map(_reference, details.values()) if ref is not None]


def texts_present(conn: Connection, refs: Iterable[str]) -> int:
    """How many of these free texts are still there (not erased)."""
    return len(_texts(conn, refs))


def erase_text(conn: Connection, ref: str, at: datetime) -> bool:
    """Erase one free text (and its salt), leaving the chain intact; False when unknown or
    erased before."""
    erased = conn.execute(
        update(audit_texts)
        .where(audit_texts.c.hash == ref, audit_texts.c.text.is_not(None))
        .values(text=None, salt=None, erased_at=at)
    )
    return erased.rowcount == 1


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
    texts = _texts(
        conn, (ref for row in rows for ref in map(_reference, row.details.values()) if ref)
    )
    found = []
    for row in rows:
        shown, erased = _shown(row.details, texts)
        fields = {**row._asdict(), "at": aware(row.at), "details": shown}
        found.append(AuditEntry(**fields, chained=row.details, erased=erased))
    return found


@dataclass(frozen=True)
class Head:
    """The newest entry of the log: what an anchor outside the database remembers."""

    id: int
    hash: str
    at: datetime


def head(conn: Connection) -> Head | None:
    row = conn.execute(
        select(audit_log.c.id, audit_log.c.hash, audit_log.c.at)
        .order_by(audit_log.c.id.desc())
        .limit(1)
    ).first()
    return Head(row.id, row.hash, aware(row.at)) if row is not None else None


def hash_of(conn: Connection, entry_id: int) -> str | None:
    return conn.execute(
        select(audit_log.c.hash).where(audit_log.c.id == entry_id)
    ).scalar_one_or_none()


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
    texts = _texts(conn, (ref for e in log for ref in map(_reference, e.chained.values()) if ref))
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
            entry.chained,
        )
        if entry.hash != own:
            return Break(entry, "its content does not match its hash: the entry was changed")
        changed = _changed_text(entry, texts)
        if changed is not None:
            return Break(entry, f"its {changed} text does not match its hash: the text was changed")
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


def _changed_text(entry: AuditEntry, texts: Mapping[str, tuple[str, str]]) -> str | None:
    """The first detail field whose stored text no longer matches its reference."""
    for name, value in entry.chained.items():
        ref = _reference(value)
        if ref is not None and ref in texts and text_hash(*texts[ref]) != ref:
            return name
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

    def head(self) -> Head | None:
        with database.read(self.engine) as conn:
            return head(conn)

    def hash_of(self, entry_id: int) -> str | None:
        with database.read(self.engine) as conn:
            return hash_of(conn, entry_id)

    def erase_text(self, ref: str) -> bool:
        """Erase the free text an entry refers to (`AuditEntry.chained[field]["text_sha256"]`),
        e.g. on a data-subject request; the chain still verifies."""
        with self.engine.begin() as conn:
            return erase_text(conn, ref, utcnow())
