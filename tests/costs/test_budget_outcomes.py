"""A hard budget limit in the pipeline: fallback, review and refuse, against a real
OpenAI-compatible server whose own request count is the truth, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from lockgate.costs.budgets import BudgetGuard
from lockgate.decide.decision import Decision
from lockgate.decide.pipeline import DecisionRequest, Pipeline, ReleaseRuntime, Result
from lockgate.errors import BudgetExceeded
from lockgate.store import Store
from lockgate.testing.fault_server import Fault, FaultServer
from tests.costs.kit import Clock, chain_task
from tests.pipeline_kit import build_kit, kit_settings, openai_model, rules_model

CONFIDENT = -0.01


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        running.set_default(Fault.logprobs(CONFIDENT))  # a valid, confident {"queue": "cards"}
        yield running


@dataclass
class Budgeted:
    store: Store
    pipeline: Pipeline
    runtime: ReleaseRuntime
    server: FaultServer

    def decide(self, texts: list[str], mode: str = "error", prefix: str = "k") -> list[Result]:
        requests = [
            DecisionRequest(input={"text": t}, idempotency_key=f"{prefix}-{i}")
            for i, t in enumerate(texts)
        ]

        async def run() -> list[Result]:
            try:
                return await self.pipeline.decide_many(
                    self.runtime,
                    requests,
                    invalid_input=mode,  # type: ignore[arg-type]
                )
            finally:
                for model in self.runtime.models:
                    await model.provider.aclose()

        return asyncio.run(run())

    def stored(self, result: Result) -> Decision:
        assert result.decision is not None, result.error
        found = self.store.decisions.get(result.decision.id)
        assert found is not None
        return found

    def spent_calls(self) -> int:
        (ledger,) = self.store.costs.ledgers([("tickets", "2026-11-29")])
        assert ledger.reserved_calls == 0, "a hold was left behind"
        return ledger.spent_calls


@pytest.fixture
def budgeted(database_url: str, tmp_path: Path, server: FaultServer) -> Iterator[Any]:
    made: list[Store] = []

    def make(models: list[dict[str, Any]], **budget: Any) -> Budgeted:
        spec = chain_task(models, budget=budget)
        kit = build_kit(database_url, tmp_path, models, server_url=server.url, spec=spec)
        made.append(kit.store)
        settings = kit_settings(database_url, tmp_path, server.url)
        guard = BudgetGuard(kit.store.async_costs, price=settings.price, clock=Clock())
        pipeline = Pipeline(kit.store.async_decisions, retrier=kit.pipeline.retrier, spend=guard)
        return Budgeted(kit.store, pipeline, kit.runtime, server)

    yield make
    for store in made:
        store.close()


def test_fallback_skips_the_paid_model_and_answers_with_the_free_one(budgeted: Any) -> None:
    made = budgeted(
        [openai_model(logprobs=True), rules_model()],
        per_day={"calls": 2},
        on_hard_limit="fallback",
    )

    results = made.decide([f"my card {n} was charged twice" for n in range(5)])

    decisions = [made.stored(r) for r in results]
    assert made.server.request_count == 2
    assert made.spent_calls() == 2
    by_provider = sorted(tuple(a.provider for a in d.attempts) for d in decisions)
    assert by_provider == [("openai",)] * 2 + [("rules",)] * 3
    assert all(d.status == "decided" and d.output == {"queue": "cards"} for d in decisions)


def test_fallback_without_a_free_model_fails_by_the_failure_policy_with_the_reason(
    budgeted: Any,
) -> None:
    made = budgeted([openai_model(logprobs=True)], per_day={"calls": 1}, on_hard_limit="fallback")

    results = made.decide(["card one", "card two"])

    failed = [made.stored(r) for r in results if made.stored(r).status == "failed"]
    assert made.server.request_count == 1
    assert len(failed) == 1
    assert "budget: the per_day limit of task tickets (1 call) is reached" in failed[0].reason
    assert not failed[0].attempts


def test_review_sends_the_rest_to_the_queue_without_a_model_call(budgeted: Any) -> None:
    made = budgeted([openai_model(logprobs=True)], per_day={"calls": 1}, on_hard_limit="review")

    results = made.decide(["card one", "card two", "card three"])

    decisions = [made.stored(r) for r in results]
    assert made.server.request_count == 1
    waiting = [d for d in decisions if d.status == "pending_review"]
    assert len(waiting) == 2
    for decision in waiting:
        assert decision.route == "review"
        assert not decision.attempts and decision.cost == 0
        assert decision.reason == "budget: the per_day limit of task tickets (1 call) is reached"


def test_refuse_answers_429_until_the_period_ends_and_stores_nothing(budgeted: Any) -> None:
    made = budgeted(
        [openai_model(logprobs=True, max_tokens=10)],
        per_month={"usd": 0.70},
        on_hard_limit="refuse",
    )

    results = made.decide([f"card {n}" for n in range(4)])

    refused = [r.error for r in results if r.error is not None]
    assert 1 <= made.server.request_count == 4 - len(refused) < 4
    assert refused and all(isinstance(e, BudgetExceeded) for e in refused)
    error = refused[0]
    assert isinstance(error, BudgetExceeded)
    assert error.status == 429
    assert error.resets_at == datetime(2026, 12, 1, tzinfo=UTC).isoformat()
    assert error.retry_after_seconds > 0
    assert error.message == "budget: the per_month limit of task tickets ($0.70) is reached"
    kept = made.store.decisions.find("tickets", [f"k-{n}" for n in range(4)])
    assert len(kept) == made.server.request_count
    (month,) = made.store.costs.ledgers([("tickets", "2026-11")])
    assert month.spent_calls == made.server.request_count and month.reserved_nano == 0
    assert 0 < month.spent_nano <= 700_000_000


def test_refuse_in_a_batch_job_stores_a_failed_record_with_the_reason(budgeted: Any) -> None:
    made = budgeted([openai_model(logprobs=True)], per_day={"calls": 1}, on_hard_limit="refuse")

    results = made.decide(["card one", "card two"], mode="fail")

    decisions = [made.stored(r) for r in results]
    assert [d.status for d in decisions] == ["decided", "failed"]
    assert decisions[1].reason == "budget: the per_day limit of task tickets (1 call) is reached"
    assert made.server.request_count == 1


def test_every_retry_is_a_call_the_ledger_counts(budgeted: Any) -> None:
    made = budgeted([openai_model(logprobs=True, retries=2)], per_day={"calls": 10})
    made.server.enqueue(Fault.status(503), Fault.status(503))

    (result,) = made.decide(["card one"])

    assert made.stored(result).status == "decided"
    assert made.server.request_count == 3
    assert made.spent_calls() == 3


def test_a_retry_past_the_limit_is_not_made_and_the_decision_fails_with_the_reason(
    budgeted: Any,
) -> None:
    made = budgeted([openai_model(logprobs=True, retries=3)], per_day={"calls": 2})
    made.server.set_default(Fault.status(503))

    (result,) = made.decide(["card one"])

    decision = made.stored(result)
    assert made.server.request_count == 2
    assert made.spent_calls() == 2
    assert [a.error_class for a in decision.attempts] == ["server_error", "server_error", "budget"]
    assert decision.status == "failed"


def test_a_task_without_a_budget_reserves_nothing(budgeted: Any, database_url: str) -> None:
    made = budgeted([openai_model(logprobs=True)], per_day={"calls": 1})
    free = replace(made.runtime, task=chain_task([openai_model(logprobs=True)]))
    made.runtime = free

    results = made.decide(["card one", "card two"])

    assert all(r.error is None for r in results)
    assert made.server.request_count == 2
    assert made.store.costs.ledgers([("tickets", "2026-11-29")])[0].spent_calls == 0


def test_a_call_an_open_breaker_stops_lets_its_hold_go(budgeted: Any) -> None:
    made = budgeted(
        [openai_model(logprobs=True, retries=0, breaker_failures=1)], per_day={"calls": 5}
    )
    made.server.set_default(Fault.status(503))
    made.decide(["card one"], prefix="first")  # its failure opens the breaker

    (result,) = made.decide(["card two"], prefix="second")

    assert [a.error_class for a in made.stored(result).attempts] == ["breaker_open"]
    assert made.server.request_count == 1
    assert made.spent_calls() == 1  # and no hold left behind (checked there)
