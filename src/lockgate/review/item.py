"""A decision as the review queue sees it: claim, priority, escalation, approvals, verdicts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lockgate.decide.decision import Decision
from lockgate.review.types import Verdict


@dataclass(frozen=True)
class ReviewItem:
    """A decision as the review queue sees it."""

    decision: Decision
    claimed_by: str | None
    """The name of the key holding the claim (also after it expired, until someone else claims)."""
    claim_expires_at: datetime | None
    priority: int
    escalated: bool
    escalated_at: datetime | None
    approvals: tuple[str, ...]
    """Reviewers who approved (or corrected) it so far while it stayed pending."""
    approvals_needed: int
    verdicts: tuple[Verdict, ...]
    proposed_output: Mapping[str, Any] | None = None
    """A first reviewer's correction that waits for a second reviewer (two-person rule)."""

    def claim_live(self, now: datetime) -> bool:
        return self.claim_expires_at is not None and self.claim_expires_at >= now

    def public(self) -> dict[str, Any]:
        """What the API and CLI show: the decision (never its raw input) and the queue state."""
        return {
            **self.decision.public(),
            "priority": self.priority,
            "escalated": self.escalated,
            "escalated_at": self.escalated_at.isoformat() if self.escalated_at else None,
            "claimed_by": self.claimed_by,
            "claim_expires_at": (
                self.claim_expires_at.isoformat() if self.claim_expires_at else None
            ),
            "approvals": list(self.approvals),
            "approvals_needed": self.approvals_needed,
            "proposed_output": dict(self.proposed_output) if self.proposed_output else None,
            "suggested_route": self.decision.metadata.get("suggested_route"),
            "verdicts": [
                {
                    "verdict": v.verdict,
                    "reviewer": v.reviewer,
                    "output": dict(v.output) if v.output is not None else None,
                    "reason": v.reason,
                    "at": v.at.isoformat(),
                }
                for v in self.verdicts
            ],
        }
