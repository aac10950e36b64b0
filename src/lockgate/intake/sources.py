"""Running a source: read what is there, decide it, and back off when the source is down.

A read that fails (a folder on an unmounted disk, a mailbox or database refusing) raises
`SourceUnavailable`: the cursor stays, the failure is counted and the next try waits twice as
long (`retry_base_s` doubling up to `retry_max_s`); after `report_after` failures in a row the
source's status is `failing`, shown by `lockgate sources show` and in metrics.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from lockgate.decide.sources import SourceBase
from lockgate.intake.committer import IntakeStore
from lockgate.intake.runner import Intake, SourcePaused, SourceStopped
from lockgate.intake.types import Progress


class SourceUnavailable(Exception):
    """The source cannot be read now; `reason` names no secret."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass
class SourceRun:
    """What one pass over a source did."""

    task: str = ""
    source: str = ""
    items: list[str] = field(default_factory=list)
    """Files, messages or rows read, as the source names them."""
    counts: Counter[str] = field(default_factory=Counter)
    stopped: str | None = None
    error: str | None = None
    failing: bool = False
    skipped: str | None = None
    paused: str | None = None
    """Why reading stopped before the end (a budget limit reached), and until when."""

    def public(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "source": self.source,
            "records": sum(self.counts[k] for k in ("decided", "duplicates", "quarantined")),
            **{k: self.counts.get(k, 0) for k in ("decided", "duplicates", "quarantined")},
            "items": len(self.items),
            "stopped": self.stopped,
            "error": self.error,
            "failing": self.failing,
            "skipped": self.skipped,
            "paused": self.paused,
        }


class Reader(Protocol):
    """A source kind: reads from its cursor on and hands batches to `intake.process`."""

    async def run(self, intake: Intake, cursor: Mapping[str, Any]) -> SourceRun: ...


def backoff_seconds(spec: SourceBase, failures: int) -> float:
    return float(min(spec.retry_max_s, spec.retry_base_s * 2 ** max(0, failures - 1)))


async def run_source(
    intake: Intake,
    reader: Reader,
    store: IntakeStore,
    *,
    force: bool = False,
    clock: Callable[[], float] = time.time,
) -> SourceRun:
    """One pass over a source: skipped while stopped or backing off (unless `force`)."""
    spec = intake.source
    task = intake.task.name
    state = await store.state(task, spec.name)
    now = datetime.fromtimestamp(clock(), UTC)
    run = SourceRun(task, spec.name)
    if state is not None and state.status == "stopped":
        run.skipped = f"stopped: {state.status_reason}"
        return run
    if not force and state is not None and state.retry_at is not None and state.retry_at > now:
        run.skipped = f"backing off after {state.failures} failed reads"
        return run
    try:
        # A budget that refuses every call now: read nothing (the cursor stays).
        await intake.check_budget()
        result = await reader.run(intake, dict(state.cursor) if state is not None else {})
    except SourcePaused as exc:
        reason = exc.status_reason()
        if state is None or (state.status, state.status_reason) != ("paused", reason):
            await store.commit([], Progress(task, spec.name, status=("paused", reason)))
        run.paused = reason
        run.counts.update(intake.settled)  # the batches committed before the pause
        return run
    except SourceUnavailable as exc:
        failures = (state.failures if state is not None else 0) + 1
        retry_at = now + timedelta(seconds=backoff_seconds(spec, failures))
        noted = await store.failed(task, spec.name, exc.reason, retry_at, spec.report_after)
        if intake.metrics is not None:
            intake.metrics.record_read_failure(task, spec.name)
        run.error = exc.reason
        run.failing = noted.status == "failing"
        return run
    except SourceStopped as exc:
        run.stopped = exc.reason
        return run
    if state is not None and (state.failures or state.status in ("failing", "paused")):
        # Read again, even with nothing new to decide: no longer failing or paused (a
        # batch's commit says so too; this is for a pass that committed none).
        await store.commit([], Progress(task, spec.name))
    result.task, result.source = task, spec.name
    return result
