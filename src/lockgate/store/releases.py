"""Release queries: numbering, the live pointer, promotion and rollback; `ReleaseRepository`
gives them one transaction per call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, func, select, update

from lockgate.decide.decision import utcnow
from lockgate.errors import Conflict, NotFound
from lockgate.rollout.release import Release, policy_diff
from lockgate.store import audit, database
from lockgate.store.database import aware
from lockgate.store.tables import promotions, releases


def from_row(row: RowMapping) -> Release:
    """The `Release` a `releases` row holds."""
    return Release(
        task=row["task"],
        number=row["number"],
        content_hash=row["content_hash"],
        spec=row["spec"],
        artifacts=row["artifacts"],
        stage=row["stage"],
        created_at=aware(row["created_at"]),
        created_by=row["created_by"],
        canary_percent=row["canary_percent"],
    )


def list_for(conn: Connection, task: str) -> list[Release]:
    rows = conn.execute(
        select(releases).where(releases.c.task == task).order_by(releases.c.number)
    ).mappings()
    return [from_row(r) for r in rows]


def get(conn: Connection, task: str, number: int) -> Release:
    row = (
        conn.execute(select(releases).where(releases.c.task == task, releases.c.number == number))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(
            f"release {task}@{number} does not exist",
            hint=f"`lockgate release list {task}` shows the releases",
        )
    return from_row(row)


def live(conn: Connection, task: str) -> Release | None:
    row = (
        conn.execute(select(releases).where(releases.c.task == task, releases.c.stage == "live"))
        .mappings()
        .first()
    )
    return from_row(row) if row else None


def by_hash(conn: Connection, task: str, content_hash: str) -> Release | None:
    row = (
        conn.execute(
            select(releases).where(releases.c.task == task, releases.c.content_hash == content_hash)
        )
        .mappings()
        .first()
    )
    return from_row(row) if row else None


def create(conn: Connection, draft: Release, actor: str) -> Release:
    """Insert `draft` with the next number for its task (its own number is ignored)."""
    highest = conn.execute(
        select(func.max(releases.c.number)).where(releases.c.task == draft.task)
    ).scalar()
    number = (highest or 0) + 1
    created_at = utcnow()
    current = live(conn, draft.task)
    changes = policy_diff(current.spec, draft.spec) if current is not None else {}
    conn.execute(
        releases.insert().values(
            task=draft.task,
            number=number,
            content_hash=draft.content_hash,
            spec=dict(draft.spec),
            artifacts=dict(draft.artifacts),
            stage="draft",
            created_at=created_at,
            created_by=actor,
        )
    )
    audit.append(
        conn,
        actor=actor,
        action="release.created",
        task=draft.task,
        subject=f"{draft.task}@{number}",
        details={
            "content_hash": draft.content_hash,
            "artifacts": dict(draft.artifacts),
            # Compared with the live release's policy (none: nothing to compare with).
            "policy_changed": bool(changes),
            "policy_diff": changes,
        },
    )
    return get(conn, draft.task, number)


def _set_live(conn: Connection, task: str, number: int) -> int | None:
    current = live(conn, task)
    if current is not None:
        conn.execute(
            update(releases)
            .where(releases.c.task == task, releases.c.number == current.number)
            .values(stage="retired", canary_percent=None)
        )
    conn.execute(
        update(releases)
        .where(releases.c.task == task, releases.c.number == number)
        .values(stage="live", canary_percent=None)
    )
    return current.number if current else None


def promote(
    conn: Connection,
    task: str,
    number: int,
    actor: str,
    reason: str | None,
    details: Mapping[str, Any] | None = None,
) -> Release:
    target = get(conn, task, number)
    if target.stage == "live":
        raise Conflict(f"{target.ref} is already live")
    previous = _set_live(conn, task, number)
    _record(conn, task, number, previous, "promote", actor, reason, details)
    return get(conn, task, number)


def rollback(conn: Connection, task: str, actor: str, reason: str | None) -> Release:
    """Make the release that was live before the current one live again."""
    current = live(conn, task)
    if current is None:
        raise NotFound(f"task {task!r} has no live release to roll back")
    history = conn.execute(
        select(promotions.c.number, promotions.c.previous)
        .where(promotions.c.task == task)
        .order_by(promotions.c.id.desc())
        .limit(1)
    ).first()
    if history is None or history.previous is None:
        raise Conflict(
            f"{current.ref} is the first live release of {task}; there is nothing to roll back to"
        )
    _set_live(conn, task, history.previous)
    _record(conn, task, history.previous, current.number, "rollback", actor, reason)
    return get(conn, task, history.previous)


def _record(
    conn: Connection,
    task: str,
    number: int,
    previous: int | None,
    action: str,
    actor: str,
    reason: str | None,
    details: Mapping[str, Any] | None = None,
) -> None:
    conn.execute(
        promotions.insert().values(
            task=task,
            number=number,
            previous=previous,
            action=action,
            at=utcnow(),
            actor=actor,
            reason=reason,
        )
    )
    audit.append(
        conn,
        actor=actor,
        action=f"release.{action}",
        task=task,
        subject=f"{task}@{number}",
        details={"previous": previous, "reason": reason, **(details or {})},
    )


class ReleaseRepository:
    """Releases over one engine (`Store.releases`); each method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list_for(self, task: str) -> list[Release]:
        with database.read(self.engine) as conn:
            return list_for(conn, task)

    def get(self, task: str, number: int) -> Release:
        with database.read(self.engine) as conn:
            return get(conn, task, number)

    def live(self, task: str) -> Release | None:
        with database.read(self.engine) as conn:
            return live(conn, task)

    def create(self, draft: Release, actor: str) -> tuple[Release, bool]:
        """Store a new release, or return the existing one with the same content (and False)."""
        with self.engine.begin() as conn:
            existing = by_hash(conn, draft.task, draft.content_hash)
            if existing is not None:
                return existing, False
            return create(conn, draft, actor), True

    def create_calibrated(
        self, draft: Release, actor: str, figures: Mapping[str, Any]
    ) -> tuple[Release, bool]:
        """Store `draft` (or find the release with its content) and audit `policy.calibrate`
        with the figures, in one transaction."""
        with self.engine.begin() as conn:
            existing = by_hash(conn, draft.task, draft.content_hash)
            release = existing or create(conn, draft, actor)
            audit.append(
                conn,
                actor=actor,
                action="policy.calibrate",
                task=draft.task,
                subject=release.ref,
                details=dict(figures),
            )
        return release, existing is None

    def promote(self, task: str, number: int, actor: str, reason: str | None = None) -> Release:
        with self.engine.begin() as conn:
            return promote(conn, task, number, actor, reason)

    def rollback(self, task: str, actor: str, reason: str | None = None) -> Release:
        with self.engine.begin() as conn:
            return rollback(conn, task, actor, reason)
