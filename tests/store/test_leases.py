"""Named leases: one replica at a time holds one, a lapsed lease passes on, and two
replicas racing for a free lease never both win (both backends)."""

from __future__ import annotations

import threading
from datetime import timedelta

from lockgate.decide.decision import utcnow
from lockgate.store import Store


def test_one_holder_at_a_time_and_a_lapsed_lease_passes_on(database_url: str) -> None:
    store = Store(database_url)
    try:
        leases = store.leases
        now = utcnow()
        assert leases.take("rollup", "replica-a", 30, now=now)
        assert not leases.take("rollup", "replica-b", 30, now=now + timedelta(seconds=5))
        # Renewing is taking again by the holder.
        assert leases.take("rollup", "replica-a", 30, now=now + timedelta(seconds=20))
        assert not leases.take("rollup", "replica-b", 30, now=now + timedelta(seconds=45))
        held = leases.holder("rollup", now=now + timedelta(seconds=45))
        assert held is not None and held.owner == "replica-a"
        # replica-a stopped renewing: after its last term, replica-b takes over.
        assert leases.take("rollup", "replica-b", 30, now=now + timedelta(seconds=51))
        assert not leases.take("rollup", "replica-a", 30, now=now + timedelta(seconds=52))
        # Another name is another lease.
        assert leases.take("retention", "replica-a", 30, now=now)
        leases.give_up("rollup", "replica-a")  # not its lease: nothing happens
        assert not leases.take("rollup", "replica-a", 30, now=now + timedelta(seconds=53))
        leases.give_up("rollup", "replica-b")
        assert leases.holder("rollup") is None
        assert leases.take("rollup", "replica-a", 30)
    finally:
        store.close()


def test_racing_replicas_never_both_win(database_url: str) -> None:
    stores = [Store(database_url), Store(database_url, migrate=False)]
    try:
        for round_ in range(20):
            name = f"job-{round_}"
            barrier = threading.Barrier(len(stores))
            won: list[str] = []

            def take(
                store: Store,
                owner: str,
                name: str = name,
                barrier: threading.Barrier = barrier,
                won: list[str] = won,
            ) -> None:
                barrier.wait()
                if store.leases.take(name, owner, 30):
                    won.append(owner)

            threads = [
                threading.Thread(target=take, args=(store, f"replica-{i}"))
                for i, store in enumerate(stores)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len(won) == 1, (name, won)
    finally:
        for store in stores:
            store.close()
