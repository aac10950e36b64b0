"""Operators see dead deliveries, retry them and replay delivered ones, with the real CLI;
every retry and replay is in the audit log under the operator's name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lockgate.settings import load_settings
from lockgate.store import Store
from lockgate.testing.receiver import Receiver
from tests.cli.kit import lockgate
from tests.delivery.kit import SECRET, SECRET_ENV, webhook
from tests.delivery.processes import prepare, rows


def deliver_due(project: Path, database_url: str) -> None:
    """`lockgate worker --once`, again while retries are scheduled."""
    for _ in range(20):
        lockgate("worker", "--once", cwd=project, database=database_url)
        if not rows(project, database_url, "pending"):
            return
    raise AssertionError("rows still pending")


def audit_actions(project: Path, database_url: str) -> list[tuple[str, str]]:
    store = Store(load_settings(project, database_url=database_url).database_url)
    try:
        return [(e.action, e.actor) for e in store.audit.entries("routing")]
    finally:
        store.close()


def test_dead_deliveries_are_listed_and_a_retry_delivers_them_once_the_receiver_works(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with Receiver(SECRET) as receiver:
        project = prepare(tmp_path, database_url, [webhook(receiver.url, max_tries=2)], records=12)
        receiver.fail_always(500)
        deliver_due(project, database_url)

        listed = lockgate(
            "deliveries", "list", "--status", "dead", "--json",
            cwd=project, database=database_url,
        )  # fmt: skip
        dead = json.loads(listed.stdout)
        assert len(dead) == 12
        assert {(d["tries"], d["last_error"], d["sink"]) for d in dead} == {
            (2, "HTTP 500", "0:webhook")
        }
        text = lockgate("deliveries", "list", cwd=project, database=database_url).stdout
        assert text.count(" dead ") == 12 and "HTTP 500" in text

        receiver.fail_always(None)
        ids = [str(d["id"]) for d in dead]
        result = lockgate(
            "deliveries", "retry", *ids, "--actor", "ops-anna",
            cwd=project, database=database_url,
        )  # fmt: skip
        assert "12 deliveries queued again" in result.stdout
        deliver_due(project, database_url)

    assert set(receiver.applied) == {d["decision_id"] for d in dead}
    assert receiver.duplicates == 0
    assert {r.status for r in rows(project, database_url)} == {"delivered"}
    assert ("delivery.retry", "ops-anna") in audit_actions(project, database_url)


def test_a_replay_sends_a_delivered_decision_again_under_the_same_key(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with Receiver(SECRET) as receiver:
        project = prepare(tmp_path, database_url, [webhook(receiver.url)], records=3)
        deliver_due(project, database_url)
        target = rows(project, database_url)[0]

        refused = lockgate(
            "deliveries", "retry", str(target.id), cwd=project, database=database_url,
            check=False,
        )  # fmt: skip
        assert refused.returncode != 0
        assert f"outbox row {target.id} is delivered, not dead" in refused.stderr

        replayed = lockgate(
            "deliveries", "replay", "--decision", target.decision_id, "--actor", "ops-ben",
            cwd=project, database=database_url,
        )  # fmt: skip
        assert "1 delivery queued again" in replayed.stdout
        deliver_due(project, database_url)

    assert receiver.seen[target.decision_id] == 2
    assert receiver.duplicates == 1 and len(receiver.applied) == 3
    assert ("delivery.replay", "ops-ben") in audit_actions(project, database_url)


def test_replay_needs_one_of_decision_or_since(tmp_path: Path) -> None:
    result = lockgate("deliveries", "replay", cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert "give exactly one of --decision ID or --since TIME" in result.stderr
