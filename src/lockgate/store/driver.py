"""SQLite's own driver, for the statements every decision runs.

A server's decision costs one key lookup and one share of a commit. Through SQLAlchemy each
of them also checks a connection out of the pool and back in (with its reset), runs the
`BEGIN` event and builds an execution context per statement: on this project's 2-core
machine, after the idle gap a request at concurrency 1 leaves, that was 1.0 ms of CPU for a
one-decision commit whose SQLite work and fsync took 0.3 ms, and 0.35 ms for a lookup of
0.07 ms (benchmarks/RESULTS.md, issue 10, seventh session).

So on a SQLite file the store keeps plain `sqlite3` connections per thread (one to write
with, one to read with, whose page cache is small), configured as the engine's own
connections are (`configure`), and runs those statements on them (`write`, `read`), with the
values converted by the same bind and result processors SQLAlchemy applies to the columns:
what is stored and read back is the same as through SQLAlchemy. A driver error is raised as
SQLAlchemy raises it (`DBAPIError`, its values hidden), so callers see one kind of error
whichever path ran.

On PostgreSQL, and on a SQLite database without a file (`:memory:`, shared by one pool
connection), `write` and `read` hand out SQLAlchemy connections as before.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, Table, event
from sqlalchemy.exc import DBAPIError


def configure(connection: sqlite3.Connection, busy_ms: int) -> None:
    """Settings of every connection Lockgate opens to a SQLite file: transactions begun
    explicitly (autocommit otherwise); WAL, so readers run beside one writer; synchronous=FULL,
    so every commit is durable across a power cut, not only a crash; foreign keys; and how
    long a statement waits for another connection's write lock."""
    connection.isolation_level = None
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
    cursor.close()


class Driver:
    """A SQLite connection inside a transaction (or in autocommit, for `read`), with the
    dialect whose conversions its statements apply."""

    __slots__ = ("connection", "dialect")

    def __init__(self, connection: sqlite3.Connection, dialect: Dialect) -> None:
        self.connection = connection
        self.dialect = dialect

    def rows(self, statement: str, values: Sequence[Any] = ()) -> list[Any]:
        """The rows of one statement, as tuples."""
        try:
            cursor = self.connection.execute(statement, values)
            found = cursor.fetchall()
            cursor.close()
        except sqlite3.Error as exc:
            raise _as_sqlalchemy(statement, values, exc, self.dialect) from exc
        return found


def on_driver(conn: Connection | Driver) -> Driver:
    """`conn` as a `Driver`: a SQLAlchemy connection to SQLite gives its driver connection,
    inside the transaction SQLAlchemy began on it."""
    if isinstance(conn, Driver):
        return conn
    driver = conn.connection.driver_connection
    if not isinstance(driver, sqlite3.Connection):
        raise ValueError("this runs on SQLite's driver; use SQLAlchemy's statements elsewhere")
    return Driver(driver, conn.dialect)


def on_sqlite(conn: Connection | Driver) -> bool:
    return isinstance(conn, Driver) or conn.dialect.name == "sqlite"


def placeholder(conn: Connection | Driver) -> str:
    """The driver's positional parameter marker, for SQL run with `driver_rows`."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def driver_rows(conn: Connection | Driver, statement: str, values: Sequence[Any]) -> list[Any]:
    """The rows of one SQL statement (markers from `placeholder`) run on the driver: on
    SQLite through `Driver.rows`, elsewhere through SQLAlchemy's `exec_driver_sql`."""
    if on_sqlite(conn):
        return on_driver(conn).rows(statement, values)
    assert isinstance(conn, Connection)
    return list(conn.exec_driver_sql(statement, tuple(values)))


class _Connections:
    """One `sqlite3` connection per thread (and process) to one SQLite file, opened on first
    use; all closed when the engine is disposed, after which threads open new ones.
    `cache_kib` bounds each connection's page cache (None: SQLite's default, 2 MiB)."""

    def __init__(self, path: str, busy_ms: int, cache_kib: int | None = None) -> None:
        self._path = path
        self._busy_ms = busy_ms
        self._cache_kib = cache_kib
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[sqlite3.Connection] = []
        self._generation = 0

    def get(self) -> sqlite3.Connection:
        held = getattr(self._local, "held", None)
        if held is not None and held[0] == self._generation and held[1] == os.getpid():
            return held[2]
        connection = sqlite3.connect(
            self._path, timeout=self._busy_ms / 1000, check_same_thread=False
        )
        configure(connection, self._busy_ms)
        if self._cache_kib is not None:
            connection.execute(f"PRAGMA cache_size=-{self._cache_kib}")
        with self._lock:
            self._open.append(connection)
            self._local.held = (self._generation, os.getpid(), connection)
        return connection

    def close(self) -> None:
        with self._lock:
            self._generation += 1
            opened, self._open = self._open, []
        for connection in opened:
            connection.close()


_READ_CACHE_KIB = 256
"""The page cache of each reading connection. A server reads on up to 8 threads, and what
they read (one key in a unique index) is spread at random: with SQLite's default of 2 MiB
each, a server grew by 10 MiB over its first 100,000 decisions while the caches filled;
the operating system's file cache still holds the pages."""

_CONNECTIONS: weakref.WeakKeyDictionary[Engine, tuple[_Connections, _Connections]] = (
    weakref.WeakKeyDictionary()
)
"""Per engine on a SQLite file: the writing connections, then the reading ones."""


def attach(engine: Engine, path: str, busy_ms: int) -> None:
    """Give `engine` (on the SQLite file `path`) its per-thread driver connections: one to
    write with and one to read with, per thread that does either."""
    writing = _Connections(path, busy_ms)
    reading = _Connections(path, busy_ms, cache_kib=_READ_CACHE_KIB)
    _CONNECTIONS[engine] = (writing, reading)

    def close(_engine: Engine) -> None:
        writing.close()
        reading.close()

    event.listen(engine, "engine_disposed", close)


@contextmanager
def write(engine: Engine) -> Iterator[Connection | Driver]:
    """One write transaction: on a SQLite file `BEGIN IMMEDIATE` ... `COMMIT` on this
    thread's driver connection (rolled back if the block raises); elsewhere
    `engine.begin()`."""
    connections = _CONNECTIONS.get(engine)
    if connections is None:
        with engine.begin() as conn:
            yield conn
        return
    driver = Driver(connections[0].get(), engine.dialect)
    driver.rows("BEGIN IMMEDIATE")
    try:
        yield driver
        driver.rows("COMMIT")
    except BaseException:
        if driver.connection.in_transaction:
            driver.connection.rollback()
        raise


@contextmanager
def read(engine: Engine) -> Iterator[Connection | Driver]:
    """Reads: on a SQLite file this thread's driver connection in autocommit, where each
    statement reads the latest committed state (WAL: never waiting for the writer);
    elsewhere `database.read`'s connection."""
    connections = _CONNECTIONS.get(engine)
    if connections is None:
        from lockgate.store import database  # it imports this module for `configure`

        with database.read(engine) as conn:
            yield conn
        return
    yield Driver(connections[1].get(), engine.dialect)


_MOST_ROWS = 256
"""The most rows one INSERT statement takes (also bounded by SQLite's parameter limit)."""


def insert_rows(
    conn: Connection | Driver,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    or_ignore: bool = False,
    returning: str | None = None,
) -> list[Any]:
    """Insert `rows` (mappings with the same keys) into `table` on SQLite, in multi-row
    VALUES statements on the driver, inside `conn`'s transaction. Returns the `returning`
    column of the rows inserted (with `or_ignore`, a row whose unique key is stored already
    is skipped, and so is its value).

    Each value goes through the bind processor SQLAlchemy itself would apply for the
    column's type (JSON to text, datetimes to SQLite's text format), so a row is stored
    exactly as `conn.execute(table.insert(), rows)` stores it.
    """
    if not rows:
        return []
    driver = on_driver(conn)
    names = tuple(rows[0])
    convert = _bind_processors(driver.dialect, table, names)
    most = min(
        _MOST_ROWS, driver.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(names)
    )
    found: list[Any] = []
    start = 0
    while start < len(rows):
        # Statements of 1, 2, 4, ... rows: a handful of distinct statements per table, which
        # the connection keeps prepared. One statement per batch size instead kept up to 64
        # prepared statements of up to a thousand parameters each: 10 MiB more in a server.
        count = 1 << (min(len(rows) - start, max(1, most)).bit_length() - 1)
        chunk = rows[start : start + count]
        start += count
        values: list[Any] = []
        for row in chunk:
            values.extend(
                row[name] if process is None else process(row[name])
                for name, process in zip(names, convert, strict=True)
            )
        statement = _insert_sql(table.name, names, len(chunk), or_ignore, returning)
        inserted = driver.rows(statement, values)
        if returning is not None:
            found.extend(value for (value,) in inserted)
    return found


def insert(conn: Connection | Driver, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert `rows` inside `conn`'s transaction: on SQLite on the driver (`insert_rows`),
    elsewhere as SQLAlchemy's executemany."""
    if on_sqlite(conn):
        insert_rows(conn, table, rows)
    elif rows:
        assert isinstance(conn, Connection)
        conn.execute(table.insert(), rows)


def select_rows(
    conn: Connection | Driver, table: Table, where: str, values: Sequence[Any]
) -> list[dict[str, Any]]:
    """The rows of `table` matching the SQL condition `where` (with `?` markers for
    `values`), each a dict of every column, converted as SQLAlchemy converts them when it
    reads (datetimes from text, JSON)."""
    driver = on_driver(conn)
    names = tuple(column.name for column in table.columns)
    convert = _result_processors(driver.dialect, table)
    columns = ", ".join(f'"{name}"' for name in names)
    found = driver.rows(f'SELECT {columns} FROM "{table.name}" WHERE {where}', values)
    return [
        {
            name: value if process is None or value is None else process(value)
            for name, process, value in zip(names, convert, row, strict=True)
        }
        for row in found
    ]


def _as_sqlalchemy(
    statement: str, values: Sequence[Any], exc: sqlite3.Error, dialect: Dialect
) -> Exception:
    """The driver's error as SQLAlchemy raises it, so callers catch one kind of error: the
    statement is named, the values never are (they hold input, and input personal data)."""
    return DBAPIError.instance(
        statement, values, exc, sqlite3.Error, hide_parameters=True, dialect=dialect
    )


@lru_cache(maxsize=64)
def _bind_processors(
    dialect: Dialect, table: Table, names: tuple[str, ...]
) -> tuple[Callable[[Any], Any] | None, ...]:
    """Per column, the conversion SQLAlchemy applies to a bound value (None: none)."""
    return tuple(table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)


@lru_cache(maxsize=64)
def _result_processors(dialect: Dialect, table: Table) -> tuple[Callable[[Any], Any] | None, ...]:
    """Per column, the conversion SQLAlchemy applies to a value it reads (None: none)."""
    return tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None)
        for column in table.columns
    )


@lru_cache(maxsize=256)
def _insert_sql(
    table: str, names: tuple[str, ...], count: int, or_ignore: bool, returning: str | None
) -> str:
    row = "(" + ", ".join("?" * len(names)) + ")"
    verb = "INSERT OR IGNORE" if or_ignore else "INSERT"
    columns = ", ".join(f'"{name}"' for name in names)
    tail = f' RETURNING "{returning}"' if returning else ""
    return f'{verb} INTO "{table}" ({columns}) VALUES ' + ", ".join([row] * count) + tail
