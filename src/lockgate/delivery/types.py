"""The delivery domain's persisted types: an outbox row and what became of its delivery."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

OutboxStatus = Literal["pending", "delivered", "dead"]


@dataclass(frozen=True)
class OutboxRow:
    """One delivery of one decision to one sink (`sink` is "INDEX:KIND" of the release's
    `deliver:` list)."""

    id: int
    decision_id: str
    task: str
    release: int
    sink: str
    payload: Mapping[str, Any]
    status: OutboxStatus
    tries: int
    created_at: datetime
    next_try_at: datetime | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    claimed_by: str | None = None
    claimed_until: datetime | None = None

    @property
    def index(self) -> int:
        return int(self.sink.split(":", 1)[0])

    @property
    def kind(self) -> str:
        return self.sink.split(":", 1)[-1]

    def summary(self) -> dict[str, Any]:
        """The row for operators (no payload)."""
        return {
            "id": self.id,
            "decision_id": self.decision_id,
            "task": self.task,
            "release": f"{self.task}@{self.release}",
            "sink": self.sink,
            "status": self.status,
            "tries": self.tries,
            "next_try_at": self.next_try_at.isoformat() if self.next_try_at else None,
            "last_error": self.last_error,
            "created_at": self.created_at.isoformat(),
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
        }


@dataclass(frozen=True)
class DeliveryResult:
    """What became of one claimed row: delivered, pending again (a retry at `next_try_at`) or
    dead."""

    id: int
    status: OutboxStatus
    tries: int
    next_try_at: datetime | None = None
    error: str | None = None
