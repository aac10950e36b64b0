"""The HTTP service: `create_app(settings)` builds the FastAPI app; nothing happens on import."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import Depends, FastAPI

from lockgate.delivery import worker as delivery
from lockgate.monitor.telemetry import MetricsObserver, build_observer
from lockgate.runtime import Runtime
from lockgate.server import (
    budget,
    decisions,
    feedback,
    health,
    heap,
    intake,
    keeping,
    metrics,
    openapi,
    params,
    problems,
    reference,
    rollout,
    tasks,
    ui,
)
from lockgate.server import history as history_api
from lockgate.server import reviews as review_api
from lockgate.server.attempts import FailedAttempts
from lockgate.server.auth import KeyCache
from lockgate.server.fast_path import DecideFastPath
from lockgate.server.limits import Limits
from lockgate.server.logs import configure_server_logging
from lockgate.settings import Settings, load_settings

__all__ = ["create_app", "create_app_from_environment"]

PROJECT_ENV = "LOCKGATE_PROJECT"


def create_app(
    settings: Settings, *, runtime: Runtime | None = None, whole_process: bool = False
) -> FastAPI:
    """The API for one project. Without `runtime`, one is opened from `settings` on startup
    and closed on shutdown; a given runtime has its providers closed but stays open.
    `whole_process`: serving is all the process does (`lockgate serve`), so once the live
    releases are loaded the garbage collector is set for a server (`heap.settle`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        active = runtime if runtime is not None else await _open(settings)
        app.state.runtime = active
        warming = asyncio.create_task(active.warm_serving(), name="lockgate-warm-releases")
        if whole_process:
            warming.add_done_callback(lambda done: None if done.cancelled() else heap.settle())
        try:
            async with (
                rollout.background(active),
                review_api.escalation(active),
                feedback.spot_check_sweep(active),
                delivery.in_process(
                    active.store.outbox,
                    active.store.releases,
                    active.settings,
                    metrics=active.metrics,
                ),
                intake.polling(active),
                history_api.watching(active),
                keeping.retention_sweeps(active),
            ):
                yield
        finally:
            warming.cancel()
            await asyncio.gather(warming, return_exceptions=True)
            await active.aclose()
            if runtime is None:
                active.close()
                if isinstance(active.observer, MetricsObserver):
                    active.observer.shutdown()

    from lockgate import __version__

    app = FastAPI(
        title="Lockgate",
        version=__version__,
        description="Run an AI decision in production.",
        lifespan=lifespan,
        strict_content_type=False,  # a body without a Content-Type is read as JSON
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN: `reference` replaces them
        redoc_url=None,
        # Lockgate traces and measures itself (monitor/): FastAPI's own OpenTelemetry bridge
        # would only ask, on every request, whether a global provider was configured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.failed_attempts = FailedAttempts(
        settings.auth_failure_limit, settings.auth_failure_window_seconds
    )
    app.state.key_cache = KeyCache(settings.api_key_cache_seconds)
    problems.install(app)
    openapi.install(app, settings)
    app.add_middleware(DecideFastPath)  # inside Limits: added first, so Limits wraps it
    app.add_middleware(
        Limits,
        max_body_bytes=settings.max_body_bytes,
        timeout_seconds=settings.request_timeout_seconds,
    )
    app.include_router(health.router)
    app.include_router(metrics.router)
    if settings.api_docs:
        app.include_router(reference.router)
    json_only = [Depends(params.json_body)]  # any other media type is a 415
    app.include_router(decisions.router, prefix="/v1", dependencies=json_only)
    app.include_router(tasks.router, prefix="/v1", dependencies=json_only)
    app.include_router(rollout.router, prefix="/v1", dependencies=json_only)
    app.include_router(review_api.router, prefix="/v1", dependencies=json_only)
    app.include_router(feedback.router, prefix="/v1", dependencies=json_only)
    app.include_router(intake.router, prefix="/v1", dependencies=json_only)
    app.include_router(history_api.router, prefix="/v1", dependencies=json_only)
    app.include_router(budget.router, prefix="/v1", dependencies=json_only)
    app.include_router(ui.build_router(settings), prefix="/ui")
    return app


async def _open(settings: Settings) -> Runtime:
    """The process's runtime, with metrics, traces and redacted JSON logs on stderr (uvicorn's
    own logs included)."""
    observer = build_observer(settings)
    configure_server_logging(settings, sys.stderr, redactor=observer.redactor)
    return await anyio.to_thread.run_sync(lambda: Runtime.open(settings, observer=observer))


def create_app_from_environment() -> FastAPI:
    """Factory for `uvicorn --factory` (used by `lockgate serve`, also with several workers):
    the project from LOCKGATE_PROJECT, the database from LOCKGATE_DATABASE_URL. Logging is set
    up here, before the worker logs that it started."""
    settings = load_settings(os.environ.get(PROJECT_ENV))
    configure_server_logging(settings, sys.stderr)
    return create_app(settings, whole_process=True)
