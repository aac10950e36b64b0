"""What the readiness report reads and keeps, on SQLite and on PostgreSQL: when a channel was
last tested, which release the runbook was written for, a task's dead letters, the audit
entries it reads, the newest backup."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from lockgate.decide.decision import utcnow
from lockgate.delivery.types import DeliveryResult
from lockgate.store import Store
from lockgate.store.readiness import ReadinessRepository
from tests.store.test_store import decision, draft


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    yield store
    store.close()


def test_a_channel_test_and_the_runbook_are_remembered(store: Store) -> None:
    facts = ReadinessRepository(store.engine)
    assert facts.channel_tests() == {} and facts.runbook("routing") is None
    long_ago = utcnow() - timedelta(days=40)
    facts.note_channel_tested("oncall", long_ago)
    facts.note_channel_tested("chat")
    facts.note_channel_tested("oncall")  # the newest test replaces the older
    tests = facts.channel_tests()
    assert set(tests) == {"oncall", "chat"}
    assert tests["oncall"] > long_ago + timedelta(days=39)
    facts.note_runbook("routing", "routing@2", "a" * 64)
    facts.note_runbook("routing", "routing@3", "b" * 64)
    written = facts.runbook("routing")
    assert written is not None
    assert (written["release"], written["hash"]) == ("routing@3", "b" * 64)
    assert facts.runbook("other") is None
    assert facts.newest_backup() is None


def test_dead_letters_are_counted_per_task(store: Store) -> None:
    store.decisions.save([decision("k1"), decision("k2")], sinks=["0:file"])
    store.decisions.save([replace(decision("k3"), task="other")], sinks=["0:file"])
    claimed = store.outbox.claim("w", 10, 60)
    assert len(claimed) == 3
    store.outbox.finish(
        "w", [DeliveryResult(row.id, "dead", 5, error="receiver down") for row in claimed]
    )
    facts = ReadinessRepository(store.engine)
    assert facts.dead_letters("routing") == 2
    assert facts.dead_letters("other") == 1
    assert facts.dead_letters("none") == 0


def test_audit_entries_are_read_by_action(store: Store) -> None:
    release, _ = store.releases.create(draft({"name": "routing"}), "ana")
    store.rollout.start_shadow("routing", release.number, "ana")
    facts = ReadinessRepository(store.engine)
    found = facts.audited("routing", ("release.shadow_started", "release.canary_started"))
    assert found == [("release.shadow_started", "routing@1", {"previous_stage": "draft"})]
    assert facts.audited("other", ("release.shadow_started",)) == []
