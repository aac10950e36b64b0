"""`GET /metrics`: Prometheus text. Needs a key unless the `metrics_public` setting opens it.

A key limited to some tasks (`keys create --task`) sees only the series of those tasks: every
sample without a `task` label of its tasks (other tasks' series, breaker states per endpoint,
process figures) is left out. An unscoped key, or `metrics_public`, sees every series.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials

from lockgate.monitor.telemetry import MetricsObserver
from lockgate.runtime import Runtime
from lockgate.security import Principal
from lockgate.server.auth import Authorize, bearer, get_runtime
from lockgate.server.problems import problem

router = APIRouter(tags=["monitoring"])
_read = Authorize("read_tasks")
_TASK_LABEL = re.compile(r'[{,]task="([^"]*)"')


async def _access(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    runtime: Runtime = Depends(get_runtime),
) -> Principal | None:
    """The caller, or None when the metrics are public."""
    if request.app.state.settings.metrics_public:
        return None
    return await _read(request, credentials, runtime)


def only_tasks(body: str, tasks: tuple[str, ...]) -> str:
    """The exposition text with only the samples labelled with one of `tasks` (comment lines,
    HELP and TYPE, are kept)."""
    kept = []
    for line in body.splitlines(keepends=True):
        if line.startswith("#") or not line.strip():
            kept.append(line)
            continue
        label = _TASK_LABEL.search(line[: line.rfind("}") + 1])  # the labels, not the value
        if label is not None and label.group(1) in tasks:
            kept.append(line)
    return "".join(kept)


@router.get("/metrics", response_model=None, response_class=PlainTextResponse)
async def metrics(
    principal: Principal | None = Depends(_access), runtime: Runtime = Depends(get_runtime)
) -> Response:
    """Counters and histograms of decisions, stages, model attempts, breakers, tokens, cost;
    for a key limited to some tasks, only those tasks' series."""
    observer = runtime.observer
    if not isinstance(observer, MetricsObserver):
        return problem(503, "this process does not collect metrics")
    body, content_type = observer.metrics.render()
    if principal is not None and principal.tasks:
        body = only_tasks(body.decode(), principal.tasks).encode()
    return Response(body, media_type=content_type)
