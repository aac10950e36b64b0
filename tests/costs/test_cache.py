"""The decision cache in the pipeline: a hit is a decision of its own, free, and only for the
same release and input within the ttl; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from lockgate.costs.cache import DecisionCache
from lockgate.costs.metrics import CostMetrics
from lockgate.costs.report import budget_report
from lockgate.decide.decision import Decision
from lockgate.decide.pipeline import DecisionRequest, Pipeline, ReleaseRuntime, Result
from lockgate.store import Store
from lockgate.testing.fault_server import Fault, FaultServer
from tests.costs.kit import Clock, chain_task
from tests.pipeline_kit import build_kit, openai_model

CONFIDENT = -0.01
TEXT = "my card was charged twice"


@dataclass
class Cached:
    store: Store
    pipeline: Pipeline
    runtime: ReleaseRuntime
    server: FaultServer
    clock: Clock
    registry: CollectorRegistry

    def send(self, key: str, text: str = TEXT) -> Result:
        request = DecisionRequest(input={"text": text}, idempotency_key=key)

        async def run() -> Result:
            try:
                return await self.pipeline.decide(self.runtime, request)
            finally:
                for model in self.runtime.models:
                    await model.provider.aclose()

        return asyncio.run(run())

    def decide(self, key: str, text: str = TEXT) -> Decision:
        result = self.send(key, text)
        assert result.decision is not None
        stored = self.store.decisions.get(result.decision.id)
        assert stored is not None
        return stored

    def hits(self) -> float:
        value = self.registry.get_sample_value("lockgate_cache_hits_total", {"task": "tickets"})
        return value or 0.0


@pytest.fixture
def cached(database_url: str, tmp_path: Path) -> Iterator[Cached]:
    with FaultServer() as server:
        server.set_default(Fault.logprobs(CONFIDENT))  # a confident {"queue": "cards"}: auto
        models = [openai_model(logprobs=True)]
        spec = chain_task(models, cache={"ttl": "1h"})
        kit = build_kit(database_url, tmp_path, models, server_url=server.url, spec=spec)
        clock, registry = Clock(), CollectorRegistry()
        cache = DecisionCache(kit.store.async_costs, metrics=CostMetrics(registry), clock=clock)
        pipeline = Pipeline(kit.store.async_decisions, retrier=kit.pipeline.retrier, cache=cache)
        runtime = replace(kit.runtime, content_hash="release-1-hash")
        try:
            yield Cached(kit.store, pipeline, runtime, server, clock, registry)
        finally:
            kit.store.close()


def test_a_hit_is_a_decision_of_its_own_made_without_a_model_call(cached: Cached) -> None:
    first = cached.decide("first")
    other = cached.decide("other", "my loan was refused")
    assert cached.server.request_count == 2  # another input is another key

    third = cached.decide("third", f"  {TEXT} ")  # the same input, once normalised

    assert cached.server.request_count == 2
    assert third.id != first.id and third.idempotency_key == "third"
    assert third.cached_from == first.id
    assert third.output == first.output and third.confidence == first.confidence
    assert third.status == "decided" and third.route == "auto"
    assert third.cost == 0 and not third.attempts
    assert first.cost > 0 and other.cached_from is None
    assert cached.hits() == 1


def test_resending_the_key_of_a_hit_replays_it(cached: Cached) -> None:
    cached.decide("first")
    hit = cached.decide("second")

    again = cached.send("second")

    assert again.replayed and again.decision is not None
    assert again.decision.id == hit.id and again.decision.cached_from == hit.cached_from
    assert cached.server.request_count == 1


def test_an_answer_is_not_reused_after_its_ttl(cached: Cached) -> None:
    cached.decide("first")
    cached.clock.advance(minutes=59)
    assert cached.decide("within").cached_from is not None

    cached.clock.advance(minutes=2)
    late = cached.decide("late")

    assert late.cached_from is None and late.attempts
    assert cached.server.request_count == 2


def test_a_new_release_never_reuses_an_answer_of_another(cached: Cached) -> None:
    cached.decide("first")
    cached.runtime = replace(cached.runtime, release=2, content_hash="release-2-hash")

    fresh = cached.decide("second")

    assert fresh.cached_from is None and fresh.release == 2
    assert cached.server.request_count == 2


def test_a_decision_sent_to_review_is_not_reused(cached: Cached) -> None:
    cached.server.set_default(Fault.logprobs(-2.0))  # confidence 0.14: to review
    assert cached.decide("first").status == "pending_review"

    cached.server.set_default(Fault.logprobs(CONFIDENT))
    second = cached.decide("second")

    assert second.cached_from is None and second.status == "decided"
    assert cached.server.request_count == 2


def test_the_report_shows_what_the_cache_saved(cached: Cached) -> None:
    first = cached.decide("first")
    for n in range(3):
        cached.decide(f"again-{n}")

    # The report's periods are those of the decisions' own time (they are stamped with the
    # real clock; the test's clock only drives the cache's expiry).
    report = budget_report(
        cached.store.costs,
        cached.runtime.task,
        release="tickets@1",
        overall=None,
        now=first.created_at,
    )

    day = report["cache"]["periods"][0]
    assert day["period"] == "day" and day["hits"] == 3
    assert day["saved_usd"] == pytest.approx(3 * first.cost)
    assert report["cache"]["ttl"] == "1h"


def test_a_hit_is_counted_in_history(cached: Cached) -> None:
    from datetime import timedelta

    from lockgate.decide.decision import utcnow
    from lockgate.watch import history

    cached.decide("first")
    cached.decide("second")
    cached.decide("other", "my loan was refused")
    while cached.store.history.roll_up(lambda d, v: history.counts_of(d, v, {}), 500):
        pass
    now = utcnow()
    cells = cached.store.history.cells("tickets", now - timedelta(hours=1), now + timedelta(1))
    buckets = history.buckets("tickets", cells, 3600)
    assert sum(b["decisions"] for b in buckets) == 3
    assert sum(b["cached"] for b in buckets) == 1
