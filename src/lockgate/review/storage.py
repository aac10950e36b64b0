"""What the review queue needs from storage; the store's repositories (`Store.reviews`,
`Store.releases`) satisfy these Protocols. Each method is one transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from lockgate.decide.decision import Decision
from lockgate.review.types import Escalation, QueueQuery, ReviewState, Ruling
from lockgate.rollout.release import Release


class ReviewStore(Protocol):
    def state(self, decision_id: str) -> ReviewState | None:
        """The decision with its claim and verdicts, or None when there is no such decision."""
        ...

    def queue(self, query: QueueQuery) -> list[ReviewState]: ...

    def claim(self, decision_id: str, reviewer: str, now: datetime, until: datetime) -> bool:
        """Lease the pending decision to `reviewer` until `until`; False when it is not pending
        or someone else holds a live lease."""
        ...

    def release_claim(self, decision_id: str, reviewer: str) -> bool:
        """Give up `reviewer`'s claim on a pending decision; False when they hold none."""
        ...

    def pending_counts(self, tasks: Sequence[str]) -> dict[str, int]:
        """Pending decisions per task (only `tasks`, when given)."""
        ...

    def record(
        self,
        decision_id: str,
        reviewer: str,
        now: datetime,
        judge: Callable[[ReviewState], Ruling],
    ) -> ReviewState | None:
        """End `reviewer`'s live lease, let `judge` rule on the decision as it now is, and store
        the ruling, in one transaction; None when the lease was not held."""
        ...

    def escalate_overdue(
        self, now: datetime, cutoff_for: Callable[[str, int], datetime | None], boost: int
    ) -> list[Escalation]: ...

    def verdict_count(self, reviewer: str, since: datetime) -> int: ...

    def recent_decided(self, task: str, exclude: str, limit: int) -> list[Decision]: ...

    def reviewed(self, task: str) -> list[ReviewState]:
        """The task's decisions that have verdicts and are final, oldest first."""
        ...


class ReleaseStore(Protocol):
    def get(self, task: str, number: int) -> Release: ...

    def live(self, task: str) -> Release | None: ...
