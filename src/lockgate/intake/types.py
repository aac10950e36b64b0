"""The intake's records, as the store keeps them: a source's state, quarantined records,
duplicates, schema events, and what one commit writes besides the decisions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

QuarantineStatus = Literal["held", "replayed", "discarded"]
SourceStatus = Literal["active", "held", "stopped", "failing", "paused"]
"""`paused`: a budget limit that refuses is reached; reading resumes once it is not."""

COUNTERS = ("records", "decided", "duplicates", "quarantined", "discarded")
"""A source's counters; records = decided + duplicates + quarantined + discarded."""


@dataclass(frozen=True)
class Quarantined:
    """A record that could not be mapped (or is held after schema drift), with the reason."""

    task: str
    source: str
    position: str
    """Where the record was: `FILE row N`, `uid N`, `id=42`, a webhook delivery id."""
    reason: str
    raw: Mapping[str, Any]
    """The record as read (field names to values), or {"text": ...} for an unreadable one."""
    id: int | None = None
    status: QuarantineStatus = "held"
    created_at: datetime | None = None
    resolved_at: datetime | None = None
    decision_key: str | None = None
    """After a replay: the idempotency key of the decision (or of the first, for a duplicate)."""
    context: Mapping[str, Any] = field(default_factory=dict)
    """Key-template values that are not record fields (file, row, uid, ...)."""

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task": self.task,
            "source": self.source,
            "position": self.position,
            "reason": self.reason,
            "status": self.status,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "decision_key": self.decision_key,
        }


@dataclass(frozen=True)
class Duplicate:
    """A record not decided because an earlier one (`first_key`) was the same."""

    task: str
    source: str
    position: str
    first_key: str
    by: Literal["key", "content"]


@dataclass(frozen=True)
class SchemaEvent:
    task: str
    source: str
    kind: Literal["new_field", "missing_field", "type_changed", "missing_jump"]
    field: str
    detail: str
    at: datetime | None = None

    def public(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "field": self.field,
            "detail": self.detail,
            "at": self.at.isoformat() if self.at else None,
        }


@dataclass(frozen=True)
class SourceState:
    """What the store keeps of one source: its cursor, counters, learnt schema and status."""

    task: str
    source: str
    cursor: Mapping[str, Any] = field(default_factory=dict)
    counts: Mapping[str, Any] = field(default_factory=dict)
    schema: Mapping[str, Any] = field(default_factory=dict)
    status: SourceStatus = "active"
    status_reason: str = ""
    failures: int = 0
    """Consecutive failed reads."""
    last_error: str = ""
    retry_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class Progress:
    """Everything one intake commit writes beside the decisions, in the same transaction."""

    task: str
    source: str
    cursor: Mapping[str, Any] | None = None
    """The new cursor; None leaves it as it is."""
    counts: dict[str, int] = field(default_factory=dict)
    """Increments of the source's counters (negative for a replayed quarantine)."""
    unknown_fields: dict[str, int] = field(default_factory=dict)
    quarantined: list[Quarantined] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)
    """Content hashes decided in this commit, to the idempotency key they were decided by."""
    seen_at: datetime | None = None
    """When, by the intake's clock (default: now); a content window is measured from it."""
    schema: Mapping[str, Any] | None = None
    events: list[SchemaEvent] = field(default_factory=list)
    status: tuple[SourceStatus, str] | None = None
    resolved: dict[int, tuple[QuarantineStatus, str | None]] = field(default_factory=dict)
    """Quarantine ids this commit resolves (replay, discard), with their decision key."""

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n
