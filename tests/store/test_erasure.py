"""`lockgate erase` removes every stored trace of one data subject (both backends): after it,
the value is in no row of any table, and on SQLite not even in the bytes of the database file
or its write-ahead log; the audit log gains one entry holding only a hash of the subject and
still verifies; other subjects' records are untouched."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, String, Text, func, inspect, select, text, update
from sqlalchemy.types import JSON, LargeBinary

from lockgate.decide.decision import Decision, utcnow
from lockgate.store.tables import attempts, decision_cache, decisions, intake_quarantine
from tests.cli.kit import lockgate
from tests.review.kit import ReviewKit, review_kit

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


MENTIONS: dict[str, str] = {}
"""Per database: the id of another person's decision whose text mentions the subject."""


@pytest.fixture
def kit(tmp_path: Path, database_url: str) -> Iterator[ReviewKit]:
    """The subject's records everywhere they can be: an automated decision waiting for its
    delivery, a rejected one with the value in the reviewer's note, an attempt whose raw
    response echoes it, another person's ticket that mentions it, a quarantined raw record."""
    with review_kit(tmp_path, database_url, TASK) as opened:
        alice = opened.key("alice")
        paid = opened.decide("my payment failed twice", email=SUBJECT)
        store = opened.runtime.store
        store.quality.add_feedback(paid, "crm", False, None, f"{SUBJECT} says wrong", utcnow())
        store.costs.keep(
            "routing", "r" * 64, {paid.input_hash: paid.id}, utcnow() + timedelta(days=1)
        )
        stolen = opened.pending(f"my card was stolen, write to {SUBJECT}", email=SUBJECT)
        opened.reviews.claim(alice, stolen.id)
        opened.reviews.reject(alice, stolen.id, f"called {SUBJECT}, it was a mistake")
        mentions = opened.decide(f"payment for {SUBJECT} went to me", email=OTHER)
        with opened.runtime.store.engine.begin() as conn:
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
        MENTIONS[opened.runtime.settings.database_url] = mentions.id
        yield opened


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


def decision(kit: ReviewKit, decision_id: str) -> Decision:
    found = kit.runtime.store.decisions.get(decision_id)
    assert found is not None
    return found


def test_after_erasure_the_value_is_nowhere_in_the_database(kit: ReviewKit) -> None:
    engine = kit.runtime.store.engine
    url = kit.runtime.settings.database_url
    before = rows_holding(engine, SUBJECT)
    assert {"decisions.input", "attempts.message", "intake_quarantine.raw"} <= set(before)
    assert "audit_texts.text" in before and "reviews.reason" in before
    assert "feedback.comment" in before
    if engine.dialect.name == "sqlite":
        assert SUBJECT.encode() in file_bytes(url)

    code, out, err = erase(kit, "--where", f"email={SUBJECT}")

    assert code == 0, err
    assert SUBJECT not in out + err
    assert rows_holding(engine, SUBJECT) == []
    with engine.connect() as conn:  # the cache no longer answers from an erased decision
        assert conn.execute(select(func.count()).select_from(decision_cache)).scalar_one() == 0
    if engine.dialect.name == "sqlite":
        kit.runtime.store.engine.dispose()
        assert SUBJECT.encode() not in file_bytes(url)
    assert kit.runtime.store.audit.first_break() is None


def test_the_audit_entry_holds_a_hash_and_the_counts_never_the_value(kit: ReviewKit) -> None:
    code, out, _ = erase(kit, "--where", f"email={SUBJECT}")
    assert code == 0
    (entry,) = kit.runtime.store.audit.entries(action="subject.erased")
    assert SUBJECT not in json.dumps(dict(entry.details))
    assert entry.details["field"] == "email" and entry.details["counts"]["decisions"] == 2
    assert len(entry.details["subject_sha256"]) == 64
    assert entry.details["subject_sha256"][:16] in out
    # The same subject erased again has the same hash (the project's salt is kept).
    erase(kit, "--where", f"email={SUBJECT}")
    again = kit.runtime.store.audit.entries(action="subject.erased")[-1]
    assert again.details["subject_sha256"] == entry.details["subject_sha256"]


def test_other_subjects_keep_their_records_with_only_the_value_cut_out(kit: ReviewKit) -> None:
    erase(kit, "--where", f"email={SUBJECT}")
    kept = decision(kit, MENTIONS[kit.runtime.settings.database_url])
    assert kept.input["email"] == OTHER
    assert kept.input["text"] == "payment for [erased] went to me"
    assert kept.output == {"queue": "payments"}


def test_an_undelivered_delivery_of_the_subject_is_stopped_not_sent_blank(
    kit: ReviewKit,
) -> None:
    erase(kit, "--where", f"email={SUBJECT}")
    rows = kit.runtime.store.outbox.listing(task="routing")
    mine = [r for r in rows if r.decision_id != MENTIONS[kit.runtime.settings.database_url]]
    assert mine and all(r.status == "dead" for r in mine)


def test_a_dry_run_counts_and_changes_nothing(kit: ReviewKit) -> None:
    engine = kit.runtime.store.engine
    before = rows_holding(engine, SUBJECT)
    code, out, _ = erase(kit, "--where", f"email={SUBJECT}", "--dry-run")
    assert code == 0 and "would erase" in out and "decisions: 2" in out
    assert rows_holding(engine, SUBJECT) == before
    assert kit.runtime.store.audit.entries(action="subject.erased") == []


@pytest.mark.parametrize(
    ("where", "says"),
    [
        pytest.param("email", "--where must be FIELD=VALUE", id="no-equals"),
        pytest.param(f"mail={SUBJECT}", "has no input field 'mail'", id="unknown-field"),
        pytest.param("email=", "empty value", id="empty-value"),
    ],
)
def test_a_bad_where_is_one_clear_line_without_the_value(
    kit: ReviewKit, where: str, says: str
) -> None:
    code, out, err = erase(kit, "--where", where)
    assert code != 0 and says in err
    assert SUBJECT not in out + err


def test_erased_decisions_keep_their_rows_for_counts(kit: ReviewKit) -> None:
    with kit.runtime.store.engine.connect() as conn:
        before = conn.execute(select(decisions.c.id, decisions.c.status)).all()
    erase(kit, "--where", f"email={SUBJECT}")
    with kit.runtime.store.engine.connect() as conn:
        after = conn.execute(select(decisions.c.id, decisions.c.status)).all()
    assert sorted(before) == sorted(after)
