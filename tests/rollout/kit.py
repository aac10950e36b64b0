"""A project with a real Runtime (store, providers, pipeline) for rollout tests, and helpers
to make releases, decide inputs and record eval runs and review verdicts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lockgate.decide.decision import Decision, new_id, utcnow
from lockgate.decide.pipeline import DecisionRequest
from lockgate.monitor.telemetry import MetricsObserver, build_observer
from lockgate.rollout.release import Release
from lockgate.runtime import Runtime
from lockgate.settings import load_settings
from lockgate.store import Store
from lockgate.store.tables import datasets, eval_runs, reviews

QUEUES = ("cards", "payments", "fraud", "other")
WORDS = ("card", "payment", "stolen", "refund", "login", "hello", "address", "fee")


def task_yaml(
    *,
    confidence: float = 0.9,
    answers: Sequence[tuple[str, str]] = (("stolen", "fraud"),),
    extra: str = "",
    models: str | None = None,
) -> str:
    """The `routing` task with a deterministic model; `extra` is appended YAML."""
    lines = "\n".join(
        f'      - {{if_contains: "{word}", output: {{queue: {queue}}}}}' for word, queue in answers
    )
    chain = models or (
        f"  - provider: deterministic\n    confidence: {confidence}\n    answers:\n{lines}\n"
    )
    return (
        "name: routing\n"
        "input:\n  text: {type: string, max_length: 4000}\n"
        f"output:\n  queue: {{type: enum, values: [{', '.join(QUEUES)}]}}\n"
        f"models:\n{chain}"
        "policy:\n  auto_min_confidence: 0.8\n"
        "deliver:\n  - {sink: file, path: out/decisions.jsonl}\n"
        f"{extra}"
    )


def texts(count: int, start: int = 0) -> list[str]:
    return [
        f"ticket {i}: {WORDS[i % len(WORDS)]} issue number {i * 7}"
        for i in range(start, start + count)
    ]


@dataclass
class Project:
    root: Path
    runtime: Runtime

    @property
    def store(self) -> Any:
        return self.runtime.store

    def release(self, text: str, *, promote: bool = False) -> Release:
        """Write the task file and create a release from it (promoted if asked)."""
        (self.root / "tasks" / "routing.yaml").write_text(text)
        release, _ = self.runtime.create_release("routing", "test")
        if promote:
            release = self.store.releases.promote("routing", release.number, "test")
        return release

    def decide(self, items: Sequence[str], *, prefix: str = "k") -> list[Decision]:
        """Decide `items` with the task's serving releases (live, and canary if any)."""
        requests = [
            DecisionRequest(input={"text": text}, idempotency_key=f"{prefix}-{i}")
            for i, text in enumerate(items)
        ]

        async def work() -> list[Decision]:
            try:
                loaded = self.runtime.release_runtime("routing")
                results = []
                for start in range(0, len(requests), 500):
                    results.extend(
                        await self.runtime.pipeline.decide_many(
                            loaded, requests[start : start + 500]
                        )
                    )
                return [r.decision for r in results if r.decision is not None]
            finally:
                await self.runtime.aclose()

        return asyncio.run(work())

    def run(self, work: Any) -> Any:
        async def main() -> Any:
            try:
                return await work()
            finally:
                await self.runtime.aclose()

        return asyncio.run(main())

    def record_eval(
        self, release: int, figures: Mapping[str, Any], *, dataset: str = "gate", digest: str = "d1"
    ) -> None:
        record_eval(self.store, release, figures, dataset=dataset, digest=digest)

    def set_dataset_hash(self, digest: str, dataset: str = "gate") -> None:
        with self.store.engine.begin() as conn:
            conn.execute(
                datasets.update()
                .where(datasets.c.task == "routing", datasets.c.name == dataset)
                .values(content_hash=digest)
            )

    def review(self, decision: Decision, verdict: str, output: Mapping[str, Any] | None) -> None:
        """A human verdict on a decision, as the review queue stores it."""
        with self.store.engine.begin() as conn:
            conn.execute(
                reviews.insert().values(
                    decision_id=decision.id,
                    task=decision.task,
                    verdict=verdict,
                    reviewer="alice",
                    output=dict(output) if output is not None else None,
                    previous_output=dict(decision.output or {}),
                    reason="test",
                    at=utcnow(),
                )
            )


def record_eval(
    store: Store,
    release: int,
    metrics: Mapping[str, Any],
    *,
    dataset: str = "gate",
    digest: str = "d1",
) -> None:
    """Store an eval run of `routing@release` on `dataset` (created with content `digest`)."""
    now = utcnow()
    with store.engine.begin() as conn:
        known = conn.execute(
            datasets.select().where(datasets.c.task == "routing", datasets.c.name == dataset)
        ).first()
        if known is None:
            conn.execute(
                datasets.insert().values(
                    id=new_id(),
                    task="routing",
                    name=dataset,
                    sealed=True,
                    content_hash=digest,
                    rows=10,
                    source=None,
                    created_at=now,
                    created_by="test",
                )
            )
        conn.execute(
            eval_runs.insert().values(
                id=new_id(),
                task="routing",
                release=release,
                dataset=dataset,
                dataset_hash=digest,
                repeat=1,
                metrics=dict(metrics),
                report={},
                created_at=now,
                created_by="test",
            )
        )


def metrics(**figures: Any) -> dict[str, Any]:
    base = {
        "n": 100,
        "accuracy": 0.9,
        "macro_f1": 0.88,
        "coverage": 0.7,
        "auto_accuracy": 0.95,
        "review_share": 0.3,
        "failed": 0,
        "cost": 0.1,
        "cost_per_decision": 0.001,
        "latency_p50_ms": 5.0,
        "latency_p95_ms": 20.0,
        "schema_validity": 1.0,
        "per_label": {},
    }
    return {**base, **figures}


@contextmanager
def project(
    tmp_path: Path, database_url: str, text: str | None = None, *, observed: bool = False
) -> Iterator[Project]:
    """A project with the `routing` task; `observed` gives the runtime the service's metrics."""
    root = tmp_path / "project"
    (root / "tasks").mkdir(parents=True)
    (root / "tasks" / "routing.yaml").write_text(text or task_yaml())
    settings = load_settings(root, database_url=database_url, environ={})
    runtime = Runtime.open(settings, observer=build_observer(settings) if observed else None)
    try:
        yield Project(root, runtime)
    finally:
        runtime.close()
        if isinstance(runtime.observer, MetricsObserver):
            runtime.observer.shutdown()
