"""Claims are leases: two workers never hold a row at once, and a dead worker's rows return."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from lockgate.decide.decision import utcnow
from lockgate.delivery.sinks import DeliveryResult
from tests.delivery.kit import project

FILE = {"sink": "file", "path": "out/decisions.jsonl"}


def test_a_claimed_row_is_not_claimed_again_until_its_lease_ends(
    tmp_path: Path, database_url: str
) -> None:
    with project(tmp_path, database_url, [FILE]) as p:
        p.decide(["transfer 1", "transfer 2"])
        store, now = p.runtime.store, utcnow()
        first = store.claim_deliveries("worker-a", 10, 60, now=now)
        assert len(first) == 2 and {r.claimed_by for r in first} == {"worker-a"}
        assert store.claim_deliveries("worker-b", 10, 60, now=now + timedelta(seconds=59)) == []
        taken_over = store.claim_deliveries("worker-b", 10, 60, now=now + timedelta(seconds=61))
        assert [r.id for r in taken_over] == [r.id for r in first]
        # The first worker comes back late: its results no longer count.
        late = [DeliveryResult(r.id, "delivered", 1) for r in first]
        assert store.finish_deliveries("worker-a", late) == 0
        assert store.finish_deliveries("worker-b", late) == 2
        assert {r.status for r in p.rows()} == {"delivered"}


def test_a_retry_waits_for_its_time(tmp_path: Path, database_url: str) -> None:
    with project(tmp_path, database_url, [FILE]) as p:
        p.decide(["transfer 1"])
        store, now = p.runtime.store, utcnow()
        (row,) = store.claim_deliveries("w", 10, 60, now=now)
        later = now + timedelta(seconds=30)
        store.finish_deliveries("w", [DeliveryResult(row.id, "pending", 1, later, "HTTP 503")])
        assert store.claim_deliveries("w", 10, 60, now=now + timedelta(seconds=29)) == []
        (again,) = store.claim_deliveries("w", 10, 60, now=now + timedelta(seconds=31))
        assert (again.tries, again.last_error) == (1, "HTTP 503")
