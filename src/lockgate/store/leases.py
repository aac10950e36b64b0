"""Leases: one replica at a time runs a named background job.

Several `lockgate serve` replicas share one database; a job that must run in one place only
(a roll-up, the alert evaluator, the retention sweep) takes the lease named after it before
each round and renews it while it works. A replica that dies stops renewing, and its lease
lapses after its seconds; another replica then takes it. Taking is one transaction that
reads the row under a lock (PostgreSQL) or the write lock (SQLite), so two replicas never
both hold a lease.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, RowMapping, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from lockgate.decide.decision import utcnow
from lockgate.store import database
from lockgate.store.executor import StoreExecutor
from lockgate.store.tables import leases


@dataclass(frozen=True)
class Lease:
    name: str
    owner: str
    until: datetime


def _locked(conn: Connection, name: str) -> RowMapping | None:
    statement = select(leases).where(leases.c.name == name)
    if conn.dialect.name == "postgresql":
        statement = statement.with_for_update()
    return conn.execute(statement).mappings().one_or_none()


class LeaseRepository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def take(self, name: str, owner: str, seconds: float, now: datetime | None = None) -> bool:
        """Take or renew the lease `name` for `owner` for `seconds` from now: True when
        `owner` holds it afterwards (it was free, had lapsed, or was already its own)."""
        now = now or utcnow()
        until = now + timedelta(seconds=seconds)
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        with self.engine.begin() as conn:
            inserted = conn.execute(
                dialect.insert(leases)
                .values(name=name, owner=owner, until=until, taken_at=now)
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(leases.c.name)
            ).first()
            if inserted is not None:
                return True
            row = _locked(conn, name)
            if row is None:  # given up between the two statements: take it next round
                return False
            if row["owner"] != owner and database.aware(row["until"]) > now:
                return False
            values = {"owner": owner, "until": until}
            if row["owner"] != owner:
                values["taken_at"] = now
            conn.execute(update(leases).where(leases.c.name == name).values(**values))
            return True

    def give_up(self, name: str, owner: str) -> None:
        """Let another replica take `name` at once (on a clean stop)."""
        with self.engine.begin() as conn:
            conn.execute(delete(leases).where(leases.c.name == name, leases.c.owner == owner))

    def holder(self, name: str, now: datetime | None = None) -> Lease | None:
        """Who holds `name` now, if anyone."""
        now = now or utcnow()
        with database.read(self.engine) as conn:
            row = conn.execute(select(leases).where(leases.c.name == name)).mappings().first()
        if row is None or database.aware(row["until"]) <= now:
            return None
        return Lease(row["name"], row["owner"], database.aware(row["until"]))


class AsyncLeaseRepository:
    """The leases for async code (serve's background loops): through the store's writer."""

    def __init__(self, leases: LeaseRepository, executor: StoreExecutor) -> None:
        self.leases = leases
        self.executor = executor

    async def take(self, name: str, owner: str, seconds: float) -> bool:
        return await self.executor.write(self.leases.take, name, owner, seconds)

    async def give_up(self, name: str, owner: str) -> None:
        await self.executor.write(self.leases.give_up, name, owner)
