"""`GET /metrics`: Prometheus text. Needs a key unless the `metrics_public` setting opens it."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials

from lockgate.monitor.telemetry import MetricsObserver
from lockgate.runtime import Runtime
from lockgate.server.auth import Authorize, bearer, get_runtime
from lockgate.server.problems import problem

router = APIRouter(tags=["monitoring"])
_read = Authorize("read_tasks")


async def _access(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    runtime: Runtime = Depends(get_runtime),
) -> None:
    if not request.app.state.settings.metrics_public:
        await _read(request, credentials, runtime)


@router.get("/metrics", response_model=None, dependencies=[Depends(_access)])
async def metrics(runtime: Runtime = Depends(get_runtime)) -> Response:
    """Counters and histograms of decisions, stages, model attempts, breakers, tokens, cost."""
    observer = runtime.observer
    if not isinstance(observer, MetricsObserver):
        return problem(503, "this process does not collect metrics")
    body, content_type = observer.metrics.render()
    return Response(body, media_type=content_type)
