"""Backups: `lockgate backup` copies a live SQLite database while another process commits
decisions to it, and `lockgate restore` puts the copy into a fresh project, where every
decision acknowledged before the backup started is found and the audit chain verifies. On
PostgreSQL, `lockgate backup` runs pg_dump and pg_restore brings the decisions back."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from lockgate.runtime import Runtime
from lockgate.settings import load_settings
from lockgate.store import Store, backups
from lockgate.store.tables import decisions
from tests.cli.kit import DETERMINISTIC_TASK, lockgate, make_project

WRITER = """
import asyncio, sys
from lockgate.decide.pipeline import DecisionRequest
from lockgate.runtime import Runtime
from lockgate.settings import load_settings

runtime = Runtime.open(load_settings(sys.argv[1]))

async def main():
    loaded = runtime.release_runtime("routing")
    round_ = 0
    while True:
        requests = [
            DecisionRequest(input={"text": f"pay {round_}-{i}"}, idempotency_key=f"w-{round_}-{i}")
            for i in range(5)
        ]
        results = await runtime.pipeline.decide_many(loaded, requests)
        # Acknowledged: the decisions are committed when decide_many returns.
        print(" ".join(r.decision.idempotency_key for r in results), flush=True)
        if round_ % 10 == 0:
            runtime.store.keys.create(f"writer-{round_}", "viewer", (), actor="writer")
        round_ += 1

asyncio.run(main())
"""


class Writer:
    """A process deciding and committing decisions in a loop; the keys it acknowledged."""

    def __init__(self, project: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(project)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.acknowledged: list[str] = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self.lock:
                self.acknowledged.extend(line.split())

    def acked(self) -> set[str]:
        with self.lock:
            return set(self.acknowledged)

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked()) < count:
            if self.process.poll() is not None or time.monotonic() > deadline:
                assert self.process.stderr is not None
                raise AssertionError(f"writer stopped early: {self.process.stderr.read()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.reader.join(timeout=10)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def live_project(tmp_path: Path) -> Iterator[Path]:
    """A SQLite project with a live release of the routing task."""
    project = make_project(tmp_path / "live", DETERMINISTIC_TASK)
    runtime = Runtime.open(load_settings(project, environ={}))
    try:
        release, _ = runtime.create_release("routing", "test")
        runtime.store.releases.promote("routing", release.number, "test")
    finally:
        runtime.close()
    yield project


def test_a_backup_under_write_load_restores_every_acknowledged_decision(
    live_project: Path, tmp_path: Path
) -> None:
    writer = Writer(live_project)
    try:
        writer.wait_for(100)
        before = writer.acked()
        out = tmp_path / "backups" / "lockgate.db"
        done = lockgate("backup", "--out", str(out), "--pages", "8", cwd=live_project)
        writer.wait_for(len(before) + 50)  # the writer went on during and after the copy
    finally:
        writer.stop()
    steps = [line for line in done.stderr.splitlines() if line.startswith("copied ")]
    assert len(steps) > 1 and steps[-1].endswith("(100%)")
    assert "audit log intact" in done.stdout

    fresh = make_project(tmp_path / "fresh", DETERMINISTIC_TASK)
    lockgate("restore", str(out), cwd=fresh)
    restored = Store(load_settings(fresh, environ={}).database_url)
    try:
        with restored.engine.connect() as conn:
            keys = set(conn.execute(select(decisions.c.idempotency_key)).scalars())
        assert before <= keys
        assert len(keys) < len(writer.acked())  # decisions made after the snapshot are not
    finally:
        restored.close()
    verified = lockgate("audit", "verify", cwd=fresh)
    assert "audit log intact" in verified.stdout


def test_the_backup_is_recorded_in_the_live_database(live_project: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.db"
    lockgate("backup", "--out", str(out), cwd=live_project)
    store = Store(load_settings(live_project, environ={}).database_url)
    try:
        newest = backups.newest(store.engine)
    finally:
        store.close()
    assert newest is not None and newest.kind == "sqlite"
    assert newest.location == str(out.resolve()) and newest.bytes == out.stat().st_size


def test_restore_refuses_an_existing_database_without_force_and_keeps_it_aside_with(
    live_project: Path, tmp_path: Path
) -> None:
    out = tmp_path / "b.db"
    lockgate("backup", "--out", str(out), cwd=live_project)
    refused = lockgate("restore", str(out), cwd=live_project, check=False)
    assert refused.returncode != 0 and "already has a database" in refused.stderr
    assert "--force" in refused.stderr
    forced = lockgate("restore", str(out), "--force", cwd=live_project)
    aside = list((live_project / ".lockgate").glob("lockgate.db.before-restore-*"))
    assert len(aside) == 1 and str(aside[0]) in forced.stdout


def test_restore_refuses_a_damaged_or_foreign_file(tmp_path: Path) -> None:
    fresh = make_project(tmp_path / "fresh", DETERMINISTIC_TASK)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    done = lockgate("restore", str(junk), cwd=fresh, check=False)
    assert done.returncode != 0 and "not a SQLite database" in done.stderr
    assert not (fresh / ".lockgate" / "lockgate.db").exists()


def test_restore_refuses_a_backup_whose_audit_chain_is_broken(
    live_project: Path, tmp_path: Path
) -> None:
    import sqlite3

    out = tmp_path / "b.db"
    lockgate("backup", "--out", str(out), cwd=live_project)
    with sqlite3.connect(out) as conn:
        conn.execute("UPDATE audit_log SET actor = 'someone else' WHERE id = 1")
    fresh = make_project(tmp_path / "fresh", DETERMINISTIC_TASK)
    done = lockgate("restore", str(out), cwd=fresh, check=False)
    assert done.returncode != 0 and "audit log is broken at entry 1" in done.stderr


def test_pg_dump_and_pg_restore_bring_the_decisions_back(
    tmp_path: Path, postgres_database_url: str, empty_postgres_database_url: str
) -> None:
    if backups.postgres_tool("pg_restore") is None:
        pytest.fail("pg_restore is not installed (Debian: postgresql-client)")
    project = make_project(tmp_path / "pg", DETERMINISTIC_TASK)
    settings = load_settings(project, database_url=postgres_database_url, environ={})
    runtime = Runtime.open(settings)
    try:
        release, _ = runtime.create_release("routing", "test")
        runtime.store.releases.promote("routing", release.number, "test")
    finally:
        runtime.close()
    lockgate(
        "decide",
        "routing",
        "--input",
        '{"text": "my card was stolen"}',
        cwd=project,
        database=postgres_database_url,
    )
    dump = tmp_path / "lockgate.dump"
    done = lockgate("backup", "--out", str(dump), cwd=project, database=postgres_database_url)
    assert "pg_dump" in done.stderr + done.stdout and dump.stat().st_size > 0

    conninfo, env = backups.libpq(empty_postgres_database_url)
    tool = backups.postgres_tool("pg_restore")
    assert tool is not None
    import os

    subprocess.run(
        [tool, "--no-owner", "--dbname", conninfo, str(dump)],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    restored = Store(empty_postgres_database_url, migrate=False)
    try:
        with restored.engine.connect() as conn:
            texts = [row["text"] for row in conn.execute(select(decisions.c.input)).scalars()]
        assert restored.migration_state()[0] == restored.migration_state()[1]
        assert restored.audit.first_break() is None
    finally:
        restored.close()
    assert texts == ["my card was stolen"]
    verified = lockgate("audit", "verify", cwd=project, database=empty_postgres_database_url)
    assert "audit log intact" in verified.stdout
