"""A decision a person approves or corrects is delivered with the verdict's output; one a
person rejects never is."""

from __future__ import annotations

from pathlib import Path

from lockgate.security import Principal
from lockgate.testing.receiver import Receiver
from tests.delivery.kit import SECRET, project, webhook


def test_approved_and_corrected_decisions_are_delivered_and_rejected_ones_are_not(
    tmp_path: Path, database_url: str
) -> None:
    with (
        Receiver(SECRET) as receiver,
        project(tmp_path, database_url, [webhook(receiver.url)]) as p,
    ):
        approved, corrected, rejected = p.decide(
            ["my card was stolen", "card stolen at the station", "stolen wallet and card"]
        )
        assert p.rows() == [], "nothing is delivered before a person acts"
        key, _ = p.runtime.store.keys.create("anna", "reviewer", (), actor="test")
        anna = Principal.of(key)
        reviews = p.runtime.reviews
        for decision in (approved, corrected, rejected):
            reviews.claim(anna, decision.id)
        reviews.approve(anna, approved.id)
        reviews.correct(anna, corrected.id, {"queue": "cards"}, reason="not fraud")
        reviews.reject(anna, rejected.id, reason="spam")
        p.drain()

    assert set(receiver.applied) == {approved.id, corrected.id}
    assert receiver.applied[approved.id]["status"] == "approved"
    assert receiver.applied[corrected.id]["status"] == "corrected"
    assert receiver.applied[corrected.id]["output"] == {"queue": "cards"}
