"""Small named facts about the project's database (`project_state`): a salt, a position."""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from lockgate.decide.decision import utcnow
from lockgate.store.tables import project_state


def read_state(conn: Connection, name: str) -> str | None:
    found = conn.execute(select(project_state.c.value).where(project_state.c.name == name))
    return found.scalar_one_or_none()


def write_state(conn: Connection, name: str, value: str) -> None:
    """Set `name` inside the caller's transaction (which holds the write lock on SQLite; on
    PostgreSQL two writers of one name race only on the first insert, the retention lease
    keeps the sweep to one replica, and the salt is written under the audit lock)."""
    changed = conn.execute(
        update(project_state)
        .where(project_state.c.name == name)
        .values(value=value, updated_at=utcnow())
    )
    if not changed.rowcount:
        conn.execute(project_state.insert().values(name=name, value=value, updated_at=utcnow()))
