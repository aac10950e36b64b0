"""A project whose task delivers to sinks, decisions made by the real pipeline, and a worker.

The webhook goes to a `lockgate.testing.receiver.Receiver` on loopback; nothing is faked but
the model (the shipped `deterministic` provider).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lockgate.decide.decision import Decision
from lockgate.decide.pipeline import DecisionRequest
from lockgate.delivery.types import OutboxRow
from lockgate.delivery.worker import DeliveryReport, DeliveryWorker
from lockgate.runtime import Runtime
from lockgate.settings import load_settings

SECRET_ENV = "ROUTING_HOOK_SECRET"
SECRET = "test-hook-secret-7f3a"

TASK = """\
name: routing
input:
  text: {type: string, max_length: 4000, pii: true}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
models:
  - provider: deterministic
    confidence: 0.9
    answers:
      - {if_contains: "stolen", output: {queue: fraud}}
      - {if_contains: "transfer", output: {queue: payments}}
policy:
  auto_min_confidence: 0.8
  review_when:
    - {field: queue, equals: fraud}
  reject_when:
    - {input: text, empty: true}
"""

FAST_RETRIES = {
    "delivery_poll_seconds": 0.05,
    "delivery_backoff_base_seconds": 0.01,
    "delivery_backoff_cap_seconds": 0.05,
}


def write_project(
    root: Path, sinks: Sequence[dict[str, Any]], settings: dict[str, Any] | None = None
) -> Path:
    """A project with the routing task delivering to `sinks`, and a lockgate.yaml."""
    (root / "tasks").mkdir(parents=True, exist_ok=True)
    task = yaml.safe_load(TASK)
    task["deliver"] = list(sinks)
    (root / "tasks" / "routing.yaml").write_text(yaml.safe_dump(task, sort_keys=False))
    (root / "lockgate.yaml").write_text(yaml.safe_dump({**FAST_RETRIES, **(settings or {})}))
    return root


def webhook(url: str, **extra: Any) -> dict[str, Any]:
    return {"sink": "webhook", "url": url, "secret_env": SECRET_ENV, **extra}


@dataclass
class Project:
    runtime: Runtime
    root: Path

    def decide(self, texts: Sequence[str]) -> list[Decision]:
        """Decide each text with the live release (one committed batch)."""
        loaded = self.runtime.release_runtime("routing")
        requests = [
            DecisionRequest(input={"text": t}, idempotency_key=f"k{i}-{t}")
            for i, t in enumerate(texts)
        ]

        async def work() -> list[Decision]:
            results = await self.runtime.pipeline.decide_many(loaded, requests)
            return [r.decision for r in results if r.decision is not None]

        return asyncio.run(work())

    def worker(self, **kwargs: Any) -> DeliveryWorker:
        kwargs.setdefault("environ", {SECRET_ENV: SECRET})
        return DeliveryWorker(
            self.runtime.store.outbox,
            self.runtime.store.releases,
            self.runtime.settings,
            **kwargs,
        )

    def drain(self, **kwargs: Any) -> DeliveryReport:
        """One worker delivers everything due now, then closes."""
        worker = self.worker(**kwargs)

        async def work() -> DeliveryReport:
            try:
                return await worker.drain()
            finally:
                await worker.aclose()

        return asyncio.run(work())

    def drain_until_settled(self, rounds: int = 200, **kwargs: Any) -> DeliveryReport:
        """Drain, again and again while retries are scheduled, until no row is pending."""
        total = DeliveryReport()
        for _ in range(rounds):
            total += self.drain(**kwargs)
            if not self.rows("pending"):
                return total
            asyncio.run(asyncio.sleep(self.runtime.settings.delivery_backoff_cap_seconds))
        raise AssertionError("rows still pending after every round")

    def rows(self, status: str | None = None) -> list[OutboxRow]:
        return self.runtime.store.outbox.listing(status=status, limit=100_000)


@contextmanager
def project(
    root: Path,
    database_url: str,
    sinks: Sequence[dict[str, Any]],
    settings: dict[str, Any] | None = None,
) -> Iterator[Project]:
    """The routing task with `sinks`, release 1 live."""
    folder = write_project(root / "project", sinks, settings)
    config = load_settings(folder, database_url=database_url, environ={})
    runtime = Runtime.open(config)
    try:
        release, _ = runtime.create_release("routing", "test")
        runtime.store.releases.promote("routing", release.number, "test")
        yield Project(runtime, folder)
    finally:
        asyncio.run(runtime.aclose())
        runtime.close()
