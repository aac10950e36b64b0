"""Per-request limits as plain ASGI middleware: body size and time."""

from __future__ import annotations

import asyncio

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lockgate.errors import retry_after_seconds
from lockgate.server.problems import BodyTooLarge, problem, unavailable_problem
from lockgate.waits import StoreWaits, watching_waits


class Limits:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, timeout_seconds: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await problem(413, str(BodyTooLarge(limit).detail))(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            with watching_waits() as waits:
                async with asyncio.timeout(self.timeout_seconds) as deadline:
                    await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await problem(413, str(exc.detail))(scope, receive, send)
        except TimeoutError:
            if started or not deadline.expired():
                raise
            await over_time(self.timeout_seconds, waits)(scope, receive, send)


def over_time(timeout_seconds: float, waits: StoreWaits) -> JSONResponse:
    """The answer to a request its time limit stopped: 503 with `Retry-After` when it was
    waiting on the database then (back-pressure: retry later), else 504."""
    if waits.interrupted:
        return unavailable_problem(retry_after_seconds(timeout_seconds))
    return problem(
        504,
        f"the request took longer than {timeout_seconds:g} s and was stopped; "
        "retry with the same Idempotency-Key (setting request_timeout_seconds)",
    )
