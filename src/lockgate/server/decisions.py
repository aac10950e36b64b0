"""Decision endpoints: decide one, decide a batch, read one, list with cursor pagination."""

from __future__ import annotations

import re
import uuid
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from lockgate import jsontext
from lockgate.decide.decision import Decision, Route, Status
from lockgate.decide.pipeline import DecisionRequest, Result
from lockgate.errors import InputError, KeyTaken, LockgateError, NotFound
from lockgate.monitor.logging import Generated
from lockgate.monitor.redaction import shown_record
from lockgate.runtime import Runtime
from lockgate.security import Principal
from lockgate.server import params
from lockgate.server.auth import Authorize, get_runtime
from lockgate.server.feedback import quality_of
from lockgate.server.params import KEY_PATTERN, Cursor, DecisionId, Since, TaskName
from lockgate.store import DecisionFilter

router = APIRouter(tags=["decisions"])


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: dict[str, Any] = Field(description="The task's input fields.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Stored, not decided on.")


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: dict[str, Any]
    idempotency_key: str = Field(pattern=KEY_PATTERN)
    metadata: dict[str, Any] = Field(default_factory=dict)


class BatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[BatchItem] = Field(min_length=1)


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def request_id(given: str | None) -> str:
    """The caller's `X-Request-ID` when it is a safe token, else a new id (for logs and traces)."""
    return given if given and _REQUEST_ID.match(given) else Generated(uuid.uuid4().hex)


def _view(result: Result) -> dict[str, Any]:
    assert result.decision is not None
    return {**result.decision.public(), "replayed": result.replayed}


def _error(exc: LockgateError) -> dict[str, Any]:
    detail = exc.message if exc.hint is None else f"{exc.message}; {exc.hint}"
    return {"status": exc.status, "detail": detail, **getattr(exc, "problem_fields", {})}


def _check_owner(principal: Principal, result: Result) -> Result:
    """A submitter may not obtain another client's decision by reusing its key."""
    decision = result.decision
    if (
        result.replayed
        and decision is not None
        and principal.own_decisions_only
        and decision.submitted_by != principal.key_id
    ):
        raise KeyTaken()  # the same answer as for another input: nothing to learn from it
    return result


@router.post(
    "/tasks/{task}/decisions",
    status_code=201,
    response_class=Response,
    responses={
        201: {"description": "Decided now.", "content": {"application/json": {}}},
        200: {
            "description": "Decided before under this key: the stored decision, `replayed`.",
            "content": {"application/json": {}},
        },
    },
)
async def create_decision(
    task: TaskName,
    body: DecisionBody,
    http_request: Request,
    principal: Annotated[Principal, Depends(Authorize("decide"))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    """Decide one input with the task's live release (201), or return the stored decision for
    a repeated `Idempotency-Key` with the same input (200, `replayed: true`)."""
    # Most requests never reach this: `fast_path.DecideFastPath` serves them with the same
    # `decide_one`; this route documents the endpoint and answers every refused request.
    status, payload = await decide_one(
        http_request.app.state.runtime,
        principal,
        task,
        body,
        idempotency_key,
        request_id(http_request.headers.get("x-request-id")),
    )
    return Response(payload, status_code=status, media_type="application/json")


async def decide_one(
    runtime: Runtime,
    principal: Principal,
    task: str,
    body: DecisionBody,
    idempotency_key: str | None,
    request_id: str,
) -> tuple[int, bytes]:
    """Decide one request in the current group of its release (group commit): the status
    (201 new, 200 replayed) and the JSON body. Raises `LockgateError` for the caller."""
    if not idempotency_key or not _KEY.match(idempotency_key):
        raise LockgateError(
            "the Idempotency-Key header is missing, longer than 255 characters or has control "
            "characters",
            hint="send a unique key per input, e.g. `Idempotency-Key: ticket-4711`; resending "
            "the same key returns the stored decision",
        )
    loaded = await runtime.serving_release(task)
    request = DecisionRequest(
        input=body.input,
        idempotency_key=idempotency_key,
        metadata=body.metadata,
        submitted_by=principal.key_id,
        request_id=request_id,
    )
    # A task whose file declares an `api` source maps, de-duplicates and quarantines its
    # requests through the intake (`intake.api`); any other goes straight to its group.
    groups = runtime.api_groups if await runtime.api_intake.configured(task) else runtime.groups
    result = _check_owner(principal, await groups.decide(loaded, request))
    payload = jsontext.dumps(_view(result))
    return (200 if result.replayed else 201), payload


_KEY = re.compile(KEY_PATTERN)


@router.post("/tasks/{task}/decisions:batch")
async def create_decisions(
    task: TaskName,
    body: BatchBody,
    http_request: Request,
    principal: Annotated[Principal, Depends(Authorize("decide"))],
    runtime: Annotated[Runtime, Depends(get_runtime)],
) -> dict[str, Any]:
    """Decide up to `batch_max_items` inputs in one transaction; one result per item, in order,
    each a decision or an error."""
    limit = runtime.settings.batch_max_items
    if len(body.items) > limit:
        raise InputError(
            f"items: {len(body.items)} inputs, at most {limit} per request",
            hint="split the batch into several requests (setting batch_max_items)",
        )
    loaded = await runtime.serving_release(task)
    requests = [
        DecisionRequest(
            input=item.input,
            idempotency_key=item.idempotency_key,
            metadata=item.metadata,
            submitted_by=principal.key_id,
            request_id=request_id(http_request.headers.get("x-request-id")),
        )
        for item in body.items
    ]
    decider = runtime.api_intake if await runtime.api_intake.configured(task) else runtime.pipeline
    results = await decider.decide_many(loaded, requests, invalid_input="error")
    items: list[dict[str, Any]] = []
    for index, (item, result) in enumerate(zip(body.items, results, strict=True)):
        entry: dict[str, Any] = {"index": index, "idempotency_key": item.idempotency_key}
        try:
            if result.error is not None:
                raise result.error
            entry["decision"] = _view(_check_owner(principal, result))
        except LockgateError as exc:
            entry["error"] = _error(exc)
        items.append(entry)
    return {"items": items, "errors": sum("error" in i for i in items)}


def _visible(principal: Principal, decision: Decision | None) -> Decision:
    if (
        decision is None
        or not principal.may_see_task(decision.task)
        or (principal.own_decisions_only and decision.submitted_by != principal.key_id)
    ):
        raise NotFound(
            "no decision with this id", hint="ids come from the response that created it"
        )
    return decision


async def _shown_metadata(
    runtime: Runtime, principal: Principal, decision: Decision
) -> dict[str, Any]:
    """The metadata by the rules for input: personal data redacted from every string, and the
    fields the decision's release marks `pii: true` hidden unless the reader's role is in
    `review_pii_roles`."""
    if not decision.metadata:
        return {}
    release = await runtime.store.executor.read(
        runtime.store.releases.get, decision.task, decision.release
    )
    clear = principal.role in runtime.settings.review_pii_roles
    return shown_record(decision.metadata, release.task_spec().pii_metadata, clear=clear)


@router.get("/decisions/{decision_id}")
async def get_decision(
    decision_id: DecisionId,
    principal: Annotated[Principal, Depends(Authorize("read_decisions"))],
    runtime: Annotated[Runtime, Depends(get_runtime)],
) -> dict[str, Any]:
    """One decision with every model attempt made for it."""
    found = await runtime.store.executor.read(runtime.store.decisions.get, decision_id)
    decision = _visible(principal, found)
    return {
        **decision.public(),
        "metadata": await _shown_metadata(runtime, principal, decision),
        "attempts": [asdict(a) for a in decision.attempts],
        **await quality_of(runtime, decision),
    }


def encode_cursor(decision: Decision) -> str:
    return params.encode_cursor(decision.created_at, decision.id)


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    position = params.decode_cursor(cursor)
    if position is None:
        raise LockgateError(
            "invalid cursor: not a cursor this API issued",
            hint="pass the `next_cursor` value of the previous page unchanged",
        )
    return position


@router.get("/tasks/{task}/decisions")
async def list_decisions(
    task: TaskName,
    principal: Annotated[Principal, Depends(Authorize("read_decisions"))],
    runtime: Annotated[Runtime, Depends(get_runtime)],
    status: Status | None = None,
    route: Route | None = None,
    since: Since | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Cursor | None = None,
) -> dict[str, Any]:
    """A task's decisions, newest first; follow `next_cursor` for the next page."""
    query = DecisionFilter(
        task=task,
        status=status,
        route=route,
        since=since,
        submitted_by=principal.key_id if principal.own_decisions_only else None,
        after=decode_cursor(cursor) if cursor else None,
        limit=limit,
    )
    rows = await runtime.store.executor.read(runtime.store.decisions.page, query)
    page = rows[:limit]
    return {
        "items": [d.public() for d in page],
        "next_cursor": encode_cursor(page[-1]) if len(rows) > limit else None,
    }
