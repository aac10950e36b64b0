"""`lockgate serve` runs the retention sweep on the one replica holding the lease `retention`
(both backends), and gives the lease up when it stops."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from lockgate.server.keeping import LEASE, retention_sweeps
from lockgate.store.retention import BLANK
from tests.review.kit import ReviewKit, review_kit
from tests.store.test_retention import TASK, age, stored


async def serve_until(kit: ReviewKit, done: Callable[[], bool], seconds: float) -> bool:
    """Run the sweep loop as `serve` does until `done()` holds or `seconds` pass."""
    async with retention_sweeps(kit.runtime):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if done():
                return True
            await asyncio.sleep(0.05)
    return False


def test_one_replica_sweeps_and_only_while_it_holds_the_lease(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url, TASK, retention_interval_seconds=0.1) as kit:
        decision = kit.decide("my payment failed long ago")
        age(kit, decision, 45)
        leases = kit.runtime.store.leases
        assert leases.take(LEASE, "another-replica", 60)

        def blanked() -> bool:
            return stored(kit, decision).input == BLANK

        assert not asyncio.run(serve_until(kit, blanked, 1.0))  # the other replica holds it
        leases.give_up(LEASE, "another-replica")
        assert asyncio.run(serve_until(kit, blanked, 20.0))
        assert leases.holder(LEASE) is None  # given up on stopping
        assert kit.runtime.store.audit.first_break() is None


def test_an_interval_of_zero_never_sweeps(tmp_path: Path, database_url: str) -> None:
    with review_kit(tmp_path, database_url, TASK, retention_interval_seconds=0) as kit:
        decision = kit.decide("my payment failed long ago")
        age(kit, decision, 45)
        assert not asyncio.run(serve_until(kit, lambda: stored(kit, decision).input == BLANK, 0.5))
        assert kit.runtime.store.leases.holder(LEASE) is None
