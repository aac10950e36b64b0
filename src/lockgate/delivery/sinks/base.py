"""What every sink shares: the outbox row it delivers, the result, the errors, the protocol."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    import aiohttp

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


class DeliveryFailed(Exception):
    """A delivery did not succeed. `permanent` failures are dead-lettered at once."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class Undeliverable(Exception):
    """Raise it from a `python` sink's callable to dead-letter the decision at once (no retry).

    Its message is not stored: it may hold data from the payload."""


class Sink(Protocol):
    async def send(self, row: OutboxRow) -> None:
        """Deliver the row's payload, or raise `DeliveryFailed`."""

    async def aclose(self) -> None: ...


class HttpPool:
    """One pooled aiohttp session per worker, opened on first use in the running loop."""

    def __init__(self, limit: int = 64) -> None:
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        import aiohttp  # loaded by the worker only, not by every command that opens a store

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit),
                headers={"User-Agent": "lockgate-delivery"},
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@dataclass
class SinkContext:
    """What sink factories may use: the project folder (file paths are relative to it), the
    environment (webhook secrets) and the worker's HTTP pool."""

    project_dir: Path
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    http: HttpPool = field(default_factory=HttpPool)


SinkFactory = Callable[[Any, SinkContext], Sink]
