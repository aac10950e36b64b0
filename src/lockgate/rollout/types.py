"""The rollout domain's persisted types: a shadow run (the queued job, what the shadow release
made of it, the pair compared in the shadow report) and a canary's health."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lockgate.decide.task import RolloutSpec

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
    live_in_batch: bool = False
    """The live decision came from a batch job (`lockgate run`), where a chunk of records is
    decided at once: its latency is the chunk's, not comparable with one online decision."""


@dataclass(frozen=True)
class CanaryHealth:
    """What a canary release has done so far."""

    task: str
    release: int
    decisions: int
    failed: int
    reviewed: int
    overridden: int
    """Reviewed decisions whose last verdict corrected or rejected the canary's output."""

    @property
    def failure_rate(self) -> float:
        return self.failed / self.decisions if self.decisions else 0.0

    @property
    def override_rate(self) -> float:
        return self.overridden / self.reviewed if self.reviewed else 0.0

    def breaches(self, limits: RolloutSpec) -> list[str]:
        """Why the canary must roll back (empty while it is healthy or has too little data)."""
        reasons: list[str] = []
        if self.decisions < limits.canary_min_decisions:
            return reasons
        if self.failure_rate > limits.canary_max_failure_rate:
            reasons.append(
                f"failure rate {self.failure_rate:.3f} ({self.failed} of {self.decisions}) "
                f"above {limits.canary_max_failure_rate}"
            )
        if (
            self.reviewed >= limits.canary_min_reviews
            and self.override_rate > limits.canary_max_override_rate
        ):
            reasons.append(
                f"review override rate {self.override_rate:.3f} ({self.overridden} of "
                f"{self.reviewed}) above {limits.canary_max_override_rate}"
            )
        return reasons

    def as_dict(self) -> dict[str, Any]:
        return {
            "release": f"{self.task}@{self.release}",
            "decisions": self.decisions,
            "failed": self.failed,
            "failure_rate": round(self.failure_rate, 6),
            "reviewed": self.reviewed,
            "overridden": self.overridden,
            "override_rate": round(self.override_rate, 6),
        }
