"""Escalation: items pending longer than the task's review SLA rise in the queue, once, with a
metric and a structured log event carrying ids only."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from lockgate.monitor.metrics import Metrics
from lockgate.review.service import ESCALATION_BOOST, ReviewService
from tests.review.kit import REVIEW_TASK, review_kit


def test_an_item_pending_past_the_sla_is_escalated_once_and_moves_up_the_queue(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with review_kit(tmp_path, database_url) as kit:
        alice = kit.key("alice")
        old = kit.pending("card question, unsure")  # priority 0
        fraud = kit.pending("card stolen")  # priority 10
        metrics = Metrics()
        service = ReviewService(
            kit.runtime.store.reviews, kit.runtime.store.releases, metrics=metrics
        )

        assert service.escalate_overdue(old.created_at + timedelta(minutes=29)) == []
        late = fraud.created_at + timedelta(minutes=31)
        with caplog.at_level(logging.INFO, logger="lockgate.reviews"):
            escalated = service.escalate_overdue(late)
        assert sorted((e.task, e.decision_id, e.priority) for e in escalated) == sorted(
            [("routing", old.id, ESCALATION_BOOST), ("routing", fraud.id, 10 + ESCALATION_BOOST)]
        )
        assert service.escalate_overdue(late + timedelta(hours=5)) == []  # once only

        queue = kit.reviews.queue(alice)
        assert [(i.decision.id, i.priority, i.escalated) for i in queue] == [
            (fraud.id, 10 + ESCALATION_BOOST, True),
            (old.id, ESCALATION_BOOST, True),
        ]
        counted = metrics.registry.get_sample_value(
            "lockgate_reviews_escalated_total", {"task": "routing"}
        )
        assert counted == 2
        events = [r for r in caplog.records if r.getMessage() == "review.escalated"]
        assert sorted(r.decision_id for r in events) == sorted([old.id, fraud.id])  # type: ignore[attr-defined]
        assert all("card" not in str(r.__dict__) for r in events)


def test_a_task_without_an_sla_is_never_escalated(tmp_path: Path, database_url: str) -> None:
    task = REVIEW_TASK.replace("  review_sla_minutes: 30\n", "")
    with review_kit(tmp_path, database_url, task_text=task) as kit:
        decision = kit.pending()
        assert kit.reviews.escalate_overdue(decision.created_at + timedelta(days=30)) == []


def test_a_decided_item_is_not_escalated(tmp_path: Path, database_url: str) -> None:
    with review_kit(tmp_path, database_url) as kit:
        alice = kit.key("alice")
        decision = kit.pending("case, unsure")
        kit.reviews.claim(alice, decision.id)
        kit.reviews.approve(alice, decision.id)
        assert kit.reviews.escalate_overdue(decision.created_at + timedelta(hours=2)) == []


def test_replicas_escalating_at_once_escalate_and_count_each_item_once(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url) as kit:
        overdue = [kit.pending(f"case {i}, unsure") for i in range(6)]
        late = max(d.created_at for d in overdue) + timedelta(minutes=31)
        replicas = [
            ReviewService(kit.runtime.store.reviews, kit.runtime.store.releases, metrics=Metrics())
            for _ in range(4)
        ]
        barrier = threading.Barrier(len(replicas))
        found: list[list[str]] = []

        def run(service: ReviewService) -> None:
            barrier.wait()
            found.append([e.decision_id for e in service.escalate_overdue(late)])

        threads = [threading.Thread(target=run, args=(s,)) for s in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        escalated = [i for ids in found for i in ids]
        assert sorted(escalated) == sorted(d.id for d in overdue)  # each once, all of them
        counted = sum(
            s.metrics.registry.get_sample_value(  # type: ignore[union-attr]
                "lockgate_reviews_escalated_total", {"task": "routing"}
            )
            or 0
            for s in replicas
        )
        assert counted == len(overdue)
