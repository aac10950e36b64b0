"""The decision cache: an automated answer reused for the same release and the same
normalised input, until its `ttl` (the task's `cache:`).

The key is the release's content hash and the input's hash, so a new release never serves an
answer of another one. A reused answer becomes a decision of its own (`cached_from` names the
original), made without a model call and at no cost; idempotency and the audit trail are those
of any decision. Only automated, successful decisions are kept (never a failed or reviewed one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from lockgate.costs.metrics import CostMetrics
from lockgate.costs.types import Reused
from lockgate.decide.decision import utcnow
from lockgate.decide.guards import CachedAnswer


class CacheStore(Protocol):
    """What the cache needs from storage (`Store.async_costs`)."""

    async def cached(
        self, task: str, release_hash: str, input_hashes: Sequence[str], now: datetime
    ) -> list[Reused]: ...

    async def keep(
        self, task: str, release_hash: str, answers: Mapping[str, str], expires_at: datetime
    ) -> None: ...


class DecisionCache:
    """The pipeline's `AnswerCache` over a `CacheStore`."""

    def __init__(
        self,
        store: CacheStore,
        *,
        metrics: CostMetrics | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.clock = clock

    async def find(
        self, task: str, release_hash: str, input_hashes: Sequence[str]
    ) -> Mapping[str, CachedAnswer]:
        if not release_hash:  # a release without a hash (built in a test): nothing to key on
            return {}
        found = await self.store.cached(task, release_hash, input_hashes, self.clock())
        return {
            r.input_hash: CachedAnswer(
                decision_id=r.decision_id,
                output=r.output,
                confidence=r.confidence,
                alternatives=r.alternatives,
                reason=r.reason,
            )
            for r in found
        }

    async def keep(
        self, task: str, release_hash: str, ttl_seconds: float, answers: Mapping[str, str]
    ) -> None:
        if not release_hash:
            return
        expires_at = self.clock() + timedelta(seconds=ttl_seconds)
        await self.store.keep(task, release_hash, answers, expires_at)

    def hit(self, task: str, count: int) -> None:
        if self.metrics is not None:
            self.metrics.record_hits(task, count)
