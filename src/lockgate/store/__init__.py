"""Storage: one `Store` per process, built from a database URL; SQL stays in this package.

`Store` holds one repository per domain over a shared engine (`store.releases`,
`store.decisions`, `store.keys`, `store.datasets`, `store.evals`, `store.outbox`,
`store.audit`, `store.reviews`, `store.rollout`); each repository method is one transaction.
Domain code depends on small Protocols of its own that these repositories satisfy.
"""

from __future__ import annotations

from sqlalchemy import text

from lockgate.evals.types import EvalRun
from lockgate.store import database
from lockgate.store.audit import AuditEntry, AuditRepository
from lockgate.store.datasets import DatasetRepository
from lockgate.store.decisions import DecisionFilter, DecisionRepository
from lockgate.store.evals import EvalRepository
from lockgate.store.keys import KeyRepository
from lockgate.store.outbox import OutboxRepository
from lockgate.store.releases import ReleaseRepository
from lockgate.store.reviews import ReviewRepository
from lockgate.store.rollout import RolloutRepository

__all__ = ["AuditEntry", "DecisionFilter", "EvalRun", "Store"]


class Store:
    """The repositories over one engine, built once; migrates the database on opening."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine = database.make_engine(url)
        if migrate:
            database.upgrade(self.engine)
        self.releases = ReleaseRepository(self.engine)
        self.decisions = DecisionRepository(self.engine)
        self.keys = KeyRepository(self.engine)
        self.datasets = DatasetRepository(self.engine)
        self.evals = EvalRepository(self.engine)
        self.outbox = OutboxRepository(self.engine)
        self.audit = AuditRepository(self.engine)
        self.reviews = ReviewRepository(self.engine)
        """The review queue: claims, verdicts, escalation."""
        self.rollout = RolloutRepository(self.engine)
        """Shadow and canary stages, shadow runs, canary health, the evals a gate reads."""

    @property
    def display_url(self) -> str:
        return database.redact_url(self.url)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def migration_state(self) -> tuple[str | None, str | None]:
        return database.migration_state(self.engine)

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with database.read(self.engine) as conn:
            conn.execute(text("SELECT 1"))
