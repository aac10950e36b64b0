"""The intake's operations, given explicit parts by the edges (CLI, server): run sources,
replay or discard quarantined records, describe a source."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lockgate.decide.pipeline import Pipeline, ReleaseRuntime
from lockgate.decide.sources import (
    POLLED_KINDS,
    FolderSource,
    ImapSource,
    SourceBase,
    SqlSource,
)
from lockgate.decide.task import TaskSpec
from lockgate.errors import ConfigError, NotFound
from lockgate.intake.committer import IntakeStore
from lockgate.intake.runner import (
    UNREADABLE,
    BatchOutcome,
    BudgetGate,
    Incoming,
    Intake,
    IntakeMetrics,
    SourcePaused,
)
from lockgate.intake.sources import Reader, SourceRun, run_source
from lockgate.intake.types import Progress, Quarantined
from lockgate.monitor.redaction import shown_record


def find_source(tasks: Mapping[str, TaskSpec], name: str, task: str | None = None) -> TaskSpec:
    """The task whose `sources:` declares `name` (restricted to `task` when given)."""
    owners = [
        spec
        for spec in tasks.values()
        if (task is None or spec.name == task) and any(s.name == name for s in spec.sources)
    ]
    if not owners:
        declared = sorted(f"{t.name}/{s.name}" for t in tasks.values() for s in t.sources)
        raise NotFound(
            f"no source named {name!r}" + (f" in task {task!r}" if task else ""),
            hint="sources: " + (", ".join(declared) or "none; add `sources:` to a task file"),
        )
    if len(owners) > 1:
        raise ConfigError(
            f"source {name!r} is declared by tasks {', '.join(t.name for t in owners)}",
            hint="pick one with --task",
        )
    return owners[0]


def source_spec(task: TaskSpec, name: str) -> SourceBase:
    return next(s for s in task.sources if s.name == name)


def reader_for(
    spec: SourceBase,
    project: Path,
    env: Mapping[str, str],
    clock: Callable[[], float] = time.time,
) -> Reader:
    """The reader of a polled source kind (webhooks push; they have none)."""
    if isinstance(spec, FolderSource):
        from lockgate.intake.folder import FolderReader

        return FolderReader(spec, project, clock=clock)
    if isinstance(spec, SqlSource):
        from lockgate.intake.sql import SqlReader

        return SqlReader(spec, env)
    if isinstance(spec, ImapSource):
        from lockgate.intake.imap import ImapReader

        return ImapReader(spec, env)
    if spec.kind == "api":
        hint = "send records to POST /v1/tasks/TASK/decisions on a running `lockgate serve`"
    elif spec.kind == "run":
        hint = "decide a file with `lockgate run TASK FILE`"
    else:
        hint = f"send records to POST /v1/intake/{spec.name} on a running `lockgate serve`"
    raise ConfigError(
        f"source {spec.name!r} is a {spec.kind} source: it is pushed to, not polled", hint=hint
    )


class IntakeService:
    """Builds one `Intake` per (task, source) from the task files and the live release."""

    def __init__(
        self,
        store: IntakeStore,
        pipeline: Pipeline,
        release_runtime: Callable[[str], ReleaseRuntime],
        tasks: Mapping[str, TaskSpec],
        project: Path,
        env: Mapping[str, str],
        clock: Callable[[], float] = time.time,
        metrics: IntakeMetrics | None = None,
        budget: BudgetGate | None = None,
    ) -> None:
        self.metrics = metrics
        self.budget = budget
        """Polled sources pause while it refuses every call (pushed ones do not ask it)."""
        self.store = store
        self.pipeline = pipeline
        self.release_runtime = release_runtime
        self.tasks = tasks
        self.project = project
        self.env = env
        self.clock = clock

    def intake(
        self,
        task: str,
        source: str,
        release: ReleaseRuntime | None = None,
        budget: BudgetGate | None = None,
    ) -> Intake:
        """The intake of one source; `release` is the task's live one unless given."""
        spec = self.tasks[task]
        return Intake(
            self.store,
            self.pipeline,
            release if release is not None else self.release_runtime(task),
            spec,
            source_spec(spec, source),
            clock=self.clock,
            metrics=self.metrics,
            budget=budget,
        )

    def polled(self, task: str | None = None, source: str | None = None) -> list[tuple[str, str]]:
        """(task, source) of every polled source, filtered by `task` and `source`."""
        return [
            (spec.name, s.name)
            for spec in self.tasks.values()
            if task is None or spec.name == task
            for s in spec.sources
            if s.kind in POLLED_KINDS and (source is None or s.name == source)
        ]

    async def run(
        self,
        task: str,
        source: str,
        *,
        force: bool = False,
        release: ReleaseRuntime | None = None,
    ) -> SourceRun:
        intake = self.intake(task, source, release, budget=self.budget)
        reader = reader_for(intake.source, self.project, self.env, self.clock)
        return await run_source(intake, reader, self.store, force=force, clock=self.clock)

    async def replay(
        self, items: Sequence[Quarantined], *, release: ReleaseRuntime | None = None
    ) -> BatchOutcome:
        """Decide quarantined records again through the task file's current mapping (with
        `release`, else the task's live release)."""
        total = BatchOutcome()
        groups: dict[tuple[str, str], list[Quarantined]] = {}
        for item in items:
            if item.status == "held":
                groups.setdefault((item.task, item.source), []).append(item)
        for (task, source), group in groups.items():
            intake = self.intake(task, source, release)
            for start in range(0, len(group), intake.source.batch_size):
                part = group[start : start + intake.source.batch_size]
                try:
                    outcome = await intake.replay([incoming(q) for q in part])
                except SourcePaused as paused:
                    # The records before the limit are replayed; the rest stay held.
                    settled = paused.outcome.counts if paused.outcome else {}
                    total.counts.update(settled)
                    raise paused.exceeded(
                        f"{sum(total.counts.values())} of {len(items)} records replayed; "
                        "the rest stay held: replay them once the limit allows"
                    ) from None
                total.counts.update(outcome.counts)
        return total


def incoming(item: Quarantined) -> Incoming:
    """A quarantined record as it was read, to go through intake again."""
    raw = dict(item.raw)
    if set(raw) == {UNREADABLE}:
        return Incoming(
            item.position,
            None,
            item.reason,
            item.context,
            quarantine_id=item.id,
            unreadable=raw[UNREADABLE],
        )
    # A quarantined API request keeps its client and metadata (`intake.api`) for its decision.
    submitted_by = item.context.get("submitted_by")
    metadata = item.context.get("metadata")
    return Incoming(
        item.position,
        raw,
        context=item.context,
        quarantine_id=item.id,
        metadata=metadata if isinstance(metadata, dict) else {},
        submitted_by=submitted_by if isinstance(submitted_by, str) else None,
    )


def discard(item: Quarantined) -> Progress:
    """What discarding a held record writes: it leaves quarantine, counted as discarded."""
    assert item.id is not None
    progress = Progress(item.task, item.source)
    progress.count("quarantined", -1)
    progress.count("discarded", 1)
    progress.resolved[item.id] = ("discarded", None)
    return progress


def shown(item: Quarantined, task: TaskSpec | None, *, clear: bool = False) -> dict[str, Any]:
    """A quarantined record for display: personal data redacted, and the source fields that
    map to `pii: true` input fields hidden unless `clear`."""
    hidden: tuple[str, ...] = ()
    if task is not None:
        spec = next((s for s in task.sources if s.name == item.source), None)
        for name in task.pii_fields:
            rule = spec.map.get(name) if spec is not None else None
            hidden += rule.names(name) if rule is not None else (name,)
    return {**item.public(), "raw": shown_record(item.raw, hidden, clear=clear)}
