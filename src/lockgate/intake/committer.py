"""The pipeline's `DecisionStore` for one intake batch: the batch's decisions and the source's
progress (cursor, counters, quarantine, duplicates) are committed in one transaction.

The pipeline may save a batch in parts (a canary beside the live release decides its share as
a batch of its own); the parts are held and committed together with the progress, so the
cursor never moves past a record whose decision is not stored, nor a decision past its cursor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from lockgate.decide.decision import Decision
from lockgate.decide.pipeline import Pipeline
from lockgate.intake.types import Progress, SourceState


class IntakeStore(Protocol):
    """What the intake needs from storage (`Store.async_intake`)."""

    async def find(self, task: str, keys: Sequence[str]) -> Mapping[str, Decision]: ...

    async def seen(self, task: str, hashes: Sequence[str], since: datetime) -> Mapping[str, str]:
        """Content hashes first decided since `since`, to the key of that decision."""
        ...

    async def commit(
        self,
        parts: Sequence[tuple[Sequence[Decision], Sequence[str]]],
        progress: Progress | None = None,
    ) -> list[list[Decision]]:
        """Store each part's decisions (with outbox rows for its sinks) and the progress in
        one transaction; per part, the stored decisions."""
        ...

    async def state(self, task: str, source: str) -> SourceState | None: ...

    async def failed(
        self, task: str, source: str, error: str, retry_at: datetime, report_after: int
    ) -> SourceState: ...


class BatchCommitter:
    """A `DecisionStore` for one batch: saves are held until the one that completes
    `expected`, then every part is committed with `progress` in one transaction."""

    def __init__(self, store: IntakeStore, progress: Progress, expected: set[str]) -> None:
        self.store = store
        self.progress = progress
        self.pending = set(expected)
        self.parts: list[tuple[Sequence[Decision], Sequence[str]]] = []
        self.committed = False

    async def find(self, task: str, keys: Sequence[str]) -> Mapping[str, Decision]:
        return await self.store.find(task, keys)

    async def save(self, batch: Sequence[Decision], sinks: Sequence[str] = ()) -> list[Decision]:
        self.pending.difference_update(d.idempotency_key for d in batch)
        self.parts.append((batch, sinks))
        if self.pending:
            # A canary's share comes first: held, so nothing is stored before the whole batch.
            return list(batch)
        stored = await self.store.commit(self.parts, self.progress)
        self.committed = True
        return stored[-1]

    async def finish(self) -> None:
        """Commit what no save carried: the progress of a batch settled before the model
        chain, or held parts if the pipeline stopped short."""
        if not self.committed:
            await self.store.commit(self.parts, self.progress)
            self.committed = True


def pipeline_for(base: Pipeline, committer: BatchCommitter) -> Pipeline:
    """The process's pipeline (its breakers, retries, observer, budgets and cache) storing
    through `committer`."""
    return base.with_store(committer)
