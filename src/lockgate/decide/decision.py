"""Decisions and attempts: what the pipeline produces and the store keeps."""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from lockgate.decide.reasons import reason_text

Status = Literal[
    "decided", "pending_review", "approved", "corrected", "rejected", "failed", "delivered"
]
Route = Literal["auto", "review", "reject"]


def new_id() -> str:
    """A time-ordered unique id: 12 hex digits of milliseconds, then 14 random hex digits."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(7)}"


def utcnow() -> datetime:
    return datetime.now(UTC)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_SURROGATE = re.compile("[\ud800-\udfff]")
_SEGMENT = 64  # characters of a field name shown in a problem


def unencodable(value: Any, path: str) -> str | None:
    """Where and why `value` (parsed JSON) cannot be kept as JSON text in UTF-8, or None.

    A lone surrogate (an unpaired `\\ud800`-`\\udfff` escape) is no character at all, and
    `NaN`, `Infinity` or a number past the float range (`1e400`) is no JSON number; databases
    refuse them or change them silently. The answer names the field, never the value.
    """
    if isinstance(value, str):
        if _SURROGATE.search(value):
            return f"{path}: contains a lone surrogate (an unpaired \\ud800-\\udfff escape)"
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return f"{path}: NaN, Infinity or a number too large is not a JSON number"
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and _SURROGATE.search(key):
                return f"{path}: a field name contains a lone surrogate"
            found = unencodable(item, f"{path}.{str(key)[:_SEGMENT]}")
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = unencodable(item, f"{path}.{index}")
            if found is not None:
                return found
    return None


def input_hash(values: Mapping[str, Any]) -> str:
    """The hash of a normalised input: the same input always hashes the same."""
    return hashlib.sha256(canonical_json(values).encode()).hexdigest()


@dataclass(frozen=True)
class Attempt:
    """One call of one provider (or one refusal by its breaker) for one decision."""

    provider: str
    model: str | None
    endpoint: str
    latency_ms: float
    outcome: Literal["valid", "invalid", "error"]
    error_class: str | None = None
    message: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    repair: bool = False


@dataclass(frozen=True)
class Decision:
    id: str
    task: str
    release: int
    idempotency_key: str
    input_hash: str
    input: Mapping[str, Any]
    redacted_input: Mapping[str, Any]
    output: Mapping[str, Any] | None
    confidence: float | None
    route: Route | None
    status: Status
    reason: str
    cost: float
    latency_ms: float
    created_at: datetime
    attempts: Sequence[Attempt] = ()
    alternatives: Mapping[str, Any] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    submitted_by: str | None = None
    priority: int = 0
    """Review-queue priority of a pending decision (policy `priority_when`; escalation)."""
    cached_from: str | None = None
    """The id of the decision whose answer this one reused from the cache (`cache:`)."""

    @property
    def release_ref(self) -> str:
        return f"{self.task}@{self.release}"

    def public(self) -> dict[str, Any]:
        """What callers see: never the raw input."""
        return {
            "id": self.id,
            "task": self.task,
            "release": self.release_ref,
            "idempotency_key": self.idempotency_key,
            "output": dict(self.output) if self.output is not None else None,
            "confidence": self.confidence,
            "route": self.route,
            "status": self.status,
            "reason": self.reason,
            "reason_text": reason_text(self.reason),
            "cost": round(self.cost, 8),
            "latency_ms": round(self.latency_ms, 3),
            "created_at": self.created_at.isoformat(),
            "cached_from": self.cached_from,
        }
