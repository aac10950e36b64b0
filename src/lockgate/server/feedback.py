"""Live quality over HTTP: feedback on a decision, spot checks and live accuracy; and the
spot-check sweep that runs inside `lockgate serve`.

Endpoints are thin: they authorise, call `runtime.quality` in a worker thread and shape the
answer. Feedback is for the `feedback` role, or a submitter on a decision it submitted itself
(another's decision is a 404, as when reading it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from lockgate.decide.decision import Decision
from lockgate.errors import Forbidden
from lockgate.monitor.redaction import redact_text
from lockgate.runtime import Runtime
from lockgate.security import Principal
from lockgate.server.auth import Authorize, get_runtime
from lockgate.server.params import DecisionId, TaskName, Text
from lockgate.watch.types import Feedback, SpotCheck

router = APIRouter(tags=["quality"])
logger = logging.getLogger("lockgate.quality")

RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
Reviewer = Annotated[Principal, Depends(Authorize("review"))]


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    correct: bool = Field(description="Whether the decision's outcome was right.")
    output: dict[str, Any] | None = Field(
        default=None,
        description='With "correct": false, the output it should have been (every output field).',
    )
    comment: Text | None = Field(
        default=None,
        max_length=2000,
        description="Free text (personal data: kept with the decision, never in logs or the "
        "audit log).",
    )


class SpotVerdictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verdict: Literal["approve", "correct", "reject"] = Field(
        description="approve: the model was right; correct: it should have been `output`; "
        "reject: it was wrong."
    )
    output: dict[str, Any] | None = Field(
        default=None, description="With `correct`: every output field, with the right value."
    )
    reason: Text | None = Field(
        default=None, max_length=2000, description="Why (required to correct or reject)."
    )


def feedback_view(item: Feedback) -> dict[str, Any]:
    """Feedback as a reader sees it: the comment with personal data patterns redacted."""
    shown = item.public()
    if item.comment is not None:
        shown["comment"] = redact_text(item.comment)
    return shown


def spot_check_view(check: SpotCheck | None) -> dict[str, Any] | None:
    if check is None:
        return None
    return {
        "verdict": check.verdict,
        "output": dict(check.output) if check.output is not None else None,
        "reviewer": check.reviewer,
        "queued_at": check.created_at.isoformat(),
        "at": check.at.isoformat() if check.at is not None else None,
    }


async def quality_of(runtime: Runtime, decision: Decision) -> dict[str, Any]:
    """What a reader of a decision sees of its live quality: its feedback and spot check."""
    given = await runtime.store.executor.read(runtime.store.quality.feedback_of, decision.id)
    check = await runtime.store.executor.read(runtime.store.quality.spot_check, decision.id)
    return {"feedback": [feedback_view(f) for f in given], "spot_check": spot_check_view(check)}


@router.post("/decisions/{decision_id}/feedback", status_code=201)
async def give_feedback(
    decision_id: DecisionId,
    body: FeedbackBody,
    principal: Annotated[Principal, Depends(Authorize("feedback"))],
    runtime: RuntimeDep,
) -> dict[str, Any]:
    """Say whether a decision's outcome was right; with `"correct": false`, optionally the
    output it should have been. Counts toward live accuracy; audited."""
    item = await runtime.store.executor.write(
        functools.partial(
            runtime.quality.add_feedback,
            principal,
            decision_id,
            body.correct,
            body.output,
            body.comment,
        )
    )
    return feedback_view(item)


@router.get("/spot-checks")
async def list_spot_checks(
    principal: Reviewer,
    runtime: RuntimeDep,
    task: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_-]{0,62}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Open spot checks, oldest first: automated decisions that were delivered and wait for a
    person's verdict (which never changes them; it counts toward live accuracy)."""
    found = await anyio.to_thread.run_sync(
        functools.partial(runtime.quality.open_checks, principal, task, limit)
    )
    return {
        "items": [
            {
                **decision.public(),
                "input": dict(decision.redacted_input),
                "spot_check": spot_check_view(check),
            }
            for check, decision in found
        ]
    }


@router.post("/spot-checks/{decision_id}/verdict")
async def judge_spot_check(
    decision_id: DecisionId, body: SpotVerdictBody, principal: Reviewer, runtime: RuntimeDep
) -> dict[str, Any]:
    """Give the verdict on a spot check (one per check; audited). The decision and its
    delivered outcome stay as they are."""
    check = await anyio.to_thread.run_sync(
        functools.partial(
            runtime.quality.judge, principal, decision_id, body.verdict, body.output, body.reason
        )
    )
    return {"decision_id": decision_id, "spot_check": spot_check_view(check)}


@router.get("/tasks/{task}/accuracy")
async def live_accuracy(
    task: TaskName,
    principal: Annotated[Principal, Depends(Authorize("read_decisions"))],
    runtime: RuntimeDep,
) -> dict[str, Any]:
    """Live accuracy of the automated share: agreement of spot checks and feedback with the
    model, per release and per label, with 95% Wilson intervals."""
    if principal.own_decisions_only:
        raise Forbidden(
            "the submitter role may not read live accuracy",
            hint="use a reviewer, viewer, operator or admin key",
        )
    report = await anyio.to_thread.run_sync(runtime.quality.accuracy, task)
    return report.as_dict()


@contextlib.asynccontextmanager
async def spot_check_sweep(runtime: Runtime) -> AsyncIterator[None]:
    """Queue spot checks every `spot_check_interval_seconds` while the server runs (0 turns
    it off); several replicas may sweep at once (a check is queued once)."""
    interval = runtime.settings.spot_check_interval_seconds
    if interval <= 0:
        yield
        return

    async def loop() -> None:
        while True:
            try:
                await runtime.store.executor.write(runtime.quality.sweep)
            except Exception as exc:  # keep sweeping after a database hiccup
                logger.warning("spot-check sweep failed", extra={"error": type(exc).__name__})
            await asyncio.sleep(interval)

    task = asyncio.create_task(loop(), name="lockgate-spot-checks")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
