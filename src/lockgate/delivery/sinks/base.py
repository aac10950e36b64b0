"""What every sink shares: the outbox row it delivers, the result, the errors, the protocol."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lockgate.delivery.types import OutboxRow

if TYPE_CHECKING:
    import aiohttp


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
