"""Storage: one `Store` per process, built from a database URL; SQL stays in this package.

`Store` holds one repository per domain over a shared engine (`store.releases`,
`store.decisions`, `store.keys`, `store.datasets`, `store.evals`, `store.outbox`,
`store.audit`, `store.reviews`, `store.rollout`, `store.sessions`, `store.intake`,
`store.leases`, `store.costs`); each repository method is one transaction.
Domain code depends on small Protocols of its own that these repositories satisfy.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from lockgate.errors import retry_after_seconds
from lockgate.evals.types import EvalRun
from lockgate.store import database
from lockgate.store.alerts import AlertRepository, AsyncAlertRepository
from lockgate.store.artifacts import ArtifactRepository
from lockgate.store.audit import AuditEntry, AuditRepository
from lockgate.store.costs import AsyncCostRepository, CostRepository
from lockgate.store.dashboard import DashboardRepository
from lockgate.store.datasets import DatasetRepository
from lockgate.store.decisions import AsyncDecisionRepository, DecisionFilter, DecisionRepository
from lockgate.store.erasure import ErasureRepository
from lockgate.store.evals import EvalRepository
from lockgate.store.executor import StoreExecutor
from lockgate.store.history import AsyncHistoryRepository, HistoryRepository
from lockgate.store.intake import AsyncIntakeRepository, IntakeRepository
from lockgate.store.keys import KeyRepository
from lockgate.store.leases import AsyncLeaseRepository, LeaseRepository
from lockgate.store.outbox import OutboxRepository
from lockgate.store.quality import QualityRepository
from lockgate.store.releases import ReleaseRepository
from lockgate.store.retention import RetentionRepository
from lockgate.store.reviews import ReviewRepository
from lockgate.store.rollout import RolloutRepository
from lockgate.store.sessions import SessionRepository

__all__ = ["AuditEntry", "DecisionFilter", "EvalRun", "Store"]


class Store:
    """The repositories over one engine, built once; migrates the database on opening.

    With `project_dir` (the commands and the server pass it), a SQLite file outside the
    project that is not a Lockgate database yet is refused instead of created; `lockgate db
    upgrade` creates one there on purpose.

    `timeout_seconds` bounds every wait on the database (a held write lock, a connection);
    past it a call raises, and through `executor` it raises `Unavailable`.
    """

    def __init__(
        self,
        url: str,
        *,
        migrate: bool = True,
        timeout_seconds: float = 60.0,
        project_dir: Path | None = None,
    ) -> None:
        if project_dir is not None:
            database.refuse_a_stranger_sqlite_file(url, project_dir)
        self.url = url
        self.engine = database.make_engine(url, timeout_seconds=timeout_seconds)
        self.executor = StoreExecutor(retry_after_seconds=retry_after_seconds(timeout_seconds))
        """Runs store calls off the event loop: reads in threads, writes in one thread."""
        if migrate:
            database.upgrade(self.engine)
        self.releases = ReleaseRepository(self.engine)
        self.decisions = DecisionRepository(self.engine)
        self.async_decisions = AsyncDecisionRepository(self.decisions, self.executor)
        """The decisions for async code (the pipeline): through `executor`."""
        self.keys = KeyRepository(self.engine)
        self.datasets = DatasetRepository(self.engine)
        self.evals = EvalRepository(self.engine)
        self.outbox = OutboxRepository(self.engine)
        self.audit = AuditRepository(self.engine)
        self.reviews = ReviewRepository(self.engine)
        """The review queue: claims, verdicts, escalation."""
        self.rollout = RolloutRepository(self.engine)
        """Shadow and canary stages, shadow runs, canary health, the evals a gate reads."""
        self.sessions = SessionRepository(self.engine)
        """The review pages' sessions, kept server-side."""
        self.artifacts = ArtifactRepository(self.engine)
        """The bytes of the model files releases pin, by sha256."""
        self.intake = IntakeRepository(self.engine)
        """Sources' cursors and counters, quarantine, duplicates, schema events."""
        self.async_intake = AsyncIntakeRepository(self.intake, self.executor)
        self.leases = LeaseRepository(self.engine)
        """Named leases: one replica at a time runs a background job."""
        self.async_leases = AsyncLeaseRepository(self.leases, self.executor)
        self.history = HistoryRepository(self.engine)
        """Roll-up cells: decisions per task and release by the minute, hour and day."""
        self.async_history = AsyncHistoryRepository(self.history, self.executor)
        self.alerts = AlertRepository(self.engine, self.history)
        """Alert state and silences, and the live signals alert conditions read."""
        self.async_alerts = AsyncAlertRepository(self.alerts, self.executor)
        self.retention = RetentionRepository(self.engine)
        """The retention sweep: what tasks keep past their `retention:` is blanked."""
        self.erasure = ErasureRepository(self.engine)
        """Every stored trace of one data subject, erased."""
        self.costs = CostRepository(self.engine)
        """Budget ledgers and holds, the decision cache."""
        self.async_costs = AsyncCostRepository(self.costs, self.executor)
        self.quality = QualityRepository(self.engine)
        """Live quality: spot checks, feedback, drift's decisions and reference profiles."""
        self.dashboard = DashboardRepository(self.engine)
        """The dashboard's reads: history summed per chart bucket, judgment counts, releases."""

    @property
    def display_url(self) -> str:
        return database.redact_url(self.url)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.executor.close()
        self.engine.dispose()

    def migration_state(self) -> tuple[str | None, str | None]:
        return database.migration_state(self.engine)

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with database.read(self.engine) as conn:
            conn.execute(text("SELECT 1"))
