"""`store.driver`: on a SQLite file, the decisions' lookup and commit run on one plain sqlite3
connection per thread. What callers rely on: the same decisions come back as through
SQLAlchemy, a failed transaction leaves nothing behind, a locked database is reported as
unavailable (503, not 500), and closing the store closes those connections."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from lockgate.store import Store, database, driver
from lockgate.store.decisions import _BY_KEYS, from_row, store_batches
from lockgate.store.tables import decisions
from tests.store.test_store import decision


@pytest.fixture
def store(tmp_path: Path) -> Store:
    made = Store(f"sqlite:///{tmp_path / 'lockgate.db'}", timeout_seconds=0.3)
    yield made  # type: ignore[misc]
    made.close()


def test_decisions_read_on_the_driver_equal_sqlalchemys_reading(store: Store) -> None:
    stored = replace(
        decision("k-1", text="Zoë 🧾"),
        alternatives={"queue": ["cards"], "scores": [0.5]},
        metadata={"source": {"line": 7}},
        output=None,
    )
    store.decisions.save([stored, decision("k-2")])
    with database.read(store.engine) as conn:
        expected = {
            row["idempotency_key"]: from_row(row)
            for row in conn.execute(_BY_KEYS, {"task": "routing", "keys": ["k-1", "k-2"]})
            .mappings()
            .all()
        }
    found = store.decisions.find("routing", ["k-1", "k-2", "k-new"])
    assert found == expected
    assert found["k-1"].input == {"text": "Zoë 🧾"} and found["k-1"].output is None
    assert found["k-1"].created_at == stored.created_at  # microseconds and UTC kept


def test_a_failed_write_leaves_nothing_and_the_connection_usable(store: Store) -> None:
    with pytest.raises(RuntimeError, match="stop"), driver.write(store.engine) as conn:
        store_batches(conn, [([decision("k-1")], ())])
        raise RuntimeError("stop")
    assert store.decisions.find("routing", ["k-1"]) == {}
    store.decisions.save([decision("k-2")])  # no transaction was left open
    assert list(store.decisions.find("routing", ["k-1", "k-2"])) == ["k-2"]


def test_a_locked_database_is_reported_unavailable(store: Store, tmp_path: Path) -> None:
    holder = sqlite3.connect(tmp_path / "lockgate.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write lock
    try:
        with pytest.raises(DBAPIError) as caught:
            store.decisions.save([decision("k-1")])
        assert database.unavailable(caught.value)
        assert "routing" not in str(caught.value)  # the values are never in the error
    finally:
        holder.rollback()
        holder.close()
    store.decisions.save([decision("k-1")])  # the lock gone, the same save goes through
    assert list(store.decisions.find("routing", ["k-1"])) == ["k-1"]


def test_each_thread_has_its_own_connection_closed_with_the_store(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'lockgate.db'}")
    seen: list[sqlite3.Connection] = []

    def look() -> None:
        with driver.read(store.engine) as conn:
            assert isinstance(conn, driver.Driver)
            seen.append(conn.connection)

    threads = [threading.Thread(target=look) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    look()
    look()
    assert len({id(c) for c in seen}) == 3  # two threads, then this one twice
    store.close()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        seen[2].execute("SELECT 1")
    store.decisions.save([decision("k-1")])  # a closed store opens new connections on use
    assert list(store.decisions.find("routing", ["k-1"])) == ["k-1"]
    store.close()


def test_a_database_in_memory_uses_sqlalchemys_connection() -> None:
    engine = database.make_engine("sqlite://")
    try:
        with driver.write(engine) as conn:
            assert isinstance(conn, Connection)
        with driver.read(engine) as conn:
            assert isinstance(conn, Connection)
    finally:
        engine.dispose()


def test_select_rows_converts_as_sqlalchemy_reads(store: Store) -> None:
    made = decision("k-1")
    store.decisions.save([made])
    with driver.read(store.engine) as conn:
        (row,) = driver.select_rows(conn, decisions, "idempotency_key = ?", ["k-1"])
    assert row["created_at"] == made.created_at.replace(tzinfo=None)  # SQLite keeps it naive
    assert row["input"] == {"text": "hello"} and row["confidence"] == 0.9


def test_reading_connections_keep_a_small_page_cache(store: Store) -> None:
    # A server reads on up to 8 threads; each at SQLite's default 2 MiB grew it by 10 MiB.
    with driver.read(store.engine) as reading:
        assert isinstance(reading, driver.Driver)
        assert reading.rows("PRAGMA cache_size") == [(-256,)]
    with driver.write(store.engine) as writing:
        assert isinstance(writing, driver.Driver)
        assert writing.connection is not reading.connection
        assert writing.rows("PRAGMA cache_size") == [(-2000,)]


def test_a_lookup_of_new_keys_is_one_statement(store: Store) -> None:
    # The lookup every decision makes: new keys (the usual case) cost one query, and only
    # keys found stored are read as decisions.
    store.decisions.save([decision("k-stored")])
    with driver.read(store.engine) as conn:
        assert isinstance(conn, driver.Driver)
        statements: list[str] = []
        conn.connection.set_trace_callback(statements.append)
        try:
            assert store.decisions.find("routing", ["k-new-1", "k-new-2"]) == {}
            assert len(statements) == 1
            statements.clear()
            assert list(store.decisions.find("routing", ["k-new-3", "k-stored"])) == ["k-stored"]
            assert len(statements) == 2
        finally:
            conn.connection.set_trace_callback(None)
