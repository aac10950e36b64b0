"""A shadow run: the queued job, what the shadow release made of it, and the pair compared
in the shadow report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DROPPED = "shadow stopped before this input was run"
"""The error of a queued run dropped when its shadow stopped: no answer to compare."""


@dataclass(frozen=True)
class ShadowJob:
    """A queued shadow run: the live decision's id, key and input."""

    id: int
    decision_id: str
    idempotency_key: str
    input: Mapping[str, Any]


@dataclass(frozen=True)
class ShadowOutcome:
    id: int
    status: str
    """done or failed."""
    output: Mapping[str, Any] | None = None
    confidence: float | None = None
    route: str | None = None
    decision_status: str | None = None
    cost: float | None = None
    latency_ms: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class ShadowPair:
    """One live decision beside what the shadow release made of the same input."""

    decision_id: str
    live_release: int
    live_output: Mapping[str, Any] | None
    live_status: str
    live_cost: float
    live_latency_ms: float
    shadow_status: str
    shadow_output: Mapping[str, Any] | None
    shadow_cost: float | None
    shadow_latency_ms: float | None
    truth: Mapping[str, Any] | None
    """The human label where a review gave one (approve: the live output; correct: the fix)."""
