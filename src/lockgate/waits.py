"""Whether the current request is waiting on the database, and whether it was stopped then.

The store's executor marks the wait; the time-limit middleware reads the outcome and answers
503 (back-pressure: retry later) rather than 504 when a request ran out of time because the
database was locked or unreachable. Group commit passes the mark from a group to its members.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class StoreWaits:
    """One request's (or one decision group's) waits on the database."""

    def __init__(self) -> None:
        self.waiting = 0
        """How many of its calls wait on the database now."""
        self.interrupted = False
        """Whether it was stopped while one of them waited."""


_WAITS: ContextVar[StoreWaits | None] = ContextVar("lockgate_store_waits", default=None)


@contextmanager
def watching_waits(waits: StoreWaits | None = None) -> Iterator[StoreWaits]:
    """Note, for the code inside, its waits on the database (in `waits`, or a new record)."""
    waits = waits if waits is not None else StoreWaits()
    token = _WAITS.set(waits)
    try:
        yield waits
    finally:
        _WAITS.reset(token)


def current_waits() -> StoreWaits | None:
    return _WAITS.get()


def note_interrupted() -> None:
    """The current request was stopped while it waited on the database."""
    waits = _WAITS.get()
    if waits is not None:
        waits.interrupted = True


@contextmanager
def waiting_on_database() -> Iterator[None]:
    """Mark the code inside as a wait on the database for the current request (or group): a
    stop (cancellation) during it is noted as an interrupted wait."""
    waits = _WAITS.get()
    if waits is not None:
        waits.waiting += 1
    try:
        yield
    except asyncio.CancelledError:
        note_interrupted()
        raise
    finally:
        if waits is not None:
            waits.waiting -= 1
