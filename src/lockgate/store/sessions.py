"""Review-page sessions, kept server-side: open on sign-in, look up on every request, close
on sign-out. The cookie holds a random id; only its sha256 is stored. A key's revocation
closes its sessions in the same transaction (`keys.close_sessions`)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update

from lockgate.security import ApiKey
from lockgate.store import database
from lockgate.store.database import aware
from lockgate.store.keys import key_of_row
from lockgate.store.tables import api_keys, ui_sessions

KEEP_ENDED = timedelta(days=1)
"""How long an ended session's row is kept before `open` deletes it."""


def id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionRepository:
    """Sessions over one engine (`Store.sessions`); each method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def open(self, key_id: str, now: datetime, expires_at: datetime) -> str:
        """A new session for a key; its random id (for the cookie), stored only hashed.
        Rows of sessions ended more than a day ago are deleted on the way."""
        session_id = secrets.token_urlsafe(32)
        s = ui_sessions.c
        with self.engine.begin() as conn:
            conn.execute(
                ui_sessions.delete().where(
                    (s.expires_at < now - KEEP_ENDED) | (s.revoked_at < now - KEEP_ENDED)
                )
            )
            conn.execute(
                ui_sessions.insert().values(
                    id_hash=id_hash(session_id),
                    key_id=key_id,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
        return session_id

    def key_of(self, session_id: str, now: datetime) -> ApiKey | None:
        """The key of a live session: known, not signed out, not expired, its key not
        revoked. None otherwise."""
        s = ui_sessions.c
        with database.read(self.engine) as conn:
            row = (
                conn.execute(
                    select(api_keys, s.expires_at.label("session_expires_at"))
                    .join(ui_sessions, s.key_id == api_keys.c.id)
                    .where(s.id_hash == id_hash(session_id), s.revoked_at.is_(None))
                )
                .mappings()
                .first()
            )
        if row is None or aware(row["session_expires_at"]) <= now:
            return None
        key = key_of_row(row)
        return None if key.revoked else key

    def close(self, session_id: str, now: datetime) -> None:
        """End a session (sign-out); nothing happens for an unknown or ended one."""
        s = ui_sessions.c
        with self.engine.begin() as conn:
            conn.execute(
                update(ui_sessions)
                .where(s.id_hash == id_hash(session_id), s.revoked_at.is_(None))
                .values(revoked_at=now)
            )
