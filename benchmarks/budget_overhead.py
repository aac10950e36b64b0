"""What budgets and the cache cost the decision flow, in one process on SQLite.

Every configuration decides the same number of inputs, in groups of 64 (as `lockgate serve`
groups concurrent requests), through a real `Pipeline` over a real store and the fault server
(an OpenAI-compatible server on loopback, answering at once):

- `plain pipeline`: a `Pipeline` built without a spend guard or a cache;
- `guard and cache, task without`: the pipeline `Runtime` builds (guard and cache present),
  for a task without `budget:` or `cache:`: this must cost nothing measurable;
- `budget on`: the task has a budget (never reached): one reservation and one settlement
  transaction per group;
- `cache hits`: the task has `cache:` and every input was answered before: no model call.

Run: python benchmarks/budget_overhead.py [--decisions 1280] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_common import machine

from lockgate.costs.budgets import BudgetGuard
from lockgate.costs.cache import DecisionCache
from lockgate.decide.pipeline import ChainModel, DecisionRequest, Pipeline, ReleaseRuntime
from lockgate.decide.task import parse_task
from lockgate.providers.base import ProviderContext
from lockgate.providers.openai import OpenAIProvider
from lockgate.settings import Price, Secret, Settings
from lockgate.store import Store
from lockgate.testing.fault_server import Fault, FaultServer

GROUP = 64


def task(**extra: Any) -> Any:
    return parse_task(
        {
            "name": "tickets",
            "input": {"text": {"type": "string"}},
            "output": {"queue": {"type": "enum", "values": ["cards", "other"]}},
            "models": [{"provider": "openai", "model": "m", "logprobs": True, "max_tokens": 20}],
            **extra,
        },
        "tasks/tickets.yaml",
    )


async def run(pipeline: Pipeline, runtime: ReleaseRuntime, n: int, tag: str, same: bool) -> float:
    started = time.perf_counter()
    for start in range(0, n, GROUP):
        requests = [
            DecisionRequest(
                input={"text": "my card" if same else f"ticket {tag} {i}"},
                idempotency_key=f"{tag}-{i}",
            )
            for i in range(start, min(n, start + GROUP))
        ]
        await pipeline.decide_many(runtime, requests, invalid_input="error")
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=1280)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    with FaultServer() as upstream, tempfile.TemporaryDirectory() as folder:
        upstream.set_default(Fault.logprobs(-0.01))
        settings = Settings(
            project_dir=Path(folder),
            database_url=f"sqlite:///{folder}/bench.db",
            openai_base_url=upstream.url,
            openai_api_key=Secret("sk-bench"),
            prices={"m": Price(per_call=0.0001)},
        )
        store = Store(settings.database_url)
        guard = BudgetGuard(store.async_costs, price=settings.price)
        cache = DecisionCache(store.async_costs)
        specs = {
            "plain pipeline": task(),
            "guard and cache, task without": task(),
            "budget on": task(budget={"per_day": {"calls": 10_000_000}}),
            "cache hits": task(cache={"ttl": "24h"}),
        }
        plain = Pipeline(store.async_decisions)
        guarded = Pipeline(store.async_decisions, spend=guard, cache=cache)
        results: dict[str, list[float]] = {name: [] for name in specs}

        async def all_rounds() -> None:
            names = list(specs)
            for round_ in range(args.repeats):
                # A new order each round: the database grows as it goes.
                order = names[round_ % len(names) :] + names[: round_ % len(names)]
                for name in order:
                    spec = specs[name]
                    context = ProviderContext(task=spec, settings=settings)
                    model = spec.models[0]
                    runtime = ReleaseRuntime(
                        task=spec,
                        release=1,
                        models=(ChainModel(model, OpenAIProvider.from_spec(model, context)),),
                        content_hash="bench",
                    )
                    pipeline = plain if name == "plain pipeline" else guarded
                    same = name == "cache hits"
                    tag = f"{name}-{round_}"
                    if same:  # answered once before the measured run
                        await run(pipeline, runtime, 1, f"warm-{tag}", same=True)
                    rate = await run(pipeline, runtime, args.decisions, tag, same)
                    results[name].append(rate)
                    await runtime.models[0].provider.aclose()

        asyncio.run(all_rounds())
        store.close()
    show: Callable[[float], str] = lambda r: f"{r:,.0f}"  # noqa: E731
    print(f"| configuration | decisions/s ({args.repeats} runs) | median |")
    print("|---|---|---|")
    for name, rates in results.items():
        runs = ", ".join(show(r) for r in rates)
        print(f"| {name} | {runs} | **{show(statistics.median(rates))}** |")
    print(f"fault server received {upstream.request_count} calls")


if __name__ == "__main__":
    main()
