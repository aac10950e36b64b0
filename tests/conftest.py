"""Shared pytest fixtures for the Lockgate test suite.

Storage tests take the ``database_url`` fixture and so run twice, once per
backend: ``test_x[sqlite]`` and ``test_x[postgresql]``.

The PostgreSQL variant needs a server; ``make test`` (via
``scripts/postgres.sh run``) starts a throw-away one and exports
``LOCKGATE_TEST_POSTGRES_URL``. Every test gets a migrated database on that
server to itself; afterwards it is emptied for a later test of the same
worker, or dropped if the test changed its schema (``PostgresPool``).
Without the variable the PostgreSQL variants are skipped, unless
``LOCKGATE_REQUIRE_POSTGRES=1`` or ``CI`` is set, in which case they fail: CI
must never silently lose a backend.

Migrations run once per test run (once per pytest-xdist worker): a session
fixture migrates a template, and each test gets a copy of it, a file copy on
SQLite and ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL (or a used copy,
emptied). Tests of migrating itself take ``empty_database_url`` instead, an
unmigrated database.

Only stdlib, pytest, PyYAML and SQLAlchemy are imported at module level, so
this file loads whatever state the ``lockgate`` package is in; the template
fixtures import ``lockgate.store.database`` when they first run.
"""

from __future__ import annotations

import os
import shutil
import textwrap
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

POSTGRES_URL_ENV = "LOCKGATE_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "LOCKGATE_REQUIRE_POSTGRES"
POSTGRES_MISSING = (
    "PostgreSQL not available: run the tests with `make test`, which starts a server "
    f"(or set {POSTGRES_URL_ENV}=postgresql+psycopg://USER@HOST:PORT/postgres)"
)

_FALSY = {"", "0", "false", "no", "off"}


def _postgres_required() -> bool:
    """True when a missing PostgreSQL server must fail the run instead of skipping."""
    return (
        os.environ.get(REQUIRE_POSTGRES_ENV, "").strip().lower() not in _FALSY
        or os.environ.get("CI", "").strip().lower() not in _FALSY
    )


def _postgres_admin_url() -> URL | None:
    raw = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if not raw:
        return None
    url = make_url(raw)
    if url.drivername in ("postgresql", "postgres"):
        # Plain postgresql:// would pick psycopg2, which is not a dependency.
        url = url.set(drivername="postgresql+psycopg")
    return url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Single tests marked `slow` (on the test function, not a whole module) run first, each
    group in its collected order.

    pytest-xdist's `load` scheduling (`make test` runs two workers) hands each worker a run of
    consecutive tests, then more as it finishes. In file order the longest test
    (tests/test_readme.py, minutes of `lockgate` commands) came four fifths of the way down and
    ran alone at the end while the other worker had nothing left to do; first, it runs beside
    everything else. Modules marked slow as a whole keep their place, so that the tests sharing
    a module's server or model stay together on one worker."""
    items.sort(key=lambda item: not any(m.name == "slow" for m in item.own_markers))


def pytest_report_header(config: pytest.Config) -> str:
    url = _postgres_admin_url()
    if url is None:
        consequence = "postgresql tests will FAIL" if _postgres_required() else "skipped"
        return f"lockgate PostgreSQL: {POSTGRES_URL_ENV} not set ({consequence})"
    where = f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"
    return f"lockgate PostgreSQL: {url.drivername} at {where} (from {POSTGRES_URL_ENV})"


def _admin_engine(url: URL) -> sa.Engine:
    return sa.create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")


def _worker() -> str:
    """This process's pytest-xdist worker id (``gw0``, ...), or ``main`` without xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _require_postgres() -> URL:
    """The admin URL of the test server; skips (or fails, see the module docstring) without."""
    admin_url = _postgres_admin_url()
    if admin_url is None:
        if _postgres_required():
            pytest.fail(POSTGRES_MISSING, pytrace=False)
        pytest.skip(POSTGRES_MISSING)
    return admin_url


def _migrate(engine: sa.Engine) -> None:
    """Bring ``engine``'s database to the newest migration, then close every connection."""
    from lockgate.store.database import upgrade

    try:
        upgrade(engine)
    finally:
        engine.dispose()


def _admin_execute(admin_url: URL, statement: str) -> None:
    engine = _admin_engine(admin_url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def _create_database(admin_url: URL, template: str | None = None) -> str:
    """The name of a new database (a copy of ``template`` if given) on the test server."""
    name = f"lg_test_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    _admin_execute(admin_url, f'CREATE DATABASE "{name}"{copy}')
    return name


def _drop_database(admin_url: URL, name: str) -> None:
    # WITH (FORCE) (PostgreSQL 13+) ends connections a test leaked.
    _admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def _postgres_database(admin_url: URL, template: str | None = None) -> Iterator[str]:
    """A new database (a copy of ``template`` if given) on the test server, dropped after."""
    name = _create_database(admin_url, template)
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        _drop_database(admin_url, name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per test run (per xdist worker); tests get copies."""
    from lockgate.store.database import make_engine

    path = tmp_path_factory.mktemp(f"sqlite-template-{_worker()}") / "lockgate.db"
    _migrate(make_engine(f"sqlite:///{path}"))  # the engine Store uses: WAL, as in real files
    # The last connection to close checkpoints the write-ahead log into the file itself.
    assert not path.with_name(path.name + "-wal").exists(), "template WAL not checkpointed"
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """Name of a PostgreSQL database migrated once per test run (per xdist worker).

    Tests copy it with ``CREATE DATABASE ... TEMPLATE``, which fails while any session is
    connected to the template, so it is migrated over a pool-less engine and then closed to
    connections altogether.
    """
    admin_url = _require_postgres()
    name = f"lg_template_{_worker()}_{uuid.uuid4().hex[:8]}"
    _admin_execute(admin_url, f'CREATE DATABASE "{name}"')
    try:
        _migrate(sa.create_engine(admin_url.set(database=name), poolclass=NullPool))
        _admin_execute(admin_url, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        yield name
    finally:
        _drop_database(admin_url, name)


@pytest.fixture
def sqlite_database_url(tmp_path: Path, sqlite_template: Path) -> str:
    """URL of a SQLite database in ``tmp_path`` at the newest migration, holding no rows."""
    path = tmp_path / "lockgate.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


# What a database's schema is made of, as one digest: a reset database must match its template's.
_SCHEMA_DIGEST = """
select md5(coalesce(string_agg(item, ';' order by item), '')) from (
  select 'c:' || table_name || '.' || column_name || ':' || data_type || ':'
         || coalesce(column_default, '') || ':' || is_nullable as item
    from information_schema.columns where table_schema = 'public'
  union all select 'i:' || indexdef from pg_indexes where schemaname = 'public'
  union all select 's:' || sequencename from pg_sequences where schemaname = 'public'
  union all select 'v:' || viewname from pg_views where schemaname = 'public'
  union all select 'r:' || conname || ':' || pg_get_constraintdef(oid) from pg_constraint
    where connamespace = 'public'::regnamespace
  union all select 'f:' || proname from pg_proc where pronamespace = 'public'::regnamespace
  union all select 't:' || tgname from pg_trigger where not tgisinternal
  union all select 'a:' || version_num from alembic_version
) as parts
"""
_TABLES = "select tablename from pg_tables where schemaname = 'public'"
_SEQUENCES = "select sequencename from pg_sequences where schemaname = 'public'"


class PostgresPool:
    """This worker's migrated PostgreSQL databases, handed to one test at a time.

    A new database is a copy of the template (``CREATE DATABASE ... TEMPLATE``): 0.1-0.3 s on
    an idle server, 0.57 s per test on average in a whole run on two cores; emptying a used
    one takes about 0.1 s (benchmarks/RESULTS.md, "The whole suite"). After each test
    ``give_back`` ends the connections the test left, drops the tables it created, deletes
    every row and restarts every sequence, then compares the schema's digest with the
    template's: a database that differs in any way (a column, an index, a migration) is
    dropped instead of reused."""

    def __init__(self, admin_url: URL, template: str) -> None:
        self.admin_url = admin_url
        self.template = template
        self.free: list[str] = []
        self.made: list[str] = []
        # The template's schema, tables and sequences, read from its first copy.
        self._digest: str | None = None
        self._tables: set[str] = set()
        self._sequences: list[str] = []

    def url(self, name: str) -> str:
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def take(self) -> str:
        if self.free:  # the one that rested longest
            return self.free.pop(0)
        name = _create_database(self.admin_url, self.template)
        self.made.append(name)
        if self._digest is None:
            self._digest, self._tables, self._sequences = self._schema(name)
        return name

    @contextmanager
    def lend(self) -> Iterator[str]:
        """The URL of a database for the caller alone, given back when the block ends."""
        name = self.take()
        try:
            yield self.url(name)
        finally:
            self.give_back(name)

    def give_back(self, name: str) -> None:
        try:
            clean = self._reset(name)
        except sa.exc.SQLAlchemyError:
            clean = False
        if clean:
            self.free.append(name)
        else:
            self.drop(name)

    def drop(self, name: str) -> None:
        _drop_database(self.admin_url, name)
        self.made.remove(name)

    def close(self) -> None:
        for name in list(self.made):
            self.drop(name)

    def _schema(self, name: str) -> tuple[str, set[str], list[str]]:
        engine = _admin_engine(self.admin_url.set(database=name))
        try:
            with engine.connect() as conn:
                digest = str(conn.execute(sa.text(_SCHEMA_DIGEST)).scalar_one())
                tables = set(conn.execute(sa.text(_TABLES)).scalars())
                sequences = sorted(conn.execute(sa.text(_SEQUENCES)).scalars())
                return digest, tables, sequences
        finally:
            engine.dispose()

    def _reset(self, name: str) -> bool:
        engine = _admin_engine(self.admin_url.set(database=name))
        try:
            with engine.connect() as conn:
                # Waits (up to 10 s each) until the sessions the test left have ended.
                conn.execute(
                    sa.text(
                        "select pg_terminate_backend(pid, 10000) from pg_stat_activity"
                        " where datname = current_database() and pid <> pg_backend_pid()"
                    )
                )
                conn.execute(sa.text("set lock_timeout = '10s'"))
                extra = sorted(set(conn.execute(sa.text(_TABLES)).scalars()) - self._tables)
                if extra:
                    conn.execute(sa.text("drop table " + ", ".join(f'"{t}"' for t in extra)))
                # Foreign keys are triggers: with the replica role none fires, so the order of
                # the deletes does not matter. One round trip; the connection closes after. A
                # sequence the test made itself changes the digest below.
                conn.exec_driver_sql(
                    "; ".join(
                        ["set session_replication_role = replica"]
                        + [f'delete from "{t}"' for t in sorted(self._tables - {"alembic_version"})]
                        + [f'alter sequence "{seq}" restart' for seq in self._sequences]
                    )
                )
                return str(conn.execute(sa.text(_SCHEMA_DIGEST)).scalar_one()) == self._digest
        finally:
            engine.dispose()


@pytest.fixture(scope="session")
def postgres_pool(postgres_template: str) -> Iterator[PostgresPool]:
    """This worker's reusable migrated databases (see `PostgresPool`), dropped at the end."""
    pool = PostgresPool(_require_postgres(), postgres_template)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def postgres_database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a PostgreSQL database at the newest migration holding no rows, for this test
    alone; emptied afterwards for a later test, or dropped (see `PostgresPool`)."""
    _require_postgres()
    pool: PostgresPool = request.getfixturevalue("postgres_pool")
    with pool.lend() as url:
        yield url


@pytest.fixture
def empty_postgres_database_url() -> Iterator[str]:
    """URL of a brand-new, empty (unmigrated) PostgreSQL database, dropped after the test."""
    with _postgres_database(_require_postgres()) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """SQLAlchemy URL of a database migrated to the newest revision and holding no rows; the
    test runs once per backend."""
    fixture = {"sqlite": "sqlite_database_url", "postgresql": "postgres_database_url"}
    url: str = request.getfixturevalue(fixture[request.param])
    return url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Like ``database_url``, but one database for every test of a module that takes it: for
    read-mostly matrices whose tests keep apart by their own keys and names, where a fresh
    database (and what the module builds on it) per test would be most of the run."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path_factory.mktemp("module-database") / "lockgate.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    _require_postgres()
    pool: PostgresPool = request.getfixturevalue("postgres_pool")
    with pool.lend() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLAlchemy URL of an empty, unmigrated database; the test runs once per backend.

    For tests of migrating itself; every other storage test takes ``database_url``.
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/lockgate.db"
    url: str = request.getfixturevalue("empty_postgres_database_url")
    return url


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """An empty Lockgate project folder containing a ``tasks/`` subfolder."""
    project = tmp_path / "project"
    (project / "tasks").mkdir(parents=True)
    return project


def write_task_file(project_dir: Path, text: str) -> Path:
    """Write YAML ``text`` to ``project_dir/tasks/<name>.yaml``; return the path.

    ``<name>`` is the task's top-level ``name`` key. The text is dedented, so
    indented triple-quoted strings are fine.
    """
    text = textwrap.dedent(text).lstrip("\n")
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data["name"]:
        raise ValueError("write_task: the YAML needs a top-level string `name:`")
    name = data["name"]
    if "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"write_task: task name {name!r} is not usable as a file name")
    path = project_dir / "tasks" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def write_task() -> Callable[[Path, str], Path]:
    """``write_task(project_dir, yaml_text) -> Path`` (see ``write_task_file``)."""
    return write_task_file


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per storage backend, so a run shows that both really ran."""
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") not in ("call", "setup"):
                continue
            if outcome == "passed" and report.when != "call":
                continue
            node = getattr(report, "nodeid", "")
            for backend in ("sqlite", "postgresql"):
                if f"[{backend}" in node or f"-{backend}]" in node or f"-{backend}-" in node:
                    by_outcome = counts.setdefault(backend, {})
                    by_outcome[outcome] = by_outcome.get(outcome, 0) + 1
    for backend, by_outcome in sorted(counts.items(), reverse=True):
        parts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(by_outcome.items()))
        terminalreporter.write_line(f"storage tests on {backend}: {parts}")
