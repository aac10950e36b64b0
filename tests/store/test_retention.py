"""`lockgate retention run` blanks what a task keeps past its `retention:` (both backends):
inputs, outputs and attempts each by their own duration, in batches; the rows stay for counts,
a decision pending review and an undelivered delivery are kept back, and the audit chain
still verifies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from lockgate.decide.decision import Decision, utcnow
from lockgate.store.retention import BLANK
from lockgate.store.tables import (
    attempts,
    audit_texts,
    decisions,
    intake_quarantine,
    intake_seen,
    outbox,
    reviews,
    shadow_runs,
)
from tests.cli.kit import lockgate
from tests.review.kit import ReviewKit, review_kit
from tests.store.sqlite_defaults import secure_delete_off_by_default
from tests.store.test_erasure import rows_holding

TASK = """\
name: routing
input:
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
retention: {inputs: 30d, outputs: 60d, attempts: 30d}
"""


def age(kit: ReviewKit, decision: Decision, days: float) -> None:
    """Make a stored decision `days` old (what waiting that long would do)."""
    with kit.runtime.store.engine.begin() as conn:
        conn.execute(
            update(decisions)
            .where(decisions.c.id == decision.id)
            .values(created_at=utcnow() - timedelta(days=days))
        )


def delivered(kit: ReviewKit, decision: Decision) -> None:
    with kit.runtime.store.engine.begin() as conn:
        conn.execute(
            update(outbox)
            .where(outbox.c.decision_id == decision.id)
            .values(status="delivered", delivered_at=utcnow())
        )


def retention(kit: ReviewKit, *args: str) -> str:
    root = kit.runtime.settings.project_dir
    done = lockgate("retention", "run", *args, cwd=root, database=kit.runtime.settings.database_url)
    return done.stdout


def stored(kit: ReviewKit, decision: Decision) -> Decision:
    found = kit.runtime.store.decisions.get(decision.id)
    assert found is not None
    return found


@pytest.fixture
def kit(tmp_path: Path, database_url: str) -> Iterator[ReviewKit]:
    with secure_delete_off_by_default(), review_kit(tmp_path, database_url, TASK) as opened:
        yield opened


def test_inputs_and_attempts_past_30_days_are_blanked_outputs_kept_to_60(kit: ReviewKit) -> None:
    old = kit.decide("my payment failed in March")
    older = kit.decide("my payment failed in January")
    fresh = kit.decide("my payment failed today")
    for decision in (old, older):
        delivered(kit, decision)
    with kit.runtime.store.engine.begin() as conn:
        conn.execute(update(attempts).values(message="raw answer with the customer's words"))
    kit.runtime.store.quality.add_feedback(older, "crm", True, None, "Jane says thanks", utcnow())
    kit.runtime.store.costs.keep(
        "routing", "r" * 64, {older.input_hash: older.id}, utcnow() + timedelta(days=1)
    )
    age(kit, old, 45)
    age(kit, older, 90)

    out = retention(kit)

    assert "decisions.input: 2" in out and "attempts.message: 2" in out
    assert "decisions.output: 1" in out and "outbox.payload (delivered): 1" in out
    assert (stored(kit, old).input, stored(kit, old).output) == (BLANK, {"queue": "payments"})
    assert (stored(kit, older).input, stored(kit, older).output) == (BLANK, BLANK)
    assert stored(kit, fresh).input == {"text": "my payment failed today"}
    assert stored(kit, old).redacted_input == BLANK and stored(kit, old).metadata == BLANK
    assert all(a.message is None for d in (old, older) for a in stored(kit, d).attempts)
    assert stored(kit, fresh).attempts[0].message is not None
    with kit.runtime.store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(decisions)).scalar_one() == 3
        rows = conn.execute(select(outbox.c.decision_id, outbox.c.payload)).all()
    payloads = {row.decision_id: row.payload for row in rows}
    assert payloads[older.id] == BLANK and payloads[old.id] != BLANK
    assert "feedback (output and comment): 1" in out and "decision_cache: 1" in out
    assert kit.runtime.store.quality.feedback_of(older.id)[0].comment is None
    assert kit.runtime.store.costs.cached("routing", "r" * 64, [older.input_hash], utcnow()) == []
    # The 45-day-old input is in no row of any table; the fresh one still is.
    assert rows_holding(kit.runtime.store.engine, "failed in March") == []
    assert "decisions.input" in rows_holding(kit.runtime.store.engine, "failed today")
    if kit.runtime.store.backend == "sqlite":  # zeroed in the file, not only unlinked
        kit.runtime.store.engine.dispose()
        url = kit.runtime.settings.database_url
        stored_bytes = Path(url.removeprefix("sqlite:///")).read_bytes()
        assert b"failed in March" not in stored_bytes and b"failed today" in stored_bytes
    assert kit.runtime.store.audit.first_break() is None


def test_pending_reviews_and_undelivered_outputs_are_kept_back(kit: ReviewKit) -> None:
    pending = kit.pending("my card was stolen long ago")
    undelivered = kit.decide("my payment failed, not yet delivered")
    for decision in (pending, undelivered):
        age(kit, decision, 90)

    out = retention(kit)

    assert "kept: 1 decisions pending review" in out
    assert "kept: 1 decisions with an undelivered outbox row" in out
    assert stored(kit, pending).input == {"text": "my card was stolen long ago"}
    assert stored(kit, undelivered).output == {"queue": "payments"}
    assert stored(kit, undelivered).input == BLANK  # its input is not needed to deliver
    # Delivered later, it is blanked by the next sweep: the position waits for it.
    delivered(kit, undelivered)
    assert "decisions.output: 1" in retention(kit)
    assert stored(kit, undelivered).output == BLANK


def test_a_decision_with_a_queued_shadow_run_keeps_its_input_until_the_run_is_done(
    kit: ReviewKit,
) -> None:
    decision = kit.decide("my payment failed, shadowed")
    delivered(kit, decision)
    with kit.runtime.store.engine.begin() as conn:
        conn.execute(
            shadow_runs.insert().values(
                decision_id=decision.id,
                task="routing",
                release=2,
                status="pending",
                created_at=utcnow(),
            )
        )
    age(kit, decision, 90)
    out = retention(kit)
    assert "kept: 1 decisions with a queued shadow run or an open spot check" in out
    assert stored(kit, decision).input == {"text": "my payment failed, shadowed"}
    with kit.runtime.store.engine.begin() as conn:
        conn.execute(update(shadow_runs).values(status="done", done_at=utcnow()))
    assert "decisions.input: 1" in retention(kit)
    assert stored(kit, decision).input == BLANK


def test_review_notes_go_with_the_outputs_and_the_chain_still_verifies(kit: ReviewKit) -> None:
    alice = kit.key("alice")
    decision = kit.pending("my card was stolen, says Jane Roe")
    kit.reviews.claim(alice, decision.id)
    kit.reviews.reject(alice, decision.id, "Jane Roe called back: false alarm")
    age(kit, decision, 90)

    out = retention(kit)

    assert "reviews (outputs and notes): 1" in out
    assert "review notes beside the audit chain: 1" in out
    with kit.runtime.store.engine.connect() as conn:
        assert conn.execute(select(reviews.c.reason)).scalar_one() is None
        assert conn.execute(select(audit_texts.c.text)).scalar_one() is None
    (entry,) = kit.runtime.store.audit.entries(action="review.reject")
    assert entry.erased == ("reason",)
    assert kit.runtime.store.audit.first_break() is None


def test_a_dry_run_counts_what_is_due_and_changes_nothing(kit: ReviewKit) -> None:
    decision = kit.decide("my payment failed")
    age(kit, decision, 45)
    out = retention(kit, "--dry-run")
    assert "would blank or delete" in out and "decisions.input: 1" in out
    assert stored(kit, decision).input == {"text": "my payment failed"}
    assert "decisions.input: 1" in retention(kit)


def test_small_batches_reach_every_due_decision_and_the_next_sweep_starts_after_them(
    kit: ReviewKit,
) -> None:
    made = [kit.decide(f"my payment failed, number {i}") for i in range(7)]
    for decision in made:
        age(kit, decision, 45)
    assert "decisions.input: 7" in retention(kit, "--batch", "2")
    assert all(stored(kit, d).input == BLANK for d in made)
    again = retention(kit, "--batch", "2")
    assert "decisions.input" not in again


def test_intake_records_past_the_input_duration_are_deleted_held_ones_kept(
    kit: ReviewKit,
) -> None:
    long_ago = utcnow() - timedelta(days=45)
    with kit.runtime.store.engine.begin() as conn:
        for position, status in (("a:1", "replayed"), ("a:2", "discarded"), ("a:3", "held")):
            conn.execute(
                intake_quarantine.insert().values(
                    task="routing",
                    source="inbox",
                    position=position,
                    reason="no text",
                    raw={"body": "Jane Roe's letter"},
                    context={},
                    status=status,
                    created_at=long_ago,
                )
            )
        conn.execute(
            intake_seen.insert().values(
                task="routing", content_hash="ab" * 32, idempotency_key="k", seen_at=long_ago
            )
        )
    out = retention(kit)
    assert "intake_quarantine (resolved): 2" in out and "intake_seen: 1" in out
    assert "kept: 1 held quarantine records" in out
    with kit.runtime.store.engine.connect() as conn:
        left = conn.execute(select(intake_quarantine.c.status)).scalars().all()
    assert left == ["held"]


def test_a_task_without_retention_is_named_and_left_alone(
    tmp_path: Path, sqlite_database_url: str
) -> None:
    without = TASK.replace("retention:", "# retention:")
    with review_kit(tmp_path, sqlite_database_url, without) as kit:
        decision = kit.decide("my payment failed")
        age(kit, decision, 400)
        assert "routing: no retention set" in retention(kit)
        assert stored(kit, decision).input == {"text": "my payment failed"}
