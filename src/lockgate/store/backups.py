"""Backups: a consistent copy of a live SQLite database, checked, and put back; `pg_dump`
for PostgreSQL.

SQLite: the online backup API (`sqlite3.Connection.backup`) copies the file page by page
while `serve` and `run` keep writing. The copying connection holds one read transaction for
the whole copy, so in WAL mode every step reads the same snapshot: the copy is the database as
it was when the backup started (every decision committed before then is in it), and writers
are never blocked. The copy is checked (`PRAGMA integrity_check`, schema version, audit chain)
before it takes its final name.

Restore checks a file the same way, then puts it in place of the project's database, keeping
the old one aside. PostgreSQL is dumped with `pg_dump -Fc` and restored with `pg_restore`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from lockgate.decide.decision import utcnow
from lockgate.errors import ConfigError
from lockgate.store import audit, database
from lockgate.store.tables import backups, decisions

Progress = Callable[[int, int], None]
"""Called with (pages copied, pages in all) after each step."""


@dataclass(frozen=True)
class Checked:
    """What a backup file holds, as checked."""

    path: Path
    schema: str | None
    newest_schema: str | None
    decisions: int
    audit_entries: int
    audit_head: int | None
    bytes: int


@dataclass(frozen=True)
class BackupRecord:
    at: datetime
    kind: str
    location: str
    bytes: int
    audit_head: int | None
    decisions: int


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for PostgreSQL (or an in-memory database)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def copy_sqlite(
    source: Path, out: Path, *, pages: int = 1024, progress: Progress | None = None
) -> None:
    """Copy the live database `source` to `out` (through `out.partial`, renamed when done)."""
    if not source.exists():
        raise ConfigError(f"there is no database at {source}", hint="check --project or --database")
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(source, isolation_level=None, timeout=60)
    try:
        # One read transaction for the whole copy: every step sees the same snapshot.
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
        dst = sqlite3.connect(partial)
        try:
            src.backup(
                dst,
                pages=pages,
                progress=(lambda _s, left, total: progress(total - left, total))
                if progress
                else None,
            )
        finally:
            dst.close()
        src.execute("COMMIT")
    finally:
        src.close()
    try:
        check_file(partial)
    except BaseException:
        _remove(partial)
        raise
    _remove(out)
    os.replace(partial, out)


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def check_file(path: Path) -> Checked:
    """Check a SQLite backup: intact pages, a schema this Lockgate knows, an intact audit
    chain. Raises `ConfigError` saying what is wrong."""
    if not path.is_file():
        raise ConfigError(f"there is no file {path}")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as probe:
            verdict = probe.execute("PRAGMA integrity_check").fetchone()
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path} is not a SQLite database ({exc})") from None
    if verdict is None or verdict[0] != "ok":
        raise ConfigError(
            f"{path} is damaged: integrity check says {verdict[0] if verdict else '?'}"
        )
    engine = database.make_engine(f"sqlite:///{path}")
    try:
        current, newest = database.migration_state(engine)
        if current is None:
            raise ConfigError(f"{path} is not a Lockgate database (no schema version)")
        if not _known(current):
            raise ConfigError(
                f"{path} has schema version {current}, which this Lockgate does not know "
                f"(newest {newest})",
                hint="restore it with the Lockgate version that made it, or upgrade Lockgate",
            )
        with database.read(engine) as conn:
            broken = audit.first_break(conn)
            entries = len(audit.entries(conn))
            head = audit.head(conn)
            count = int(conn.execute(select(func.count()).select_from(decisions)).scalar_one())
    finally:
        engine.dispose()
    if broken is not None:
        raise ConfigError(
            f"{path}: the audit log is broken at entry {broken.entry.id}: {broken.why}",
            hint="use an older backup",
        )
    return Checked(
        path, current, newest, count, entries, head.id if head else None, path.stat().st_size
    )


def _known(revision: str) -> bool:
    from alembic.script import ScriptDirectory

    try:
        return ScriptDirectory(str(database.MIGRATIONS)).get_revision(revision) is not None
    except Exception:
        return False


def put_in_place(backup: Path, target: Path, *, force: bool) -> Path | None:
    """Copy a checked backup to `target` (the project's database file); an existing database
    is kept aside as `NAME.before-restore-TIME` (returned), and only with `force`."""
    aside: Path | None = None
    if target.exists():
        if not force:
            raise ConfigError(
                f"the project already has a database at {target}",
                hint="stop `lockgate serve` and workers, then run again with --force "
                "(the current database is kept aside, not deleted)",
            )
        stamp = utcnow().strftime("%Y%m%dT%H%M%S")
        aside = target.with_name(f"{target.name}.before-restore-{stamp}")
        os.replace(target, aside)
        for suffix in ("-wal", "-shm"):
            side = target.with_name(target.name + suffix)
            if side.exists():
                os.replace(side, aside.with_name(aside.name + suffix))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".restoring")
    shutil.copyfile(backup, partial)
    with open(partial, "rb+") as out:
        os.fsync(out.fileno())
    os.replace(partial, target)
    return aside


def record(engine: Engine, kind: str, location: str, checked: Checked) -> None:
    """Note a backup made (the readiness report reads the newest)."""
    with engine.begin() as conn:
        conn.execute(
            backups.insert().values(
                at=utcnow(),
                kind=kind,
                location=location,
                bytes=checked.bytes,
                schema=checked.schema,
                audit_head=checked.audit_head,
                decisions=checked.decisions,
            )
        )


def newest(engine: Engine) -> BackupRecord | None:
    """The newest backup recorded in this database."""
    with database.read(engine) as conn:
        row = (
            conn.execute(select(backups).order_by(backups.c.id.desc()).limit(1)).mappings().first()
        )
    if row is None:
        return None
    return BackupRecord(
        database.aware(row["at"]),
        row["kind"],
        row["location"],
        row["bytes"],
        row["audit_head"],
        row["decisions"],
    )


# ---- PostgreSQL


def postgres_tool(name: str) -> str | None:
    """`pg_dump` or `pg_restore` on PATH, else the newest under /usr/lib/postgresql."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=_version)
    return str(candidates[-1]) if candidates else None


def _version(path: Path) -> float:
    try:
        return float(path.parent.parent.name)
    except ValueError:
        return 0.0


def libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection string without the password, and the environment that carries it
    (PGPASSWORD), so the password never shows in a process list or on screen."""
    parsed = make_url(url)
    env = {"PGPASSWORD": parsed.password} if parsed.password else {}
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env
