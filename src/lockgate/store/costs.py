"""Budgets and the decision cache in the database.

A reservation is one transaction: it locks the ledger rows it counts against (`SELECT ... FOR
UPDATE` on PostgreSQL; on SQLite the write lock that `BEGIN IMMEDIATE` takes), books the holds
of the calls that fit every limit, and writes the rows back. Every transaction here locks
ledger rows first, in one order (scope, then period), and only then touches holds, so two
replicas never deadlock each other. The limits themselves come from the costs domain as data
(`LimitCheck`); this module only counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, and_, delete, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from lockgate.costs.types import (
    ALL_TASKS,
    Booking,
    HoldInfo,
    Ledger,
    LimitCheck,
    Reserved,
    Reused,
    Saving,
    Settled,
    SoftCrossing,
)
from lockgate.decide.decision import new_id
from lockgate.store import database
from lockgate.store.executor import StoreExecutor
from lockgate.store.tables import budget_holds, budget_ledger, decision_cache, decisions

Key = tuple[str, str]
_COUNTS = ("spent_nano", "spent_calls", "reserved_nano", "reserved_calls", "lapsed_calls")


def hold_keys(task: str, day: str, month: str) -> tuple[Key, ...]:
    """The ledger rows one hold counts against: the task's and all tasks' day and month."""
    return ((task, day), (task, month), (ALL_TASKS, day), (ALL_TASKS, month))


def _locked(conn: Connection, keys: Iterable[Key], now: datetime) -> dict[Key, dict[str, Any]]:
    """The ledger rows `keys`, created when missing, locked, as mutable mappings."""
    ordered = sorted(set(keys))
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    zeros = dict.fromkeys(_COUNTS, 0)
    conn.execute(
        dialect.insert(budget_ledger)
        .values([{"scope": s, "period": p, **zeros, "updated_at": now} for s, p in ordered])
        .on_conflict_do_nothing(index_elements=["scope", "period"])
    )
    c = budget_ledger.c
    statement = (
        select(budget_ledger)
        .where(tuple_(c.scope, c.period).in_(ordered))
        .order_by(c.scope, c.period)
    )
    if conn.dialect.name == "postgresql":
        statement = statement.with_for_update()
    return {(r["scope"], r["period"]): dict(r) for r in conn.execute(statement).mappings()}


def _write_back(
    conn: Connection, rows: Mapping[Key, dict[str, Any]], before: Mapping[Key, tuple[Any, ...]]
) -> None:
    c = budget_ledger.c
    for key, row in rows.items():
        if _state(row) == before[key]:
            continue
        conn.execute(
            update(budget_ledger)
            .where(c.scope == key[0], c.period == key[1])
            .values(
                **{name: row[name] for name in _COUNTS},
                soft_usd_at=row["soft_usd_at"],
                soft_calls_at=row["soft_calls_at"],
                updated_at=row["updated_at"],
            )
        )


def _state(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return (*(row[n] for n in _COUNTS), row["soft_usd_at"], row["soft_calls_at"])


def _lapse(
    conn: Connection, expired: Sequence[RowMapping], rows: Mapping[Key, dict[str, Any]]
) -> None:
    """Book holds that outlived their lifetime as spent at their worst case: the process that
    held them stopped before it could say what the call cost."""
    if not expired:
        return
    ids = [h["id"] for h in expired]
    gone = set(
        conn.execute(
            delete(budget_holds).where(budget_holds.c.id.in_(ids)).returning(budget_holds.c.id)
        ).scalars()
    )
    for hold in expired:
        if hold["id"] not in gone:
            continue  # settled or lapsed by another transaction meanwhile
        for key in hold_keys(hold["task"], hold["day"], hold["month"]):
            row = rows[key]
            row["reserved_nano"] -= hold["nano"]
            row["reserved_calls"] -= 1
            row["spent_nano"] += hold["nano"]
            row["spent_calls"] += 1
            row["lapsed_calls"] += 1


def _refusing(
    rows: Mapping[Key, Mapping[str, Any]], checks: Sequence[LimitCheck], nano: int
) -> LimitCheck | None:
    """The first limit one more call of `nano` would pass, if any."""
    for check in checks:
        row = rows[(check.scope, check.period)]
        if check.max_nano is not None and (
            row["spent_nano"] + row["reserved_nano"] + nano > check.max_nano
        ):
            return check
        if check.max_calls is not None and (
            row["spent_calls"] + row["reserved_calls"] + 1 > check.max_calls
        ):
            return check
    return None


def _mark_soft(
    rows: Mapping[Key, dict[str, Any]], checks: Sequence[LimitCheck], now: datetime
) -> list[SoftCrossing]:
    crossed: list[SoftCrossing] = []
    for check in checks:
        row = rows[(check.scope, check.period)]
        used_nano = row["spent_nano"] + row["reserved_nano"]
        used_calls = row["spent_calls"] + row["reserved_calls"]
        if check.soft_nano is not None and used_nano >= check.soft_nano and not row["soft_usd_at"]:
            row["soft_usd_at"] = now
            crossed.append(SoftCrossing(check.scope, check.period, "usd"))
        if (
            check.soft_calls is not None
            and used_calls >= check.soft_calls
            and not row["soft_calls_at"]
        ):
            row["soft_calls_at"] = now
            crossed.append(SoftCrossing(check.scope, check.period, "calls"))
    return crossed


def _ledger(row: Mapping[str, Any] | RowMapping) -> Ledger:
    return Ledger(row["scope"], row["period"], *(int(row[n]) for n in _COUNTS))


class CostRepository:
    """The budget ledger, its holds and the decision cache (`Store.costs`); each method is one
    transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ---- budgets

    def reserve(
        self,
        task: str,
        day: str,
        month: str,
        amounts: Sequence[int],
        checks: Sequence[LimitCheck],
        now: datetime,
        lifetime_seconds: float,
    ) -> Reserved:
        """Hold one call of each of `amounts` (nano-dollars), in order, while every check
        allows it; the first that does not fit and all after it are refused. Holds of `task`
        past their lifetime lapse first."""
        with self.engine.begin() as conn:
            expired = (
                conn.execute(
                    select(budget_holds).where(
                        budget_holds.c.task == task, budget_holds.c.expires_at <= now
                    )
                )
                .mappings()
                .all()
            )
            keys = {(c.scope, c.period) for c in checks} | set(hold_keys(task, day, month))
            for hold in expired:
                keys.update(hold_keys(hold["task"], hold["day"], hold["month"]))
            rows = _locked(conn, keys, now)
            before = {key: _state(row) for key, row in rows.items()}
            _lapse(conn, expired, rows)
            granted: list[dict[str, Any]] = []
            refused_by: LimitCheck | None = None
            until = now + timedelta(seconds=lifetime_seconds)
            for nano in amounts:
                refused_by = _refusing(rows, checks, nano)
                if refused_by is not None:
                    break
                for key in hold_keys(task, day, month):
                    rows[key]["reserved_nano"] += nano
                    rows[key]["reserved_calls"] += 1
                granted.append(
                    {
                        "id": new_id(),
                        "task": task,
                        "day": day,
                        "month": month,
                        "nano": nano,
                        "expires_at": until,
                    }
                )
            if granted:
                conn.execute(budget_holds.insert(), granted)
            crossed = _mark_soft(rows, checks, now)
            for row in rows.values():
                row["updated_at"] = now
            _write_back(conn, rows, before)
            return Reserved(
                tuple(h["id"] for h in granted),
                refused_by,
                tuple(_ledger(rows[(c.scope, c.period)]) for c in checks),
                tuple(crossed),
            )

    def settle(self, bookings: Sequence[Booking], now: datetime) -> Settled:
        """Book what held calls cost and delete their holds. A hold already gone (it lapsed,
        and was booked at its worst case) is left as it was booked."""
        if not bookings:
            return Settled(())
        by_id = {b.hold_id: b for b in bookings}
        with self.engine.begin() as conn:
            holds = (
                conn.execute(select(budget_holds).where(budget_holds.c.id.in_(list(by_id))))
                .mappings()
                .all()
            )
            if not holds:
                return Settled(())
            keys = {k for h in holds for k in hold_keys(h["task"], h["day"], h["month"])}
            rows = _locked(conn, keys, now)
            before = {key: _state(row) for key, row in rows.items()}
            gone = set(
                conn.execute(
                    delete(budget_holds)
                    .where(budget_holds.c.id.in_([h["id"] for h in holds]))
                    .returning(budget_holds.c.id)
                ).scalars()
            )
            for hold in holds:
                if hold["id"] not in gone:
                    continue
                booking = by_id[hold["id"]]
                for key in hold_keys(hold["task"], hold["day"], hold["month"]):
                    row = rows[key]
                    row["reserved_nano"] -= hold["nano"]
                    row["reserved_calls"] -= 1
                    if booking.called:
                        row["spent_nano"] += booking.nano
                        row["spent_calls"] += 1
                    row["updated_at"] = now
            _write_back(conn, rows, before)
            return Settled(tuple(_ledger(r) for r in rows.values()))

    def ledgers(self, keys: Iterable[Key]) -> list[Ledger]:
        """The ledger rows `keys` (a row never written reads as zero), in the order given."""
        wanted = list(keys)
        c = budget_ledger.c
        with database.read(self.engine) as conn:
            found = {
                (r["scope"], r["period"]): _ledger(r)
                for r in conn.execute(
                    select(budget_ledger).where(tuple_(c.scope, c.period).in_(wanted))
                ).mappings()
            }
        return [found.get(key, Ledger(*key)) for key in wanted]

    def holds(self, task: str) -> HoldInfo:
        """How many calls of `task` are held now, and when the first of them lapses."""
        c = budget_holds.c
        with database.read(self.engine) as conn:
            count, oldest = conn.execute(
                select(func.count(), func.min(c.expires_at)).where(c.task == task)
            ).one()
        return HoldInfo(int(count), database.aware(oldest) if oldest is not None else None)

    # ---- the decision cache

    def cached(
        self, task: str, release_hash: str, input_hashes: Sequence[str], now: datetime
    ) -> list[Reused]:
        """Unexpired answers of this release for these inputs, with their decisions' output."""
        c, d = decision_cache.c, decisions.c
        with database.read(self.engine) as conn:
            rows = conn.execute(
                select(c.input_hash, d.id, d.output, d.confidence, d.alternatives, d.reason)
                .join(decisions, d.id == c.decision_id)
                .where(
                    c.task == task,
                    c.release_hash == release_hash,
                    c.input_hash.in_(list(dict.fromkeys(input_hashes))),
                    c.expires_at > now,
                    d.output.is_not(None),
                )
            ).all()
        return [
            Reused(row[0], row[1], row[2], row[3], row[4], row[5])
            for row in rows
            if row[2] is not None  # a JSON null (an output blanked since) is no answer
        ]

    def keep(
        self, task: str, release_hash: str, answers: Mapping[str, str], expires_at: datetime
    ) -> None:
        """Remember `answers` (decision id by input hash) until `expires_at`; a newer answer
        for the same input replaces the older one."""
        if not answers:
            return
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(decision_cache)
        statement = statement.on_conflict_do_update(
            index_elements=["task", "release_hash", "input_hash"],
            set_={
                "decision_id": statement.excluded.decision_id,
                "expires_at": statement.excluded.expires_at,
            },
        )
        rows = [
            {
                "task": task,
                "release_hash": release_hash,
                "input_hash": digest,
                "decision_id": decision_id,
                "expires_at": expires_at,
            }
            for digest, decision_id in sorted(answers.items())
        ]
        with self.engine.begin() as conn:
            conn.execute(statement, rows)

    def saving(self, task: str, since: datetime, until: datetime) -> Saving:
        """Decisions of `task` answered from the cache in [since, until), and the cost of the
        decisions whose answers they reused."""
        reused = decisions.alias()  # Core: no need to load the ORM
        d = decisions.c
        with database.read(self.engine) as conn:
            hits, saved = conn.execute(
                select(func.count(), func.coalesce(func.sum(reused.c.cost), 0.0))
                .select_from(decisions)
                .join(reused, reused.c.id == d.cached_from)
                .where(
                    and_(
                        d.task == task,
                        d.cached_from.is_not(None),
                        d.created_at >= since,
                        d.created_at < until,
                    )
                )
            ).one()
        return Saving(int(hits), round(float(saved) * 1_000_000_000))


class AsyncCostRepository:
    """The costs for async callers (the budget guard, the cache): reads in reader threads,
    writes in the database's one writer thread (see `StoreExecutor`)."""

    def __init__(self, costs: CostRepository, executor: StoreExecutor) -> None:
        self.costs = costs
        self.executor = executor

    async def reserve(
        self,
        task: str,
        day: str,
        month: str,
        amounts: Sequence[int],
        checks: Sequence[LimitCheck],
        now: datetime,
        lifetime_seconds: float,
    ) -> Reserved:
        return await self.executor.write(
            self.costs.reserve, task, day, month, amounts, checks, now, lifetime_seconds
        )

    async def settle(self, bookings: Sequence[Booking], now: datetime) -> Settled:
        # Safe to repeat: a hold settled once is gone, and a second try books nothing.
        return await self.executor.write_idempotent(self.costs.settle, bookings, now)

    async def ledgers(self, keys: Iterable[Key]) -> list[Ledger]:
        return await self.executor.read(self.costs.ledgers, list(keys))

    async def cached(
        self, task: str, release_hash: str, input_hashes: Sequence[str], now: datetime
    ) -> list[Reused]:
        return await self.executor.read(self.costs.cached, task, release_hash, input_hashes, now)

    async def keep(
        self, task: str, release_hash: str, answers: Mapping[str, str], expires_at: datetime
    ) -> None:
        await self.executor.write_idempotent(
            self.costs.keep, task, release_hash, answers, expires_at
        )
