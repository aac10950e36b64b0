"""What the readiness report reads beyond the other repositories, and the two facts it keeps:
when each alert channel was last tested (`lockgate alerts test`), and which release the
runbook was last written for (`lockgate runbook`). Both are small named facts in
`project_state`; the report's rules live in `lockgate.watch.readiness`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from lockgate.decide.decision import utcnow
from lockgate.store import backups, database
from lockgate.store.state import read_state, write_state
from lockgate.store.tables import audit_log, decisions, outbox, project_state

_CHANNEL = "alerts.tested."
_RUNBOOK = "runbook."


class ReadinessRepository:
    """Reads for `lockgate readiness` over one engine; each method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ---- facts it keeps

    def note_channel_tested(self, channel: str, at: datetime | None = None) -> None:
        """A test notice reached `channel` (`lockgate alerts test`)."""
        with self.engine.begin() as conn:
            write_state(conn, _CHANNEL + channel, (at or utcnow()).isoformat())

    def channel_tests(self) -> dict[str, datetime]:
        """When each channel last received a test notice."""
        query = select(project_state.c.name, project_state.c.value).where(
            project_state.c.name.startswith(_CHANNEL)
        )
        with database.read(self.engine) as conn:
            rows = conn.execute(query).all()
        return {name[len(_CHANNEL) :]: datetime.fromisoformat(value) for name, value in rows}

    def note_runbook(self, task: str, release: str, content_hash: str) -> None:
        """`lockgate runbook` wrote the runbook of `release` (its content hash)."""
        value = json.dumps({"release": release, "hash": content_hash, "at": utcnow().isoformat()})
        with self.engine.begin() as conn:
            write_state(conn, _RUNBOOK + task, value)

    def runbook(self, task: str) -> Mapping[str, Any] | None:
        """The release the runbook was last written for: {release, hash, at}."""
        with database.read(self.engine) as conn:
            value = read_state(conn, _RUNBOOK + task)
        return json.loads(value) if value else None

    # ---- reads

    def dead_letters(self, task: str) -> int:
        query = (
            select(func.count())
            .select_from(outbox.join(decisions, outbox.c.decision_id == decisions.c.id))
            .where(outbox.c.status == "dead", decisions.c.task == task)
        )
        with database.read(self.engine) as conn:
            return int(conn.execute(query).scalar_one())

    def audited(self, task: str, actions: tuple[str, ...]) -> list[tuple[str, str | None, dict]]:
        """(action, subject, details) of the task's audit entries with these actions, oldest
        first."""
        query = (
            select(audit_log.c.action, audit_log.c.subject, audit_log.c.details)
            .where(audit_log.c.task == task, audit_log.c.action.in_(actions))
            .order_by(audit_log.c.id)
        )
        with database.read(self.engine) as conn:
            return [(a, s, dict(d or {})) for a, s, d in conn.execute(query)]

    def newest_backup(self) -> datetime | None:
        found = backups.newest(self.engine)
        return found.at if found is not None else None
