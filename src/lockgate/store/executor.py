"""The store's blocking calls, run off the event loop.

Modelled on datasette's `Database.execute_write_fn`: writes go through one queue to one writer
thread per database per process, reads run in a pool of reader threads, and the caller awaits a
future. The event loop never waits on the database, and because every write of the process
passes one thread, concurrent writes can later be grouped into one transaction there.

A call that finds the database locked or unreachable past its timeout raises `Unavailable`
(503 with `Retry-After` over HTTP). A caller stopped while it waits (a request past its time
limit) is noted in `lockgate.waits`, so the edge can answer 503 rather than 504; its write, if
not yet started, is dropped from the queue.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from lockgate.errors import Unavailable
from lockgate.store.database import dropped_connection, transient_conflict, unavailable
from lockgate.waits import waiting_on_database

P = ParamSpec("P")
T = TypeVar("T")


class StoreExecutor:
    """One writer thread and a pool of reader threads for one database, started on first use."""

    def __init__(self, *, readers: int = 8, retry_after_seconds: int = 1) -> None:
        self.retry_after_seconds = retry_after_seconds
        self._reader_count = readers
        self._writer, self._readers = self._pools()

    def _pools(self) -> tuple[ThreadPoolExecutor, ThreadPoolExecutor]:
        return (
            ThreadPoolExecutor(1, thread_name_prefix="lockgate-store-writer"),
            ThreadPoolExecutor(self._reader_count, thread_name_prefix="lockgate-store-reader"),
        )

    async def read(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` in a reader thread: for calls that only read. Tried again on a
        connection found dead or a transaction rolled back for a deadlock (`_retrying`)."""
        call = _retrying(functools.partial(fn, *args, **kwargs))
        return await self._run(self._readers, call)

    async def write(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` in the writer thread, after the writes queued before it."""
        return await self._run(self._writer, functools.partial(fn, *args, **kwargs))

    async def write_idempotent(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`write`, for a call that may safely run twice (an insert that skips what is stored):
        tried again as `read` is."""
        call = _retrying(functools.partial(fn, *args, **kwargs))
        return await self._run(self._writer, call)

    async def _run(self, pool: Executor, call: Callable[[], T]) -> T:
        future = asyncio.get_running_loop().run_in_executor(pool, call)
        # If the caller is stopped, the queued call is dropped if it has not started; a started
        # one runs to its end (bounded by the engine's timeout) and its outcome is discarded.
        try:
            with waiting_on_database():
                return await future
        except Exception as exc:
            if not unavailable(exc):
                raise
            raise Unavailable(
                "the database is locked or unreachable; nothing was stored",
                hint="retry later with the same Idempotency-Key",
                retry_after_seconds=self.retry_after_seconds,
            ) from exc

    def close(self) -> None:
        """Stop the threads once the calls already started have finished; drop queued ones.
        Like a disposed engine, the executor stays usable: new threads start on next use."""
        writer, readers = self._writer, self._readers
        self._writer, self._readers = self._pools()
        writer.shutdown(wait=True, cancel_futures=True)
        readers.shutdown(wait=True, cancel_futures=True)


_CONFLICT_TRIES = 4


def _retrying(call: Callable[[], T]) -> Callable[[], T]:
    """`call`, run once more on a connection found dead (the pool discarded it, so the next
    try gets a fresh one), and up to `_CONFLICT_TRIES` times in all when PostgreSQL rolled it
    back for a deadlock with another writer. Only for calls that may safely run twice."""

    def retried() -> T:
        dropped_once, tries = False, 0
        while True:
            tries += 1
            try:
                return call()
            except Exception as exc:
                if dropped_connection(exc) and not dropped_once:
                    dropped_once = True
                elif not (transient_conflict(exc) and tries < _CONFLICT_TRIES):
                    raise

    return retried
