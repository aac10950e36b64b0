"""The review domain's types: verdicts, an item's review state, queue queries, rulings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from lockgate.decide.decision import Decision

VerdictKind = Literal["approve", "correct", "reject"]


PENDING = "pending_review"


#: Statuses a verdict leaves behind; the pipeline never sets approved or corrected.
VERDICT_STATUSES = ("approved", "corrected", "rejected")


@dataclass(frozen=True)
class Verdict:
    """One human verdict, as stored in the `reviews` table."""

    id: int
    decision_id: str
    task: str
    verdict: VerdictKind
    reviewer: str
    output: Mapping[str, Any] | None
    previous_output: Mapping[str, Any] | None
    reason: str | None
    at: datetime


@dataclass(frozen=True)
class ReviewState:
    """A decision with its queue columns and its verdicts so far (oldest first)."""

    decision: Decision
    claimed_by: str | None
    claim_expires_at: datetime | None
    escalated_at: datetime | None
    verdicts: tuple[Verdict, ...]


@dataclass(frozen=True)
class Escalation:
    """One item escalated: its task, decision id and raised priority."""

    task: str
    decision_id: str
    priority: int


@dataclass(frozen=True)
class QueueQuery:
    status: str = PENDING
    task: str | None = None
    tasks: tuple[str, ...] = ()
    """Only these tasks (a key's scope); empty: every task."""
    limit: int = 50
    after: str | None = None
    """The id of the last decision of the previous page."""
    claimed_by: str | None = None
    """Only the items this reviewer holds a claim on ("my claims")."""
    search: str | None = None
    """A decision id (or its end, as the pages show it), or words of the input's redacted copy
    (personal data is never searched)."""
    by_reviewer: bool | None = None
    """For final statuses: True, only those a reviewer's verdict made final; False, only those
    the policy decided (a policy rejection); None, both."""


@dataclass(frozen=True)
class Ruling:
    """What a verdict does, decided by the review service from the locked `ReviewState`."""

    kind: VerdictKind
    output: Mapping[str, Any] | None
    """The output the reviewer accepted or wrote (None for reject)."""
    reason: str | None
    details: Mapping[str, Any]
    """The audit entry's details: what changed (field names) and why."""
    final_status: str | None = None
    """approved, corrected or rejected when this verdict makes the decision final."""
    final_output: Mapping[str, Any] | None = None
    sinks: tuple[str, ...] = ()
