"""The hot endpoint without FastAPI's per-request machinery.

`POST /v1/tasks/{task}/decisions` is most of a deployment's traffic. FastAPI resolves its
dependencies, builds query and form objects and encodes the answer on every request, which
costs more CPU than deciding. `DecideFastPath` sits in front of the app and serves a request
that passes every check — a live key allowed to decide on the task, a JSON body that fits
`DecisionBody`, a valid task name — through the same `decisions.decide_one` as the route.

Every other request goes on to FastAPI with its body unchanged, so the documented route
stays the one that refuses: it gives each 400, 401, 403, 415, 422 and 429 exactly as
before. Errors raised while deciding (a reused key, a missing release, a locked database)
are rendered by the same problem renderer as the route's. The layer runs inside `Limits`,
so the body-size and time limits hold for both.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lockgate import jsontext
from lockgate.errors import LockgateError
from lockgate.security import Principal
from lockgate.server.decisions import DecisionBody, decide_one, request_id
from lockgate.server.params import NAME_PATTERN, json_media
from lockgate.server.problems import lockgate_problem

DECIDE_PATH = re.compile(r"/v1/tasks/([^/]+)/decisions")
"""The hot endpoint's path; its group is the task's name."""
_TASK = re.compile(NAME_PATTERN)


class DecideFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            DECIDE_PATH.fullmatch(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if match is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        task = match.group(1)
        app_state = scope["app"].state
        accepted = await checked(app_state, scope["headers"], task, body)
        if accepted is None:  # refused or unusual: the documented route answers
            await self.app(scope, _replay(body, receive), send)
            return
        try:
            status, payload = await decide_accepted(app_state, task, accepted)
        except LockgateError as exc:
            await lockgate_problem(exc)(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


async def checked(
    state: Any, raw_headers: Sequence[tuple[bytes, bytes]], task: str, body: bytes
) -> tuple[Principal, DecisionBody, dict[bytes, bytes]] | None:
    """The caller, body and headers when the request may be decided as it is; else None (the
    documented route answers it). `state` is the app's state (its key cache and runtime)."""
    if not _TASK.match(task):
        return None
    headers = dict(reversed(raw_headers))  # the first of repeated headers, as Starlette
    content_type = headers.get(b"content-type")
    if content_type is not None and not json_media(content_type.decode("latin-1")):
        return None
    scheme, _, secret = headers.get(b"authorization", b"").partition(b" ")
    if scheme.lower() != b"bearer" or not secret.strip():
        return None
    try:
        key = await state.key_cache.authenticate(state.runtime, secret.strip().decode("latin-1"))
    except LockgateError:
        return None  # the route meets the same error and renders it
    if key is None:
        return None
    principal = Principal.of(key)
    if not principal.can("decide") or not principal.may_see_task(task):
        return None
    try:
        parsed: Any = jsontext.loads(body)
    except (ValueError, RecursionError):
        return None
    decision_body = _decision_body(parsed)
    if decision_body is None:
        return None
    return principal, decision_body, headers


def _decision_body(parsed: Any) -> DecisionBody | None:
    """`DecisionBody` from a parsed JSON body of its plain shape (an object with an object
    `input` and at most an object `metadata`), without pydantic's validation, which accepts
    that shape unchanged; None for anything else (the route validates and refuses it)."""
    if type(parsed) is not dict or not parsed.keys() <= _BODY_KEYS:
        return None
    given, metadata = parsed.get("input"), parsed.get("metadata", {})
    if type(given) is not dict or type(metadata) is not dict:
        return None
    return DecisionBody.model_construct(input=given, metadata=metadata)


_BODY_KEYS = frozenset(("input", "metadata"))


async def decide_accepted(
    state: Any, task: str, accepted: tuple[Principal, DecisionBody, dict[bytes, bytes]]
) -> tuple[int, bytes]:
    """Decide a request `checked` accepted: the status and JSON body (`decide_one`)."""
    principal, decision_body, headers = accepted
    return await decide_one(
        state.runtime,
        principal,
        task,
        decision_body,
        _text(headers.get(b"idempotency-key")),
        request_id(_text(headers.get(b"x-request-id"))),
    )


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client left; the app will see the same
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands over the body already read, then waits as the original does."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")
