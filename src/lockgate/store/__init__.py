"""Storage: one `Store` per process, built from a database URL; SQL stays in this package."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text

from lockgate.decide.decision import Decision
from lockgate.delivery.sinks import DeliveryResult, OutboxRow
from lockgate.errors import Conflict, NotFound
from lockgate.evals.datasets import Dataset, DatasetRow
from lockgate.evals.datasets import content_hash as dataset_content_hash
from lockgate.evals.run import EvalRun
from lockgate.rollout.release import Release
from lockgate.security import ApiKey, Role, hash_key, new_key
from lockgate.store import audit, database, keys
from lockgate.store import datasets as dataset_queries
from lockgate.store import decisions as decision_queries
from lockgate.store import evals as eval_queries
from lockgate.store import outbox as outbox_queries
from lockgate.store import releases as release_queries
from lockgate.store.audit import AuditEntry
from lockgate.store.decisions import DecisionFilter
from lockgate.store.reviews import ReviewStore
from lockgate.store.rollout import Rollouts

__all__ = ["AuditEntry", "DecisionFilter", "EvalRun", "Store"]


class Store:
    """Repository facade over one engine. Each method is one transaction."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine = database.make_engine(url)
        if migrate:
            database.upgrade(self.engine)

    @property
    def reviews(self) -> ReviewStore:
        """The review queue: claims, verdicts, escalation (`store.reviews`)."""
        return ReviewStore(self.engine)

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

    @property
    def rollout(self) -> Rollouts:
        """Shadow and canary stages, shadow runs, canary health, the evals a gate reads."""
        return Rollouts(self.engine)

    # ---- releases

    def releases(self, task: str) -> list[Release]:
        with database.read(self.engine) as conn:
            return release_queries.list_for(conn, task)

    def release(self, task: str, number: int) -> Release:
        with database.read(self.engine) as conn:
            return release_queries.get(conn, task, number)

    def live_release(self, task: str) -> Release | None:
        with database.read(self.engine) as conn:
            return release_queries.live(conn, task)

    def create_release(self, draft: Release, actor: str) -> tuple[Release, bool]:
        """Store a new release, or return the existing one with the same content (and False)."""
        with self.engine.begin() as conn:
            existing = release_queries.by_hash(conn, draft.task, draft.content_hash)
            if existing is not None:
                return existing, False
            return release_queries.create(conn, draft, actor), True

    def promote(self, task: str, number: int, actor: str, reason: str | None = None) -> Release:
        with self.engine.begin() as conn:
            return release_queries.promote(conn, task, number, actor, reason)

    def rollback(self, task: str, actor: str, reason: str | None = None) -> Release:
        with self.engine.begin() as conn:
            return release_queries.rollback(conn, task, actor, reason)

    # ---- decisions

    def find_decisions(self, task: str, keys: Iterable[str]) -> dict[str, Decision]:
        with database.read(self.engine) as conn:
            return decision_queries.by_keys(conn, task, keys)

    def decision(self, decision_id: str) -> Decision | None:
        with database.read(self.engine) as conn:
            return decision_queries.get(conn, decision_id)

    def save_decisions(
        self, batch: Sequence[Decision], sinks: Sequence[str] = ()
    ) -> list[Decision]:
        """Commit a batch in one transaction. Where another writer stored a decision under the
        same idempotency key first, that stored decision is returned in its place."""
        with self.engine.begin() as conn:
            inserted = decision_queries.insert_many(conn, batch, sinks)
            lost = [d.idempotency_key for d in batch if d.id not in inserted]
            winners = decision_queries.by_keys(conn, batch[0].task, lost) if lost else {}
        return [d if d.id in inserted else winners[d.idempotency_key] for d in batch]

    def decision_page(self, query: DecisionFilter) -> list[Decision]:
        """Decisions newest first, `query.limit + 1` at most (see `decisions.page`)."""
        with database.read(self.engine) as conn:
            return decision_queries.page(conn, query)

    # ---- API keys

    def create_key(
        self, name: str, role: Role, tasks: Sequence[str], actor: str
    ) -> tuple[ApiKey, str]:
        """Store a new key (only its hash) and return it with the secret, shown once."""
        secret = new_key()
        with self.engine.begin() as conn:
            key = keys.create(conn, name, role, tasks, hash_key(secret), actor)
        return key, secret

    def keys(self) -> list[ApiKey]:
        with database.read(self.engine) as conn:
            return keys.list_all(conn)

    def revoke_key(self, name_or_id: str, actor: str) -> ApiKey:
        with self.engine.begin() as conn:
            return keys.revoke(conn, name_or_id, actor)

    def authenticate(self, secret: str) -> ApiKey | None:
        """The live key with this secret, or None (unknown or revoked)."""
        with database.read(self.engine) as conn:
            key = keys.by_hash(conn, hash_key(secret))
        if key is None or key.revoked or not key.matches(secret):
            return None
        return key

    # ---- datasets and eval runs

    def add_dataset(
        self,
        task: str,
        name: str,
        rows: Sequence[DatasetRow],
        *,
        sealed: bool,
        source: str | None,
        actor: str,
    ) -> tuple[Dataset, bool]:
        """Store a dataset; returns it and whether anything changed. A sealed dataset is never
        replaced: adding it again is a no-op with the same content, else a `Conflict`."""
        digest = dataset_content_hash(rows)
        with self.engine.begin() as conn:
            previous = dataset_queries.get(conn, task, name)
            if previous is not None and previous.sealed:
                if previous.content_hash == digest:
                    return previous, False
                raise Conflict(
                    f"dataset {name!r} of task {task!r} is sealed and cannot change "
                    f"(sealed content {previous.content_hash[:12]}, this file "
                    f"{digest[:12]})",
                    hint="add the new data under another name; a sealed set stays as it was",
                )
            if (
                previous is not None
                and previous.content_hash == digest
                and previous.sealed == sealed
            ):
                return previous, False
            stored = dataset_queries.replace(
                conn,
                task=task,
                name=name,
                sealed=sealed,
                content_hash=digest,
                source=source,
                new_rows=rows,
                actor=actor,
                previous=previous,
            )
        return stored, True

    def datasets(self, task: str | None = None) -> list[Dataset]:
        with database.read(self.engine) as conn:
            return dataset_queries.list_for(conn, task)

    def dataset(self, task: str, name: str) -> Dataset:
        with database.read(self.engine) as conn:
            found = dataset_queries.get(conn, task, name)
        if found is None:
            raise NotFound(
                f"task {task!r} has no dataset {name!r}",
                hint=f"`lockgate dataset list {task}` shows its datasets; "
                f"`lockgate dataset add {task} {name} FILE` adds one",
            )
        return found

    def dataset_rows(self, dataset: Dataset) -> list[DatasetRow]:
        with database.read(self.engine) as conn:
            return dataset_queries.rows(conn, dataset.id)

    def sealed_inputs(self, task: str) -> dict[str, str]:
        """Input hash -> name of the sealed dataset of `task` that holds it."""
        with database.read(self.engine) as conn:
            return dataset_queries.sealed_inputs(conn, task)

    def save_eval(
        self,
        *,
        task: str,
        release: int,
        dataset: Dataset,
        repeat: int,
        metrics: Mapping[str, Any],
        report: Mapping[str, Any],
        actor: str,
    ) -> EvalRun:
        with self.engine.begin() as conn:
            return eval_queries.insert(
                conn,
                task=task,
                release=release,
                dataset=dataset.name,
                dataset_hash=dataset.content_hash,
                repeat=repeat,
                metrics=metrics,
                report=report,
                actor=actor,
            )

    def latest_eval(self, task: str, release: int, dataset: str) -> EvalRun | None:
        """The newest eval run of `task@release` on the dataset named `dataset`, or None."""
        with database.read(self.engine) as conn:
            return eval_queries.latest(conn, task, release, dataset)

    def eval_runs(self, task: str, release: int | None = None) -> list[EvalRun]:
        with database.read(self.engine) as conn:
            return eval_queries.list_for(conn, task, release)

    def create_calibrated_release(
        self, draft: Release, actor: str, figures: Mapping[str, Any]
    ) -> tuple[Release, bool]:
        """Store `draft` (or find the release with its content) and audit `policy.calibrate`
        with the figures, in one transaction."""
        with self.engine.begin() as conn:
            existing = release_queries.by_hash(conn, draft.task, draft.content_hash)
            release = existing or release_queries.create(conn, draft, actor)
            audit.append(
                conn,
                actor=actor,
                action="policy.calibrate",
                task=draft.task,
                subject=release.ref,
                details=dict(figures),
            )
        return release, existing is None

    # ---- delivery outbox

    def claim_deliveries(
        self, worker: str, limit: int, lease_seconds: float, now: datetime | None = None
    ) -> list[OutboxRow]:
        """Lease up to `limit` due outbox rows to `worker` (see `outbox.claim`)."""
        with self.engine.begin() as conn:
            return outbox_queries.claim(conn, worker, limit, lease_seconds, now)

    def finish_deliveries(self, worker: str, results: Sequence[DeliveryResult]) -> int:
        with self.engine.begin() as conn:
            return outbox_queries.finish(conn, worker, results)

    def outbox_depth(self) -> dict[str, int]:
        with database.read(self.engine) as conn:
            return outbox_queries.depth(conn)

    def deliveries(
        self,
        *,
        status: str | None = None,
        task: str | None = None,
        decision_id: str | None = None,
        limit: int = 100,
    ) -> list[OutboxRow]:
        with database.read(self.engine) as conn:
            return outbox_queries.listing(
                conn, status=status, task=task, decision_id=decision_id, limit=limit
            )

    def retry_deliveries(self, refs: Sequence[str], actor: str) -> list[OutboxRow]:
        """Dead rows (by outbox id or decision id) back to pending, audited."""
        with self.engine.begin() as conn:
            return outbox_queries.retry(conn, refs, actor)

    def replay_deliveries(
        self,
        actor: str,
        *,
        decision_id: str | None = None,
        since: datetime | None = None,
        task: str | None = None,
    ) -> list[OutboxRow]:
        """Delivered rows back to pending, to be sent again; audited."""
        with self.engine.begin() as conn:
            return outbox_queries.replay(
                conn, actor, decision_id=decision_id, since=since, task=task
            )

    # ---- audit

    def audit_entries(
        self,
        task: str | None = None,
        *,
        actor: str | None = None,
        action: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        with database.read(self.engine) as conn:
            return audit.entries(conn, task, actor=actor, action=action, limit=limit)

    def audit_break(self) -> audit.Break | None:
        """The first entry where the hash chain fails, with why; None when it holds."""
        with database.read(self.engine) as conn:
            return audit.first_break(conn)

    def verify_audit(self) -> int | None:
        with database.read(self.engine) as conn:
            return audit.verify(conn)
