"""Claims are leases: two workers never hold a row at once, and a dead worker's rows return."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from lockgate.decide.decision import utcnow
from lockgate.delivery.types import DeliveryResult
from tests.delivery.kit import project

FILE = {"sink": "file", "path": "out/decisions.jsonl"}


def test_a_claimed_row_is_not_claimed_again_until_its_lease_ends(
    tmp_path: Path, database_url: str
) -> None:
    with project(tmp_path, database_url, [FILE]) as p:
        p.decide(["transfer 1", "transfer 2"])
        store, now = p.runtime.store, utcnow()
        first = store.outbox.claim("worker-a", 10, 60, now=now)
        assert len(first) == 2 and {r.claimed_by for r in first} == {"worker-a"}
        assert store.outbox.claim("worker-b", 10, 60, now=now + timedelta(seconds=59)) == []
        taken_over = store.outbox.claim("worker-b", 10, 60, now=now + timedelta(seconds=61))
        assert [r.id for r in taken_over] == [r.id for r in first]
        # The first worker comes back late: its results no longer count.
        late = [DeliveryResult(r.id, "delivered", 1) for r in first]
        assert store.outbox.finish("worker-a", late) == 0
        assert store.outbox.finish("worker-b", late) == 2
        assert {r.status for r in p.rows()} == {"delivered"}


def test_a_retry_waits_for_its_time(tmp_path: Path, database_url: str) -> None:
    with project(tmp_path, database_url, [FILE]) as p:
        p.decide(["transfer 1"])
        store, now = p.runtime.store, utcnow()
        (row,) = store.outbox.claim("w", 10, 60, now=now)
        later = now + timedelta(seconds=30)
        store.outbox.finish("w", [DeliveryResult(row.id, "pending", 1, later, "HTTP 503")])
        assert store.outbox.claim("w", 10, 60, now=now + timedelta(seconds=29)) == []
        (again,) = store.outbox.claim("w", 10, 60, now=now + timedelta(seconds=31))
        assert (again.tries, again.last_error) == (1, "HTTP 503")
