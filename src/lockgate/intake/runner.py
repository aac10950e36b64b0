"""One source's records through mapping, schema drift, de-duplication and quarantine into
decisions, a batch at a time; each batch is one commit with the source's new cursor.

Every record read ends in exactly one of: decided (a new decision), duplicate (linked to the
decision of the first), or quarantined (with its reason), and the source's counters say so:
records = decided + duplicates + quarantined + discarded.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from lockgate.decide.guards import Refusal
from lockgate.decide.pipeline import DecisionRequest, Pipeline, ReleaseRuntime, Result
from lockgate.decide.sources import SourceBase
from lockgate.decide.task import TaskSpec
from lockgate.errors import BudgetExceeded
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
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """The caller's metadata (an API request's), stored with the decision."""
    submitted_by: str | None = None
    request_id: str | None = None


UNREADABLE = "_unreadable"
"""The one key of a quarantined record that could not be read: what was read of it."""


@dataclass
class BatchOutcome:
    counts: Counter[str] = field(default_factory=Counter)
    events: list[SchemaEvent] = field(default_factory=list)
    stopped: str | None = None
    """Why the source stopped (schema drift with `on_drift: stop`); nothing was committed
    but the event."""
    fates: list[Fate] = field(default_factory=list)
    """What became of each record settled, in order."""
    results: dict[str, Result] = field(default_factory=dict)
    """With `Intake(answers=True)`: by key, the decision each decided or duplicate record
    got (a duplicate's is its first decision's, `replayed`)."""


Cursor = Mapping[str, Any] | Callable[[Counter[str], int], Mapping[str, Any] | None] | None
"""Where the source stands after a batch: a position, or a function of the batch's outcome
counts and of how many of its records were settled (all of them, or the ones before a
refusing budget limit cut the batch) giving it; None leaves the cursor as it is."""


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
    """A source stops reading until its task's budget allows calls again; the records not
    decided are not stored and the cursor stays before them. `settled` records of the batch
    in hand (those before the first refused one) were committed, as `outcome` says."""

    def __init__(
        self, refusal: Refusal, *, settled: int = 0, outcome: BatchOutcome | None = None
    ) -> None:
        self.refusal = refusal
        self.settled = settled
        self.outcome = outcome
        super().__init__(refusal.reason)

    def exceeded(self, note: str) -> BudgetExceeded:
        """The refusal as the error an operator or a pushing system gets (429, Retry-After
        until the limit resets)."""
        resets = self.refusal.resets_at
        wait = max(1, math.ceil((resets - datetime.now(UTC)).total_seconds()))
        return BudgetExceeded(
            f"{self.refusal.reason}; {note}",
            hint=f"send it again after {resets.isoformat()}, when the limit resets, or raise "
            "the task's budget",
            retry_after_seconds=wait,
            resets_at=resets.isoformat(),
        )

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
        answers: bool = False,
        conflicts: Literal["quarantine", "refuse"] = "quarantine",
    ) -> None:
        self.answers = answers
        """Give each record's decision back (`BatchOutcome.results`): callers that answer."""
        self.conflicts = conflicts
        """A key used before for other content: quarantined, or (for callers that answer,
        such as the API) refused with nothing stored, counted as no record at all."""
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
        try:
            await self._settle(records, progress, outcome, held=held, cursor=cursor)
        finally:
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
        try:
            await self._settle(records, progress, outcome, held=None)
        finally:
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
        """Map, de-duplicate and decide `records`, then commit them with `progress`. When a
        refusing budget limit stops a record's decision, the batch is cut before the first
        such record: the records before it are committed (with the cursor after them, when
        `cursor` is a function of the records settled), the rest is not stored at all, and
        `SourcePaused` is raised."""
        fates = await self._classify(records, held)
        fresh = [f for f in fates if f.kind == "decided"]
        requests = [
            DecisionRequest(
                input=f.item.input,
                idempotency_key=f.item.key,
                metadata={
                    **f.record.metadata,
                    **_metadata(self.source.name, f.record.position, f.item.extra),
                },
                submitted_by=f.record.submitted_by,
                request_id=f.record.request_id,
            )
            for f in fresh
            if f.item is not None
        ]
        # Adjustments `process` and `replay` made before (records read, held ones replayed).
        base = Progress(self.task.name, self.source.name, counts=dict(progress.counts))
        _apply(progress, fates, self.source.dedupe.by == "content", self.clock)
        progress.cursor = _cursor_at(cursor, fates, len(records))
        committer = BatchCommitter(self.store, progress, {f.key for f in fresh})
        results: list[Result] = []
        if requests:
            results = await pipeline_for(self.base, committer).decide_many(
                self.release, requests, invalid_input="fail", budget_refused="error"
            )
        refused = {
            f.key: r.error
            for f, r in zip(fresh, results, strict=True)
            if isinstance(r.error, BudgetExceeded)
        }
        if not refused:
            await committer.finish()
            outcome.counts.update(_tally(fates))
            outcome.fates = fates
            if self.answers:
                outcome.results = await self._answers(fates, fresh, results)
            return
        # A refusing limit was crossed mid-batch: keep the records before the first refused one.
        cut = next(i for i, f in enumerate(fates) if f.kind == "decided" and f.key in refused)
        kept = fates[:cut]
        keys = {f.key for f in kept if f.kind == "decided"}
        prefix = Progress(
            self.task.name,
            self.source.name,
            counts={k: v for k, v in base.counts.items() if k != "records"},
            schema=progress.schema,
            events=progress.events,
            status=progress.status,
        )
        if "records" in base.counts:
            prefix.count("records", cut)
        if "quarantined" in base.counts:  # a replay: only the kept records leave quarantine
            prefix.counts["quarantined"] = -cut
        _apply(prefix, kept, self.source.dedupe.by == "content", self.clock)
        prefix.cursor = _cursor_at(cursor, kept, cut) if callable(cursor) else None
        parts = [
            ([d for d in batch if d.idempotency_key in keys], sinks)
            for batch, sinks in committer.parts
        ]
        error = next(iter(refused.values()))
        assert isinstance(error, BudgetExceeded)
        paused = SourcePaused(_refusal(error), settled=cut, outcome=outcome)
        if prefix.status is None:
            prefix.status = ("paused", paused.status_reason())
        await self.store.commit([p for p in parts if p[0]], prefix)
        outcome.counts.update(_tally(kept))
        outcome.fates = kept
        if self.answers:
            outcome.results = await self._answers(kept, fresh, results)
        raise paused

    async def _answers(
        self, fates: Sequence[Fate], fresh: Sequence[Fate], results: Sequence[Result]
    ) -> dict[str, Result]:
        """By key, the decision of each decided or duplicate record among `fates`."""
        answers = {f.key: r for f, r in zip(fresh, results, strict=True)}
        missing = [f.key for f in fates if f.kind == "duplicate" and f.key not in answers]
        found = await self.store.find(self.task.name, missing) if missing else {}
        for key, decision in found.items():
            answers[key] = Result(decision, replayed=True)
        for fate in fates:
            if fate.kind == "duplicate" and answers.get(fate.key, Result(None)).decision:
                # Asked under its own key, answered with the first decision, as stored.
                first = answers[fate.key]
                answers.setdefault(
                    fate.item.key if fate.item else fate.key, Result(first.decision, True)
                )
        return answers

    async def _classify(self, records: Sequence[Incoming], held: str | None) -> list[Fate]:
        """What becomes of each record: quarantined, a duplicate, or decided."""
        fates: list[Fate | None] = [None] * len(records)
        mapped: list[tuple[int, Mapped]] = []
        for index, record in enumerate(records):
            if record.values is None:
                fates[index] = self._held(record, record.problem or "the record could not be read")
                continue
            if held is not None:
                fates[index] = self._held(record, f"held until a person decides: {held}")
                continue
            try:
                item = self.mapper.map(record.values, record.context)
            except Unmappable as exc:
                fates[index] = self._held(record, exc.reason)
                continue
            mapped.append((index, item))

        # Within the batch: the first of a key or a content decides, the rest link to it.
        fresh: dict[str, Mapped] = {}
        by_content: dict[str, str] = {}
        content = self.source.dedupe.by == "content"
        earlier: Mapping[str, str] = {}
        same: dict[int, str] = {}  # each mapped record's `dedupe_hash` by index (`by: content`)
        if content and mapped:
            since = datetime.fromtimestamp(self.clock(), UTC) - timedelta(
                seconds=self.source.dedupe.window_seconds
            )
            same = {index: dedupe_hash(records[index], item) for index, item in mapped}
            earlier = await self.store.seen(self.task.name, list(same.values()), since)
        known = await self.store.find(self.task.name, [m.key for _, m in mapped]) if mapped else {}
        for index, item in mapped:
            record = records[index]
            if item.key in fresh:
                if fresh[item.key].content_hash == item.content_hash:
                    fates[index] = Fate(record, "duplicate", item.key, item, by="key")
                else:
                    fates[index] = self._held(
                        record, f"key {item.key} repeats with different content", conflict=True
                    )
                continue
            stored = known.get(item.key)
            if stored is not None:
                # A batch's decisions and its cursor are committed together, so a stored key
                # was settled by an earlier record (or an earlier push of this one).
                if stored.input_hash == item.content_hash:
                    fates[index] = Fate(record, "duplicate", item.key, item, by="key")
                else:
                    fates[index] = self._held(
                        record,
                        f"key {item.key} was decided before for other content",
                        conflict=True,
                    )
                continue
            if content:
                first = earlier.get(same[index]) or by_content.get(same[index])
                if first is not None and first != item.key:
                    fates[index] = Fate(record, "duplicate", first, item, by="content")
                    continue
                by_content[same[index]] = item.key
            fresh[item.key] = item
            fates[index] = Fate(record, "decided", item.key, item, dedupe=same.get(index))
        return [f for f in fates if f is not None]

    def _held(self, record: Incoming, reason: str, *, conflict: bool = False) -> Fate:
        raw = dict(record.values) if record.values is not None else {UNREADABLE: record.unreadable}
        held = Quarantined(
            self.task.name,
            self.source.name,
            record.position,
            reason,
            storable(raw),
            context=storable(dict(record.context)),
        )
        if conflict and self.conflicts == "refuse":
            return Fate(record, "refused", "", conflict=True)
        return Fate(record, "quarantined", "", quarantined=held, conflict=conflict)


def dedupe_hash(record: Incoming, item: Mapped) -> str:
    """What `dedupe: {by: content}` compares: the mapped input's hash, and for a record a
    client sent (an API request) that client's key id with it. Two clients sending the same
    text are two events, and neither may be answered with the other's decision; a client's
    own resend under a new key is the duplicate the setting is for."""
    if record.submitted_by is None:
        return item.content_hash
    scoped = f"{record.submitted_by}\n{item.content_hash}".encode()
    return hashlib.sha256(scoped).hexdigest()


@dataclass
class Fate:
    """What became of one record of a batch."""

    record: Incoming
    kind: Literal["decided", "duplicate", "quarantined", "refused"]
    key: str
    """The key it was decided under; for a duplicate, the key of the first decision."""
    item: Mapped | None = None
    by: Literal["key", "content"] = "key"
    quarantined: Quarantined | None = None
    conflict: bool = False
    """Quarantined because its key was used before for other content."""
    dedupe: str | None = None
    """A decided record's `dedupe_hash` (with `by: content`): remembered as seen."""


def _apply(
    progress: Progress, fates: Sequence[Fate], content: bool, clock: Callable[[], float]
) -> None:
    """Add what `fates` write to `progress`: quarantined records, duplicates, unknown fields,
    content hashes, replayed quarantine ids, and the counters."""
    if content and any(f.item is not None for f in fates):
        progress.seen_at = datetime.fromtimestamp(clock(), UTC)
    for fate in fates:
        record = fate.record
        if fate.item is not None:
            for name in fate.item.extra:
                progress.unknown_fields[name] = progress.unknown_fields.get(name, 0) + 1
        if fate.kind == "refused":  # a key reused for other content: not taken at all
            progress.count("records", -1)
            continue
        if fate.kind == "quarantined":
            assert fate.quarantined is not None
            progress.quarantined.append(fate.quarantined)
            progress.count("quarantined")
            continue
        if record.quarantine_id is not None:
            progress.resolved[record.quarantine_id] = ("replayed", fate.key)
        if fate.kind == "duplicate":
            progress.duplicates.append(
                Duplicate(progress.task, progress.source, record.position, fate.key, fate.by)
            )
            progress.count("duplicates")
        else:
            if fate.dedupe is not None:
                progress.seen[fate.dedupe] = fate.key
            progress.count("decided")


_TALLY = {"decided": "decided", "duplicate": "duplicates", "quarantined": "quarantined"}


def _tally(fates: Sequence[Fate]) -> Counter[str]:
    """A batch's outcome counts: decided, duplicates, quarantined."""
    counts: Counter[str] = Counter({"decided": 0, "duplicates": 0, "quarantined": 0})
    counts.update(_TALLY[f.kind] for f in fates if f.kind in _TALLY)
    return counts


def _cursor_at(cursor: Cursor, fates: Sequence[Fate], settled: int) -> Mapping[str, Any] | None:
    return cursor(_tally(fates), settled) if callable(cursor) else cursor


def _refusal(error: BudgetExceeded) -> Refusal:
    resets = error.resets_at
    at = datetime.fromisoformat(resets) if resets else datetime.now(UTC)
    return Refusal("refuse", error.message, at)


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
