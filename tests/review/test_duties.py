"""Separation of duties: only people with the review permission approve, never the submitter,
and a two-person outcome needs two different reviewers."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockgate.errors import Forbidden
from lockgate.security import PERMISSIONS, ROLES
from tests.review.kit import review_kit


def test_the_key_that_submitted_a_decision_may_not_claim_or_review_it(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url) as kit:
        admin = kit.key("ops-admin", "admin")  # may both decide and review
        decision = kit.pending("nothing special, unsure", by=admin)
        with pytest.raises(Forbidden, match="submitted the decision"):
            kit.reviews.claim(admin, decision.id)
        with pytest.raises(Forbidden, match="submitted the decision"):
            kit.reviews.approve(admin, decision.id)
        # Another reviewer may.
        alice = kit.key("alice")
        kit.reviews.claim(alice, decision.id)
        assert kit.reviews.approve(alice, decision.id).decision.status == "approved"


@pytest.mark.parametrize("role", [r for r in ROLES if "review" not in PERMISSIONS[r]])
def test_a_role_without_the_review_permission_can_neither_claim_nor_approve(
    tmp_path: Path, database_url: str, role: str
) -> None:
    with review_kit(tmp_path, database_url) as kit:
        decision = kit.pending("nothing special, unsure")
        key = kit.key(f"{role}-key", role)  # type: ignore[arg-type]
        with pytest.raises(Forbidden, match=f"the {role} role may not review"):
            kit.reviews.claim(key, decision.id)
        with pytest.raises(Forbidden):
            kit.reviews.approve(key, decision.id)
        assert kit.runtime.store.decisions.get(decision.id).status == "pending_review"  # type: ignore[union-attr]


def test_the_model_never_approves_no_decided_input_ends_approved_or_corrected(
    tmp_path: Path, database_url: str
) -> None:
    """The pipeline sets decided, pending_review, rejected or failed, never a human status:
    approved and corrected come only from a verdict by a key with the review permission."""
    with review_kit(tmp_path, database_url) as kit:
        texts = ["card stolen", "unsure", "plain", "", "refund please", "big"] * 3
        statuses = {kit.decide(t, amount=20000 if t == "big" else 1).status for t in texts}
        assert statuses <= {"decided", "pending_review", "rejected", "failed"}
        assert {"decided", "pending_review"} <= statuses
        assert kit.runtime.store.reviews.reviewed("routing") == []


def test_two_person_rule_the_first_approval_keeps_the_decision_pending(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url) as kit:
        alice, bob = kit.key("alice"), kit.key("bob")
        decision = kit.pending("card stolen in Lisbon")

        kit.reviews.claim(alice, decision.id)
        first = kit.reviews.approve(alice, decision.id, "looks like fraud")
        assert first.decision.status == "pending_review"
        assert first.approvals == ("alice",) and first.approvals_needed == 2
        assert first.claimed_by is None  # the claim is released for the second reviewer
        assert kit.outbox_rows(decision.id) == 0

        with pytest.raises(Forbidden, match="already approved"):
            kit.reviews.claim(alice, decision.id)

        kit.reviews.claim(bob, decision.id)
        final = kit.reviews.approve(bob, decision.id)
        assert final.decision.status == "approved"
        assert final.decision.output == {"queue": "fraud"}
        assert final.approvals == ("alice", "bob")
        assert kit.outbox_rows(decision.id) == 1


def test_two_person_rule_applies_above_an_input_amount(tmp_path: Path, database_url: str) -> None:
    with review_kit(tmp_path, database_url) as kit:
        alice = kit.key("alice")
        big = kit.pending("a transfer", amount=12000)
        medium = kit.pending("a transfer", amount=7000)
        assert kit.reviews.item(alice, big.id).approvals_needed == 2
        assert kit.reviews.item(alice, medium.id).approvals_needed == 1


def test_a_correction_into_a_two_person_outcome_needs_a_second_reviewer(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url) as kit:
        alice, bob = kit.key("alice"), kit.key("bob")
        decision = kit.pending("odd charge, unsure")  # the model says cards
        kit.reviews.claim(alice, decision.id)
        proposed = kit.reviews.correct(alice, decision.id, {"queue": "fraud"}, "it is fraud")
        assert proposed.decision.status == "pending_review"
        assert proposed.proposed_output == {"queue": "fraud"}
        assert kit.outbox_rows(decision.id) == 0

        kit.reviews.claim(bob, decision.id)
        final = kit.reviews.approve(bob, decision.id)
        assert final.decision.status == "corrected"
        assert final.decision.output == {"queue": "fraud"}
        assert kit.outbox_rows(decision.id) == 1


def test_the_second_reviewer_may_correct_or_reject_instead(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url) as kit:
        alice, bob = kit.key("alice"), kit.key("bob")
        corrected = kit.pending("card stolen")
        rejected = kit.pending("stolen bike, wrong company")
        for decision in (corrected, rejected):
            kit.reviews.claim(alice, decision.id)
            kit.reviews.approve(alice, decision.id)
            kit.reviews.claim(bob, decision.id)
        fixed = kit.reviews.correct(bob, corrected.id, {"queue": "cards"}, "only lost")
        refused = kit.reviews.reject(bob, rejected.id, "not our customer")
        assert (fixed.decision.status, fixed.decision.output) == ("corrected", {"queue": "cards"})
        assert refused.decision.status == "rejected"
        assert kit.outbox_rows(corrected.id) == 1
        assert kit.outbox_rows(rejected.id) == 0
