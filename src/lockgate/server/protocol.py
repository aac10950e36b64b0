"""`lockgate serve`'s HTTP protocol: uvicorn's httptools protocol, with the hot endpoint
answered without the ASGI stack.

A decision request whose body came in whole (no `Expect: 100-continue`, at most
`max_body_bytes`) and that `fast_path.checked` accepts is decided by the same `decide_one` as
the route, inside the same time limit, and its answer goes out in one write: the status line,
the server's own headers (`date`), the content type and length, then the JSON. Nothing else
changes: every other request, a request `checked` refuses, a larger body and a client that
left go to the app exactly as with uvicorn's protocol (the app's own `DecideFastPath` then
serves the request, or the route refuses it), and errors are rendered by the same problem
renderers, written through uvicorn's own `send` (so its access log sees them).

Graceful shutdown, keep-alive, pipelining and back-pressure on a slow reader stay uvicorn's:
the request runs as one of the server's tasks, on the cycle uvicorn made for it, and ends it
as uvicorn's `send` would. `serve` uses this protocol only when uvicorn's internals are those
it was written against (`supported()`); otherwise it falls back to plain `httptools`.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from lockgate.errors import LockgateError
from lockgate.server.fast_path import DECIDE_PATH, checked, decide_accepted
from lockgate.server.limits import over_time
from lockgate.server.problems import lockgate_problem, unexpected_problem
from lockgate.waits import watching_waits

PATH = "lockgate.server.protocol:DecidingProtocol"
"""uvicorn's `http` setting for this protocol (an import path: worker processes load it)."""

_CYCLE_FIELDS = (
    "scope",
    "transport",
    "flow",
    "body",
    "more_body",
    "keep_alive",
    "disconnected",
    "waiting_for_100_continue",
    "response_started",
    "response_complete",
    "message_event",
    "on_response",
    "default_headers",
)


def supported() -> bool:
    """Whether the installed uvicorn has the internals this protocol builds on."""
    assigned = RequestResponseCycle.__init__.__code__.co_names  # the `self.X = ...` it sets
    return (
        callable(getattr(HttpToolsProtocol, "_start_asgi_task", None))
        and callable(getattr(RequestResponseCycle, "run_asgi", None))
        and callable(getattr(RequestResponseCycle, "send", None))
        and all(field in assigned for field in _CYCLE_FIELDS)
    )


class DecidingProtocol(HttpToolsProtocol):
    """uvicorn's `HttpToolsProtocol`; a whole decision request skips the ASGI stack."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._state = _lockgate_state(self.app)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        scope = cycle.scope
        if app is self.app and self._state is not None and scope["method"] == "POST":
            match = DECIDE_PATH.fullmatch(scope["path"])
            if match is not None:
                # uvicorn's own task start runs it, inside its `run_asgi` (its last-resort 500
                # and its checks), in place of the app.
                app = functools.partial(self._decide_asgi, cycle, app, match.group(1))
        super()._start_asgi_task(cycle, app)

    async def _decide_asgi(
        self, cycle: RequestResponseCycle, app: Any, task: str, *_asgi: Any
    ) -> None:
        """The ASGI callable that stands for the app on a decision request: it ignores the
        scope, receive and send it is given and works on the cycle itself."""
        await self._decide(cycle, app, task)

    async def _decide(self, cycle: RequestResponseCycle, app: Any, task: str) -> None:
        state = self._state
        runtime = getattr(state, "runtime", None)
        if runtime is None or cycle.waiting_for_100_continue:  # not started; no body yet
            await cycle.run_asgi(app)
            return
        settings = runtime.settings
        deadline = _Deadline(self.loop, settings.request_timeout_seconds)
        try:
            try:
                with watching_waits() as waits:
                    body = await _whole_body(cycle, settings.max_body_bytes)
                    accepted = None
                    if body is not None:
                        headers = cast(list[tuple[bytes, bytes]], cycle.scope["headers"])
                        accepted = await checked(state, headers, task, body)
                    if accepted is not None:
                        status, payload = await decide_accepted(state, task, accepted)
            finally:
                deadline.cancel()
        except asyncio.CancelledError:
            if not deadline.passed():
                raise
            await self._problem(cycle, over_time(settings.request_timeout_seconds, waits))
            return
        except LockgateError as exc:
            await self._problem(cycle, lockgate_problem(exc))
            return
        except Exception as exc:
            await self._failed(cycle, exc, settings)
            return
        if accepted is None:  # refused or unusual: the app answers, with its own limits
            cycle.message_event.set()  # what arrived is there for the app to read
            await cycle.run_asgi(app)
            return
        await _answer(cycle, status, payload)

    async def _failed(self, cycle: RequestResponseCycle, exc: Exception, settings: Any) -> None:
        """An error nothing expected: the app's 500 (or 503), and uvicorn's error log line."""
        await self._problem(cycle, unexpected_problem(exc, settings))
        self.logger.error("Exception in ASGI application\n", exc_info=exc)

    async def _problem(self, cycle: RequestResponseCycle, response: Any) -> None:
        """A problem response, through uvicorn's `send` (its access log included)."""
        cycle.body = bytearray()
        try:
            await response(cycle.scope, cycle.receive, cycle.send)
        finally:
            cycle.on_response = _nothing


class _Deadline:
    """The request's time limit: it cancels the current task when it passes, as
    `asyncio.timeout` does, with less work per request (this path counts it)."""

    __slots__ = ("_handle", "_passed", "_task")

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        self._task = asyncio.current_task()
        self._passed = False
        self._handle = loop.call_later(seconds, self._expire)

    def _expire(self) -> None:
        self._passed = True
        if self._task is not None:
            self._task.cancel()

    def passed(self) -> bool:
        """Whether the limit passed; the cancellation it caused is then taken back."""
        if self._passed and self._task is not None:
            self._task.uncancel()
        return self._passed

    def cancel(self) -> None:
        self._handle.cancel()


async def _whole_body(cycle: RequestResponseCycle, limit: int) -> bytes | None:
    """The request's body once it is all in, left in place for the app to read; None if the
    client left or the body is over `limit` (the app answers 413)."""
    while cycle.more_body and not cycle.disconnected and len(cycle.body) <= limit:
        cycle.flow.resume_reading()
        await cycle.message_event.wait()
        cycle.message_event.clear()
    if cycle.disconnected or len(cycle.body) > limit:
        return None
    return bytes(cycle.body)


async def _answer(cycle: RequestResponseCycle, status: int, payload: bytes) -> None:
    """Write a JSON answer in one piece and end the cycle as uvicorn's `send` would."""
    if cycle.flow.write_paused and not cycle.disconnected:
        await cycle.flow.drain()
    on_response = cycle.on_response
    cycle.on_response = _nothing
    cycle.body = bytearray()
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    if cycle.disconnected:
        return
    head = [STATUS_LINE[status], _default_headers(cycle.default_headers)]
    head.append(b"content-type: application/json\r\ncontent-length: %d\r\n" % len(payload))
    if not cycle.keep_alive:
        head.append(b"connection: close\r\n")
    head.append(b"\r\n")
    head.append(payload)
    cycle.transport.write(b"".join(head))
    cycle.response_complete = True
    cycle.message_event.set()
    if not cycle.keep_alive:
        cycle.transport.close()
    on_response()


_encoded: tuple[object, bytes] = (None, b"")


def _default_headers(headers: list[tuple[bytes, bytes]]) -> bytes:
    """uvicorn's headers for every response (`date`, once a second a new list), as bytes."""
    global _encoded
    if _encoded[0] is not headers:
        _encoded = (headers, b"".join(b"%s: %s\r\n" % (n, v) for n, v in headers))
    return _encoded[1]


def _nothing() -> None:
    return None


def _lockgate_state(app: Any) -> Any:
    """The state of the Lockgate app inside uvicorn's wrappers (proxy headers, logging), or
    None when the app is not Lockgate's (then every request takes the ASGI path)."""
    for _ in range(8):
        state = getattr(app, "state", None)
        if state is not None and hasattr(state, "key_cache"):
            return state
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None
