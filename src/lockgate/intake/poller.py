"""Polling sources inside `lockgate serve`: each polled source (folder, imap, sql) is read by
one replica at a time, the one holding its lease; a replica that dies loses its leases when
they expire and another takes over from the committed cursor."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from lockgate.decide.pipeline import ReleaseRuntime
from lockgate.errors import LockgateError
from lockgate.intake.service import IntakeService, source_spec

log = logging.getLogger("lockgate.intake")


class LeaseStore(Protocol):
    """The named leases (`store.async_leases`): one holder per name until it lapses."""

    async def take(self, name: str, owner: str, seconds: float) -> bool: ...

    async def give_up(self, name: str, owner: str) -> None: ...


def lease_seconds(poll_s: float) -> float:
    return max(30.0, 3 * poll_s)


def lease_name(task: str, source: str) -> str:
    """The lease a replica holds while it polls a source."""
    return f"intake:{task}:{source}"


class Poller:
    """Reads due sources round after round until `stop` is set."""

    def __init__(
        self,
        service: Callable[[], Awaitable[IntakeService]],
        release: Callable[[str], Awaitable[ReleaseRuntime]],
        leases: LeaseStore,
        owner: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.release = release
        self.leases = leases
        self.owner = owner
        self.clock = clock
        self.due: dict[tuple[str, str], float] = {}
        self.held: set[tuple[str, str]] = set()

    async def round(self) -> float:
        """Read every due source this replica can lease; the seconds until the next one."""
        service = await self.service()
        pairs = service.polled()
        wait = 5.0
        for task, name in pairs:
            spec = source_spec(service.tasks[task], name)
            now = self.clock()
            due = self.due.get((task, name), 0.0)
            if due > now:
                wait = min(wait, due - now)
                continue
            self.due[(task, name)] = now + spec.poll_s
            wait = min(wait, spec.poll_s)
            seconds = lease_seconds(spec.poll_s)
            if not await self.leases.take(lease_name(task, name), self.owner, seconds):
                self.held.discard((task, name))
                continue
            self.held.add((task, name))
            try:
                release = await self.release(task)
                result = await service.run(task, name, release=release)
            except LockgateError as exc:
                log.warning(
                    "intake.source_error",
                    extra={"task": task, "source": name, "error": exc.message},
                )
                continue
            if result.error:
                log.warning(
                    "intake.read_failed",
                    extra={"task": task, "source": name, "failing": result.failing},
                )
        return max(0.05, wait)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    wait = await self.round()
                except LockgateError as exc:  # the task files cannot be read right now
                    log.warning("intake.poll_error", extra={"error": exc.message})
                    wait = 5.0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=wait)
        finally:
            for task, name in self.held:
                with contextlib.suppress(LockgateError):
                    await self.leases.give_up(lease_name(task, name), self.owner)
