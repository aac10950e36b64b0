"""kill -9 in the middle of a folder file, an SQL poll and an IMAP poll, then a restart: every
record is decided exactly once, the cursor is right, and no row or message is skipped."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lockgate.testing.mailbox import Dovecot, message, missing
from tests.cli.kit import lockgate_command
from tests.intake.kit import (
    INSERT_TICKET,
    assert_accounted,
    decision_keys,
    execute,
    intake_once,
    prepare,
    query,
    show,
)

pytestmark = pytest.mark.slow


def decided(database_url: str) -> int:
    return int(query(database_url, "select count(*) from decisions")[0][0])


def kill_mid_run(project: Path, database_url: str, total: int, after: int) -> int:
    """Start `lockgate intake run --once`, kill -9 it once `after` decisions are committed;
    the number committed when it died (asserted to be mid-way)."""
    command = lockgate_command("intake", "run", "--once", "--database", database_url)
    process = subprocess.Popen(
        command,
        cwd=project,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and decided(database_url) < after:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    committed = decided(database_url)
    assert 0 < committed < total, f"the run must be killed mid-way ({committed} of {total})"
    return committed


def restart_and_check(
    project: Path, database_url: str, source: str, total: int, keys: Callable[[], set[str]]
) -> dict:
    intake_once(project, database_url)
    counts = show(project, database_url, source)
    stored = decision_keys(database_url)
    assert len(stored) == len(set(stored)) == total, "each record decided exactly once"
    assert set(stored) == keys(), "no record skipped"
    assert (counts["records"], counts["decided"]) == (total, total)
    assert_accounted(counts)
    return counts


def test_kill_9_during_a_folder_file(tmp_path: Path, database_url: str) -> None:
    total = 1000
    source = (
        "  - name: inbox\n    kind: folder\n    path: inbox/\n    stable_s: 0\n"
        "    batch_size: 25\n    key: '{id}'\n"
    )
    project = prepare(tmp_path / "p", database_url, source)
    (project / "inbox").mkdir()
    rows = "".join(f"r{i},ticket {i} about my card\n" for i in range(total))
    (project / "inbox" / "big.csv").write_text("id,text\n" + rows)

    kill_mid_run(project, database_url, total, after=200)
    assert (project / "inbox" / "big.csv").exists(), "an unfinished file stays in the inbox"
    # A file moved in while the run was down, with an older mtime than the unfinished one
    # (as `mv` keeps it): the unfinished file is still finished first.
    early = project / "inbox" / "early.csv"
    early.write_text("id,text\n" + "".join(f"e{i},an early ticket {i}\n" for i in range(20)))
    older = (project / "inbox" / "big.csv").stat().st_mtime - 3600
    os.utime(early, (older, older))
    restart_and_check(
        project,
        database_url,
        "inbox",
        total + 20,
        lambda: {f"inbox:r{i}" for i in range(total)} | {f"inbox:e{i}" for i in range(20)},
    )
    assert (project / "inbox" / "processed" / "big.csv").exists()
    report = (project / "inbox" / "processed" / "big.csv.report.json").read_text()
    assert f'"decided": {total}' in report, "the report counts the rows before the crash too"
    when = dict(query(database_url, "select idempotency_key, created_at from decisions"))
    last_of_big = max(t for key, t in when.items() if key.startswith("inbox:r"))
    first_of_early = min(t for key, t in when.items() if key.startswith("inbox:e"))
    assert last_of_big < first_of_early, "the file the cursor was in is finished first"


def test_kill_9_during_an_sql_poll(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    total = 1000
    execute(
        database_url,
        "CREATE TABLE crm_tickets (id INTEGER PRIMARY KEY, subject TEXT, updated_at TEXT)",
    )
    rows = [{"id": i, "subject": f"ticket {i}", "updated_at": "x"} for i in range(1, total + 1)]
    execute(database_url, INSERT_TICKET, rows=rows)
    monkeypatch.setenv("CRM_URL", database_url)
    source = (
        "  - name: crm\n    kind: sql\n    url_env: CRM_URL\n    table: crm_tickets\n"
        "    batch_size: 25\n    map:\n      text: subject\n"
    )
    project = prepare(tmp_path / "p", database_url, source)

    kill_mid_run(project, database_url, total, after=200)
    counts = restart_and_check(
        project, database_url, "crm", total, lambda: {f"crm:{i}" for i in range(1, total + 1)}
    )
    assert counts["cursor"] == {"after": [total]}


@pytest.mark.skipif(missing() is not None, reason=str(missing()))
def test_kill_9_during_an_imap_poll(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    total = 120
    with Dovecot() as server:
        server.deliver(*(message(f"m{i}", f"message number {i}") for i in range(total)))
        monkeypatch.setenv("MAIL_PASSWORD", server.password)
        source = (
            f"  - name: mail\n    kind: imap\n    host: 127.0.0.1\n    port: {server.port}\n"
            f"    tls: false\n    user: {server.user}\n    password_env: MAIL_PASSWORD\n"
            "    batch_size: 10\n    map:\n      text: body\n"
        )
        project = prepare(tmp_path / "p", database_url, source)

        kill_mid_run(project, database_url, total, after=30)

        def keys() -> set[str]:
            validity = show(project, database_url, "mail")["cursor"]["uidvalidity"]
            return {f"mail:{validity}:{uid}" for uid in range(1, total + 1)}

        counts = restart_and_check(project, database_url, "mail", total, keys)
        assert counts["cursor"]["uid"] == total
        assert server.uids(criteria="UNSEEN") == [], "every message flagged after the restart"
