"""The delivery worker: sends outbox rows to their sinks, at least once, with retries.

A worker claims a batch of due rows with a lease, sends them with bounded concurrency and
records for each one: delivered, pending again with a later `next_try_at` (exponential
backoff with jitter), or `dead` (a permanent failure, or `max_tries` used up). A worker that
dies mid-batch leaves its lease to expire; another worker then claims the rows again, so a
receiver may see a decision twice and de-duplicates it by its `Idempotency-Key`.

A decision's own status is not changed by delivery: it keeps what was decided (`decided`,
`approved`, `corrected`), and the delivery state lives per sink in the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta

from anyio.to_thread import run_sync

from lockgate.decide.decision import utcnow
from lockgate.decide.task import SinkSpecBase
from lockgate.delivery.sinks import DeliveryFailed, HttpPool, Sink, SinkContext, SinkRegistry
from lockgate.delivery.storage import OutboxStore, ReleaseStore
from lockgate.delivery.types import DeliveryResult, OutboxRow
from lockgate.errors import LockgateError
from lockgate.monitor.metrics import Metrics
from lockgate.settings import Settings

logger = logging.getLogger("lockgate.delivery.worker")


@dataclass(frozen=True)
class DeliveryReport:
    """Counts of one batch, or of a worker's whole run."""

    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0

    def __add__(self, other: DeliveryReport) -> DeliveryReport:
        return DeliveryReport(
            self.claimed + other.claimed,
            self.delivered + other.delivered,
            self.retried + other.retried,
            self.dead + other.dead,
        )


def new_worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


def backoff_seconds(tries: int, base: float, cap: float, rng: random.Random) -> float:
    """Delay after the `tries`-th failed try: base * 2^(tries-1), capped, with the upper half
    jittered so that many rows failing together do not all come back at once."""
    ceiling = min(cap, base * 2 ** max(tries - 1, 0))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


class DeliveryWorker:
    """Delivers outbox rows; `run(stop)` polls until `stop` is set, `drain()` until nothing is
    due. One worker per process (or per `lockgate serve` process); many may share a database."""

    def __init__(
        self,
        outbox: OutboxStore,
        releases: ReleaseStore,
        settings: Settings,
        *,
        registry: SinkRegistry | None = None,
        metrics: Metrics | None = None,
        concurrency: int | None = None,
        worker_id: str | None = None,
        environ: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.outbox = outbox
        self.releases = releases
        self.settings = settings
        self.registry = registry or SinkRegistry.builtin()
        self.metrics = metrics
        self.concurrency = concurrency or settings.delivery_concurrency
        self.worker_id = worker_id or new_worker_id()
        self._rng = rng or random.Random()
        self._http = HttpPool(limit=self.concurrency)
        self._context = SinkContext(
            project_dir=settings.project_dir,
            environ=dict(os.environ if environ is None else environ),
            http=self._http,
        )
        self._sinks: dict[tuple[str, int, int], tuple[Sink, SinkSpecBase]] = {}

    # ---- the loop

    async def run(self, stop: asyncio.Event) -> DeliveryReport:
        """Deliver until `stop` is set; the batch in flight is finished and recorded first."""
        total = DeliveryReport()
        while not stop.is_set():
            try:
                report = await self.run_once()
            except Exception as exc:  # the database may be away for a while: keep polling
                logger.error("delivery batch failed", extra={"error_class": type(exc).__name__})
                report = DeliveryReport()
            total += report
            if report.claimed < self.settings.delivery_batch_size:
                await self._update_depth()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.delivery_poll_seconds):
                        await stop.wait()
        return total

    async def drain(self, stop: asyncio.Event | None = None) -> DeliveryReport:
        """Deliver every row due now (retries scheduled for later are left), or until `stop`
        is set; then return."""
        total = DeliveryReport()
        while True:
            report = await self.run_once()
            total += report
            if report.claimed == 0 or (stop is not None and stop.is_set()):
                await self._update_depth()
                return total

    async def run_once(self) -> DeliveryReport:
        """Claim one batch, send it, record the outcomes."""
        rows = await run_sync(
            self.outbox.claim,
            self.worker_id,
            self.settings.delivery_batch_size,
            self.settings.delivery_lease_seconds,
        )
        if not rows:
            return DeliveryReport()
        gate = asyncio.Semaphore(self.concurrency)

        async def bounded(row: OutboxRow) -> DeliveryResult:
            async with gate:
                return await self._deliver(row)

        results = await asyncio.gather(*(bounded(row) for row in rows))
        await run_sync(self.outbox.finish, self.worker_id, results)
        by_id = {row.id: row for row in rows}
        counts = {"delivered": 0, "retry": 0, "dead": 0}
        for result in results:
            outcome = "retry" if result.status == "pending" else result.status
            counts[outcome] += 1
            row = by_id[result.id]
            if self.metrics is not None:
                self.metrics.record_delivery(row.task, row.sink, outcome)
        return DeliveryReport(len(rows), counts["delivered"], counts["retry"], counts["dead"])

    async def aclose(self) -> None:
        for sink, _ in self._sinks.values():
            await sink.aclose()
        self._sinks.clear()
        await self._http.aclose()

    # ---- one row

    async def _deliver(self, row: OutboxRow) -> DeliveryResult:
        tries = row.tries + 1
        ids = {"outbox_id": row.id, "decision_id": row.decision_id, "sink": row.sink}
        try:
            sink, _ = await self._sink(row)
            await sink.send(row)
        except DeliveryFailed as failure:
            max_tries = self._max_tries(row)
            if failure.permanent or tries >= max_tries:
                logger.warning(
                    "delivery dead-lettered",
                    extra={**ids, "tries": tries, "error": failure.message},
                )
                return DeliveryResult(row.id, "dead", tries, error=failure.message)
            delay = backoff_seconds(
                tries,
                self.settings.delivery_backoff_base_seconds,
                self.settings.delivery_backoff_cap_seconds,
                self._rng,
            )
            logger.info(
                "delivery failed, retry scheduled",
                extra={**ids, "tries": tries, "error": failure.message, "retry_in_s": delay},
            )
            return DeliveryResult(
                row.id,
                "pending",
                tries,
                next_try_at=utcnow() + timedelta(seconds=delay),
                error=failure.message,
            )
        except Exception as exc:  # a bug in a sink must not stop the worker
            logger.error("sink crashed", extra={**ids, "error_class": type(exc).__name__})
            error = f"sink crashed: {type(exc).__name__}"
            when = utcnow() + timedelta(seconds=self.settings.delivery_backoff_cap_seconds)
            if tries >= self._max_tries(row):
                return DeliveryResult(row.id, "dead", tries, error=error)
            return DeliveryResult(row.id, "pending", tries, next_try_at=when, error=error)
        logger.debug("delivered", extra={**ids, "tries": tries})
        return DeliveryResult(row.id, "delivered", tries)

    def _max_tries(self, row: OutboxRow) -> int:
        found = self._sinks.get((row.task, row.release, row.index))
        spec_tries = found[1].max_tries if found else None
        return spec_tries or self.settings.delivery_max_tries

    async def _sink(self, row: OutboxRow) -> tuple[Sink, SinkSpecBase]:
        key = (row.task, row.release, row.index)
        if key not in self._sinks:
            try:
                release = await run_sync(self.releases.get, row.task, row.release)
                deliver = release.task_spec().deliver
            except LockgateError as exc:
                raise DeliveryFailed(
                    f"release {row.task}@{row.release} cannot be loaded: {exc.message}",
                    permanent=True,
                ) from None
            if row.index >= len(deliver) or deliver[row.index].sink != row.kind:
                raise DeliveryFailed(
                    f"release {row.task}@{row.release} has no sink {row.sink}", permanent=True
                )
            spec = deliver[row.index]
            try:
                sink = self.registry.build(spec, self._context)
            except LockgateError as exc:
                raise DeliveryFailed(exc.message, permanent=True) from None
            self._sinks[key] = (sink, spec)
        return self._sinks[key]

    async def _update_depth(self) -> None:
        if self.metrics is None:
            return
        counts = await run_sync(self.outbox.depth)
        self.metrics.record_outbox_depth(counts)


@contextlib.asynccontextmanager
async def in_process(
    outbox: OutboxStore,
    releases: ReleaseStore,
    settings: Settings,
    *,
    metrics: Metrics | None = None,
) -> AsyncIterator[DeliveryWorker | None]:
    """A delivery worker running in the background of a server, unless the
    `delivery_in_process` setting is off. On exit it finishes the batch in flight (for at
    most `shutdown_timeout_seconds`; then it is cancelled and its leases run out)."""
    if not settings.delivery_in_process:
        yield None
        return
    worker = DeliveryWorker(outbox, releases, settings, metrics=metrics)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop), name="lockgate-delivery")
    try:
        yield worker
    finally:
        stop.set()
        try:
            async with asyncio.timeout(settings.shutdown_timeout_seconds):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except Exception:
            logger.exception("the delivery worker failed")
        await worker.aclose()
