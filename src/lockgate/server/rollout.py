"""Rollout endpoints (the shadow report) and the rollout work that runs beside the API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from lockgate.rollout.shadow import background_loop, build_shadow_report, sample_disagreements
from lockgate.runtime import Runtime
from lockgate.security import Principal
from lockgate.server.auth import Authorize, get_runtime
from lockgate.server.params import TaskName

router = APIRouter(tags=["rollout"])


@contextlib.asynccontextmanager
async def background(runtime: Runtime) -> AsyncIterator[None]:
    """Run the shadow worker and the canary check while the app serves (see shadow.py)."""
    stop = asyncio.Event()
    work = asyncio.create_task(
        background_loop(
            runtime.store.rollout, runtime.release_runtime, stop, spend=runtime.budgets
        ),
        name="lockgate-rollout",
    )
    try:
        yield
    finally:
        stop.set()
        await work


@router.get("/tasks/{task}/shadow-report")
async def shadow_report(
    task: TaskName,
    _principal: Annotated[Principal, Depends(Authorize("read_tasks"))],
    runtime: Annotated[Runtime, Depends(get_runtime)],
    release: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
) -> dict[str, Any]:
    """The shadow release (default: the current one) beside live: agreement overall and per
    label, confusion matrix, accuracy of both on human labels, cost and latency."""
    report = await anyio.to_thread.run_sync(
        build_shadow_report, runtime.store.rollout, runtime.store.releases, task, release
    )
    return report.as_dict()


class SampleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = Field(ge=1, le=1000, description="How many disagreements to send to review.")
    release: int | None = Field(default=None, ge=1, le=2_147_483_647)


@router.post("/tasks/{task}/shadow-report:sample")
async def sample(
    task: TaskName,
    body: SampleBody,
    principal: Annotated[Principal, Depends(Authorize("manage_releases"))],
    runtime: Annotated[Runtime, Depends(get_runtime)],
) -> dict[str, Any]:
    """Put up to `count` live decisions the shadow disagreed with into the review queue (only
    ones still `decided` and not yet handed to delivery)."""

    def work() -> list[str]:
        rollout = runtime.store.rollout
        report = build_shadow_report(rollout, runtime.store.releases, task, body.release)
        return sample_disagreements(rollout, report, body.count, principal.name)

    return {"sampled_for_review": await anyio.to_thread.run_sync(work)}
