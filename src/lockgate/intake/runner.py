"""One source's records through mapping, schema drift, de-duplication and quarantine into
decisions, a batch at a time; each batch is one commit with the source's new cursor.

Every record read ends in exactly one of: decided (a new decision), duplicate (linked to the
decision of the first), or quarantined (with its reason), and the source's counters say so:
records = decided + duplicates + quarantined + discarded.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from lockgate.decide.guards import Refusal
from lockgate.decide.pipeline import DecisionRequest, Pipeline, ReleaseRuntime
from lockgate.decide.sources import SourceBase
from lockgate.decide.task import TaskSpec
from lockgate.intake import drift
from lockgate.intake.committer import BatchCommitter, IntakeStore, pipeline_for
from lockgate.intake.mapping import Mapped, Mapper, Unmappable
from lockgate.intake.types import Duplicate, Progress, Quarantined, SchemaEvent


@dataclass(frozen=True)
class Incoming:
    """One record as a source read it."""

    position: str
    """Where it was (`FILE row N`, `uid N`, ...): shown with a quarantined record."""
    values: Mapping[str, Any] | None
    """Field names to values; None when the record could not be read at all."""
    problem: str | None = None
    """Why it could not be read (an invalid JSON line, a short row, ...)."""
    context: Mapping[str, Any] = field(default_factory=dict)
    """Values for the key template that are not fields (file, row, uid, ...)."""
    quarantine_id: int | None = None
    """Set when the record is replayed from quarantine."""
    unreadable: Any = None
    """What could be read of an unreadable record (its line, its cells), kept in quarantine."""


UNREADABLE = "_unreadable"
"""The one key of a quarantined record that could not be read: what was read of it."""


@dataclass
class BatchOutcome:
    counts: Counter[str] = field(default_factory=Counter)
    events: list[SchemaEvent] = field(default_factory=list)
    stopped: str | None = None
    """Why the source stopped (schema drift with `on_drift: stop`); nothing was committed
    but the event."""


Cursor = Mapping[str, Any] | Callable[[Counter[str]], Mapping[str, Any]] | None


class IntakeMetrics(Protocol):
    """Where the intake counts what it did (`monitor.metrics.Metrics` satisfies it)."""

    def record_intake(self, task: str, source: str, counts: Mapping[str, int]) -> None: ...

    def record_schema_event(self, task: str, source: str, kind: str) -> None: ...

    def record_read_failure(self, task: str, source: str) -> None: ...


class SourceStopped(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class BudgetGate(Protocol):
    """Whether the task's budget lets a source read on (`costs.budgets.BudgetGuard`)."""

    async def reached(self, task: TaskSpec) -> Refusal | None:
        """A refusing limit no further call fits now, with when it resets; else None."""
        ...


class SourcePaused(Exception):
    """A source stops reading until its task's budget allows calls again; the batch in hand
    is not decided and the cursor stays before it."""

    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal
        super().__init__(refusal.reason)

    def status_reason(self) -> str:
        return (
            f"{self.refusal.reason}; reading resumes at {self.refusal.resets_at.isoformat()} "
            "or once the limit is raised"
        )


class Intake:
    """Decides one source's records for one task. `task` is read from the task file (its
    `sources:` mapping); `release` decides (its own copy of the task decides the schema)."""

    def __init__(
        self,
        store: IntakeStore,
        pipeline: Pipeline,
        release: ReleaseRuntime,
        task: TaskSpec,
        source: SourceBase,
        *,
        clock: Callable[[], float] = time.time,
        metrics: IntakeMetrics | None = None,
        budget: BudgetGate | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.budget = budget
        """Asked before each batch of a polled source (None: never paused for a budget)."""
        self.settled: Counter[str] = Counter()
        """What the batches this intake processed came to, summed."""
        self.base = pipeline
        self.release = release
        self.task = task
        self.source = source
        self.mapper = Mapper(release.task, source)
        self.clock = clock

    async def process(self, records: Sequence[Incoming], cursor: Cursor) -> BatchOutcome:
        """Decide a batch read from the source and commit it with `cursor`: the position after
        the batch, or a function of the batch's counts giving it. Raises `SourceStopped` when
        the source is stopped, and `SourcePaused` (deciding nothing of the batch) when a
        refusing budget limit is reached."""
        progress = Progress(self.task.name, self.source.name)
        outcome = BatchOutcome()
        state = await self.store.state(self.task.name, self.source.name)
        if state is not None and state.status == "stopped":
            raise SourceStopped(state.status_reason or "stopped")
        await self.check_budget()
        held = state.status_reason if state is not None and state.status == "held" else None
        readable = [r.values for r in records if r.values is not None]
        events, schema = drift.compare(state.schema if state else {}, readable)
        progress.schema = schema
        progress.events = [SchemaEvent(self.task.name, self.source.name, *e) for e in events]
        outcome.events = progress.events
        if events and held is None:
            summary = "schema drift: " + "; ".join(f"{k} {f}" for k, f, _ in events)
            if self.source.on_drift == "stop":
                # The schema seen is kept: once a person resumes the source, it is expected.
                stop = Progress(
                    self.task.name, self.source.name, events=progress.events, schema=schema
                )
                stop.status = ("stopped", summary)
                await self.store.commit([], stop)
                outcome.stopped = summary
                self._count(outcome)
                return outcome
            if self.source.on_drift == "quarantine":
                held = summary
                progress.status = ("held", summary)
        progress.count("records", len(records))
        await self._settle(records, progress, outcome, held=held, cursor=cursor)
        self._count(outcome)
        return outcome

    async def check_budget(self) -> None:
        """Raise `SourcePaused` when the release's budget refuses every further call now."""
        if self.budget is None:
            return
        refusal = await self.budget.reached(self.release.task)
        if refusal is not None:
            raise SourcePaused(refusal)

    def _count(self, outcome: BatchOutcome) -> None:
        self.settled.update(outcome.counts)
        if self.metrics is None:
            return
        task, source = self.task.name, self.source.name
        self.metrics.record_intake(task, source, outcome.counts)
        for event in outcome.events:
            self.metrics.record_schema_event(task, source, event.kind)

    async def replay(self, records: Sequence[Incoming]) -> BatchOutcome:
        """Decide quarantined records again, through the same mapping and de-duplication; each
        leaves quarantine in the transaction that stores its outcome."""
        progress = Progress(self.task.name, self.source.name)
        progress.count("quarantined", -len(records))
        outcome = BatchOutcome()
        await self._settle(records, progress, outcome, held=None)
        if self.metrics is not None:
            self.metrics.record_intake(self.task.name, self.source.name, outcome.counts)
        return outcome

    async def _settle(
        self,
        records: Sequence[Incoming],
        progress: Progress,
        outcome: BatchOutcome,
        *,
        held: str | None,
        cursor: Cursor = None,
    ) -> None:
        counts = outcome.counts
        mapped: list[tuple[Incoming, Mapped]] = []

        def quarantine(record: Incoming, reason: str) -> None:
            raw = (
                dict(record.values)
                if record.values is not None
                else {UNREADABLE: record.unreadable}
            )
            raw = storable(raw)
            progress.quarantined.append(
                Quarantined(
                    self.task.name,
                    self.source.name,
                    record.position,
                    reason,
                    raw,
                    context=storable(dict(record.context)),
                )
            )
            counts["quarantined"] += 1

        def duplicate(record: Incoming, first: str, by: str) -> None:
            progress.duplicates.append(
                Duplicate(self.task.name, self.source.name, record.position, first, by)  # type: ignore[arg-type]
            )
            if record.quarantine_id is not None:
                progress.resolved[record.quarantine_id] = ("replayed", first)
            counts["duplicates"] += 1

        for record in records:
            if record.values is None:
                quarantine(record, record.problem or "the record could not be read")
                continue
            if held is not None:
                quarantine(record, f"held until a person decides: {held}")
                continue
            try:
                item = self.mapper.map(record.values, record.context)
            except Unmappable as exc:
                quarantine(record, exc.reason)
                continue
            for name in item.extra:
                progress.unknown_fields[name] = progress.unknown_fields.get(name, 0) + 1
            mapped.append((record, item))

        # Within the batch: the first of a key or a content decides, the rest link to it.
        fresh: dict[str, tuple[Incoming, Mapped]] = {}
        by_content: dict[str, str] = {}
        content = self.source.dedupe.by == "content"
        earlier: Mapping[str, str] = {}
        if content and mapped:
            progress.seen_at = datetime.fromtimestamp(self.clock(), UTC)
            since = progress.seen_at - timedelta(seconds=self.source.dedupe.window_seconds)
            hashes = [m.content_hash for _, m in mapped]
            earlier = await self.store.seen(self.task.name, hashes, since)
        known = await self.store.find(self.task.name, [m.key for _, m in mapped]) if mapped else {}
        for record, item in mapped:
            if item.key in fresh:
                if fresh[item.key][1].content_hash == item.content_hash:
                    duplicate(record, item.key, "key")
                else:
                    quarantine(record, f"key {item.key} repeats with different content")
                continue
            stored = known.get(item.key)
            if stored is not None:
                # A batch's decisions and its cursor are committed together, so a stored key
                # was settled by an earlier record (or an earlier push of this one).
                if stored.input_hash == item.content_hash:
                    duplicate(record, item.key, "key")
                else:
                    quarantine(record, f"key {item.key} was decided before for other content")
                continue
            if content:
                first = earlier.get(item.content_hash) or by_content.get(item.content_hash)
                if first is not None and first != item.key:
                    duplicate(record, first, "content")
                    continue
                by_content[item.content_hash] = item.key
                progress.seen[item.content_hash] = item.key
            fresh[item.key] = (record, item)
            if record.quarantine_id is not None:
                progress.resolved[record.quarantine_id] = ("replayed", item.key)
        counts["decided"] += len(fresh)
        for name in ("decided", "duplicates", "quarantined"):
            progress.count(name, counts[name])
        progress.cursor = cursor(counts) if callable(cursor) else cursor
        requests = [
            DecisionRequest(
                input=item.input,
                idempotency_key=item.key,
                metadata=_metadata(self.source.name, record.position, item.extra),
            )
            for record, item in fresh.values()
        ]
        committer = BatchCommitter(self.store, progress, set(fresh))
        if requests:
            await pipeline_for(self.base, committer).decide_many(
                self.release, requests, invalid_input="fail"
            )
        await committer.finish()


def storable(value: Any) -> Any:
    """`value` as JSON any database keeps: NaN and infinities as text, lone surrogates
    escaped (a record quarantined for holding them must still be stored)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, Mapping):
        return {storable(str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


def _metadata(source: str, position: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"intake": {"source": source, "position": position}}
    if extra:
        metadata["extra"] = dict(extra)
    return metadata
