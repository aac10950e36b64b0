"""Webhook delivery against a real receiver on loopback: signed, retried, dead-lettered."""

from __future__ import annotations

from pathlib import Path

from lockgate.monitor.metrics import Metrics
from lockgate.testing.receiver import Receiver
from tests.delivery.kit import SECRET, project, webhook

SLOW_RETRIES = {"delivery_backoff_base_seconds": 60, "delivery_backoff_cap_seconds": 60}
TEXTS = [f"where is my transfer number {i}" for i in range(20)]


def test_every_automated_decision_arrives_once_keyed_by_its_id(
    tmp_path: Path, database_url: str
) -> None:
    with (
        Receiver(SECRET) as receiver,
        project(tmp_path, database_url, [webhook(receiver.url)]) as p,
    ):
        decided = p.decide(TEXTS)
        report = p.drain()
        assert report.delivered == len(TEXTS)
        assert set(receiver.applied) == {d.id for d in decided}
        assert receiver.applied[decided[0].id] == decided[0].public()
        assert (receiver.duplicates, receiver.bad_signatures) == (0, 0)
        assert {r.status for r in p.rows()} == {"delivered"}


def test_a_receiver_down_for_a_while_gets_everything_once_it_is_back(
    tmp_path: Path, database_url: str
) -> None:
    with (
        Receiver(SECRET) as receiver,
        project(tmp_path, database_url, [webhook(receiver.url, max_tries=20)]) as p,
    ):
        decided = p.decide(TEXTS)
        receiver.fail_next(45, status=503)
        report = p.drain_until_settled()
        assert receiver.failed == 45
        assert report.retried == 45 and report.dead == 0
        assert set(receiver.applied) == {d.id for d in decided}
        assert {r.status for r in p.rows()} == {"delivered"}


def test_a_client_error_is_dead_lettered_at_once_but_429_is_retried(
    tmp_path: Path, database_url: str
) -> None:
    with (
        Receiver(SECRET) as receiver,
        project(tmp_path, database_url, [webhook(receiver.url)]) as p,
    ):
        p.decide(TEXTS[:2])
        receiver.fail_next(1, status=429)
        receiver.fail_next(1, status=422)
        p.drain_until_settled(concurrency=1)
        dead = p.rows("dead")
        assert [(r.tries, r.last_error) for r in dead] == [(1, "HTTP 422")]
        assert len(receiver.applied) == 1


def test_a_receiver_that_always_fails_leaves_rows_dead_after_max_tries(
    tmp_path: Path, database_url: str
) -> None:
    metrics = Metrics()
    with (
        Receiver(SECRET) as receiver,
        project(tmp_path, database_url, [webhook(receiver.url, max_tries=3)]) as p,
    ):
        p.decide(TEXTS[:5])
        receiver.fail_always(500)
        p.drain_until_settled(metrics=metrics)
        dead = p.rows("dead")
        assert len(dead) == 5 and {r.tries for r in dead} == {3}
        assert {r.last_error for r in dead} == {"HTTP 500"}
        assert receiver.applied == {}
        sample = metrics.registry.get_sample_value
        labels = {"task": "routing", "sink": "0:webhook"}
        assert sample("lockgate_deliveries_total", {**labels, "outcome": "dead"}) == 5
        assert sample("lockgate_deliveries_total", {**labels, "outcome": "retry"}) == 10
        assert sample("lockgate_outbox_depth", {"status": "dead"}) == 5


def test_a_missing_secret_is_retried_with_a_clear_error_and_never_sent_unsigned(
    tmp_path: Path, database_url: str
) -> None:
    with (
        Receiver(SECRET) as receiver,
        project(tmp_path, database_url, [webhook(receiver.url)], SLOW_RETRIES) as p,
    ):
        p.decide(TEXTS[:1])
        p.drain(environ={})
        (row,) = p.rows("pending")
        assert row.tries == 1
        assert row.last_error is not None and "ROUTING_HOOK_SECRET" in row.last_error
        assert receiver.requests == 0
