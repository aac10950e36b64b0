"""Review endpoints: the queue, one item, claim, approve, correct, reject, the suggest report;
and the periodic escalation that runs inside `lockgate serve`.

Endpoints are thin: they authorise, call `runtime.reviews` in a worker thread and shape the
answer. Refusals come from the review service as 403 (role, self-review, same reviewer twice),
409 (not pending, claimed by someone else, lease expired) or 422 (invalid correction).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from lockgate.review.service import ReviewItem
from lockgate.runtime import Runtime
from lockgate.security import Principal
from lockgate.server.auth import Authorize, get_runtime
from lockgate.server.params import DecisionId, Stated, TaskName, Text

router = APIRouter(tags=["reviews"])
logger = logging.getLogger("lockgate.reviews")

Reviewer = Annotated[Principal, Depends(Authorize("review"))]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ReviewStatus = Literal["pending_review", "approved", "corrected", "rejected"]


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Text | None = Field(
        default=None, max_length=2000, description="Why (optional; audited, erasable)."
    )


class CorrectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    output: dict[str, Any] = Field(description="Every output field, with the right value.")
    reason: Stated = Field(max_length=2000, description="Why the model's output was wrong.")


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Stated = Field(max_length=2000, description="Why the decision is refused.")


def _summary(item: ReviewItem) -> dict[str, Any]:
    return item.public()


def _detail(item: ReviewItem) -> dict[str, Any]:
    """One item in full: the input as redacted for display (never the raw input), the
    alternatives the model considered and every attempt."""
    decision = item.decision
    return {
        **item.public(),
        "input": dict(decision.redacted_input),
        "alternatives": dict(decision.alternatives) if decision.alternatives else None,
        "attempts": [asdict(a) for a in decision.attempts],
    }


@router.get("/reviews")
async def list_reviews(
    principal: Reviewer,
    runtime: RuntimeDep,
    task: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_-]{0,62}$")] = None,
    status: ReviewStatus = "pending_review",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9a-f]{1,32}$")] = None,
) -> dict[str, Any]:
    """The review queue: highest priority first, then oldest first; only the tasks the key
    may see. Follow `next_cursor` for the next page."""
    items = await anyio.to_thread.run_sync(
        functools.partial(
            runtime.reviews.queue, principal, task=task, status=status, limit=limit, after=cursor
        )
    )
    return {
        "items": [_summary(i) for i in items],
        "next_cursor": items[-1].decision.id if len(items) == limit else None,
    }


@router.get("/reviews/{decision_id}")
async def get_review(
    decision_id: DecisionId, principal: Reviewer, runtime: RuntimeDep
) -> dict[str, Any]:
    """One item: the decision, its redacted input, attempts, verdicts, claim and approvals."""
    item = await anyio.to_thread.run_sync(runtime.reviews.item, principal, decision_id)
    return _detail(item)


@router.post("/reviews/{decision_id}/claim")
async def claim_review(
    decision_id: DecisionId, principal: Reviewer, runtime: RuntimeDep
) -> dict[str, Any]:
    """Lease the item to this key for `review_lease_seconds` (claiming again renews it)."""
    item = await anyio.to_thread.run_sync(runtime.reviews.claim, principal, decision_id)
    return _detail(item)


@router.post("/reviews/{decision_id}/approve")
async def approve_review(
    decision_id: DecisionId,
    principal: Reviewer,
    runtime: RuntimeDep,
    body: Annotated[ApproveBody | None, Body()] = None,
) -> dict[str, Any]:
    """Approve the model's output (needs a live claim); with a two-person rule the first
    approval keeps the item pending for a second reviewer."""
    reason = body.reason if body is not None else None
    item = await anyio.to_thread.run_sync(runtime.reviews.approve, principal, decision_id, reason)
    return _detail(item)


@router.post("/reviews/{decision_id}/correct")
async def correct_review(
    decision_id: DecisionId, body: CorrectBody, principal: Reviewer, runtime: RuntimeDep
) -> dict[str, Any]:
    """Replace the output; it must satisfy the task's output schema (else 422)."""
    item = await anyio.to_thread.run_sync(
        runtime.reviews.correct, principal, decision_id, body.output, body.reason
    )
    return _detail(item)


@router.post("/reviews/{decision_id}/reject")
async def reject_review(
    decision_id: DecisionId, body: RejectBody, principal: Reviewer, runtime: RuntimeDep
) -> dict[str, Any]:
    """Refuse the decision with a reason; a rejected decision is never delivered."""
    item = await anyio.to_thread.run_sync(
        runtime.reviews.reject, principal, decision_id, body.reason
    )
    return _detail(item)


@router.get("/tasks/{task}/suggest-report")
async def suggest_report(
    task: TaskName,
    principal: Annotated[Principal, Depends(Authorize("read_decisions"))],
    runtime: RuntimeDep,
    target: Annotated[float | None, Query(gt=0, le=1)] = None,
) -> dict[str, Any]:
    """Agreement between the model's suggestions and the human verdicts, overall and per
    label, and which labels are ready for automation (see docs/review.md for the rule)."""
    report = await anyio.to_thread.run_sync(runtime.reviews.suggest_report, principal, task, target)
    return report.as_dict()


@contextlib.asynccontextmanager
async def escalation(runtime: Runtime) -> AsyncIterator[None]:
    """Escalate overdue review items every `review_escalation_interval_seconds` while the
    server runs (0 turns it off); the loop is cancelled on shutdown."""
    interval = runtime.settings.review_escalation_interval_seconds
    if interval <= 0:
        yield
        return

    async def loop() -> None:
        while True:
            try:
                await anyio.to_thread.run_sync(runtime.reviews.escalate_overdue)
            except Exception as exc:  # keep escalating after a database hiccup
                logger.warning("review escalation failed", extra={"error": type(exc).__name__})
            await asyncio.sleep(interval)

    task = asyncio.create_task(loop(), name="lockgate-review-escalation")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
