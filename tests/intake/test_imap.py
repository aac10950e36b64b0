"""The IMAP source against a real server (Debian's dovecot on loopback): messages are decided
once each by UIDVALIDITY and UID, then flagged or moved."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lockgate.testing.mailbox import Dovecot, free_port, message, missing
from tests.intake.kit import (
    assert_accounted,
    decision_keys,
    intake_once,
    prepare,
    quarantine,
    query,
    show,
)

pytestmark = pytest.mark.skipif(missing() is not None, reason=str(missing()))


@pytest.fixture(scope="module")
def server() -> Iterator[Dovecot]:
    with Dovecot() as running:
        yield running


@pytest.fixture
def mailbox(
    server: Dovecot, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A folder of its own for each test, and the password in the environment."""
    monkeypatch.setenv("MAIL_PASSWORD", server.password)
    return f"t{abs(hash(request.node.nodeid)) % 10**8}"


def imap_source(server: Dovecot, folder: str, after: str = "flag", port: int | None = None) -> str:
    return (
        "  - name: mail\n"
        "    kind: imap\n"
        "    host: 127.0.0.1\n"
        f"    port: {port or server.port}\n"
        "    tls: false\n"
        f"    user: {server.user}\n"
        "    password_env: MAIL_PASSWORD\n"
        f"    folder: {folder}\n"
        f"    after: {after}\n"
        f"    move_to: {folder}-done\n"
        "    timeout_s: 5\n"
        "    report_after: 1\n"
        "    batch_size: 2\n"
        "    map:\n"
        "      text: {from: [body]}\n"
    )


def test_messages_are_decided_once_by_uid_and_flagged_seen(
    tmp_path: Path, database_url: str, server: Dovecot, mailbox: str
) -> None:
    project = prepare(tmp_path / "p", database_url, imap_source(server, mailbox))
    server.deliver(
        message("Card", "My card was stolen", attachments=("police.pdf",)), folder=mailbox
    )
    server.deliver(message("Hi", "", html="<p>Where is <b>my</b> transfer?</p>"), folder=mailbox)
    server.deliver(message("Empty", ""), folder=mailbox)
    (first,) = intake_once(project, database_url)
    assert (first["decided"], first["quarantined"]) == (2, 1)

    server.deliver(message("Later", "A later message"), folder=mailbox)
    (second,) = intake_once(project, database_url)
    assert (second["records"], second["decided"]) == (1, 1)

    counts = show(project, database_url, "mail")
    assert_accounted(counts)
    validity = counts["cursor"]["uidvalidity"]
    assert counts["cursor"]["uid"] == 4
    assert sorted(decision_keys(database_url)) == [f"mail:{validity}:{u}" for u in (1, 2, 4)]
    rows = query(database_url, "select input, metadata from decisions order by idempotency_key")
    inputs = [json.loads(r[0]) if isinstance(r[0], str) else r[0] for r in rows]
    meta = [json.loads(r[1]) if isinstance(r[1], str) else r[1] for r in rows]
    assert [i["text"] for i in inputs] == [
        "My card was stolen",
        inputs[1]["text"],
        "A later message",
    ]
    assert "Where is" in inputs[1]["text"] and "<b>" not in inputs[1]["text"]
    assert meta[0]["extra"]["attachments"] == "police.pdf"
    assert meta[0]["extra"]["subject"] == "Card"
    assert [q["position"] for q in quarantine(project, database_url)] == [f"uid {validity}:3"]
    assert server.uids(mailbox, "UNSEEN") == []


def test_a_batch_committed_but_not_flagged_is_flagged_by_the_next_run(
    tmp_path: Path, database_url: str, server: Dovecot, mailbox: str
) -> None:
    """A process killed between a batch's commit and its flagging leaves that batch unread; the
    next run flags it (and only it: a message a reader marked unread again stays unread)."""
    project = prepare(tmp_path / "p", database_url, imap_source(server, mailbox))
    for i in range(5):
        server.deliver(message(f"m{i}", f"message number {i}"), folder=mailbox)
    intake_once(project, database_url)  # batches of 2: uids 1-2, 3-4, then 5
    assert show(project, database_url, "mail")["cursor"]["uid"] == 5
    with server.connect() as client:  # the state the kill leaves, and a reader's own choice
        client.select(mailbox)
        client.uid("STORE", "5,1", "-FLAGS.SILENT", r"(\Seen)")
    assert server.uids(mailbox, "UNSEEN") == [1, 5]

    (again,) = intake_once(project, database_url)
    assert again["records"] == 0, "nothing is decided twice"
    assert server.uids(mailbox, "UNSEEN") == [1]
    assert len(decision_keys(database_url)) == 5


def test_after_move_the_messages_leave_the_folder(
    tmp_path: Path, database_url: str, server: Dovecot, mailbox: str
) -> None:
    project = prepare(tmp_path / "p", database_url, imap_source(server, mailbox, after="move"))
    for i in range(3):
        server.deliver(message(f"m{i}", f"message number {i}"), folder=mailbox)
    intake_once(project, database_url)
    assert server.uids(mailbox) == []
    assert len(decision_keys(database_url)) == 3
    intake_once(project, database_url)  # moves the cursor's batch again: nothing is there
    assert len(server.uids(f"{mailbox}-done")) == 3, "no message is moved twice"


def test_a_mailbox_that_does_not_answer_is_retried_and_its_cursor_stays(
    tmp_path: Path, database_url: str, server: Dovecot, mailbox: str
) -> None:
    project = prepare(tmp_path / "p", database_url, imap_source(server, mailbox))
    server.deliver(message("one", "first message"), folder=mailbox)
    intake_once(project, database_url)
    closed = free_port()  # nobody listens there
    (project / "tasks" / "routing.yaml").write_text(
        (project / "tasks" / "routing.yaml")
        .read_text()
        .replace(f"port: {server.port}", f"port: {closed}")
    )
    (report,) = intake_once(project, database_url, check=False)
    assert report["error"] == "cannot read the mailbox: ConnectionRefusedError"
    counts = show(project, database_url, "mail")
    assert (counts["status"], counts["cursor"]["uid"]) == ("failing", 1)
    assert server.password not in json.dumps(counts)
