"""The records of the costs domain that the store keeps: ledger rows and the limits checked
against them. Amounts are in billionths of a US dollar (`nano`), so that sums stay exact."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

NANO = 1_000_000_000
"""Billionths of a US dollar in one dollar."""

ALL_TASKS = "*"
"""The ledger scope of the overall limits (lockgate.yaml's `budget:`)."""


def to_nano(usd: float) -> int:
    return round(usd * NANO)


@dataclass(frozen=True)
class Ledger:
    """What one scope (a task, or all of them) has spent and holds in one period."""

    scope: str
    period: str
    """`2026-11-29` (a UTC day) or `2026-11` (a UTC month)."""
    spent_nano: int = 0
    spent_calls: int = 0
    reserved_nano: int = 0
    reserved_calls: int = 0
    lapsed_calls: int = 0
    """Holds that lapsed unsettled (a crash), booked as spent at their worst case."""


@dataclass(frozen=True)
class LimitCheck:
    """One ledger row and the most it may reach; None: not limited (only counted)."""

    scope: str
    period: str
    max_nano: int | None = None
    max_calls: int | None = None
    soft_nano: int | None = None
    """Spent and reserved past this raise the soft alert for the USD limit, once."""
    soft_calls: int | None = None


@dataclass(frozen=True)
class SoftCrossing:
    """A soft threshold crossed for the first time in its period."""

    scope: str
    period: str
    unit: str
    """`usd` or `calls`."""


@dataclass(frozen=True)
class Reserved:
    """The outcome of one reservation: the holds granted, in order, and the limit that refused
    the first call it could not hold (None when all were granted)."""

    hold_ids: tuple[str, ...]
    refused_by: LimitCheck | None
    ledgers: tuple[Ledger, ...]
    crossed: tuple[SoftCrossing, ...] = ()


@dataclass(frozen=True)
class Booking:
    """What one held call cost (`called` False: never made; the hold is just let go)."""

    hold_id: str
    nano: int
    called: bool = True


@dataclass(frozen=True)
class Settled:
    ledgers: tuple[Ledger, ...]
    crossed: tuple[SoftCrossing, ...] = ()


@dataclass(frozen=True)
class Reused:
    """An answer kept in the decision cache, with the decision it came from."""

    input_hash: str
    decision_id: str
    output: dict[str, object]
    confidence: float | None
    alternatives: dict[str, object] | None
    reason: str


@dataclass(frozen=True)
class Saving:
    """Decisions answered from the cache in a period, and what their originals cost."""

    hits: int
    saved_nano: int


@dataclass(frozen=True)
class HoldInfo:
    count: int
    oldest_expires_at: datetime | None
