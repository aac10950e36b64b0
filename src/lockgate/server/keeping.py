"""The retention sweep inside `lockgate serve`: one replica at a time (the lease `retention`)
blanks what tasks keep past their `retention:`, every `retention_interval_seconds`, one batch
per write so the event loop and the other writers are never held up for long."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from lockgate.decide.decision import utcnow
from lockgate.runtime import Runtime
from lockgate.store.retention import KINDS, Swept

log = logging.getLogger("lockgate.retention")

LEASE = "retention"
LEASE_SECONDS = 120.0
RENEW_SECONDS = 30.0


async def sweep(runtime: Runtime, owner: str, stop: asyncio.Event) -> dict[str, Swept]:
    """One sweep of every task with `retention:`; renews the lease as it goes. Per task, what
    was blanked or deleted."""
    store = runtime.store
    batch = runtime.settings.retention_batch_size
    tasks = await store.executor.read(runtime.tasks)
    now = utcnow()
    done: dict[str, Swept] = {}
    renewed = time.monotonic()
    for name, spec in sorted(tasks.items()):
        if spec.retention is None:
            continue
        cutoffs = spec.retention.cutoffs(now)
        total = done.setdefault(name, Swept())
        for kind in KINDS:
            if kind not in cutoffs:
                continue
            cursor = await store.executor.read(store.retention.start, name, kind)
            while not cursor.finished and not stop.is_set():
                swept = await store.executor.write(
                    store.retention.step, name, kind, cutoffs[kind], cursor, batch=batch
                )
                total.add(Swept(done=swept.done))
                if time.monotonic() - renewed > RENEW_SECONDS:
                    if not await store.async_leases.take(LEASE, owner, LEASE_SECONDS):
                        return done  # another replica took over: it carries on from here
                    renewed = time.monotonic()
        finished = "inputs" not in cutoffs
        while not finished and not stop.is_set():
            swept, finished = await store.executor.write(
                store.retention.intake_step, name, cutoffs["inputs"], batch=batch
            )
            total.add(swept)
    return done


@asynccontextmanager
async def retention_sweeps(runtime: Runtime) -> AsyncIterator[None]:
    """Sweep while the server runs (not at all when `retention_interval_seconds` is 0)."""
    interval = runtime.settings.retention_interval_seconds
    if interval <= 0:
        yield
        return
    owner = f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"
    stop = asyncio.Event()
    task = asyncio.create_task(_loop(runtime, owner, interval, stop), name="lockgate-retention")
    try:
        yield
    finally:
        stop.set()
        await task


async def _loop(runtime: Runtime, owner: str, interval: float, stop: asyncio.Event) -> None:
    leases = runtime.store.async_leases
    next_sweep = 0.0
    held = False
    try:
        while not stop.is_set():
            try:
                held = await leases.take(LEASE, owner, LEASE_SECONDS)
                if held and time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + interval
                    for name, swept in (await sweep(runtime, owner, stop)).items():
                        if swept.done:
                            log.info("retention.swept", extra={"task": name, "counts": swept.done})
            except Exception as exc:  # a failed round is retried next round; never personal data
                log.warning("retention.sweep_failed", extra={"error": type(exc).__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(RENEW_SECONDS, interval))
    finally:
        if held:
            with contextlib.suppress(Exception):
                await leases.give_up(LEASE, owner)
