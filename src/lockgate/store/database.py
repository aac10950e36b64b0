"""Engines and migrations for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from lockgate import jsontext
from lockgate.errors import ConfigError
from lockgate.store import driver

MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATION_LOCK = 7_343_001


def redact_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable database URL)"


def _json_text(value: Any) -> str:
    return jsontext.dumps(value).decode()


_JSON_CODEC: dict[str, Any] = {"json_serializer": _json_text, "json_deserializer": jsontext.loads}
"""JSON columns written and read with orjson (`lockgate.jsontext`): every decision stores five
of them, and the standard library's encoder took about a third of their insert's CPU. Stored as
compact UTF-8 (no spaces, no `\\u` escapes), which reads back as the same values; rows
written before, with the standard library's spacing and escapes, read back as before."""


def make_engine(url: str, *, timeout_seconds: float = 60.0) -> Engine:
    """An engine for a SQLite or PostgreSQL URL, set up for durability and concurrency.

    `timeout_seconds` bounds every wait on the database: SQLite's busy timeout (how long a
    statement waits for another connection's write lock), PostgreSQL's connect timeout and the
    wait for a pooled connection. Past it the driver raises, and `unavailable` says so.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            "the database URL cannot be parsed",
            hint="use sqlite:///PATH or postgresql://USER@HOST:PORT/DB",
        ) from None
    if parsed.drivername == "postgres" or parsed.drivername.startswith("postgres+"):
        # postgres:// is what many hosts hand out (Heroku, Render, Supabase); SQLAlchemy 2
        # knows the dialect only as postgresql.
        parsed = parsed.set(drivername="postgresql" + parsed.drivername.removeprefix("postgres"))
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        # psycopg's own executemany (pipeline mode, one prepared statement) is several times
        # faster for batches than one huge multi-VALUES statement that it must parse each time.
        # No pre-ping (a `SELECT 1` before every checkout): a connection the server dropped
        # fails its first statement instead, and the store's executor retries such a call once
        # where that is safe (`dropped_connection`).
        return create_engine(
            parsed,
            pool_pre_ping=False,
            pool_size=10,
            max_overflow=20,
            pool_timeout=timeout_seconds,
            connect_args={"connect_timeout": max(1, math.ceil(timeout_seconds))},
            use_insertmanyvalues=False,
            hide_parameters=True,  # errors name the statement, never the values: personal data
            **_JSON_CODEC,
        )
    if backend == "sqlite":
        return _sqlite_engine(url, timeout_seconds)
    raise ConfigError(
        f"unsupported database {backend!r}", hint="Lockgate runs on SQLite or PostgreSQL"
    )


STATE_FOLDER = ".lockgate"
"""The folder of a project's own database, created when missing (see settings)."""


def refuse_a_stranger_sqlite_file(url: str, project_dir: Path) -> None:
    """Refuse a SQLite database outside the project folder that is not a Lockgate database
    yet (no file, an empty one, or one without Lockgate's schema).

    Opening it would create or migrate it silently: a mistyped name (`lockgat.db`) in an
    existing folder would become a new, empty database, and every command would say there is
    no release. Inside the project folder a new database is expected (the first command of a
    project makes it); elsewhere `lockgate db upgrade` creates one on purpose.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return
    database = parsed.database
    if not database or database == ":memory:":
        return
    path = Path(database).resolve()
    if path.is_relative_to(project_dir.resolve()) or _has_lockgate_schema(path):
        return
    state = "there is no SQLite database" if not path.exists() else "no Lockgate database is"
    raise ConfigError(
        f"{state} at {path}, outside the project folder {project_dir.resolve()}",
        hint=f"check the path in --database or LOCKGATE_DATABASE_URL; to create a database "
        f"there on purpose, run `lockgate db upgrade --database sqlite:///{path}`",
    )


def _has_lockgate_schema(path: Path) -> bool:
    if not path.is_file() or path.stat().st_size == 0:
        return False
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
            ).fetchone()
    except sqlite3.DatabaseError:  # not a database at all, or unreadable
        return False
    return found is not None


def _sqlite_engine(url: str, timeout_seconds: float) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        folder = Path(database).parent
        if not folder.is_dir() and folder.name != STATE_FOLDER:
            # A mistyped path would otherwise be a new, empty database, and every command
            # would say there is no release instead of naming the typo.
            raise ConfigError(
                f"there is no folder {folder} for the SQLite database {database}",
                hint="check the path in --database or LOCKGATE_DATABASE_URL, or create the "
                "folder first for a new database",
            )
        folder.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"timeout": timeout_seconds}, hide_parameters=True, **_JSON_CODEC
    )
    busy_ms = max(1, round(timeout_seconds * 1000))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        driver.configure(dbapi_connection, busy_ms)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock at BEGIN, so read-then-write transactions never deadlock.
        read_only = conn.get_execution_options().get("lockgate_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    if database and database != ":memory:" and not make_url(url).query:
        # A file (not a URI with options): the hot path's statements run on the driver.
        driver.attach(engine, database, busy_ms)
    return engine


_SQLITE_BUSY = ("database is locked", "database is busy", "database table is locked")


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database is locked or unreachable right now (worth a retry
    later), rather than a fault in the statement."""
    if isinstance(exc, SQLAlchemyTimeoutError):  # no pooled connection came free in time
        return True
    if not isinstance(exc, OperationalError):
        return False
    if exc.connection_invalidated:
        return True
    message = str(exc.orig).lower()
    if isinstance(exc.orig, sqlite3.OperationalError):
        return any(busy in message for busy in _SQLITE_BUSY) or "unable to open" in message
    # psycopg raises OperationalError for connection failures and lost connections only;
    # PostgreSQL's lock and statement timeouts arrive as OperationalError too.
    return True


_TRANSIENT_SQLSTATES = ("40P01", "40001")
"""PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled back
and may simply be run again."""


def transient_conflict(exc: BaseException) -> bool:
    """Whether `exc` is a transaction PostgreSQL rolled back because of a concurrent one
    (a deadlock between two writers): running it again succeeds."""
    if not isinstance(exc, OperationalError):
        return False
    return getattr(exc.orig, "sqlstate", None) in _TRANSIENT_SQLSTATES


def dropped_connection(exc: BaseException) -> bool:
    """Whether `exc` is a pooled connection found dead (the pool has discarded it, so a retry
    gets a fresh one)."""
    return isinstance(exc, OperationalError) and bool(exc.connection_invalidated)


def alembic_config(connection: Connection) -> Any:
    """Alembic's configuration for migrating over `connection`.

    Alembic (with Mako and Pygments) costs most of a second to import, so a process loads it
    only when a migration is pending, never to find that none is.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _migrate_to_head(connection: Connection) -> None:
    from alembic import command

    command.upgrade(alembic_config(connection), "head")


_REVISION = re.compile(r'^(down_revision|revision) = (?:"(\w+)"|None)$', re.MULTILINE)


@lru_cache(maxsize=1)
def _head() -> str | None:
    """The newest migration's revision, read from the scripts' `revision` and `down_revision`
    lines (the scripts do not change while a process runs): the one no script revises."""
    revisions, revised = set(), set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        found = dict(_REVISION.findall(script.read_text(encoding="utf-8")))
        if found.get("revision"):
            revisions.add(found["revision"])
        if found.get("down_revision"):
            revised.add(found["down_revision"])
    heads = revisions - revised
    if len(heads) != 1:
        raise RuntimeError(f"the migration scripts have {len(heads)} heads, not one: {heads}")
    return heads.pop()


def _current(conn: Connection) -> str | None:
    """The revision the database is at (None before the first migration)."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (safe to run from many processes at once).

    A database already at the newest revision costs one read: Alembic's environment and
    scripts are only loaded when a migration is pending.
    """
    try:
        with read(engine) as conn:
            if _current(conn) == _head():
                return
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            if _current(conn) != _head():
                _migrate_to_head(conn)
    except OperationalError as exc:
        raise ConfigError(
            f"cannot reach the database at {_where(engine)}: {_why(exc)}",
            hint="check the URL, that the server runs, and the credentials",
        ) from None


def _where(engine: Engine) -> str:
    """Host and port (PostgreSQL) or the file (SQLite), never the password."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return f"{url.database or ':memory:'} (SQLite)"
    return f"host {url.host or 'localhost'}, port {url.port or 5432}, database {url.database}"


def _why(exc: OperationalError) -> str:
    """The driver's own reason, first line, without the connection string it may repeat."""
    lines = [line.strip() for line in str(exc.orig).splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc.orig).__name__
    return re.sub(r"password=\S+", "password=***", reason)[:300]


def migration_state(engine: Engine) -> tuple[str | None, str | None]:
    """(current revision, newest revision) of the database."""
    with read(engine) as conn:
        current = _current(conn)
    return current, _head()


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """A connection for reading: on SQLite a plain (deferred) transaction, which never waits
    for another connection's write lock in WAL mode."""
    with engine.connect().execution_options(lockgate_read_only=True) as conn:
        yield conn


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection for reads that must see one committed state across statements: on
    PostgreSQL a REPEATABLE READ transaction (each statement of a READ COMMITTED one sees the
    commits made before it); on SQLite `read`'s transaction already reads one snapshot."""
    with read(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        yield conn


def aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every datetime Lockgate stores is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
