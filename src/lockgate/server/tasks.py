"""Tasks and releases: list them; promote and roll back (operators), audited by key name."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from lockgate.rollout import gates
from lockgate.rollout.release import Release
from lockgate.runtime import Runtime
from lockgate.security import Principal, visible_tasks
from lockgate.server.auth import Authorize, get_runtime
from lockgate.server.params import ReleaseNumber, Stated, TaskName, Text

router = APIRouter(tags=["tasks and releases"])


class ChangeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Text | None = Field(default=None, max_length=1000, description="Why (audited).")
    override_reason: Stated | None = Field(
        default=None,
        max_length=1000,
        description="Promote although the gate fails (admin only; audited with the figures).",
    )


def release_view(release: Release) -> dict[str, Any]:
    return {
        "ref": release.ref,
        "task": release.task,
        "number": release.number,
        "stage": release.stage,
        "content_hash": release.content_hash,
        "artifacts": dict(release.artifacts),
        "created_at": release.created_at.isoformat(),
        "created_by": release.created_by,
    }


@router.get("/tasks")
async def list_tasks(
    principal: Annotated[Principal, Depends(Authorize("read_tasks"))],
    runtime: Annotated[Runtime, Depends(get_runtime)],
) -> dict[str, Any]:
    """The project's tasks this key may see, each with its live release."""

    def load() -> list[dict[str, Any]]:
        tasks = runtime.tasks()
        items = []
        for name in visible_tasks(principal, sorted(tasks)):
            live = runtime.store.releases.live(name)
            items.append({"name": name, "live_release": live.ref if live else None})
        return items

    return {"items": await anyio.to_thread.run_sync(load)}


@router.get("/tasks/{task}/releases")
async def list_releases(
    task: TaskName,
    _principal: Annotated[Principal, Depends(Authorize("read_tasks"))],
    runtime: Annotated[Runtime, Depends(get_runtime)],
) -> dict[str, Any]:
    """A task's releases, oldest first."""
    releases = await anyio.to_thread.run_sync(runtime.store.releases.list_for, task)
    return {"items": [release_view(r) for r in releases]}


@router.post("/tasks/{task}/releases/{number}:promote")
async def promote(
    task: TaskName,
    number: ReleaseNumber,
    principal: Annotated[Principal, Depends(Authorize("manage_releases"))],
    runtime: Annotated[Runtime, Depends(get_runtime)],
    body: ChangeBody | None = None,
) -> dict[str, Any]:
    """Make a release live; the one live before is retired. With a gate in the task, the
    release needs a passing eval on the gate dataset (409 with the failing figures); only an
    admin may promote anyway, with `override_reason` (audited)."""

    def work() -> tuple[Release, gates.GateResult | None]:
        return gates.promote(
            runtime.store.rollout,
            runtime.store.releases.get(task, number),
            principal.name,
            reason=body.reason if body else None,
            override_reason=body.override_reason if body else None,
            may_override=principal.role == "admin",
        )

    release, result = await anyio.to_thread.run_sync(work)
    return {**release_view(release), "gate": result.as_dict() if result else None}


@router.post("/tasks/{task}:rollback")
async def rollback(
    task: TaskName,
    principal: Annotated[Principal, Depends(Authorize("manage_releases"))],
    runtime: Annotated[Runtime, Depends(get_runtime)],
    body: ChangeBody | None = None,
) -> dict[str, Any]:
    """Make the previous live release live again."""
    reason = body.reason if body else None
    release = await anyio.to_thread.run_sync(
        runtime.store.releases.rollback, task, principal.name, reason
    )
    return release_view(release)
