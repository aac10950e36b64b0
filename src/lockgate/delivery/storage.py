"""What delivery needs from storage; the store's repositories (`Store.outbox`,
`Store.releases`) satisfy these Protocols."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from lockgate.delivery.types import DeliveryResult, OutboxRow
from lockgate.rollout.release import Release


class OutboxStore(Protocol):
    def claim(
        self, worker: str, limit: int, lease_seconds: float, now: datetime | None = None
    ) -> list[OutboxRow]:
        """Lease up to `limit` due rows to `worker` for `lease_seconds`."""
        ...

    def finish(self, worker: str, results: Sequence[DeliveryResult]) -> int:
        """Record what became of claimed rows; returns the number of rows updated."""
        ...

    def depth(self) -> dict[str, int]:
        """Outbox rows by status."""
        ...


class ReleaseStore(Protocol):
    def get(self, task: str, number: int) -> Release:
        """The release `task@number` (its task snapshot names the sinks)."""
        ...
