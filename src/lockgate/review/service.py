"""The review queue: claims with an expiring lease, verdicts, separation of duties, escalation.

Pure logic over storage (a `ReviewStore` runs the transactions); no HTTP here. Every method
takes the acting `Principal`. Who may review what is decided in one place, `check_may_review`.

How a pending decision becomes final:

- one verdict (approve, correct or reject) by a reviewer holding a live claim makes it final,
  unless the release's policy has a `two_person_when` rule that holds for the model's output,
  the input, or a correction; then it needs approvals by two different reviewers. The first
  approval (or correction, which counts as its author's approval of the corrected output) is
  recorded and the claim released; the decision stays `pending_review`. The second reviewer's
  approve, correct or reject makes it final. A reject is final at once: nothing is delivered.
- approved (the model's output stands) and corrected (a reviewer's output replaces it) go to
  the outbox in the transaction that makes them final; rejected never does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from lockgate.decide.decision import Decision, utcnow
from lockgate.decide.policy import needs_two_persons
from lockgate.decide.task import TaskSpec
from lockgate.errors import Conflict, Forbidden, InputError, NotFound
from lockgate.review.item import ReviewItem
from lockgate.review.storage import ReleaseStore, ReviewStore
from lockgate.review.types import (
    PENDING,
    Escalation,
    QueueQuery,
    ReviewState,
    Ruling,
    Verdict,
    VerdictKind,
)
from lockgate.review.verdicts import (
    clean_reason,
    required_reason,
    rule,
    validated_correction,
)
from lockgate.security import Principal

if TYPE_CHECKING:
    from lockgate.monitor.metrics import Metrics
    from lockgate.review.report import SuggestReport

__all__ = [
    "ESCALATION_BOOST",
    "ReviewItem",
    "ReviewService",
    "Verdict",
    "check_may_review",
]

#: Added to an escalated item's priority, so it comes before every item that is not escalated
#: (keep `priority_when` priorities below it).
ESCALATION_BOOST = 100
QUEUE_STATUSES = ("pending_review", "approved", "corrected", "rejected")
MAX_PAGE = 500
_WORD = re.compile(r"\w+")
LOGGER_NAME = "lockgate.reviews"


def check_may_review(principal: Principal, decision: Decision, approvals: tuple[str, ...]) -> None:
    """Separation of duties, the one place it is decided. Raises `Forbidden` unless
    `principal` may claim or give a verdict on `decision`:

    - the key's role has the `review` permission and its scope includes the task (the model
      and the pipeline have no key: they cannot give a verdict, so only people approve);
    - the key did not submit the decision (no self-review);
    - the key has not already approved it while it is pending (two approvals come from two
      reviewers).
    """
    principal.require("review", decision.task)
    if decision.submitted_by is not None and decision.submitted_by == principal.key_id:
        raise Forbidden(
            "this key submitted the decision, so it may not review it",
            hint="another reviewer must review it (separation of duties)",
        )
    if principal.name in approvals and decision.status == PENDING:
        # A final item is refused as not pending (409), by whoever acts on it.
        raise Forbidden(
            "this key already approved the decision; a second approval must come from another "
            "reviewer",
            hint="leave it to a different reviewer (two-person rule)",
        )


def waiting_on_others(principal: Principal, item: ReviewItem) -> str | None:
    """Why `principal` can do nothing more with a pending item, in words for a queue to show
    (the same rules as `check_may_review`); None when it may claim and give a verdict."""
    decision = item.decision
    if decision.status != PENDING:
        return None
    if decision.submitted_by is not None and decision.submitted_by == principal.key_id:
        return "you submitted it: another reviewer reviews it"
    if principal.name in item.approvals:
        return (
            f"waiting for a second reviewer, {len(item.approvals)} of {item.approvals_needed} "
            "approvals"
        )
    return None


@dataclass
class ReviewService:
    reviews: ReviewStore
    releases: ReleaseStore
    lease_seconds: float = 900.0
    metrics: Metrics | None = None
    """Where escalations are counted (`lockgate_reviews_escalated_total`), if anywhere."""
    clock: Callable[[], datetime] = utcnow
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger(LOGGER_NAME))
    _specs: dict[tuple[str, int], TaskSpec] = field(default_factory=dict, repr=False)

    # ---- reading

    def queue(
        self,
        principal: Principal,
        task: str | None = None,
        status: str = PENDING,
        limit: int = 50,
        after: str | None = None,
        *,
        mine: bool = False,
        search: str | None = None,
        by_reviewer: bool | None = None,
    ) -> list[ReviewItem]:
        """Items in `status`, highest priority first, then oldest first; only the tasks the key
        may see. `after` is the id of the last item of the previous page; `mine` keeps the
        items this key holds a claim on, `search` those whose id (or its end) or redacted input
        holds the text, `by_reviewer` final items a reviewer (True) or the policy (False) made
        final."""
        principal.require("review", task)
        if status not in QUEUE_STATUSES:
            raise InputError(
                f"unknown review status {status!r}", hint=f"use one of {', '.join(QUEUE_STATUSES)}"
            )
        if not 1 <= limit <= MAX_PAGE:
            raise InputError(f"limit must be between 1 and {MAX_PAGE}")
        query = QueueQuery(
            status,
            task,
            principal.tasks,
            limit,
            after,
            claimed_by=principal.name if mine else None,
            search=(search or "").strip()[:200] or None,
            by_reviewer=by_reviewer,
        )
        return [self._item(s) for s in self.reviews.queue(query)]

    def pending_counts(self, principal: Principal) -> dict[str, int]:
        """Pending items per task, of the tasks the key may see."""
        principal.require("review")
        return self.reviews.pending_counts(principal.tasks)

    def release(self, principal: Principal, decision_id: str) -> ReviewItem:
        """Give up one's claim on an item, so that another reviewer may take it at once."""
        self._state(principal, decision_id)
        if not self.reviews.release_claim(decision_id, principal.name):
            raise Conflict(
                f"you hold no claim on decision {decision_id}",
                hint="only the reviewer holding a claim can release it",
            )
        return self._item(self._state(principal, decision_id))

    def item(self, principal: Principal, decision_id: str) -> ReviewItem:
        """One item with its attempts, verdicts and claim."""
        return self._item(self._state(principal, decision_id))

    def similar(self, principal: Principal, decision_id: str, limit: int = 5) -> list[Decision]:
        """Final decisions of the same task whose input shares the most words with this one
        (Jaccard similarity over the words of the input's text fields), most alike first."""
        current = self._state(principal, decision_id).decision
        words = _words(current.input)
        if not words or limit < 1:
            return []
        candidates = self.reviews.recent_decided(current.task, current.id, 500)
        scored = [(_jaccard(words, _words(d.input)), d) for d in candidates]
        scored = [(score, d) for score, d in scored if score > 0]
        scored.sort(key=lambda pair: -pair[0])
        return [d for _, d in scored[:limit]]

    def done_today(self, principal: Principal, *, now: datetime | None = None) -> int:
        """Verdicts given by this key since 00:00 UTC."""
        now = now or self.clock()
        midnight = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
        return self.reviews.verdict_count(principal.name, midnight)

    def suggest_report(
        self, principal: Principal, task: str, target: float | None = None
    ) -> SuggestReport:
        """How suggestions compare with human verdicts (see `review_report`); a label is ready
        when its agreement's lower bound reaches `target` (default 0.95)."""
        from lockgate.review.report import DEFAULT_TARGET, build_report

        if target is not None and not 0 < target <= 1:
            raise InputError("target must be a share between 0 and 1, e.g. 0.95")

        principal.require("read_decisions", task)
        if principal.own_decisions_only:
            raise Forbidden(
                "the submitter role may not read review figures",
                hint="use a reviewer, viewer, operator or admin key",
            )
        live = self.releases.live(task)
        reviewed = self.reviews.reviewed(task)
        return build_report(task, reviewed, live, target=target or DEFAULT_TARGET)

    # ---- acting

    def claim(
        self, principal: Principal, decision_id: str, *, now: datetime | None = None
    ) -> ReviewItem:
        """Lease the item to this key for `lease_seconds` (again: the lease is renewed)."""
        now = now or self.clock()
        current = self._item(self._state(principal, decision_id))
        check_may_review(principal, current.decision, current.approvals)
        until = now + timedelta(seconds=self.lease_seconds)
        if not self.reviews.claim(decision_id, principal.name, now, until):
            self._explain_refusal(principal, decision_id, now, acting=False)
        return self.item(principal, decision_id)

    def approve(
        self,
        principal: Principal,
        decision_id: str,
        reason: str | None = None,
        *,
        now: datetime | None = None,
    ) -> ReviewItem:
        """Accept the model's output (or a first reviewer's correction awaiting a second)."""
        return self._act(principal, decision_id, "approve", None, clean_reason(reason), now)

    def correct(
        self,
        principal: Principal,
        decision_id: str,
        output: Mapping[str, Any],
        reason: str,
        *,
        now: datetime | None = None,
    ) -> ReviewItem:
        """Replace the output by `output`, checked against the task's output schema."""
        return self._act(principal, decision_id, "correct", output, required_reason(reason), now)

    def reject(
        self, principal: Principal, decision_id: str, reason: str, *, now: datetime | None = None
    ) -> ReviewItem:
        """Refuse the decision: it becomes `rejected` and is never delivered."""
        return self._act(principal, decision_id, "reject", None, required_reason(reason), now)

    def escalate_overdue(self, now: datetime | None = None) -> list[Escalation]:
        """Escalate every item pending longer than its task's `review_sla_minutes`: raise its
        priority by `ESCALATION_BOOST`, stamp `escalated_at`, count it and log
        `review.escalated` (ids only). Each item is escalated once. Returns what it escalated."""
        now = now or self.clock()

        def cutoff(task: str, release: int) -> datetime | None:
            sla = self._spec(task, release).policy.review_sla_minutes
            return None if sla is None else now - timedelta(minutes=sla)

        escalated = self.reviews.escalate_overdue(now, cutoff, ESCALATION_BOOST)
        for item in escalated:
            if self.metrics is not None:
                self.metrics.record_review_escalated(item.task)
            self.logger.warning(
                "review.escalated",
                extra={
                    "event": "review.escalated",
                    "task": item.task,
                    "decision_id": item.decision_id,
                },
            )
        return escalated

    # ---- internals

    def _act(
        self,
        principal: Principal,
        decision_id: str,
        kind: VerdictKind,
        output: Mapping[str, Any] | None,
        reason: str | None,
        now: datetime | None,
    ) -> ReviewItem:
        now = now or self.clock()
        before = self._item(self._state(principal, decision_id))
        check_may_review(principal, before.decision, before.approvals)
        # Whether the item can take a verdict at all comes before whether the output is valid.
        refusal = _refusal(before, principal, now, acting=True)
        if refusal is not None:
            raise refusal
        spec = self._spec(before.decision.task, before.decision.release)
        corrected = validated_correction(spec, output) if kind == "correct" else None

        def judge(state: ReviewState) -> Ruling:
            # The decision as it is now, under the lock this transaction holds.
            item = self._item(state)
            check_may_review(principal, item.decision, item.approvals)
            return rule(spec, item, kind, corrected, reason)

        after = self.reviews.record(decision_id, principal.name, now, judge)
        if after is None:
            self._explain_refusal(principal, decision_id, now, acting=True)
        assert after is not None
        return self._item(after)

    def _explain_refusal(
        self, principal: Principal, decision_id: str, now: datetime, *, acting: bool
    ) -> None:
        """Raise the `Conflict` that says why a claim or verdict did not take."""
        item = self._item(self._state(principal, decision_id))
        raise _refusal(item, principal, now, acting=acting) or Conflict(
            f"decision {decision_id} changed while it was being claimed", hint="try again"
        )

    def _state(self, principal: Principal, decision_id: str) -> ReviewState:
        principal.require("review")
        state = self.reviews.state(decision_id)
        if state is None or not principal.may_see_task(state.decision.task):
            raise NotFound(f"no decision with id {decision_id!r}")
        return state

    def _spec(self, task: str, release: int) -> TaskSpec:
        key = (task, release)
        if key not in self._specs:
            self._specs[key] = self.releases.get(task, release).task_spec()
        return self._specs[key]

    def _item(self, state: ReviewState) -> ReviewItem:
        decision = state.decision
        pending = decision.status == PENDING
        approvals = tuple(v.reviewer for v in state.verdicts if v.verdict in ("approve", "correct"))
        corrections = [v.output for v in state.verdicts if pending and v.verdict == "correct"]
        proposed = corrections[-1] if corrections else None
        policy = self._spec(decision.task, decision.release).policy
        two = needs_two_persons(policy, decision.output or {}, decision.input) or (
            proposed is not None and needs_two_persons(policy, proposed, decision.input)
        )
        return ReviewItem(
            decision=decision,
            claimed_by=state.claimed_by,
            claim_expires_at=state.claim_expires_at,
            priority=decision.priority,
            escalated=state.escalated_at is not None,
            escalated_at=state.escalated_at,
            approvals=approvals,
            approvals_needed=2 if two else 1,
            verdicts=state.verdicts,
            proposed_output=proposed,
        )


def _refusal(
    item: ReviewItem, principal: Principal, now: datetime, *, acting: bool
) -> Conflict | None:
    """Why `principal` cannot claim (or, `acting`, give a verdict on) the item as it is: it is
    no longer pending, someone else holds it, or (acting) this key holds no live claim."""
    decision_id = item.decision.id
    if item.decision.status != PENDING:
        return Conflict(
            f"decision {decision_id} is {item.decision.status}, not pending review",
            hint="only pending decisions can be claimed or reviewed",
        )
    if item.claimed_by not in (None, principal.name) and item.claim_live(now):
        return Conflict(
            f"decision {decision_id} is claimed by {item.claimed_by} until "
            f"{item.claim_expires_at.isoformat() if item.claim_expires_at else '?'}",
            hint="pick another item; an abandoned claim returns to the queue when its "
            "lease expires",
        )
    if acting and item.claimed_by == principal.name and not item.claim_live(now):
        return Conflict(
            f"your claim on decision {decision_id} has expired",
            hint="claim it again, then give the verdict",
        )
    if acting and item.claimed_by != principal.name:
        return Conflict(
            f"decision {decision_id} is not claimed by this key",
            hint="claim it first (POST /v1/reviews/ID/claim or `lockgate review claim ID`)",
        )
    return None


def _words(values: Mapping[str, Any]) -> set[str]:
    return {
        w.lower()
        for value in values.values()
        if isinstance(value, str)
        for w in _WORD.findall(value)
    }


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0
