"""What the benchmarks share: a description of the machine, a fresh database per run, and the
database's version and durability settings.

Imported by the benchmark scripts, which run as `python benchmarks/NAME.py` (so this folder is
on the import path).
"""

from __future__ import annotations

import os
import platform
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from lockgate.store import Store


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.machine()}, {os.cpu_count()} cores ({model}), Python "
        f"{platform.python_version()}, load average at start {load}"
    )


@contextmanager
def fresh_database(postgres: str | None, folder: Path) -> Iterator[str]:
    """A database URL nothing else uses, migrated: a new SQLite file, or a new database on the
    PostgreSQL server of `postgres` (dropped on exit)."""
    if postgres is None:
        url = f"sqlite:///{folder / 'bench.db'}"
        # Made on purpose, as `lockgate db upgrade` would: commands refuse to create a SQLite
        # file outside their project folder themselves.
        from lockgate.store import Store

        Store(url).close()
        yield url
        return
    server = make_url(postgres)
    if server.drivername in ("postgresql", "postgres"):
        server = server.set(drivername="postgresql+psycopg")
    admin = create_engine(server, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    name = f"lockgate_bench_{secrets.token_hex(5)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def backend_version(store: Store) -> dict[str, str]:
    if store.backend == "sqlite":
        return {"sqlite": sqlite3.sqlite_version, "settings": "WAL, synchronous=FULL"}
    with store.engine.connect() as conn:
        show = lambda name: str(conn.execute(text(f"SHOW {name}")).scalar())  # noqa: E731
        return {
            "postgresql": show("server_version"),
            "settings": f"fsync={show('fsync')}, synchronous_commit={show('synchronous_commit')}",
        }
