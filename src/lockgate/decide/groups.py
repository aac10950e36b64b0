"""Group commit: concurrent decision requests of one process, decided and committed together.

Every request the server takes for a task joins the open group of the release that decides
it (the canary's sticky share goes to the canary's group, the rest to the live one). A
group goes through `Pipeline.decide_many` as one batch: one lookup of known keys, one call
per batch provider (vectorised local models), one transaction. Each request then gets its
own result, after the commit, so "committed before acknowledged" holds as for a lone request.

When a group leaves:
- at once (on the next turn of the event loop) when no group of that release is in flight,
  so a lone caller never waits for company;
- otherwise when it holds `max_items` requests, or `max_wait_s` after its first request, or
  when the groups in flight have finished, whichever comes first.

If a group fails as a whole (an exception, not a per-item error), its requests are decided
again one by one, so one bad item never fails its neighbours. When the database is
unavailable the error goes to every member at once: retrying each would only wait N times.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from lockgate.decide.pipeline import DecisionRequest, ReleaseRuntime, Result
from lockgate.decide.router import in_canary
from lockgate.errors import Unavailable
from lockgate.waits import StoreWaits, note_interrupted, watching_waits

log = logging.getLogger("lockgate.decide.groups")


def _deciding(runtime: ReleaseRuntime, key: str) -> ReleaseRuntime:
    """The one release that decides this key: the canary for keys in its sticky share (the
    same split as `Pipeline.decide_many`), else the live release. Splitting before grouping
    keeps each group to one release, so a group is one transaction: a group that fails is
    retried item by item without finding half of itself committed already."""
    canary = runtime.canary
    if canary is None or runtime.canary_percent <= 0:
        return runtime
    if in_canary(runtime.task.name, key, runtime.canary_percent):
        return canary
    return replace(runtime, canary=None, canary_percent=0.0)


class BatchDecider(Protocol):
    """What decides a group: the `Pipeline`, or a decider in front of it (intake's
    `api.ApiIntake` for tasks whose `api` source maps, de-duplicates and quarantines)."""

    async def decide_many(
        self,
        runtime: ReleaseRuntime,
        requests: Sequence[DecisionRequest],
        *,
        invalid_input: Literal["fail", "error"] = ...,
    ) -> list[Result]: ...


@dataclass
class _Group:
    runtime: ReleaseRuntime
    requests: list[DecisionRequest] = field(default_factory=list)
    futures: list[asyncio.Future[Result]] = field(default_factory=list)
    waits: StoreWaits = field(default_factory=StoreWaits)
    """Whether the group is waiting on the database now (a member stopped then gets a 503)."""
    timer: asyncio.TimerHandle | None = None


class DecisionGroups:
    """The open and in-flight groups of one process (one per event loop)."""

    def __init__(
        self, pipeline: BatchDecider, *, max_items: int = 64, max_wait_s: float = 0.002
    ) -> None:
        if max_items < 1 or max_wait_s < 0:
            raise ValueError("max_items must be at least 1 and max_wait_s not negative")
        self.pipeline = pipeline
        self.max_items = max_items
        self.max_wait_s = max_wait_s
        self._open: dict[Hashable, _Group] = {}
        self._in_flight: dict[Hashable, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def decide(self, runtime: ReleaseRuntime, request: DecisionRequest) -> Result:
        """Decide one request in the current group of its release; raises its error (bad
        input, a key reused with other input, ...) as `Pipeline.decide` does."""
        loop = asyncio.get_running_loop()
        runtime = _deciding(runtime, request.idempotency_key)
        key = (runtime.task.name, runtime.release)
        group = self._open.get(key)
        if group is None:
            group = self._open[key] = _Group(runtime)
            if self._in_flight.get(key, 0) == 0:
                group.timer = loop.call_soon(self._leave, key, group)  # type: ignore[assignment]
            else:
                group.timer = loop.call_later(self.max_wait_s, self._leave, key, group)
        future: asyncio.Future[Result] = loop.create_future()
        group.requests.append(request)
        group.futures.append(future)
        if len(group.requests) >= self.max_items:
            self._leave(key, group)
        try:
            result = await future
        except asyncio.CancelledError:
            if group.waits.waiting:  # stopped while its group waited on the database
                note_interrupted()
            raise
        if result.error is not None:
            raise result.error
        return result

    def _leave(self, key: Hashable, group: _Group) -> None:
        """Close `group` to newcomers and start deciding it."""
        if self._open.get(key) is not group:
            return  # already left (full, or its timer and the full check both fired)
        del self._open[key]
        if group.timer is not None:
            group.timer.cancel()
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        task = asyncio.get_running_loop().create_task(self._run(key, group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, key: Hashable, group: _Group) -> None:
        try:
            with watching_waits(group.waits):
                await self._decide(group)
        finally:
            self._in_flight[key] -= 1
            if not self._in_flight[key]:
                del self._in_flight[key]
                waiting = self._open.get(key)
                if waiting is not None:  # nothing in flight any more: no reason to wait
                    self._leave(key, waiting)

    async def _decide(self, group: _Group) -> None:
        requests, futures = group.requests, group.futures
        try:
            results = await self.pipeline.decide_many(
                group.runtime, requests, invalid_input="error"
            )
        except Unavailable as exc:
            for future in futures:
                _settle(future, error=exc)
            return
        except Exception as exc:
            if len(requests) == 1:
                _settle(futures[0], error=exc)
                return
            log.warning(
                "a group of %d decisions failed (%s); deciding them one by one",
                len(requests),
                type(exc).__name__,
            )
            for request, future in zip(requests, futures, strict=True):
                try:
                    (result,) = await self.pipeline.decide_many(
                        group.runtime, [request], invalid_input="error"
                    )
                except Exception as one:
                    _settle(future, error=one)
                else:
                    _settle(future, result=result)
            return
        for future, result in zip(futures, results, strict=True):
            _settle(future, result=result)

    async def aclose(self) -> None:
        """Wait for the groups in flight (open ones leave at once)."""
        for key, group in list(self._open.items()):
            self._leave(key, group)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _settle(
    future: asyncio.Future[Result],
    *,
    result: Result | None = None,
    error: BaseException | None = None,
) -> None:
    if future.done():  # its caller was stopped (a time limit): nobody to answer
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert result is not None
        future.set_result(result)
