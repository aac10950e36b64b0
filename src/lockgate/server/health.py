"""Liveness and readiness, open to load balancers without a key."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from lockgate.errors import LockgateError
from lockgate.runtime import Runtime
from lockgate.server.auth import get_runtime
from lockgate.server.problems import problem

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive: answered from memory, never waits on the database."""
    return {"status": "ok"}


def readiness_problems(runtime: Runtime) -> list[str]:
    """Why this process should not get traffic yet; empty when it is ready."""
    try:
        runtime.store.ping()
        current, head = runtime.store.migration_state()
    except Exception as exc:  # any driver error means "not reachable"
        return [f"database not reachable ({type(exc).__name__}); check database_url"]
    reasons = []
    if current != head:
        reasons.append(
            f"database schema at {current}, code expects {head}; run lockgate db upgrade"
        )
    try:
        tasks = runtime.tasks()
    except LockgateError as exc:
        return [*reasons, f"task files cannot be loaded: {exc.message}"]
    if not tasks:
        reasons.append(f"no task files in {runtime.settings.tasks_dir.name}/")
    for name in sorted(tasks):
        if runtime.store.releases.live(name) is None:
            reasons.append(
                f"task {name} has no live release; run lockgate release create {name} and "
                f"lockgate release promote {name}@N"
            )
    return reasons


@router.get("/readyz", response_model=None)
async def readyz(
    runtime: Annotated[Runtime, Depends(get_runtime)],
) -> dict[str, Any] | JSONResponse:
    """Ready for traffic: database reachable, schema current, a live release for every task;
    otherwise 503 with the reasons. Only reads: a writer holding the database does not stall
    it."""
    reasons = await runtime.store.executor.read(readiness_problems, runtime)
    if reasons:
        return problem(503, "; ".join(reasons), reasons=reasons)
    return {"status": "ready"}
