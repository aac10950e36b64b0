"""Alert state, silences and the live signals alert conditions read.

A rule's state changes in one transaction with its audit entry (`alert.firing`,
`alert.repeat`, `alert.resolved`); the evaluator sends the notice only after that commit, so
a restarted `lockgate serve` finds the notice already recorded and does not send it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, and_, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from lockgate.decide.decision import utcnow
from lockgate.store import audit, database
from lockgate.store.database import aware
from lockgate.store.executor import StoreExecutor
from lockgate.store.history import HistoryRepository
from lockgate.store.tables import alert_silences, alert_state, audit_log, decisions, outbox
from lockgate.watch.types import AlertState, Backlog, Silence

ACTOR = "lockgate"


def _maybe(value: datetime | None) -> datetime | None:
    return aware(value) if value is not None else None


def _state(row: RowMapping) -> AlertState:
    return AlertState(
        task=row["task"],
        rule=row["rule"],
        firing=bool(row["firing"]),
        episode=row["episode"],
        value=row["value"],
        started_at=_maybe(row["started_at"]),
        last_sent_at=_maybe(row["last_sent_at"]),
        resolved_at=_maybe(row["resolved_at"]),
    )


def _silence(row: RowMapping) -> Silence:
    return Silence(
        row["id"], row["rule"], row["task"], aware(row["until"]), row["actor"],
        aware(row["created_at"]),
    )  # fmt: skip


class AlertRepository:
    """Alert state and silences over one engine (`Store.alerts`), and the signals conditions
    read (`SignalReader`); each method is one transaction."""

    def __init__(self, engine: Engine, history: HistoryRepository) -> None:
        self.engine = engine
        self.history = history

    # ---- state

    def states(self) -> dict[tuple[str, str], AlertState]:
        with database.read(self.engine) as conn:
            rows = conn.execute(select(alert_state)).mappings().all()
        return {(r["task"], r["rule"]): _state(r) for r in rows}

    def transition(
        self,
        state: AlertState,
        previous: AlertState | None,
        notice: Mapping[str, Any] | None = None,
    ) -> bool:
        """Store `state` if the rule still stands at `previous` (another evaluator has not
        moved it), with an audit entry for `notice`; False when it had moved."""
        values = {
            "firing": state.firing,
            "episode": state.episode,
            "value": state.value,
            "started_at": state.started_at,
            "last_sent_at": state.last_sent_at,
            "resolved_at": state.resolved_at,
            "updated_at": utcnow(),
        }
        c = alert_state.c
        with self.engine.begin() as conn:
            if previous is None:
                dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
                done = conn.execute(
                    dialect.insert(alert_state)
                    .values(task=state.task, rule=state.rule, **values)
                    .on_conflict_do_nothing(index_elements=["task", "rule"])
                    .returning(c.task)
                ).first()
                if done is None:
                    return False
            else:
                moved = conn.execute(
                    update(alert_state)
                    .where(
                        c.task == state.task,
                        c.rule == state.rule,
                        c.episode == previous.episode,
                        c.firing == previous.firing,
                    )
                    .values(**values)
                )
                if moved.rowcount != 1:
                    return False
            if notice is not None:
                _audit(conn, f"alert.{notice['kind']}", state.task, state.rule, notice)
        return True

    # ---- silences

    def silence(self, rule: str, until: datetime, actor: str, task: str | None = None) -> Silence:
        """No notices for `rule` (on `task`, or every task) until `until`; audited."""
        now = utcnow()
        with self.engine.begin() as conn:
            new_id = conn.execute(
                insert(alert_silences)
                .values(rule=rule, task=task, until=until, actor=actor, created_at=now)
                .returning(alert_silences.c.id)
            ).scalar_one()
            audit.append(
                conn,
                actor=actor,
                action="alert.silenced",
                task=task,
                subject=rule,
                details={"until": until.isoformat()},
            )
        return Silence(new_id, rule, task, until, actor, now)

    def silences(self, now: datetime | None = None) -> list[Silence]:
        """The silences still in force."""
        now = now or utcnow()
        with database.read(self.engine) as conn:
            rows = conn.execute(
                select(alert_silences)
                .where(alert_silences.c.until > now)
                .order_by(alert_silences.c.id)
            ).mappings()
            return [_silence(r) for r in rows]

    # ---- signals (`lockgate.watch.conditions.SignalReader`)

    def backlog(self, task: str) -> list[Backlog]:
        return self.history.backlog(task)

    def dead_letters(self, task: str) -> int:
        with database.read(self.engine) as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(outbox.join(decisions, decisions.c.id == outbox.c.decision_id))
                    .where(outbox.c.status == "dead", decisions.c.task == task)
                ).scalar_one()
            )

    def audit_count(self, task: str, action: str, since: datetime) -> int:
        a = audit_log.c
        with database.read(self.engine) as conn:
            return int(
                conn.execute(
                    select(func.count()).where(
                        and_(a.task == task, a.action == action, a.at >= since)
                    )
                ).scalar_one()
            )

    def last_decision_at(self, task: str) -> datetime | None:
        return self.history.last_decision_at(task)


def _audit(conn: Connection, action: str, task: str, rule: str, notice: Mapping[str, Any]) -> None:
    details = {
        k: notice[k]
        for k in ("condition", "severity", "value", "threshold", "window", "episode", "silenced")
        if k in notice
    }
    audit.append(conn, actor=ACTOR, action=action, task=task, subject=rule, details=details)


class AsyncAlertRepository:
    """The alert state for serve's evaluator: writes through the store's writer thread."""

    def __init__(self, alerts: AlertRepository, executor: StoreExecutor) -> None:
        self.alerts = alerts
        self.executor = executor

    async def states(self) -> dict[tuple[str, str], AlertState]:
        return await self.executor.read(self.alerts.states)

    async def silences(self, now: datetime) -> list[Silence]:
        return await self.executor.read(self.alerts.silences, now)

    async def transition(
        self, state: AlertState, previous: AlertState | None, notice: Mapping[str, Any] | None
    ) -> bool:
        return await self.executor.write(self.alerts.transition, state, previous, notice)
