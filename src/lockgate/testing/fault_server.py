"""A fault-injecting OpenAI-compatible server on loopback, for tests and benchmarks.

It answers `POST /v1/chat/completions` with a valid completion by default; a script of
`Fault`s changes that one request at a time::

    with FaultServer() as server:
        server.enqueue(Fault.status(503), Fault.delay(0.5))
        server.set_default(Fault.reject_json_schema())
        ...  # call server.url
        assert server.request_count == 3

Run it standalone as a fast upstream: `python -m lockgate.testing.fault_server --port 8089`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from aiohttp import web

Responder = Callable[[Mapping[str, Any]], str | Mapping[str, Any]]
"""Makes the message content of a successful answer from the parsed request body."""

FaultKind = Literal["ok", "status", "malformed_body", "reject_json_schema"]

HANG_S = 3600.0
_START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Fault:
    """How the server answers one request. Build one with the class methods."""

    kind: FaultKind = "ok"
    delay_s: float = 0.0
    """Wait this long before answering (ended early when the server stops)."""
    text: str | None = None
    """The message content for `ok`, or the raw body for `malformed_body`."""
    status_code: int = 200
    retry_after: float | None = None
    logprob: float | None = None
    """Total log-probability of the answer's tokens; adds a `logprobs` structure when set."""

    @classmethod
    def ok(cls, content: str | None = None) -> Fault:
        """A valid completion; `content` defaults to the server's responder."""
        return cls(text=content)

    @classmethod
    def delay(cls, seconds: float, content: str | None = None) -> Fault:
        """A slow but valid completion."""
        return cls(delay_s=seconds, text=content)

    @classmethod
    def hang(cls) -> Fault:
        """No answer for an hour (longer than any client timeout); released by `stop()`."""
        return cls(delay_s=HANG_S)

    @classmethod
    def status(cls, code: int, retry_after: float | None = None) -> Fault:
        """An HTTP error in OpenAI's error format, with a `Retry-After` header if given."""
        return cls(kind="status", status_code=code, retry_after=retry_after)

    @classmethod
    def malformed_body(cls, body: str = "<html>502 Bad Gateway</html>") -> Fault:
        """HTTP 200 with a raw body that is not a chat completion (not JSON by default)."""
        return cls(kind="malformed_body", text=body)

    @classmethod
    def content(cls, text: str) -> Fault:
        """A valid envelope with arbitrary content, e.g. `"not json {"` or schema-violating JSON."""
        return cls(text=text)

    @classmethod
    def reject_json_schema(cls) -> Fault:
        """HTTP 400 'json_schema is not supported' to requests asking for it; others pass."""
        return cls(kind="reject_json_schema")

    @classmethod
    def logprobs(cls, logprob: float, content: str | None = None) -> Fault:
        """A valid completion whose tokens' log-probabilities sum to `logprob`."""
        return cls(text=content, logprob=logprob)

    def after(self, seconds: float) -> Fault:
        """The same fault, answered after a delay."""
        return replace(self, delay_s=seconds)


def default_responder(body: Mapping[str, Any]) -> dict[str, Any]:
    """Answer each property of the requested schema with its first enum value, "", 0 or false.

    The schema comes from `response_format.json_schema.schema`, else from the first JSON Schema
    object written in a message (how clients describe it when only `json_object` is available).
    """
    schema = requested_schema(body) or {}
    answer: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict):
            answer[name] = ""
        elif prop.get("enum"):
            answer[name] = prop["enum"][0]
        else:
            answer[name] = {"number": 0, "integer": 0, "boolean": False}.get(
                str(prop.get("type")), ""
            )
    return answer


def requested_schema(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON Schema a chat-completions request asks its answer to follow, if any."""
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            return schema
    decoder = json.JSONDecoder()
    for message in body.get("messages") or ():
        text = message.get("content") if isinstance(message, dict) else None
        if not isinstance(text, str):
            continue
        start = text.find("{")
        while start != -1:
            try:
                value, _ = decoder.raw_decode(text, start)
            except ValueError:
                value = None
            if isinstance(value, dict) and isinstance(value.get("properties"), dict):
                return value
            start = text.find("{", start + 1)
    return None


class FaultServer:
    """An OpenAI-compatible server in a background thread with its own event loop.

    Use it as a context manager (`with` or `async with`) or call `start()` / `stop()`; both work
    from plain code and from inside a running event loop. Every chat-completions request is
    recorded (`requests`, `request_headers`, `request_count`) and consumes one queued fault.
    """

    def __init__(
        self, responder: Responder | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._responder: Responder = responder or default_responder
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._received = threading.Condition(self._lock)
        self._queue: deque[Fault] = deque()
        self._default = Fault.ok()
        self._bodies: list[dict[str, Any]] = []
        self._headers: list[dict[str, str]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._bound_port: int | None = None

    # ------------------------------------------------------------------ script and records

    def enqueue(self, *faults: Fault) -> None:
        """Queue faults, consumed one per chat-completions request, first in first out."""
        with self._lock:
            self._queue.extend(faults)

    def set_default(self, fault: Fault) -> None:
        """How to answer when the queue is empty (initially `Fault.ok()`)."""
        with self._lock:
            self._default = fault

    def reset(self) -> None:
        """Forget queued faults, the default and the recorded requests."""
        with self._lock:
            self._queue.clear()
            self._default = Fault.ok()
            self._bodies.clear()
            self._headers.clear()

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Parsed JSON bodies of the chat-completions requests received, oldest first."""
        with self._lock:
            return list(self._bodies)

    @property
    def request_headers(self) -> list[dict[str, str]]:
        """Headers of the same requests, in the same order."""
        with self._lock:
            return [dict(h) for h in self._headers]

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._bodies)

    def wait_for_requests(self, n: int, timeout_s: float = 10.0) -> int:
        """Wait until `n` chat-completions requests have been received, or `timeout_s` has
        passed; return how many have. A client that gave up on a request (its timeout) may be
        back before this server's thread has read that request."""
        with self._received:
            self._received.wait_for(lambda: len(self._bodies) >= n, timeout_s)
            return len(self._bodies)

    @property
    def url(self) -> str:
        """Base URL for an OpenAI client, ending in `/v1`."""
        if self._bound_port is None:
            raise RuntimeError("the fault server is not running; call start() first")
        return f"http://{self._host}:{self._bound_port}/v1"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FaultServer:
        """Start serving in a background thread; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("the fault server is already running")
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            runner: web.AppRunner | None = None
            try:
                runner = loop.run_until_complete(self._open())
            except BaseException as exc:
                failure.append(exc)
            ready.set()
            try:
                if runner is not None:
                    loop.run_forever()
                    loop.run_until_complete(runner.cleanup())
            finally:
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="lockgate-fault-server", daemon=True)
        self._thread.start()
        if not ready.wait(_START_TIMEOUT_S) or failure:
            self._thread.join(_START_TIMEOUT_S)
            self._thread = self._loop = None
            cause = failure[0] if failure else None
            raise RuntimeError(
                f"the fault server could not start on {self._host}:{self._port}"
            ) from cause
        return self

    def stop(self) -> None:
        """Release hanging requests, close the server and join its thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        stopping = self._stopping
        if stopping is not None:
            loop.call_soon_threadsafe(stopping.set)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._loop = self._thread = self._stopping = None
        self._bound_port = None

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> FaultServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        where = self.url if self._bound_port is not None else "stopped"
        return f"FaultServer({where})"

    # ------------------------------------------------------------------ serving

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._models)
        return app

    async def _open(self) -> web.AppRunner:
        self._stopping = asyncio.Event()
        runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._bound_port = int(runner.addresses[0][1])
        return runner

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": "fault-server", "object": "model"}]}
        )

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self._received:
            self._bodies.append(body if isinstance(body, dict) else {})
            self._headers.append(dict(request.headers))
            fault = self._queue.popleft() if self._queue else self._default
            self._received.notify_all()
        if not isinstance(body, dict):
            return _error(400, "the request body is not a JSON object", "invalid_request_error")
        if fault.delay_s > 0 and await self._stopped_within(fault.delay_s):
            return _error(503, "the server is shutting down", "server_error")
        if fault.kind == "status":
            return _error(
                fault.status_code,
                f"injected HTTP {fault.status_code}",
                "rate_limit_error" if fault.status_code == 429 else "server_error",
                retry_after=fault.retry_after,
            )
        if fault.kind == "malformed_body":
            return web.Response(body=(fault.text or "").encode(), content_type="application/json")
        if fault.kind == "reject_json_schema" and _asks_json_schema(body):
            return _error(
                400,
                "Invalid parameter: 'response_format' of type 'json_schema' is not supported "
                "with this model.",
                "invalid_request_error",
                param="response_format",
            )
        content = fault.text if fault.text is not None else self._respond(body)
        return _completion(body, content, fault.logprob)

    def _respond(self, body: Mapping[str, Any]) -> str:
        answer = self._responder(body)
        return answer if isinstance(answer, str) else json.dumps(answer)

    async def _stopped_within(self, seconds: float) -> bool:
        """Sleep `seconds`; True if the server began stopping meanwhile."""
        assert self._stopping is not None
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True


def _asks_json_schema(body: Mapping[str, Any]) -> bool:
    response_format = body.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") == "json_schema"


def _error(
    status: int,
    message: str,
    kind: str,
    *,
    param: str | None = None,
    retry_after: float | None = None,
) -> web.Response:
    headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
    payload = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return web.json_response(payload, status=status, headers=headers)


def _completion(body: Mapping[str, Any], content: str, logprob: float | None) -> web.Response:
    prompt = "".join(
        str(m.get("content") or "") for m in body.get("messages") or () if isinstance(m, dict)
    )
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": content},
        "finish_reason": "stop",
        "logprobs": None,
    }
    if logprob is not None:
        choice["logprobs"] = {"content": _token_logprobs(content, logprob)}
    payload = {
        "id": "chatcmpl-fault-server",
        "object": "chat.completion",
        "created": 0,
        "model": str(body.get("model") or "fault-server"),
        "choices": [choice],
        "usage": {
            "prompt_tokens": len(prompt) // 4,
            "completion_tokens": max(1, len(content) // 4),
            "total_tokens": len(prompt) // 4 + max(1, len(content) // 4),
        },
    }
    return web.Response(body=json.dumps(payload).encode(), content_type="application/json")


def _token_logprobs(content: str, total: float) -> list[dict[str, Any]]:
    """Split the content into up to 4 tokens whose log-probabilities add up to `total`."""
    size = max(1, math.ceil(len(content) / 4))
    tokens = [content[i : i + size] for i in range(0, len(content), size)] or [""]
    each = total / len(tokens)
    return [
        {"token": t, "logprob": each, "bytes": list(t.encode()), "top_logprobs": []} for t in tokens
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lockgate.testing.fault_server",
        description="Serve a fast OpenAI-compatible fake model until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="latency of every answer")
    args = parser.parse_args(argv)
    server = FaultServer(host=args.host, port=args.port)
    server.set_default(Fault.delay(args.delay_ms / 1000))
    with server:
        print(f"fault server listening on {server.url} (Ctrl-C to stop)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
