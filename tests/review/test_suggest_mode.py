"""Suggest mode: every decision waits for a person with the model's suggestion; nothing is
enqueued before a person acts; the report's figures equal a direct count."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockgate.decide.decision import Decision
from lockgate.errors import Forbidden
from lockgate.review.report import MIN_REVIEWED
from tests.review.kit import REVIEW_TASK, review_kit

SUGGEST_TASK = REVIEW_TASK.replace(
    "  review_sla_minutes: 30\n", "  review_sla_minutes: 30\n  mode: suggest\n"
).replace(
    "  two_person_when:\n"
    "    - {field: queue, equals: fraud}\n"
    "    - {input: amount, above: 10000}\n",
    "",
)


def test_in_suggest_mode_everything_waits_for_a_person_and_nothing_is_enqueued_before(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url, task_text=SUGGEST_TASK) as kit:
        decisions = [kit.decide(t) for t in ("a payment", "card, unsure", "stolen", "hello")]
        assert {d.status for d in decisions} == {"pending_review"}
        assert [d.metadata["suggested_route"] for d in decisions[:3]] == [
            "auto",
            "review",
            "review",
        ]
        assert all(d.output is not None and d.confidence is not None for d in decisions)
        assert kit.outbox_rows() == 0

        alice = kit.key("alice")
        kit.reviews.claim(alice, decisions[0].id)
        kit.reviews.approve(alice, decisions[0].id)
        assert kit.outbox_rows() == 1


def test_the_suggest_report_equals_a_direct_count(tmp_path: Path, database_url: str) -> None:
    with review_kit(tmp_path, database_url, task_text=SUGGEST_TASK) as kit:
        alice = kit.key("alice")
        # payments (confidence 0.9, would be automated): 55 reviewed, all approved -> ready.
        # cards (confidence 0.4, would go to review): 20, every 4th corrected, every 5th rejected.
        # fraud (a review rule): 6, all approved; one pending item is not counted.
        made: list[Decision] = []
        made += [kit.decide(f"payment {i}") for i in range(MIN_REVIEWED + 5)]
        made += [kit.decide(f"card {i}, unsure") for i in range(20)]
        made += [kit.decide(f"stolen {i}") for i in range(6)]
        kit.decide("stolen, still pending")
        for index, decision in enumerate(made):
            kit.reviews.claim(alice, decision.id)
            if index % 4 == 1 and decision.output == {"queue": "cards"}:
                kit.reviews.correct(alice, decision.id, {"queue": "other"}, "not a card issue")
            elif index % 5 == 2 and decision.output == {"queue": "cards"}:
                kit.reviews.reject(alice, decision.id, "spam")
            else:
                kit.reviews.approve(alice, decision.id)

        report = kit.reviews.suggest_report(alice, "routing")

        # The direct count, from the stored decisions and what this test knows of the task.
        rows = []
        for made_decision in made:
            final = kit.runtime.store.decisions.get(made_decision.id)
            assert final is not None
            suggestion = made_decision.output
            agrees = final.status != "rejected" and final.output == suggestion
            automated = (made_decision.confidence or 0) >= 0.8 and suggestion != {"queue": "fraud"}
            rows.append((suggestion["queue"] if suggestion else "?", agrees, automated))
        assert report.overall.n == len(rows) == MIN_REVIEWED + 5 + 20 + 6
        assert report.overall.agree == sum(a for _, a, _ in rows)
        assert report.overall.automated == sum(m for _, _, m in rows)
        assert report.overall.automated_agree == sum(a and m for _, a, m in rows)
        by_label = {r.label: r for r in report.labels}
        for label in ("payments", "cards", "fraud"):
            mine = [(a, m) for lab, a, m in rows if lab == label]
            assert by_label[label].figures.n == len(mine)
            assert by_label[label].figures.agree == sum(a for a, _ in mine)
        assert report.overall.agree < report.overall.n  # the corrections and rejects count
        assert report.ready_labels == ("payments",)
        assert "at least 50 are needed" in by_label["fraud"].why


def test_a_submitter_may_not_read_the_suggest_report(tmp_path: Path, database_url: str) -> None:
    with review_kit(tmp_path, database_url, task_text=SUGGEST_TASK) as kit:
        submitter = kit.key("client", "submitter")
        with pytest.raises(Forbidden, match="submitter role may not read review figures"):
            kit.reviews.suggest_report(submitter, "routing")
