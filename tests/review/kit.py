"""A review queue under test: a project with a routing task, a live release, keys per role, and
a clock the test moves (leases and SLAs are checked against it, never against the wall)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from lockgate.decide.decision import Decision
from lockgate.decide.pipeline import DecisionRequest
from lockgate.review.service import ReviewService
from lockgate.runtime import Runtime
from lockgate.security import Principal, Role
from lockgate.settings import load_settings
from lockgate.store.tables import outbox
from tests.cli.kit import database_made_on_purpose, make_project

#: Fraud needs two reviewers, and so does any amount above 10,000; fraud is reviewed first.
REVIEW_TASK = """\
name: routing
input:
  text: {type: string, max_length: 4000, pii: true}
  amount: {type: number, required: false}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
models:
  - provider: deterministic
    confidence: 0.9
    answers:
      - {if_contains: "stolen", output: {queue: fraud}}
      - {if_contains: "unsure", output: {queue: cards}, confidence: 0.4}
      - {if_contains: "payment", output: {queue: payments}}
policy:
  auto_min_confidence: 0.8
  review_when:
    - {field: queue, equals: fraud}
    - {input: amount, above: 5000}
  two_person_when:
    - {field: queue, equals: fraud}
    - {input: amount, above: 10000}
  priority_when:
    - {field: queue, equals: fraud, priority: 10}
    - {input: amount, above: 5000, priority: 5}
  review_sla_minutes: 30
deliver:
  - {sink: file, path: out/routing.jsonl}
"""

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class Clock:
    """The review service's clock: moves only when the test says so."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class ReviewKit:
    runtime: Runtime
    clock: Clock
    principals: dict[str, Principal] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    _keys: Iterator[int] = field(default_factory=itertools.count)

    @property
    def reviews(self) -> ReviewService:
        return self.runtime.reviews

    def key(self, name: str, role: Role = "reviewer", tasks: tuple[str, ...] = ()) -> Principal:
        """The principal of an API key named `name` (made on first use)."""
        if name not in self.principals:
            key, secret = self.runtime.store.keys.create(name, role, tasks, actor="test")
            self.principals[name] = Principal.of(key)
            self.secrets[name] = secret
        return self.principals[name]

    def decide(self, text: str, *, by: Principal | None = None, **inputs: Any) -> Decision:
        """Decide one input with the live release; returns the stored decision."""
        request = DecisionRequest(
            input={"text": text, **inputs},
            idempotency_key=f"key-{next(self._keys)}",
            submitted_by=by.key_id if by is not None else None,
        )

        async def main() -> Decision:
            try:
                loaded = self.runtime.release_runtime("routing")
                result = await self.runtime.pipeline.decide(loaded, request)
            finally:
                await self.runtime.aclose()
            assert result.decision is not None
            return result.decision

        decision = asyncio.run(main())
        stored = self.runtime.store.decisions.get(decision.id)
        assert stored is not None
        return stored

    def pending(self, text: str = "my card was stolen", **kwargs: Any) -> Decision:
        decision = self.decide(text, **kwargs)
        assert decision.status == "pending_review", decision.reason
        return decision

    def outbox_rows(self, decision_id: str | None = None) -> int:
        query = select(func.count()).select_from(outbox)
        if decision_id is not None:
            query = query.where(outbox.c.decision_id == decision_id)
        with self.runtime.store.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


@contextmanager
def review_kit(
    root: Path, database_url: str, task_text: str = REVIEW_TASK, **settings: Any
) -> Iterator[ReviewKit]:
    project = make_project(root / "project", task_text)
    database_made_on_purpose(database_url)
    config = load_settings(project, database_url=database_url, environ={}).with_changes(**settings)
    runtime = Runtime.open(config)
    clock = Clock()
    runtime.reviews.clock = clock
    try:
        release, _ = runtime.create_release("routing", "test")
        runtime.store.releases.promote("routing", release.number, "test")
        yield ReviewKit(runtime, clock)
    finally:
        runtime.close()
