"""API key queries: create, look up by hash, list, revoke (which ends the key's review-page
sessions at once); changes go to the audit log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine, RowMapping, or_, select, update

from lockgate.decide.decision import new_id, utcnow
from lockgate.errors import Conflict, NotFound
from lockgate.security import ApiKey, Role, hash_key, new_key
from lockgate.store import audit, database
from lockgate.store.database import aware
from lockgate.store.tables import api_keys, ui_sessions


def key_of_row(row: RowMapping) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        key_hash=row["key_hash"],
        role=row["role"],
        tasks=tuple(row["tasks"]),
        created_at=aware(row["created_at"]),
        revoked_at=aware(row["revoked_at"]) if row["revoked_at"] else None,
    )


def create(
    conn: Connection, name: str, role: Role, tasks: Sequence[str], key_hash: str, actor: str
) -> ApiKey:
    taken = conn.execute(select(api_keys.c.id).where(api_keys.c.name == name)).first()
    if taken is not None:
        raise Conflict(
            f"an API key named {name!r} exists already",
            hint="choose another name; `lockgate keys list` shows the names in use",
        )
    key = ApiKey(
        id=new_id(),
        name=name,
        key_hash=key_hash,
        role=role,
        tasks=tuple(dict.fromkeys(tasks)),
        created_at=utcnow(),
    )
    conn.execute(
        api_keys.insert().values(
            id=key.id,
            name=key.name,
            key_hash=key.key_hash,
            role=key.role,
            tasks=list(key.tasks),
            created_at=key.created_at,
        )
    )
    audit.append(
        conn,
        actor=actor,
        action="key.created",
        subject=f"key:{key.id}",
        details={"name": name, "role": role, "tasks": list(key.tasks)},
    )
    return key


def close_sessions(conn: Connection, key_id: str, now: datetime) -> None:
    """End every live review-page session of a key, inside the caller's transaction."""
    conn.execute(
        update(ui_sessions)
        .where(ui_sessions.c.key_id == key_id, ui_sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def by_hash(conn: Connection, key_hash: str) -> ApiKey | None:
    row = conn.execute(select(api_keys).where(api_keys.c.key_hash == key_hash)).mappings().first()
    return key_of_row(row) if row else None


def list_all(conn: Connection) -> list[ApiKey]:
    rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id))
    return [key_of_row(r) for r in rows.mappings()]


def revoke(conn: Connection, name_or_id: str, actor: str) -> ApiKey:
    row = (
        conn.execute(
            select(api_keys).where(or_(api_keys.c.name == name_or_id, api_keys.c.id == name_or_id))
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(
            f"no API key named {name_or_id!r}", hint="`lockgate keys list` shows names and ids"
        )
    key = key_of_row(row)
    now = utcnow()
    revoked = conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key.id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if revoked.rowcount != 1:  # revoked before, or by a concurrent revoke just now
        earlier = by_hash(conn, key.key_hash) or key
        when = earlier.revoked_at.isoformat() if earlier.revoked_at else "an earlier time"
        raise Conflict(
            f"API key {key.name!r} was already revoked at {when}",
            hint="nothing changed; `lockgate keys list` shows which keys are active",
        )
    close_sessions(conn, key.id, now)
    audit.append(
        conn,
        actor=actor,
        action="key.revoked",
        subject=f"key:{key.id}",
        details={"name": key.name, "role": key.role},
    )
    return by_hash(conn, key.key_hash) or key


class KeyRepository:
    """API keys over one engine (`Store.keys`); each method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, name: str, role: Role, tasks: Sequence[str], actor: str) -> tuple[ApiKey, str]:
        """Store a new key (only its hash) and return it with the secret, shown once."""
        secret = new_key()
        with self.engine.begin() as conn:
            key = create(conn, name, role, tasks, hash_key(secret), actor)
        return key, secret

    def list_all(self) -> list[ApiKey]:
        with database.read(self.engine) as conn:
            return list_all(conn)

    def revoke(self, name_or_id: str, actor: str) -> ApiKey:
        with self.engine.begin() as conn:
            return revoke(conn, name_or_id, actor)

    def authenticate(self, secret: str) -> ApiKey | None:
        """The live key with this secret, or None (unknown or revoked)."""
        with database.read(self.engine) as conn:
            key = by_hash(conn, hash_key(secret))
        if key is None or key.revoked or not key.matches(secret):
            return None
        return key
