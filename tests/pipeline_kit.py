"""A real pipeline for tests: a Store, providers built from a task dict, a fake clock and sleep.

No mocks: the openai provider talks to a `FaultServer` on loopback, the store is SQLite or
PostgreSQL, and time is faked only where the pipeline lets it be injected (the breakers' clock
and the retrier's sleep).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lockgate.decide.chain import Breakers, Retrier
from lockgate.decide.decision import Decision
from lockgate.decide.pipeline import ChainModel, DecisionRequest, Pipeline, ReleaseRuntime, Result
from lockgate.decide.task import TaskSpec, parse_task
from lockgate.providers.base import Provider, ProviderContext
from lockgate.providers.deterministic import DeterministicProvider
from lockgate.providers.openai import OpenAIProvider
from lockgate.providers.rules import RulesProvider
from lockgate.settings import Price, Secret, Settings
from lockgate.store import Store

T = TypeVar("T")

API_KEY = "sk-test-key-123456"
MODEL = "gpt-test"
PRICE = Price(input_per_1k=1.0, output_per_1k=2.0, per_call=0.001)
QUEUES = ("cards", "loans", "other")

_FACTORIES: Mapping[str, Any] = {
    "openai": OpenAIProvider,
    "rules": RulesProvider,
    "deterministic": DeterministicProvider,
}


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingSleep:
    """An async sleep that returns at once and remembers every delay asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def openai_model(**options: Any) -> dict[str, Any]:
    return {"provider": "openai", "model": MODEL, "backoff_s": 0.5, **options}


def rules_model(pattern: str = "(?i)card", queue: str = "cards", **options: Any) -> dict[str, Any]:
    """Rules that answer `queue` (confidence 0.9) for inputs matching `pattern`, nothing else."""
    rule = {"if_matches": pattern, "then": {"queue": queue}, "confidence": 0.9}
    return {"provider": "rules", "rules": [rule], **options}


def task_spec(models: Sequence[Mapping[str, Any]], **policy: Any) -> TaskSpec:
    return parse_task(
        {
            "name": "tickets",
            "instructions": "Route the support ticket to a queue.",
            "input": {"text": {"type": "string"}},
            "output": {"queue": {"type": "enum", "values": list(QUEUES)}},
            "models": [dict(m) for m in models],
            "policy": {"auto_min_confidence": 0.8, **policy},
        },
        "tasks/tickets.yaml",
    )


@dataclass
class Kit:
    """One task's pipeline wired to a store and a model server."""

    store: Store
    spec: TaskSpec
    runtime: ReleaseRuntime
    pipeline: Pipeline
    clock: FakeClock
    sleep: RecordingSleep
    breakers: Breakers
    _keys: int = field(default=0)

    @property
    def providers(self) -> list[Provider]:
        return [m.provider for m in self.runtime.models]

    def run(self, body: Callable[[], Awaitable[T]]) -> T:
        """Run `body` in a fresh event loop, closing the providers' pools in that loop."""

        async def main() -> T:
            try:
                return await body()
            finally:
                for provider in self.providers:
                    await provider.aclose()

        return asyncio.run(main())

    def request(self, text: str) -> DecisionRequest:
        self._keys += 1
        return DecisionRequest(input={"text": text}, idempotency_key=f"key-{self._keys}")

    def decide(self, text: str = "my card was charged twice") -> Decision:
        """Decide one input and return the decision as stored (read back from the store)."""
        result = self.run(lambda: self.pipeline.decide(self.runtime, self.request(text)))
        return self.stored(result)

    def decide_many(self, texts: Sequence[str]) -> list[Decision]:
        requests = [self.request(t) for t in texts]
        results = self.run(lambda: self.pipeline.decide_many(self.runtime, requests))
        return [self.stored(r) for r in results]

    def stored(self, result: Result) -> Decision:
        assert result.error is None, result.error
        assert result.decision is not None
        decision = self.store.decisions.get(result.decision.id)
        assert decision is not None, "the decision was not stored"
        return decision


def kit_settings(database_url: str, tmp_path: Path, server_url: str) -> Settings:
    return Settings(
        project_dir=tmp_path,
        database_url=database_url,
        openai_base_url=server_url,
        openai_api_key=Secret(API_KEY),
        prices={MODEL: PRICE},
    )


def build_kit(
    database_url: str,
    tmp_path: Path,
    models: Sequence[Mapping[str, Any]],
    *,
    server_url: str = "http://127.0.0.1:9/v1",
    spec: TaskSpec | None = None,
    **policy: Any,
) -> Kit:
    """A pipeline over `models` (or over the given task `spec`) on a fresh store."""
    spec = spec or task_spec(models, **policy)
    context = ProviderContext(task=spec, settings=kit_settings(database_url, tmp_path, server_url))
    chain = tuple(
        ChainModel(model, _FACTORIES[model.provider].from_spec(model, context))
        for model in spec.models
    )
    clock, sleep = FakeClock(), RecordingSleep()
    breakers = Breakers(clock=clock)
    store = Store(database_url)
    pipeline = Pipeline(
        store.async_decisions, retrier=Retrier(sleep=sleep, rng=random.Random(0)), breakers=breakers
    )
    runtime = ReleaseRuntime(task=spec, release=1, models=chain)
    return Kit(store, spec, runtime, pipeline, clock, sleep, breakers)
