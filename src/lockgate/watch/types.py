"""The watch domain's record types, as the store keeps them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

# ---- live quality: spot checks and feedback (issue 13, part 2)

SpotVerdict = Literal["approve", "correct", "reject"]


@dataclass(frozen=True)
class SpotCheck:
    """An automated decision sent to a person after its delivery; `verdict` is None while open."""

    decision_id: str
    task: str
    release: int
    decided_at: datetime
    created_at: datetime
    verdict: SpotVerdict | None = None
    output: Mapping[str, Any] | None = None
    reviewer: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class Feedback:
    """A downstream system's word on a decision: was its outcome correct, and if not, the right
    output when it knows it. `comment` is personal data: shown to readers of the decision only."""

    id: int
    decision_id: str
    task: str
    release: int
    correct: bool
    output: Mapping[str, Any] | None
    comment: str | None
    actor: str
    at: datetime

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "correct": self.correct,
            "output": dict(self.output) if self.output is not None else None,
            "comment": self.comment,
            "by": self.actor,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True)
class Judged:
    """One automated decision with a person's (or a downstream system's) judgment of it: the
    model's output, the output judged right (None when only "wrong" is known), and where the
    judgment came from (`spot_check` or `feedback`)."""

    decision_id: str
    task: str
    release: int
    route: str | None
    model_output: Mapping[str, Any] | None
    agrees: bool
    true_output: Mapping[str, Any] | None
    source: Literal["spot_check", "feedback"]
    at: datetime
    input: Mapping[str, Any]


@dataclass(frozen=True)
class Observed:
    """What drift needs of one stored decision: its input, output, confidence and route."""

    decision_id: str
    release: int
    input: Mapping[str, Any]
    output: Mapping[str, Any] | None
    confidence: float | None
    route: str | None
    created_at: datetime


# ---- history and alerts (issue 13, parts 1 and 4)

Step = Literal["minute", "hour", "day"]
STEP_SECONDS: Mapping[str, int] = {"minute": 60, "hour": 3600, "day": 86400}
GAUGE_METRICS = frozenset({"backlog"})
"""Roll-up metrics that are sampled, not added: a later sample replaces, merging keeps the
largest."""


@dataclass(frozen=True)
class DecisionFacts:
    """What a roll-up reads of one stored decision (never its input)."""

    id: str
    task: str
    release: int
    created_at: datetime
    route: str | None
    status: str
    reason: str
    cost: float
    latency_ms: float
    confidence: float | None
    output: Mapping[str, Any] | None
    input_tokens: int = 0
    output_tokens: int = 0
    attempt_errors: tuple[str, ...] = ()
    """The error class of each failed attempt (`timeout`, `breaker_open`, ...)."""
    cached: bool = False
    """Answered from the decision cache (`cached_from` set): no model call, no cost."""


@dataclass(frozen=True)
class VerdictFacts:
    """What a roll-up reads of one review verdict, or of one spot check's (`spot_check`: its
    id is then the decision's)."""

    id: int | str
    task: str
    release: int
    at: datetime
    verdict: str
    spot_check: bool = False


@dataclass(frozen=True)
class Count:
    """One addition to one roll-up cell: `value` more of `metric`/`key` in the minute that
    starts at `start` (a gauge, such as the review backlog, replaces instead of adding)."""

    task: str
    release: int
    start: datetime
    metric: str
    key: str
    value: float


@dataclass(frozen=True)
class Cell:
    """One stored roll-up cell: a metric's value for a task, release and time bucket."""

    task: str
    release: int
    step: Step
    start: datetime
    metric: str
    key: str
    value: float


@dataclass(frozen=True)
class Backlog:
    """Review items waiting now, per task and release, and when the oldest was decided."""

    task: str
    release: int
    count: int
    oldest_at: datetime | None


@dataclass(frozen=True)
class AlertState:
    """Where one rule stands for one task: firing or not, since when, and its last notice."""

    task: str
    rule: str
    firing: bool
    episode: int
    """How many times the rule has started firing for this task (the current episode)."""
    value: float | None
    started_at: datetime | None
    last_sent_at: datetime | None
    resolved_at: datetime | None = None


@dataclass(frozen=True)
class Silence:
    """No notices for `rule` (on `task`, or every task when None) until `until`."""

    id: int
    rule: str
    task: str | None
    until: datetime
    actor: str
    created_at: datetime
