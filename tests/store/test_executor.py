"""The store's executor on SQLite: a held write lock becomes a clean, bounded error, and a write
whose caller gave up before it started is never made."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from lockgate.errors import Unavailable
from lockgate.store import Store
from tests.server.test_back_pressure import write_lock_held
from tests.store.test_store import decision


@pytest.fixture
def store(sqlite_database_url: str) -> Iterator[Store]:
    store = Store(sqlite_database_url, timeout_seconds=0.3)
    yield store
    store.close()


def test_a_write_held_up_past_the_timeout_raises_unavailable_and_stores_nothing(
    store: Store, sqlite_database_url: str
) -> None:
    with write_lock_held(sqlite_database_url, 2.0) as released:
        started = time.perf_counter()
        with pytest.raises(Unavailable) as caught:
            asyncio.run(store.async_decisions.save([decision("k1")]))
        elapsed = time.perf_counter() - started
        assert not released.is_set()
    assert caught.value.status == 503
    assert caught.value.retry_after_seconds == 1
    assert 0.25 <= elapsed < 1.5
    assert store.decisions.find("routing", ["k1"]) == {}


def test_reads_go_on_while_another_connection_holds_the_write_lock(
    store: Store, sqlite_database_url: str
) -> None:
    store.decisions.save([decision("k1")])
    with write_lock_held(sqlite_database_url, 2.0) as released:
        found = asyncio.run(store.async_decisions.find("routing", ["k1"]))
        assert not released.is_set()
    assert list(found) == ["k1"]


def test_a_write_still_queued_when_its_caller_gives_up_is_never_made(
    sqlite_database_url: str,
) -> None:
    store = Store(sqlite_database_url, timeout_seconds=5.0)

    async def main() -> None:
        first = asyncio.create_task(store.async_decisions.save([decision("first")]))
        await asyncio.sleep(0.1)  # the writer thread now waits for the lock
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(store.async_decisions.save([decision("queued")]), 0.1)
        await first

    try:
        with write_lock_held(sqlite_database_url, 0.6):
            asyncio.run(main())
        assert list(store.decisions.find("routing", ["first", "queued"])) == ["first"]
    finally:
        store.close()
