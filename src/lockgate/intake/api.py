"""The decision API as an intake source: when a task file declares a source of kind `api`,
each `POST /v1/tasks/TASK/decisions` (and each item of `:batch`) goes through the intake's
mapping, content de-duplication and quarantine (`runner.Intake`), decided and committed in
groups like any other request (`decide.groups.DecisionGroups` takes this as its decider).

What a request gets back:
- decided, or a resend of its key with the same input: the decision (201, or 200 `replayed`);
- a duplicate by content within the window: the first decision (200, `replayed`), linked;
- input that cannot be mapped: `HeldInQuarantine` (422) with the quarantine id; the record is
  held, and `lockgate quarantine replay ID` decides it once the mapping is fixed;
- its key used before for other input: `KeyTaken` (409), nothing stored;
- a refusing budget limit reached: `BudgetExceeded` (429), nothing stored.

A task without an `api` source is not touched: `configured` answers from a dictionary that is
read again at most every `refresh_s` seconds, and only when a task file changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Literal, Protocol

from lockgate.decide.pipeline import DecisionRequest, Pipeline, ReleaseRuntime, Result
from lockgate.decide.sources import ApiSource
from lockgate.decide.task import TaskSpec
from lockgate.errors import InputError, KeyTaken, LockgateError, Unavailable
from lockgate.intake.committer import IntakeStore
from lockgate.intake.runner import (
    BatchOutcome,
    Incoming,
    Intake,
    IntakeMetrics,
    SourcePaused,
    SourceStopped,
)

log = logging.getLogger("lockgate.intake.api")


class ApiIntakeStore(IntakeStore, Protocol):
    async def held_ids(
        self, task: str, source: str, positions: Sequence[str]
    ) -> Mapping[str, int]: ...


class HeldInQuarantine(InputError):
    """422: the input could not be mapped and is held in quarantine (its id in the problem)."""

    def __init__(self, source: str, quarantine_id: int | None, reason: str) -> None:
        where = f"quarantine id {quarantine_id}" if quarantine_id is not None else "quarantine"
        replay = (
            f"lockgate quarantine replay {quarantine_id}"
            if quarantine_id is not None
            else f"lockgate quarantine replay --source {source}"
        )
        super().__init__(
            f"the input could not be mapped and is held in {where} (source {source}): {reason}",
            hint=f"fix the `{source}` source's `map:` in the task file, then `{replay}` "
            "decides it; or send a corrected input under a new Idempotency-Key",
        )
        self.problem_fields = {"quarantine_id": quarantine_id, "source": source}


def _context(request: DecisionRequest) -> dict[str, object]:
    """Kept with a quarantined request, so its replay is the request's own decision: its
    key, its client (who alone may read it) and its metadata."""
    context: dict[str, object] = {"idempotency_key": request.idempotency_key}
    if request.submitted_by is not None:
        context["submitted_by"] = request.submitted_by
    if request.metadata:
        context["metadata"] = dict(request.metadata)
    return context


def _stopped(source: ApiSource, reason: str) -> Unavailable:
    return Unavailable(
        f"source {source.name} is stopped: {reason}; nothing of this request was stored",
        hint=f"an operator resumes it with `lockgate sources resume {source.name}`",
        retry_after_seconds=60,
    )


def position(key: str) -> str:
    """Where an API record was: its request's key (a resend of the key finds the same row)."""
    return f"request {key}"


Tasks = Callable[[], Awaitable[Mapping[str, TaskSpec]]]


class ApiIntake:
    """Decides API requests of tasks with an `api` source through the intake."""

    def __init__(
        self,
        store: ApiIntakeStore,
        pipeline: Pipeline,
        tasks: Tasks,
        *,
        refresh_s: float = 1.0,
        metrics: IntakeMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.tasks = tasks
        self.refresh_s = refresh_s
        self.metrics = metrics
        self.clock = clock
        self._known: dict[str, tuple[TaskSpec, ApiSource]] = {}
        self._until = float("-inf")
        self._reading: asyncio.Task[None] | None = None

    async def configured(self, task: str) -> bool:
        """Whether `task` declares an `api` source (as of at most `refresh_s` ago)."""
        if self.clock() >= self._until:
            await self._refresh()
        return task in self._known

    async def _refresh(self) -> None:
        if self._reading is None:
            self._reading = asyncio.get_running_loop().create_task(self._read())
        reading = self._reading
        try:
            await asyncio.shield(reading)
        finally:
            if self._reading is reading and reading.done():
                self._reading = None

    async def _read(self) -> None:
        try:
            tasks = await self.tasks()
        except (LockgateError, OSError) as exc:
            # A task file being edited: keep what was known, try again after `refresh_s`.
            what = exc.message if isinstance(exc, LockgateError) else type(exc).__name__
            log.warning("task files not read for api sources: %s", what.splitlines()[0])
        else:
            self._known = {
                name: (spec, source)
                for name, spec in tasks.items()
                for source in spec.sources
                if isinstance(source, ApiSource)
            }
        self._until = self.clock() + self.refresh_s

    async def decide_many(
        self,
        runtime: ReleaseRuntime,
        requests: Sequence[DecisionRequest],
        *,
        invalid_input: Literal["fail", "error"] = "error",
    ) -> list[Result]:
        """Decide requests for `runtime`'s task through its `api` source: one result per
        request, in order, each a decision or an error (`decide.groups` satisfies callers)."""
        name = runtime.task.name
        if name not in self._known:
            return await self.pipeline.decide_many(runtime, requests, invalid_input=invalid_input)
        task, source = self._known[name]
        intake = Intake(
            self.store,
            self.pipeline,
            runtime,
            task,
            source,
            metrics=self.metrics,
            answers=True,
            conflicts="refuse",
        )
        records = [
            Incoming(
                position(r.idempotency_key),
                r.input,
                context=_context(r),
                metadata=r.metadata,
                submitted_by=r.submitted_by,
                request_id=r.request_id,
            )
            for r in requests
        ]
        paused: SourcePaused | None = None
        try:
            outcome = await intake.process(records, None)
        except SourcePaused as exc:
            paused = exc
            outcome = exc.outcome or BatchOutcome()
        except SourceStopped as exc:
            return [Result(None, error=_stopped(source, exc.reason))] * len(requests)
        if outcome.stopped:  # schema drift in these requests, with `on_drift: stop`
            return [Result(None, error=_stopped(source, outcome.stopped))] * len(requests)
        return await self._results(source, records, outcome, paused)

    async def _results(
        self,
        source: ApiSource,
        records: Sequence[Incoming],
        outcome: BatchOutcome,
        paused: SourcePaused | None,
    ) -> list[Result]:
        fates = {id(f.record): f for f in outcome.fates}
        held = [f.record.position for f in outcome.fates if f.kind == "quarantined"]
        task = self._task_of(outcome)
        ids = await self.store.held_ids(task, source.name, held) if held and task else {}
        results: list[Result] = []
        for record in records:
            fate = fates.get(id(record))
            key = str(record.context["idempotency_key"])
            if fate is None:  # past the cut of a refusing budget limit: nothing stored
                assert paused is not None
                results.append(Result(None, error=paused.exceeded("nothing was stored")))
            elif fate.kind == "refused":
                results.append(Result(None, error=KeyTaken()))
            elif fate.kind == "quarantined":
                assert fate.quarantined is not None
                reason = fate.quarantined.reason
                error = HeldInQuarantine(source.name, ids.get(record.position), reason)
                results.append(Result(None, error=error))
            else:
                found = outcome.results.get(key)
                if found is None or (found.decision is None and found.error is None):
                    found = Result(None, error=LockgateError("the request was not decided"))
                elif fate.kind == "duplicate" and found.decision is not None:
                    found = Result(found.decision, replayed=True)
                results.append(found)
        return results

    def _task_of(self, outcome: BatchOutcome) -> str | None:
        for fate in outcome.fates:
            if fate.quarantined is not None:
                return fate.quarantined.task
        return None
