"""`lockgate erase` removes every stored trace of one data subject (both backends): after it,
the value is in no row of any table, and on SQLite not even in the bytes of the database file
or its write-ahead log; the audit log gains one entry holding only a hash of the subject and
still verifies; other subjects' records are untouched."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, String, Text, func, inspect, select, text, update
from sqlalchemy.types import JSON, LargeBinary

from lockgate.decide.decision import utcnow
from lockgate.store.tables import attempts, decision_cache, decisions, intake_quarantine
from tests.cli.kit import lockgate, make_project
from tests.review.kit import ReviewKit, review_kit
from tests.store.sqlite_defaults import secure_delete_off_by_default

SUBJECT = "jane.roe.4711@example.org"
OTHER = "max.mustermann@example.org"

TASK = """\
name: routing
input:
  email: {type: string, pii: true}
  text: {type: string, max_length: 4000, pii: true}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
models:
  - provider: deterministic
    confidence: 0.9
    answers:
      - {if_contains: "stolen", output: {queue: fraud}}
      - {if_contains: "payment", output: {queue: payments}}
policy:
  auto_min_confidence: 0.8
  review_when:
    - {field: queue, equals: fraud}
deliver:
  - {sink: file, path: out/routing.jsonl}
"""


@dataclass
class Erased:
    """One project per backend, its subject's records everywhere they can be, erased once
    (after a dry run) and then again: what each step printed and left."""

    kit: ReviewKit
    mention: str
    """Another person's decision whose text mentions the subject."""
    rows_before: list[str]
    bytes_before: bytes
    dry_run: tuple[int, str, str]
    rows_after_dry_run: list[str]
    audit_after_dry_run: int
    decisions_before: list[tuple[str, str]]
    erased: tuple[int, str, str]
    again: tuple[int, str, str]


@pytest.fixture(scope="module")
def done(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Erased]:
    """The subject's records: an automated decision waiting for its delivery (with feedback
    and a cache entry), a rejected one with the value in the reviewer's note, an attempt whose
    raw response echoes it, another person's ticket that mentions it, a quarantined raw
    record. Then a dry run, the erasure, and the same erasure again."""
    root = tmp_path_factory.mktemp("erasure")
    with secure_delete_off_by_default(), review_kit(root, module_database_url, TASK) as kit:
        alice = kit.key("alice")
        paid = kit.decide("my payment failed twice", email=SUBJECT)
        store = kit.runtime.store
        store.quality.add_feedback(paid, "crm", False, None, f"{SUBJECT} says wrong", utcnow())
        store.costs.keep(
            "routing", "r" * 64, {paid.input_hash: paid.id}, utcnow() + timedelta(days=1)
        )
        stolen = kit.pending(f"my card was stolen, write to {SUBJECT}", email=SUBJECT)
        kit.reviews.claim(alice, stolen.id)
        kit.reviews.reject(alice, stolen.id, f"called {SUBJECT}, it was a mistake")
        mention = kit.decide(f"payment for {SUBJECT} went to me", email=OTHER)
        with store.engine.begin() as conn:
            conn.execute(
                update(attempts)
                .where(attempts.c.decision_id == stolen.id)
                .values(message=f'model said: {{"note": "customer {SUBJECT}"}}')
            )
            conn.execute(
                intake_quarantine.insert().values(
                    task="routing",
                    source="inbox",
                    position="mail:17",
                    reason="no text field",
                    raw={"from": SUBJECT, "subject": "help"},
                    context={},
                    status="held",
                    created_at=utcnow(),
                )
            )
        engine = store.engine
        rows_before = rows_holding(engine, SUBJECT)
        url = kit.runtime.settings.database_url
        bytes_before = file_bytes(url) if engine.dialect.name == "sqlite" else b""
        dry_run = erase(kit, "--where", f"email={SUBJECT}", "--dry-run")
        rows_after_dry_run = rows_holding(engine, SUBJECT)
        audit_after_dry_run = len(store.audit.entries(action="subject.erased"))
        with engine.connect() as conn:
            decisions_before = [tuple(r) for r in conn.execute(select(d.id, d.status))]
        erased = erase(kit, "--where", f"email={SUBJECT}")
        engine.dispose()  # every connection closed: what is left is in the file itself
        yield Erased(
            kit,
            mention.id,
            rows_before,
            bytes_before,
            dry_run,
            rows_after_dry_run,
            audit_after_dry_run,
            decisions_before,
            erased,
            erase(kit, "--where", f"email={SUBJECT}"),
        )


d = decisions.c


def rows_holding(engine: Engine, value: str) -> list[str]:
    """`table.column` of every row whose text, JSON or bytes hold the value."""
    found = []
    with engine.connect() as conn:
        inspector = inspect(conn)
        for table in inspector.get_table_names():
            for column in inspector.get_columns(table):
                kind = column["type"]
                if not isinstance(kind, String | Text | JSON | LargeBinary):
                    continue
                name = column["name"]
                as_text = f'CAST("{name}" AS TEXT)'
                if isinstance(kind, LargeBinary) and engine.dialect.name == "postgresql":
                    as_text = f"encode(\"{name}\", 'escape')"
                hits = conn.execute(
                    text(f'SELECT count(*) FROM "{table}" WHERE {as_text} LIKE :v'),
                    {"v": f"%{value}%"},
                ).scalar_one()
                if hits:
                    found.append(f"{table}.{name}")
    return found


def file_bytes(url: str) -> bytes:
    path = Path(url.removeprefix("sqlite:///"))
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def erase(kit: ReviewKit, *args: str) -> tuple[int, str, str]:
    root = kit.runtime.settings.project_dir
    done = lockgate(
        "erase",
        "--task",
        "routing",
        *args,
        cwd=root,
        database=kit.runtime.settings.database_url,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def test_the_value_was_everywhere_before(done: Erased) -> None:
    expected = {"decisions.input", "attempts.message", "intake_quarantine.raw"}
    expected |= {"audit_texts.text", "reviews.reason", "feedback.comment"}
    assert expected <= set(done.rows_before)
    if done.kit.runtime.store.backend == "sqlite":
        assert SUBJECT.encode() in done.bytes_before


def test_after_erasure_the_value_is_nowhere_in_the_database(done: Erased) -> None:
    code, out, err = done.erased
    assert code == 0, err
    assert SUBJECT not in out + err
    engine = done.kit.runtime.store.engine
    assert rows_holding(engine, SUBJECT) == []
    if engine.dialect.name == "sqlite":
        assert SUBJECT.encode() not in file_bytes(done.kit.runtime.settings.database_url)


def test_the_audit_chain_still_verifies(done: Erased) -> None:
    assert done.kit.runtime.store.audit.first_break() is None


def test_the_cache_no_longer_answers_from_an_erased_decision(done: Erased) -> None:
    with done.kit.runtime.store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(decision_cache)).scalar_one() == 0


def test_the_audit_entry_holds_a_hash_and_the_counts_never_the_value(done: Erased) -> None:
    first, again = done.kit.runtime.store.audit.entries(action="subject.erased")
    assert SUBJECT not in json.dumps(dict(first.details))
    assert first.details["field"] == "email" and first.details["counts"]["decisions"] == 2
    assert len(first.details["subject_sha256"]) == 64
    assert first.details["subject_sha256"][:16] in done.erased[1]
    # The same subject erased again has the same hash (the project's salt is kept).
    assert again.details["subject_sha256"] == first.details["subject_sha256"]


def test_other_subjects_keep_their_records_with_only_the_value_cut_out(done: Erased) -> None:
    kept = done.kit.runtime.store.decisions.get(done.mention)
    assert kept is not None
    assert kept.input["email"] == OTHER
    assert kept.input["text"] == "payment for [erased] went to me"
    assert kept.output == {"queue": "payments"}


def test_erased_decisions_keep_their_rows_for_counts(done: Erased) -> None:
    with done.kit.runtime.store.engine.connect() as conn:
        after = [tuple(r) for r in conn.execute(select(d.id, d.status))]
    assert sorted(after) == sorted(done.decisions_before)


def test_an_undelivered_delivery_of_the_subject_is_stopped_not_sent_blank(done: Erased) -> None:
    rows = done.kit.runtime.store.outbox.listing(task="routing")
    mine = [r for r in rows if r.decision_id != done.mention]
    assert mine and all(r.status == "dead" for r in mine)


def test_a_dry_run_counts_and_changes_nothing(done: Erased) -> None:
    code, out, _ = done.dry_run
    assert code == 0 and "would erase" in out and "decisions: 2" in out
    assert "its hash is made on the first erasure" in out  # no salt was made for a dry run
    assert done.rows_after_dry_run == done.rows_before
    assert done.audit_after_dry_run == 0


def test_a_bad_where_is_one_clear_line_without_the_value(tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "project", TASK.replace("input:\n", "input:\n  amount: {type: number}\n")
    )
    for where, says in (
        ("email", "--where must be FIELD=VALUE"),
        (f"mail={SUBJECT}", "has no input field 'mail'"),
        ("email=", "empty value"),
        (f"amount={SUBJECT}", "'amount' is a number: the value after = must be one"),
    ):
        done = lockgate("erase", "--task", "routing", "--where", where, cwd=project, check=False)
        assert done.returncode != 0 and says in done.stderr, where
        assert SUBJECT not in done.stdout + done.stderr


def test_a_reader_holding_the_log_open_is_reported_and_a_second_run_clears_it(
    tmp_path: Path, sqlite_database_url: str
) -> None:
    import sqlite3

    with secure_delete_off_by_default(), review_kit(tmp_path, sqlite_database_url, TASK) as kit:
        kit.decide("my payment failed", email=SUBJECT)
        reader = sqlite3.connect(sqlite_database_url.removeprefix("sqlite:///"))
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM decisions").fetchone()  # holds a snapshot
            code, _, err = erase(kit, "--where", f"email={SUBJECT}")
            assert code == 0 and "warning: another connection was reading" in err
        finally:
            reader.close()
        code, _, err = erase(kit, "--where", f"email={SUBJECT}")
        assert code == 0 and "warning" not in err
        kit.runtime.store.engine.dispose()
        assert SUBJECT.encode() not in file_bytes(sqlite_database_url)
