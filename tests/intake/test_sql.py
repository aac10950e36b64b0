"""The SQL source: rows of a real SQLite or PostgreSQL table, read by an increasing cursor that
moves only with the decisions it led to."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.intake.kit import (
    assert_accounted,
    decision_keys,
    execute,
    intake_once,
    prepare,
    quarantine,
    show,
)

TABLE = (
    "CREATE TABLE crm_tickets (id INTEGER PRIMARY KEY, subject TEXT, "
    "updated_at VARCHAR(32) NOT NULL)"
)
INSERT = "INSERT INTO crm_tickets (id, subject, updated_at) VALUES (:id, :subject, :updated_at)"


def sql_source(cursor: str = "id", batch: int = 3, url_env: str = "CRM_URL") -> str:
    return (
        "  - name: crm\n"
        "    kind: sql\n"
        f"    url_env: {url_env}\n"
        "    table: crm_tickets\n"
        f"    cursor: {cursor}\n"
        f"    batch_size: {batch}\n"
        "    report_after: 2\n"
        "    retry_base_s: 0.001\n"
        "    map:\n"
        "      text: {from: [subject]}\n"
    )


def tickets(start: int, stop: int, when: str = "2026-01-01T00:00:00") -> list[dict]:
    return [{"id": i, "subject": f"ticket {i}", "updated_at": when} for i in range(start, stop)]


@pytest.fixture
def crm(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A crm_tickets table in the test database (SQLite file or PostgreSQL)."""
    execute(database_url, TABLE)
    monkeypatch.setenv("CRM_URL", database_url)
    return database_url


def test_rows_are_decided_in_cursor_order_and_only_new_rows_on_the_next_poll(
    tmp_path: Path, crm: str
) -> None:
    project = prepare(tmp_path / "p", crm, sql_source())
    rows = tickets(1, 8)
    rows[3]["subject"] = None  # quarantined: the text is missing
    execute(crm, INSERT, rows=rows)
    (first,) = intake_once(project, crm)
    assert (first["decided"], first["quarantined"]) == (6, 1)
    execute(crm, INSERT, rows=tickets(8, 11))
    (second,) = intake_once(project, crm)
    assert (second["records"], second["decided"]) == (3, 3)

    counts = show(project, crm, "crm")
    assert counts["cursor"] == {"after": [10]}
    assert_accounted(counts)
    assert sorted(decision_keys(crm)) == sorted(f"crm:{i}" for i in range(1, 11) if i != 4)
    assert [q["position"] for q in quarantine(project, crm)] == ["id=4"]


def test_a_cursor_with_a_tie_breaker_skips_no_row_that_shares_a_timestamp(
    tmp_path: Path, crm: str
) -> None:
    project = prepare(tmp_path / "p", crm, sql_source("[updated_at, id]", batch=2))
    execute(crm, INSERT, rows=tickets(1, 6, "2026-01-01T09:00:00"))
    intake_once(project, crm)
    execute(crm, INSERT, rows=tickets(6, 8, "2026-01-01T09:00:00"))
    intake_once(project, crm)
    assert len(decision_keys(crm)) == 7
    assert show(project, crm, "crm")["cursor"] == {"after": ["2026-01-01T09:00:00", 7]}


def test_an_unreachable_database_is_retried_with_backoff_and_the_cursor_stays(
    tmp_path: Path, crm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = prepare(tmp_path / "p", crm, sql_source())
    execute(crm, INSERT, rows=tickets(1, 3))
    intake_once(project, crm)
    down = (
        "postgresql://nobody@127.0.0.1:9/none"
        if crm.startswith("postgresql")
        else f"sqlite:///{tmp_path}/missing-dir/x.db"
    )
    monkeypatch.setenv("CRM_URL", down)
    for _ in range(2):
        (report,) = intake_once(project, crm, check=False)
        assert report["error"].startswith("cannot read from the database")
    counts = show(project, crm, "crm")
    assert (counts["status"], counts["failures"], counts["cursor"]) == (
        "failing",
        2,
        {"after": [2]},
    )
    assert "nobody" not in counts["last_error"] and "127.0.0.1" not in counts["last_error"]

    monkeypatch.setenv("CRM_URL", crm)
    execute(crm, INSERT, rows=tickets(3, 5))
    intake_once(project, crm)
    healed = show(project, crm, "crm")
    assert (healed["status"], healed["failures"], healed["decided"]) == ("active", 0, 4)
