"""The audit anchor (both backends): deleting the newest audit entries leaves the chain itself
intact, but `lockgate audit verify --anchor FILE` fails on it, naming what is missing; the
setting `audit_anchor_file` keeps the anchor at the head after every audited change."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import delete

from lockgate.runtime import Runtime
from lockgate.settings import load_settings
from lockgate.store.tables import audit_log
from tests.cli.kit import lockgate, make_project


def open_project(root: Path, database_url: str, **settings: object) -> Runtime:
    project = make_project(root / "project")
    config = load_settings(project, database_url=database_url, environ={})
    return Runtime.open(config.with_changes(**settings))


def audit(runtime: Runtime, *args: str) -> tuple[int, str, str]:
    done = lockgate(
        "audit",
        *args,
        cwd=runtime.settings.project_dir,
        database=runtime.settings.database_url,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def make_entries(runtime: Runtime, names: tuple[str, ...]) -> None:
    for name in names:
        runtime.store.keys.create(name, "viewer", (), actor="admin")


def test_deleting_the_newest_entries_is_found_with_the_anchor(
    tmp_path: Path, database_url: str
) -> None:
    runtime = open_project(tmp_path, database_url)
    try:
        make_entries(runtime, ("ann", "bob", "cy", "dee"))
        anchor = tmp_path / "offsite" / "anchor.json"
        code, out, _ = audit(runtime, "anchor", "--out", str(anchor))
        assert code == 0 and "anchored entry 4" in out
        assert json.loads(anchor.read_text())["audit_head"]["id"] == 4
        assert audit(runtime, "verify", "--anchor", str(anchor))[0] == 0

        with runtime.store.engine.begin() as conn:
            conn.execute(delete(audit_log).where(audit_log.c.id >= 3))

        # The chain alone cannot tell: what is left of it holds.
        assert audit(runtime, "verify")[0] == 0
        code, _, err = audit(runtime, "verify", "--anchor", str(anchor))
        assert code == 1
        assert "entry 4" in err and "missing" in err and "newest entry is 2" in err
        assert "newest entries were deleted" in err
    finally:
        runtime.close()


def test_newest_entries_deleted_and_new_ones_appended_are_found(
    tmp_path: Path, database_url: str
) -> None:
    runtime = open_project(tmp_path, database_url)
    try:
        make_entries(runtime, ("ann", "bob"))
        anchor = tmp_path / "anchor.json"
        audit(runtime, "anchor", "--out", str(anchor))
        # The newest entry deleted, and a new one appended after the one before it: the chain
        # is whole again (SQLite even reuses the id), but it is not the anchored entry.
        with runtime.store.engine.begin() as conn:
            conn.execute(delete(audit_log).where(audit_log.c.id == 2))
        make_entries(runtime, ("mallory",))
        assert audit(runtime, "verify")[0] == 0
        code, _, err = audit(runtime, "verify", "--anchor", str(anchor))
        assert code == 1 and "entry 2" in err
        assert "hash changed" in err or "missing" in err
    finally:
        runtime.close()


def test_the_setting_writes_the_head_after_every_audited_change(
    tmp_path: Path, database_url: str
) -> None:
    anchor = tmp_path / "anchor.json"
    runtime = open_project(tmp_path, database_url, audit_anchor_file=anchor)
    try:
        make_entries(runtime, ("ann",))
        assert json.loads(anchor.read_text())["audit_head"]["id"] == 1
        make_entries(runtime, ("bob", "cy"))
        head = runtime.store.audit.head()
        assert head is not None
        assert json.loads(anchor.read_text())["audit_head"] == {
            "id": 3,
            "hash": head.hash,
            "at": head.at.isoformat(),
        }
        with runtime.store.engine.begin() as conn:
            conn.execute(delete(audit_log).where(audit_log.c.id == 3))
        assert audit(runtime, "verify", "--anchor", str(anchor))[0] == 1
    finally:
        runtime.close()


def test_an_anchor_is_never_moved_back(tmp_path: Path, database_url: str) -> None:
    runtime = open_project(tmp_path, database_url)
    try:
        make_entries(runtime, ("ann", "bob"))
        anchor = tmp_path / "anchor.json"
        audit(runtime, "anchor", "--out", str(anchor))
        with runtime.store.engine.begin() as conn:
            conn.execute(delete(audit_log).where(audit_log.c.id == 2))
        code, _, err = audit(runtime, "anchor", "--out", str(anchor))
        assert code != 0 and "holds a newer head" in err
        assert json.loads(anchor.read_text())["audit_head"]["id"] == 2
    finally:
        runtime.close()


def test_a_missing_or_unreadable_anchor_is_one_clear_line(
    tmp_path: Path, database_url: str
) -> None:
    runtime = open_project(tmp_path, database_url)
    try:
        code, _, err = audit(runtime, "verify", "--anchor", str(tmp_path / "nope.json"))
        assert code != 0 and "no anchor file" in err
        bad = tmp_path / "bad.json"
        bad.write_text("{}")
        code, _, err = audit(runtime, "verify", "--anchor", str(bad))
        assert code != 0 and "is not an audit anchor" in err and "Traceback" not in err
    finally:
        runtime.close()
