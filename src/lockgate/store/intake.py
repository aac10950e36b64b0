"""Intake queries: source state, quarantine, duplicates, content hashes and schema events.

`commit` is the intake's one transaction: the decisions of a batch (through
`decisions.store_batches`) with the source's new cursor, counters, quarantined records,
duplicates and schema events. A source's cursor therefore never moves past a record whose
outcome is not stored, and a crash at any point leaves either all of a batch or none of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from lockgate.decide.decision import Decision, utcnow
from lockgate.intake.types import (
    COUNTERS,
    Duplicate,
    Progress,
    Quarantined,
    QuarantineStatus,
    SchemaEvent,
    SourceState,
    SourceStatus,
)
from lockgate.store import database
from lockgate.store.decisions import by_keys, store_batches
from lockgate.store.executor import StoreExecutor
from lockgate.store.tables import (
    intake_duplicates,
    intake_quarantine,
    intake_schema_events,
    intake_seen,
    intake_sources,
)

_CHUNK = 500


def _dialect(conn: Connection) -> Any:
    return postgresql if conn.dialect.name == "postgresql" else sqlite


def _state(row: RowMapping | Mapping[str, Any]) -> SourceState:
    return SourceState(
        task=row["task"],
        source=row["source"],
        cursor=row["cursor"],
        counts=row["counts"],
        schema=row["schema"],
        status=row["status"],
        status_reason=row["status_reason"],
        failures=row["failures"],
        last_error=row["last_error"],
        retry_at=database.aware(row["retry_at"]) if row["retry_at"] else None,
        updated_at=database.aware(row["updated_at"]),
    )


def _quarantined(row: RowMapping) -> Quarantined:
    return Quarantined(
        id=row["id"],
        task=row["task"],
        source=row["source"],
        position=row["position"],
        reason=row["reason"],
        raw=row["raw"],
        context=row["context"],
        status=row["status"],
        created_at=database.aware(row["created_at"]),
        resolved_at=database.aware(row["resolved_at"]) if row["resolved_at"] else None,
        decision_key=row["decision_key"],
    )


def _locked_state(conn: Connection, task: str, source: str) -> RowMapping:
    """The source's row, created when missing, locked for this transaction."""
    now = utcnow()
    conn.execute(
        _dialect(conn)
        .insert(intake_sources)
        .values(
            task=task,
            source=source,
            cursor={},
            counts={name: 0 for name in COUNTERS},
            schema={},
            status="active",
            status_reason="",
            failures=0,
            last_error="",
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["task", "source"])
    )
    statement = select(intake_sources).where(
        intake_sources.c.task == task, intake_sources.c.source == source
    )
    if conn.dialect.name == "postgresql":
        statement = statement.with_for_update()
    return conn.execute(statement).mappings().one()


def apply(conn: Connection, progress: Progress) -> None:
    """Write `progress` in the caller's transaction."""
    now = utcnow()
    row = _locked_state(conn, progress.task, progress.source)
    counts: dict[str, Any] = dict(row["counts"])
    for name, n in progress.counts.items():
        counts[name] = counts.get(name, 0) + n
    if progress.unknown_fields:
        unknown = dict(counts.get("unknown_fields", {}))
        for name, n in progress.unknown_fields.items():
            unknown[name] = unknown.get(name, 0) + n
        counts["unknown_fields"] = unknown
    values: dict[str, Any] = {"counts": counts, "updated_at": now}
    if progress.cursor is not None:
        values["cursor"] = dict(progress.cursor)
    if progress.schema is not None:
        values["schema"] = dict(progress.schema)
    if progress.status is not None:
        values["status"], values["status_reason"] = progress.status
    elif row["status"] in ("failing", "paused"):
        values.update(status="active", status_reason="")
    values.update(failures=0, retry_at=None)
    conn.execute(
        update(intake_sources)
        .where(intake_sources.c.task == progress.task, intake_sources.c.source == progress.source)
        .values(**values)
    )
    if progress.quarantined:
        statement = _dialect(conn).insert(intake_quarantine)
        statement = statement.on_conflict_do_update(
            index_elements=["task", "source", "position"],
            set_={
                "reason": statement.excluded.reason,
                "raw": statement.excluded.raw,
                "context": statement.excluded.context,
                "status": "held",
                "resolved_at": None,
                "decision_key": None,
            },
        )
        for q in progress.quarantined:
            conn.execute(
                statement,
                {
                    "task": q.task,
                    "source": q.source,
                    "position": q.position[:512],
                    "reason": q.reason,
                    "raw": dict(q.raw),
                    "context": dict(q.context),
                    "status": "held",
                    "created_at": now,
                },
            )
    if progress.duplicates:
        conn.execute(
            intake_duplicates.insert(),
            [
                {
                    "task": d.task,
                    "source": d.source,
                    "position": d.position[:512],
                    "first_key": d.first_key,
                    "by": d.by,
                    "at": now,
                }
                for d in progress.duplicates
            ],
        )
    if progress.seen:
        # Content decided again (its window had passed) starts a new window from this decision.
        statement = _dialect(conn).insert(intake_seen)
        statement = statement.on_conflict_do_update(
            index_elements=["task", "content_hash"],
            set_={
                "idempotency_key": statement.excluded.idempotency_key,
                "seen_at": statement.excluded.seen_at,
            },
        )
        at = progress.seen_at or now
        conn.execute(
            statement,
            [
                {"task": progress.task, "content_hash": h, "idempotency_key": k, "seen_at": at}
                for h, k in progress.seen.items()
            ],
        )
    if progress.events:
        conn.execute(
            intake_schema_events.insert(),
            [
                {
                    "task": e.task,
                    "source": e.source,
                    "kind": e.kind,
                    "field": e.field[:255],
                    "detail": e.detail,
                    "at": now,
                }
                for e in progress.events
            ],
        )
    for quarantine_id, (status, key) in progress.resolved.items():
        conn.execute(
            update(intake_quarantine)
            .where(intake_quarantine.c.id == quarantine_id)
            .values(status=status, resolved_at=now, decision_key=key)
        )


class IntakeRepository:
    """The intake's storage (`Store.intake`); each method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def commit(
        self,
        parts: Sequence[tuple[Sequence[Decision], Sequence[str]]],
        progress: Progress | None = None,
    ) -> list[list[Decision]]:
        """Store each part's decisions (as `DecisionRepository.save` does, with outbox rows
        for its sinks) and `progress`, all in one transaction. Where another writer stored a
        key first, its decision comes back in place of ours."""
        with self.engine.begin() as conn:
            stored = store_batches(conn, parts)
            if progress is not None:
                apply(conn, progress)
        return stored

    def find(self, task: str, keys: Iterable[str]) -> dict[str, Decision]:
        with database.read(self.engine) as conn:
            return by_keys(conn, task, keys)

    def seen(self, task: str, hashes: Iterable[str], since: datetime) -> dict[str, str]:
        """Content hashes of `task` first decided at or after `since`, to their keys."""
        hashes = list(dict.fromkeys(hashes))
        found: dict[str, str] = {}
        with database.read(self.engine) as conn:
            for start in range(0, len(hashes), _CHUNK):
                rows = conn.execute(
                    select(intake_seen.c.content_hash, intake_seen.c.idempotency_key).where(
                        intake_seen.c.task == task,
                        intake_seen.c.content_hash.in_(hashes[start : start + _CHUNK]),
                        intake_seen.c.seen_at >= since,
                    )
                )
                found.update({h: k for h, k in rows})
        return found

    def state(self, task: str, source: str) -> SourceState | None:
        with database.read(self.engine) as conn:
            row = (
                conn.execute(
                    select(intake_sources).where(
                        intake_sources.c.task == task, intake_sources.c.source == source
                    )
                )
                .mappings()
                .first()
            )
        return _state(row) if row is not None else None

    def states(self, task: str | None = None) -> list[SourceState]:
        statement = select(intake_sources).order_by(intake_sources.c.task, intake_sources.c.source)
        if task is not None:
            statement = statement.where(intake_sources.c.task == task)
        with database.read(self.engine) as conn:
            return [_state(r) for r in conn.execute(statement).mappings()]

    def failed(
        self, task: str, source: str, error: str, retry_at: datetime, report_after: int
    ) -> SourceState:
        """Note a failed read: the cursor stays; past `report_after` the source is failing."""
        with self.engine.begin() as conn:
            row = _locked_state(conn, task, source)
            failures = row["failures"] + 1
            values: dict[str, Any] = {
                "failures": failures,
                "last_error": error[:2000],
                "retry_at": retry_at,
                "updated_at": utcnow(),
            }
            if failures >= report_after and row["status"] == "active":
                values.update(status="failing", status_reason=f"{failures} failed reads")
            conn.execute(
                update(intake_sources)
                .where(intake_sources.c.task == task, intake_sources.c.source == source)
                .values(**values)
            )
            return _state({**row, **values})

    def set_status(self, task: str, source: str, status: SourceStatus, reason: str = "") -> None:
        with self.engine.begin() as conn:
            _locked_state(conn, task, source)
            conn.execute(
                update(intake_sources)
                .where(intake_sources.c.task == task, intake_sources.c.source == source)
                .values(status=status, status_reason=reason, updated_at=utcnow())
            )

    def accept_schema(self, task: str, source: str, schema: dict[str, Any]) -> None:
        """A person accepted a drifted schema: it becomes the one compared against."""
        with self.engine.begin() as conn:
            _locked_state(conn, task, source)
            conn.execute(
                update(intake_sources)
                .where(intake_sources.c.task == task, intake_sources.c.source == source)
                .values(schema=schema, status="active", status_reason="", updated_at=utcnow())
            )

    def quarantined(
        self,
        task: str | None = None,
        source: str | None = None,
        status: QuarantineStatus | None = "held",
        limit: int = 1000,
        ids: Sequence[int] | None = None,
    ) -> list[Quarantined]:
        c = intake_quarantine.c
        statement = select(intake_quarantine).order_by(c.id).limit(limit)
        if task is not None:
            statement = statement.where(c.task == task)
        if source is not None:
            statement = statement.where(c.source == source)
        if status is not None:
            statement = statement.where(c.status == status)
        if ids is not None:
            statement = statement.where(c.id.in_(list(ids)))
        with database.read(self.engine) as conn:
            return [_quarantined(r) for r in conn.execute(statement).mappings()]

    def held_ids(self, task: str, source: str, positions: Sequence[str]) -> dict[str, int]:
        """The quarantine ids of the records held at `positions` of a source."""
        c = intake_quarantine.c
        statement = select(c.position, c.id).where(
            c.task == task,
            c.source == source,
            c.status == "held",
            c.position.in_([p[:512] for p in positions]),
        )
        with database.read(self.engine) as conn:
            return {row.position: row.id for row in conn.execute(statement)}

    def quarantine_item(self, quarantine_id: int) -> Quarantined | None:
        items = self.quarantined(status=None, ids=[quarantine_id], limit=1)
        return items[0] if items else None

    def events(self, task: str, source: str, limit: int = 100) -> list[SchemaEvent]:
        c = intake_schema_events.c
        statement = (
            select(intake_schema_events)
            .where(c.task == task, c.source == source)
            .order_by(c.id.desc())
            .limit(limit)
        )
        with database.read(self.engine) as conn:
            return [
                SchemaEvent(
                    task=r["task"],
                    source=r["source"],
                    kind=r["kind"],
                    field=r["field"],
                    detail=r["detail"],
                    at=database.aware(r["at"]),
                )
                for r in conn.execute(statement).mappings()
            ]

    def duplicates(self, task: str, source: str, limit: int = 1000) -> list[Duplicate]:
        c = intake_duplicates.c
        statement = (
            select(intake_duplicates)
            .where(c.task == task, c.source == source)
            .order_by(c.id)
            .limit(limit)
        )
        with database.read(self.engine) as conn:
            return [
                Duplicate(
                    task=r["task"],
                    source=r["source"],
                    position=r["position"],
                    first_key=r["first_key"],
                    by=r["by"],
                )
                for r in conn.execute(statement).mappings()
            ]

    def quarantine_count(self, task: str, source: str) -> int:
        c = intake_quarantine.c
        with database.read(self.engine) as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(intake_quarantine)
                    .where(c.task == task, c.source == source, c.status == "held")
                ).scalar_one()
            )


class AsyncIntakeRepository:
    """The intake's storage for async callers: reads in reader threads, commits in the
    database's one writer thread (see `StoreExecutor`)."""

    def __init__(self, intake: IntakeRepository, executor: StoreExecutor) -> None:
        self.intake = intake
        self.executor = executor

    async def commit(
        self,
        parts: Sequence[tuple[Sequence[Decision], Sequence[str]]],
        progress: Progress | None = None,
    ) -> list[list[Decision]]:
        return await self.executor.write(self.intake.commit, parts, progress)

    async def find(self, task: str, keys: Sequence[str]) -> dict[str, Decision]:
        return await self.executor.read(self.intake.find, task, keys)

    async def seen(self, task: str, hashes: Sequence[str], since: datetime) -> dict[str, str]:
        return await self.executor.read(self.intake.seen, task, hashes, since)

    async def state(self, task: str, source: str) -> SourceState | None:
        return await self.executor.read(self.intake.state, task, source)

    async def held_ids(self, task: str, source: str, positions: Sequence[str]) -> dict[str, int]:
        return await self.executor.read(self.intake.held_ids, task, source, positions)

    async def failed(
        self, task: str, source: str, error: str, retry_at: datetime, report_after: int
    ) -> SourceState:
        return await self.executor.write(
            self.intake.failed, task, source, error, retry_at, report_after
        )
