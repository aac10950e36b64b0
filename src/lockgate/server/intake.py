"""`POST /v1/intake/{source}`: records pushed by other systems, signed with HMAC; a 202 means
the records are committed (decided, linked as duplicates, or quarantined with a reason)."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from lockgate.decide.sources import WebhookSource
from lockgate.decide.task import NAME_PATTERN
from lockgate.delivery.sinks.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER
from lockgate.errors import NotFound, Unavailable
from lockgate.intake.poller import Poller
from lockgate.intake.runner import Intake, SourcePaused, SourceStopped
from lockgate.intake.service import IntakeService, find_source, source_spec
from lockgate.intake.webhook import DELIVERY_HEADER, records, verify
from lockgate.runtime import Runtime

router = APIRouter(tags=["intake"])

SourceName = Annotated[str, Path(pattern=NAME_PATTERN, description="Webhook source name.")]


def _slots(request: Request, spec: WebhookSource) -> asyncio.Semaphore:
    """The pushes a source may have in flight at once: a bounded buffer, not a queue."""
    slots: dict[str, asyncio.Semaphore] | None = getattr(request.app.state, "intake_slots", None)
    if slots is None:
        slots = request.app.state.intake_slots = {}
    return slots.setdefault(spec.name, asyncio.Semaphore(spec.max_in_flight))


_RECORD = {"type": "object", "description": "One record: its fields, mapped by the source."}
_PUSH_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [_RECORD, {"type": "array", "items": _RECORD, "minItems": 1}]}
            }
        },
    },
    "parameters": [
        {
            "name": TIMESTAMP_HEADER,
            "in": "header",
            "required": True,
            "description": "Unix seconds when the push was signed; outside the source's replay "
            "window it is refused.",
            "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
        },
        {
            "name": SIGNATURE_HEADER,
            "in": "header",
            "required": True,
            "description": "HMAC-SHA256 of `TIMESTAMP.BODY` with the source's secret, as for "
            "Lockgate's own webhook deliveries (`lockgate.verify_signature`).",
            "schema": {"type": "string"},
        },
        {
            "name": DELIVERY_HEADER,
            "in": "header",
            "required": False,
            "description": "The push's id (records get `ID` or `ID:N`); default: the body's hash.",
            "schema": {"type": "string", "pattern": "^[^\\x00-\\x1f\\x7f]{1,200}$"},
        },
    ],
}


@router.post("/intake/{source}", status_code=202, openapi_extra=_PUSH_OPENAPI)
async def push(source: SourceName, request: Request) -> dict[str, Any]:
    """Take records for a webhook source: one JSON object or an array of objects, signed with
    `X-Lockgate-Timestamp` and `X-Lockgate-Signature`. 202 once every record is committed."""
    runtime: Runtime = request.app.state.runtime
    tasks = await runtime.store.executor.read(runtime.tasks)
    task = find_source(tasks, source)
    spec = source_spec(task, source)
    if not isinstance(spec, WebhookSource):
        raise NotFound(f"{source!r} is a {spec.kind} source, not a webhook")
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    verify(spec, os.environ, headers, body)
    incoming = records(headers, body, runtime.settings.batch_max_items)
    slots = _slots(request, spec)
    if slots.locked():
        raise Unavailable(
            f"source {source} has {spec.max_in_flight} pushes in flight",
            hint="retry after the Retry-After seconds; nothing of this push was stored",
        )
    async with slots:
        release = await runtime.serving_release(task.name)
        intake = Intake(
            runtime.store.async_intake,
            runtime.pipeline,
            release,
            task,
            spec,
            metrics=runtime.metrics,
            budget=runtime.budgets,
        )
        try:
            outcome = await intake.process(incoming, None)
        except SourcePaused as paused:
            # A refusing budget limit: what was not decided is not stored, so the sender
            # retries (records taken before the limit are recognised again by their key).
            taken = paused.settled
            raise paused.exceeded(
                "nothing of this push was taken"
                if not taken
                else f"{taken} of {len(incoming)} records of this push were taken, the rest not"
            ) from None
        except SourceStopped as exc:
            raise Unavailable(
                f"source {source} is stopped: {exc.reason}",
                hint=f"an operator resumes it with `lockgate sources resume {source}`",
                retry_after_seconds=60,
            ) from None
    if outcome.stopped:
        raise Unavailable(
            f"source {source} stopped: {outcome.stopped}; nothing of this push was taken",
            hint=f"an operator resumes it with `lockgate sources resume {source}`",
            retry_after_seconds=60,
        )
    counts = outcome.counts
    return {
        "records": len(incoming),
        **{k: counts.get(k, 0) for k in ("decided", "duplicates", "quarantined")},
    }


@asynccontextmanager
async def polling(runtime: Runtime) -> AsyncIterator[None]:
    """Poll the task files' folder, imap and sql sources while the server runs; one replica
    reads each source at a time (by lease)."""

    async def service() -> IntakeService:
        tasks = await runtime.store.executor.read(runtime.tasks)
        return IntakeService(
            runtime.store.async_intake,
            runtime.pipeline,
            runtime.release_runtime,
            tasks,
            runtime.settings.project_dir,
            os.environ,
            metrics=runtime.metrics,
            budget=runtime.budgets,
        )

    owner = f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"
    poller = Poller(service, runtime.serving_release, runtime.store.async_leases, owner)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        yield
    finally:
        stop.set()
        await task
