"""Failed sign-ins and API-key checks, counted per client address and per key prefix.

After `limit` failures within `window_seconds` from one address, or with keys starting the
same way, further failures from it are answered 429 with `Retry-After` until the window ends.
Only failures are counted and checked: a valid key is always accepted, even from an address
that is being refused (keys carry 256 random bits, so the limit is about load and noise, not
about guessing). The counts live in this process's memory: each `lockgate serve` worker and
each replica counts on its own, and a restart forgets them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

PREFIX_CHARS = 12
"""How much of a presented key names its bucket: `lg_` and nine characters."""


@dataclass
class _Window:
    started: float
    failures: int


class FailedAttempts:
    """Counts failures in fixed windows; `clock` is injectable (monotonic seconds)."""

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = 10_000,
    ) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self.clock = clock
        self.max_tracked = max_tracked
        self._windows: dict[str, _Window] = {}

    def failed(self, address: str | None, secret: str) -> int | None:
        """Record one failure; the seconds to wait when it is past the limit, else None."""
        now = self.clock()
        waits = [self._count(bucket, now) for bucket in _buckets(address, secret)]
        refused = [wait for wait in waits if wait is not None]
        return max(refused) if refused else None

    def _count(self, bucket: str, now: float) -> int | None:
        window = self._windows.get(bucket)
        if window is None or now - window.started >= self.window_seconds:
            self._forget_old(now)
            window = self._windows[bucket] = _Window(now, 0)
        window.failures += 1
        if window.failures <= self.limit:
            return None
        return max(1, math.ceil(window.started + self.window_seconds - now))

    def _forget_old(self, now: float) -> None:
        """Keep memory bounded: drop ended windows, then the oldest ones."""
        if len(self._windows) < self.max_tracked:
            return
        for bucket, window in list(self._windows.items()):
            if now - window.started >= self.window_seconds:
                del self._windows[bucket]
        while len(self._windows) >= self.max_tracked:
            del self._windows[next(iter(self._windows))]


def _buckets(address: str | None, secret: str) -> tuple[str, ...]:
    prefix = "prefix:" + secret[:PREFIX_CHARS]
    return (prefix,) if address is None else ("address:" + address, prefix)
