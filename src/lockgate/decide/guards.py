"""The hooks the pipeline offers between the router and the model chain: a spending guard
(budgets) and an answer cache. Both are Protocols here; `lockgate.costs` implements them over
the store, and `runtime.py` passes them to the `Pipeline`. A pipeline built without them (or a
task without `budget:` and `cache:`) pays nothing for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from lockgate.decide.limits import HardLimit
from lockgate.decide.task import ModelSpec, TaskSpec
from lockgate.providers.base import PreparedRequest, ProviderError


@dataclass(frozen=True)
class Hold:
    """The worst-case cost of one paid model call, reserved before the call is made."""

    id: str
    usd: float


@dataclass(frozen=True)
class Refusal:
    """Why a paid call may not be made: a hard limit would be passed."""

    outcome: HardLimit
    reason: str
    """Names the limit, never an input: `budget: per_day calls limit 20 of task routing
    reached`."""
    resets_at: datetime
    """When the period whose limit was reached ends."""


@dataclass(frozen=True)
class Grant:
    """The holds granted, in the order asked for; the calls past them were refused for
    `refusal`."""

    holds: tuple[Hold, ...]
    refusal: Refusal | None = None


@dataclass(frozen=True)
class Spent:
    """What a held call cost: `called` False releases the hold (the call was never made)."""

    hold: Hold
    usd: float
    called: bool = True


class Withheld(ProviderError):
    """A model call that was not made because a budget refused it; it says nothing about the
    endpoint (its breaker is left as it was)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__("budget", refusal.reason, retryable=False)
        self.refusal = refusal


class SpendGuard(Protocol):
    """Budgets that hold under concurrency (`costs.budgets.BudgetGuard`)."""

    def watches(self, task: TaskSpec) -> bool:
        """Does any budget cover this task (its own, or the overall one)? Cheap, no I/O."""
        ...

    def paid(self, model: ModelSpec) -> bool:
        """Does a call of this model cost money (a price that is not zero)?"""
        ...

    def worst_case(self, model: ModelSpec, request: PreparedRequest) -> float:
        """The most one call of `model` for `request` can cost, in US dollars."""
        ...

    async def reserve(self, task: TaskSpec, amounts: Sequence[float]) -> Grant:
        """Hold as many of `amounts` (one call each, in order) as every limit allows, in one
        transaction; the first that does not fit and all after it are refused."""
        ...

    async def settle(self, task: TaskSpec, spent: Sequence[Spent]) -> None:
        """Book what held calls really cost and let their holds go, in one transaction."""
        ...


@dataclass(frozen=True)
class CachedAnswer:
    """An automated answer stored before for the same release and input."""

    decision_id: str
    output: Mapping[str, Any]
    confidence: float | None
    alternatives: Mapping[str, Any] | None
    reason: str


class AnswerCache(Protocol):
    """The decision cache (`costs.cache.DecisionCache`)."""

    async def find(
        self, task: str, release_hash: str, input_hashes: Sequence[str]
    ) -> Mapping[str, CachedAnswer]:
        """Unexpired answers of this release for these input hashes, by input hash."""
        ...

    async def keep(
        self, task: str, release_hash: str, ttl_seconds: float, answers: Mapping[str, str]
    ) -> None:
        """Remember decision ids (by input hash) as this release's answers for `ttl_seconds`."""
        ...

    def hit(self, task: str, count: int) -> None:
        """Count `count` answers served from the cache (metrics)."""
        ...
