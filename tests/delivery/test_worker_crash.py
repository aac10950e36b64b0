"""Separate `lockgate worker` processes: killed mid-batch, or two at once, nothing is lost and
no receiver applies a decision twice."""

from __future__ import annotations

import signal
from pathlib import Path

from lockgate.testing.receiver import Receiver
from tests.delivery.kit import SECRET, webhook
from tests.delivery.processes import (
    delivered_count,
    prepare,
    rows,
    start_worker,
    stop_worker,
    wait_for,
)

TOTAL = 1000
BATCH = 50


def test_a_worker_killed_mid_batch_is_replaced_and_every_decision_arrives_once(
    tmp_path: Path, database_url: str
) -> None:
    with Receiver(SECRET, delay_s=0.01) as receiver:
        project = prepare(
            tmp_path,
            database_url,
            [webhook(receiver.url)],
            TOTAL,
            delivery_batch_size=BATCH,
            delivery_lease_seconds=2,
        )
        decided = {r.decision_id for r in rows(project, database_url)}
        assert len(decided) == TOTAL

        first = start_worker(project, database_url, "--concurrency", "4")
        wait_for(lambda: len(receiver.applied) >= 3 * BATCH)
        first.send_signal(signal.SIGKILL)
        first.communicate()
        applied_before = len(receiver.applied)
        assert 0 < applied_before < TOTAL, "the worker must die with work left"
        assert rows(project, database_url, "pending"), "its claimed rows are still pending"

        second = start_worker(project, database_url, "--concurrency", "4")
        wait_for(lambda: not rows(project, database_url, "pending"))
        code, out, err = stop_worker(second)

    assert code == 0, err
    assert set(receiver.applied) == decided
    assert all(receiver.applied[key]["id"] == key for key in decided)
    assert receiver.bad_signatures == 0
    # Requests the killed worker sent but never recorded come again; the receiver counts them
    # as duplicates and applies each key once. At most the batch in flight can repeat.
    repeats = sum(receiver.seen.values()) - len(receiver.seen)
    assert repeats == receiver.duplicates <= BATCH
    assert {r.status for r in rows(project, database_url)} == {"delivered"}
    assert delivered_count(out) >= TOTAL - applied_before


def test_two_workers_never_send_the_same_row_at_the_same_time(
    tmp_path: Path, database_url: str
) -> None:
    with Receiver(SECRET, delay_s=0.05) as receiver:
        project = prepare(
            tmp_path, database_url, [webhook(receiver.url)], 600, delivery_batch_size=20
        )
        workers = [start_worker(project, database_url, "--concurrency", "8") for _ in range(2)]
        wait_for(lambda: len(receiver.applied) == 600)
        outcomes = [stop_worker(w) for w in workers]

    assert [code for code, _, _ in outcomes] == [0, 0], [err for _, _, err in outcomes]
    assert receiver.overlaps == 0
    assert sum(receiver.seen.values()) == 600, "no row was sent twice"
    shares = [delivered_count(out) for _, out, _ in outcomes]
    assert sum(shares) == 600
    assert all(share > 0 for share in shares), f"both workers must have taken rows: {shares}"
