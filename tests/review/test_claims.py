"""Claims: a lease that exactly one reviewer wins, that expires, and that acting requires."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from lockgate.errors import Conflict
from tests.review.kit import review_kit


def test_of_many_reviewers_claiming_at_once_exactly_one_wins(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url) as kit:
        decision = kit.pending()
        reviewers = [kit.key(f"reviewer-{i}") for i in range(8)]
        barrier = threading.Barrier(len(reviewers))
        won: list[str] = []
        refused: list[str] = []

        def claim(index: int) -> None:
            barrier.wait()
            try:
                kit.reviews.claim(reviewers[index], decision.id)
                won.append(reviewers[index].name)
            except Conflict as exc:
                refused.append(exc.message)

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(reviewers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert len(won) == 1
        assert len(refused) == len(reviewers) - 1
        assert all(f"claimed by {won[0]}" in message for message in refused)
        assert kit.reviews.item(reviewers[0], decision.id).claimed_by == won[0]


def test_a_claim_is_refused_while_another_reviewers_lease_lives(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url, review_lease_seconds=600) as kit:
        alice, bob = kit.key("alice"), kit.key("bob")
        decision = kit.pending("nothing special, unsure")
        kit.reviews.claim(alice, decision.id)
        kit.clock.advance(seconds=599)
        with pytest.raises(Conflict, match="claimed by alice"):
            kit.reviews.claim(bob, decision.id)


def test_an_expired_lease_returns_the_item_to_the_queue_and_its_holder_can_no_longer_act(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url, review_lease_seconds=600) as kit:
        alice, bob = kit.key("alice"), kit.key("bob")
        decision = kit.pending("nothing special, unsure")
        kit.reviews.claim(alice, decision.id)
        kit.clock.advance(seconds=601)

        with pytest.raises(Conflict, match=r"claim on decision \w+ has expired"):
            kit.reviews.approve(alice, decision.id)
        item = kit.reviews.claim(bob, decision.id)
        assert item.claimed_by == "bob"
        with pytest.raises(Conflict, match="claimed by bob"):
            kit.reviews.approve(alice, decision.id)
        assert kit.reviews.approve(bob, decision.id).decision.status == "approved"


def test_claiming_again_renews_ones_own_lease(tmp_path: Path, database_url: str) -> None:
    with review_kit(tmp_path, database_url, review_lease_seconds=600) as kit:
        alice = kit.key("alice")
        decision = kit.pending("nothing special, unsure")
        first = kit.reviews.claim(alice, decision.id)
        kit.clock.advance(seconds=500)
        again = kit.reviews.claim(alice, decision.id)
        assert again.claim_expires_at == kit.clock.now + timedelta(seconds=600)
        assert first.claim_expires_at is not None and again.claim_expires_at is not None
        assert again.claim_expires_at - first.claim_expires_at == timedelta(seconds=500)
        assert kit.reviews.approve(alice, decision.id).decision.status == "approved"


def test_acting_without_a_claim_is_a_conflict(tmp_path: Path, database_url: str) -> None:
    with review_kit(tmp_path, database_url) as kit:
        decision = kit.pending("nothing special, unsure")
        with pytest.raises(Conflict, match="not claimed by this key"):
            kit.reviews.reject(kit.key("alice"), decision.id, "spam")
        assert kit.reviews.item(kit.key("alice"), decision.id).decision.status == "pending_review"


def test_a_final_decision_cannot_be_claimed_or_reviewed_again(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url) as kit:
        alice, bob = kit.key("alice"), kit.key("bob")
        decision = kit.pending("nothing special, unsure")
        kit.reviews.claim(alice, decision.id)
        kit.reviews.reject(alice, decision.id, "not a ticket")
        with pytest.raises(Conflict, match="is rejected, not pending review"):
            kit.reviews.claim(bob, decision.id)
        with pytest.raises(Conflict, match="is rejected, not pending review"):
            kit.reviews.approve(alice, decision.id)


def test_the_queue_lists_high_priority_first_then_oldest_first(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url) as kit:
        alice = kit.key("alice")
        low_old = kit.pending("first, unsure")
        fraud = kit.pending("card stolen")
        big = kit.pending("a large transfer", amount=7000)
        low_new = kit.pending("second, unsure")
        fraud_new = kit.pending("stolen again")
        kit.decide("plain card question")  # automated: not in the queue

        queue = kit.reviews.queue(alice)
        assert [i.decision.id for i in queue] == [
            fraud.id,
            fraud_new.id,
            big.id,
            low_old.id,
            low_new.id,
        ]
        assert [i.priority for i in queue] == [10, 10, 5, 0, 0]

        first_page = kit.reviews.queue(alice, limit=2)
        second_page = kit.reviews.queue(alice, limit=2, after=first_page[-1].decision.id)
        assert [i.decision.id for i in first_page + second_page] == [
            fraud.id,
            fraud_new.id,
            big.id,
            low_old.id,
        ]


def test_the_queue_shows_only_the_tasks_of_a_scoped_key(tmp_path: Path, database_url: str) -> None:
    with review_kit(tmp_path, database_url) as kit:
        kit.pending()
        other = kit.key("other-team", tasks=("invoices",))
        assert kit.reviews.queue(other) == []
        assert len(kit.reviews.queue(kit.key("alice"))) == 1
