"""Projects with sources, and reading back what the intake stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from tests.cli.kit import lockgate, make_project

INSERT_TICKET = (
    "INSERT INTO crm_tickets (id, subject, updated_at) VALUES (:id, :subject, :updated_at)"
)

HEAD = """\
name: routing
input:
  text: {type: string, max_length: 4000, pii: true}
  amount: {type: number, required: false}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
models:
  - provider: deterministic
    confidence: 0.9
    answers:
      - {if_contains: "stolen", output: {queue: fraud}}
"""


def task_with_sources(sources: str) -> str:
    return HEAD + "sources:\n" + sources


def prepare(root: Path, database_url: str, sources: str) -> Path:
    """A project whose task declares `sources` (YAML list items), with a live release."""
    project = make_project(root, task_with_sources(sources))
    lockgate("release", "create", "routing", cwd=project, database=database_url)
    lockgate("release", "promote", "routing@1", cwd=project, database=database_url)
    return project


def set_sources(project: Path, sources: str) -> None:
    (project / "tasks" / "routing.yaml").write_text(task_with_sources(sources))


def show(project: Path, database_url: str, source: str) -> dict[str, Any]:
    out = lockgate("sources", "show", source, "--json", cwd=project, database=database_url)
    return json.loads(out.stdout)


def quarantine(project: Path, database_url: str, *args: str) -> list[dict[str, Any]]:
    out = lockgate("quarantine", "list", "--json", *args, cwd=project, database=database_url)
    return json.loads(out.stdout)


def query(database_url: str, statement: str, **params: Any) -> list[Any]:
    engine = sa.create_engine(
        database_url.replace("postgresql://", "postgresql+psycopg://"), poolclass=NullPool
    )
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(statement), params))
    finally:
        engine.dispose()


def decision_keys(database_url: str) -> list[str]:
    return [r[0] for r in query(database_url, "select idempotency_key from decisions")]


def assert_accounted(counts: dict[str, Any]) -> None:
    settled = counts["decided"] + counts["duplicates"] + counts["quarantined"]
    assert settled + counts["discarded"] == counts["records"], counts


def folder_source(extra: str = "", **options: str) -> str:
    """A folder source `inbox` on inbox/ taking files at once; `extra` adds YAML lines."""
    lines = [
        "  - name: inbox",
        "    kind: folder",
        "    path: inbox/",
        "    stable_s: 0",
        *(f"    {k}: {v}" for k, v in options.items()),
    ]
    return "\n".join(lines) + "\n" + extra


def drop(project: Path, name: str, text: str) -> None:
    inbox = project / "inbox"
    inbox.mkdir(exist_ok=True)
    (inbox / name).write_text(text)


def intake_once(
    project: Path, database_url: str, *args: str, check: bool = True
) -> list[dict[str, Any]]:
    out = lockgate(
        "intake", "run", "--once", "--json", *args, cwd=project, database=database_url, check=check
    )
    return json.loads(out.stdout)


def execute(database_url: str, *statements: str, rows: list[dict[str, Any]] | None = None) -> None:
    """Run statements in one transaction (the last one once per row of `rows`, if given)."""
    engine = sa.create_engine(
        database_url.replace("postgresql://", "postgresql+psycopg://"), poolclass=NullPool
    )
    try:
        with engine.begin() as conn:
            for i, statement in enumerate(statements):
                last = i == len(statements) - 1
                if last and rows is not None:
                    conn.execute(sa.text(statement), rows)
                else:
                    conn.execute(sa.text(statement))
    finally:
        engine.dispose()
