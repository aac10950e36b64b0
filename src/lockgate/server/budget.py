"""Budget endpoint: what a task has spent, holds and has left, and what its cache saved."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from lockgate.runtime import Runtime
from lockgate.security import Principal
from lockgate.server.auth import Authorize, get_runtime
from lockgate.server.params import TaskName

router = APIRouter(tags=["budget"])


@router.get("/tasks/{task}/budget")
async def task_budget(
    task: TaskName,
    _principal: Annotated[Principal, Depends(Authorize("read_tasks"))],
    runtime: Annotated[Runtime, Depends(get_runtime)],
) -> dict[str, Any]:
    """Spent, reserved and left today and this month, against the limits of the task's live
    release and the overall ones of lockgate.yaml; answers reused from the cache and the cost
    they saved."""
    return await runtime.store.executor.read(runtime.budget_report, task)
