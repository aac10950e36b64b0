"""Verdicts: corrections are validated, every verdict is audited, final outcomes (and only they)
go to the outbox in the same transaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from lockgate.errors import Conflict, InputError
from lockgate.store.tables import audit_log, outbox
from tests.review.kit import review_kit


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        pytest.param({"queue": "mortgages"}, "queue: must be one of", id="not-an-enum-value"),
        pytest.param({}, "queue: is missing", id="missing-field"),
        pytest.param({"queue": "cards", "note": "x"}, "1 unexpected field", id="extra-field"),
    ],
)
def test_a_correction_that_breaks_the_output_schema_is_refused_and_changes_nothing(
    tmp_path: Path, database_url: str, output: dict[str, str], problem: str
) -> None:
    with review_kit(tmp_path, database_url) as kit:
        alice = kit.key("alice")
        decision = kit.pending("nothing special, unsure")
        kit.reviews.claim(alice, decision.id)
        with pytest.raises(InputError, match=problem) as refused:
            kit.reviews.correct(alice, decision.id, output, "wrong queue")
        assert "mortgages" not in str(refused.value)  # names the field, never the value
        item = kit.reviews.item(alice, decision.id)
        assert (item.decision.status, item.verdicts, item.claimed_by) == (
            "pending_review",
            (),
            "alice",
        )


@pytest.mark.parametrize(
    "output",
    [
        pytest.param({"queue": "bogus"}, id="invalid-output"),
        pytest.param({"queue": "payments"}, id="valid-output"),
    ],
)
def test_correcting_a_decided_item_says_it_is_not_pending_whatever_the_output(
    tmp_path: Path, database_url: str, output: dict[str, str]
) -> None:
    with review_kit(tmp_path, database_url) as kit:
        alice = kit.key("alice")
        decision = kit.pending("nothing special, unsure")
        kit.reviews.claim(alice, decision.id)
        kit.reviews.reject(alice, decision.id, "spam")
        with pytest.raises(Conflict, match=f"{decision.id} is rejected, not pending review"):
            kit.reviews.correct(alice, decision.id, output, "wrong queue")


def test_correcting_an_unclaimed_item_says_so_before_checking_the_output(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url) as kit:
        alice = kit.key("alice")
        decision = kit.pending("nothing special, unsure")
        with pytest.raises(Conflict, match="is not claimed by this key"):
            kit.reviews.correct(alice, decision.id, {"queue": "bogus"}, "wrong queue")


def test_a_reject_and_a_correction_need_a_reason(tmp_path: Path, database_url: str) -> None:
    with review_kit(tmp_path, database_url) as kit:
        alice = kit.key("alice")
        decision = kit.pending("nothing special, unsure")
        kit.reviews.claim(alice, decision.id)
        with pytest.raises(InputError, match="reason is required"):
            kit.reviews.reject(alice, decision.id, "  ")
        with pytest.raises(InputError, match="reason is required"):
            kit.reviews.correct(alice, decision.id, {"queue": "other"}, "")


def test_a_correction_becomes_the_final_output_and_is_enqueued_with_it(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url) as kit:
        alice = kit.key("alice")
        decision = kit.pending("nothing special, unsure")
        kit.reviews.claim(alice, decision.id)
        item = kit.reviews.correct(alice, decision.id, {"queue": "payments"}, "a payment issue")

        stored = kit.runtime.store.decisions.get(decision.id)
        assert stored is not None
        assert (stored.status, stored.output) == ("corrected", {"queue": "payments"})
        assert item.verdicts[0].previous_output == {"queue": "cards"}
        with kit.runtime.store.engine.connect() as conn:
            rows = conn.execute(select(outbox).where(outbox.c.decision_id == decision.id)).all()
        assert [(r.sink, r.status) for r in rows] == [("0:file", "pending")]
        assert rows[0].payload["status"] == "corrected"
        assert rows[0].payload["output"] == {"queue": "payments"}


def test_a_rejected_decision_is_never_enqueued(tmp_path: Path, database_url: str) -> None:
    with review_kit(tmp_path, database_url) as kit:
        alice = kit.key("alice")
        decision = kit.pending("nothing special, unsure")
        kit.reviews.claim(alice, decision.id)
        assert kit.reviews.reject(alice, decision.id, "spam").decision.status == "rejected"
        assert kit.outbox_rows(decision.id) == 0


def test_every_verdict_is_audited_with_who_what_and_why_and_the_chain_verifies(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url) as kit:
        alice, bob = kit.key("alice"), kit.key("bob")
        approved, corrected, rejected = (kit.pending(f"case {i}, unsure") for i in range(3))
        for decision in (approved, corrected, rejected):
            kit.reviews.claim(alice if decision is not corrected else bob, decision.id)
        kit.reviews.approve(alice, approved.id, "fine")
        kit.reviews.correct(bob, corrected.id, {"queue": "other"}, "not about cards")
        kit.reviews.reject(alice, rejected.id, "duplicate ticket")

        entries = [
            e for e in kit.runtime.store.audit.entries("routing") if e.action.startswith("review.")
        ]
        assert [(e.action, e.actor, e.subject) for e in entries] == [
            ("review.approve", "alice", approved.id),
            ("review.correct", "bob", corrected.id),
            ("review.reject", "alice", rejected.id),
        ]
        assert [e.details["status"] for e in entries] == ["approved", "corrected", "rejected"]
        assert entries[1].details["changed_fields"] == ["queue"]
        assert [e.details["reason"] for e in entries] == [
            "fine",
            "not about cards",
            "duplicate ticket",
        ]
        assert "case 1" not in str([e.details for e in entries])  # no input values
        assert kit.runtime.store.audit.verify() is None

        with kit.runtime.store.engine.begin() as conn:  # tampering is still detected
            conn.execute(
                update(audit_log).where(audit_log.c.id == entries[1].id).values(actor="mallory")
            )
        assert kit.runtime.store.audit.verify() == entries[1].id


def test_a_verdict_that_fails_leaves_no_trace(tmp_path: Path, database_url: str) -> None:
    """A refused verdict rolls back with its transaction: no review row, no audit entry."""
    with review_kit(tmp_path, database_url) as kit:
        alice = kit.key("alice")
        decision = kit.pending("nothing special, unsure")
        kit.reviews.claim(alice, decision.id)
        before = len(kit.runtime.store.audit.entries())
        with pytest.raises(InputError):
            kit.reviews.correct(alice, decision.id, {"queue": "nope"}, "x")
        assert len(kit.runtime.store.audit.entries()) == before
        assert kit.reviews.item(alice, decision.id).verdicts == ()


def test_done_today_counts_this_reviewers_verdicts_since_midnight_utc(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url) as kit:
        alice, bob = kit.key("alice"), kit.key("bob")
        kit.clock.advance(hours=-10)  # yesterday, 23:00
        old = kit.pending("yesterday, unsure")
        kit.reviews.claim(alice, old.id)
        kit.reviews.approve(alice, old.id)
        kit.clock.advance(hours=10)
        for i in range(2):
            decision = kit.pending(f"today {i}, unsure")
            kit.reviews.claim(alice, decision.id)
            kit.reviews.reject(alice, decision.id, "spam")
        assert kit.reviews.done_today(alice) == 2
        assert kit.reviews.done_today(bob) == 0


def test_similar_lists_final_decisions_of_the_task_with_the_most_alike_input(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url) as kit:
        alice = kit.key("alice")
        close = kit.decide("my card payment failed at the shop")
        kit.decide("how do I change my address")
        far = kit.decide("card payment")
        kit.decide("a payment")
        pending = kit.pending("my card payment failed at the station, unsure")
        found = kit.reviews.similar(alice, pending.id, limit=2)
        assert [d.id for d in found] == [close.id, far.id]
