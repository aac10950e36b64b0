"""A lean HTTP/1.1 client for a model server's JSON endpoint, with keep-alive connections.

Every decision of a task on an OpenAI-compatible server makes one POST. A general client such
as aiohttp builds a request object, a response object, header multidicts, timers and a stream
reader for each; measured on the 2-core benchmark machine that was about 300 µs of CPU per
call, against about 75 µs for what this module does: one write of a prepared head and the
body, the answer parsed by llhttp (`httptools`, C), the connection kept for the next call.

What it supports is what the model servers need: `http` and `https` (the system's trusted
certificates), a body delimited by `Content-Length`, chunked transfer or the connection's end,
`Connection: close`, a total time limit per call and a bound on open connections. No proxies,
no redirects, no cookies, no compression (none is asked for). A connection is used by one
call at a time; one that fails, times out or is cancelled is closed, never reused. A kept
connection the server closed while idle is noticed before it is used; one it closes just as a
call is written (nothing answered) is replaced once by a new connection.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools


class HttpClientError(Exception):
    """The call failed on the wire: no connection, or no whole answer. The message names the
    cause's kind only, never a header or a body."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]
    """Header names in lower case; the last value of a repeated header."""


class _Connection(asyncio.Protocol):
    """One connection: one call at a time, its answer parsed as it arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.received = False
        """Whether any byte arrived for the current call."""
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Answer] | None = None
        self._reset()

    def _reset(self) -> None:
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._status = 0
        self._headers_done = False
        self.keep_alive = True

    def call(self, data: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None and self._waiter is None
        self._waiter = asyncio.get_running_loop().create_future()
        self.received = False
        self.transport.write(data)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(f"the answer is not valid HTTP ({type(exc).__name__})")
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        framed = "content-length" in self._headers or "chunked" in self._headers.get(
            "transfer-encoding", ""
        )
        if self._headers_done and not framed:  # a body that ends with the connection
            self._finish(keep_alive=False)
        else:
            self._fail("the server closed the connection before a whole answer")

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._finish(keep_alive=self._parser.should_keep_alive())

    def _finish(self, *, keep_alive: bool) -> None:
        waiter, self._waiter = self._waiter, None
        answer = Answer(self._status, b"".join(self._body), self._headers)
        self._reset()
        self.keep_alive = keep_alive
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)

    def _fail(self, reason: str) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(HttpClientError(reason))


class HttpPool:
    """Keep-alive connections to one server (scheme, host and port of `base_url`), bound to
    the event loop that first uses it."""

    def __init__(
        self,
        base_url: str,
        *,
        limit: int = 100,
        timeout_s: float = 30.0,
        keepalive_s: float = 30.0,
        user_agent: str = "lockgate",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be an http:// or https:// URL with a host")
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        default_port = self.port == (443 if self.tls else 80)
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = shown if default_port else f"{shown}:{self.port}"
        self.base_path = parts.path.rstrip("/")
        self.timeout_s = timeout_s
        self.keepalive_s = keepalive_s
        self.user_agent = user_agent
        self._limit = limit
        self._slots: asyncio.Semaphore | None = None
        self._idle: list[tuple[_Connection, float]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ssl = ssl_context
        """For https: the system's trusted certificates unless a context is given."""

    def head(self, path: str, headers: dict[str, str]) -> bytes:
        """The request line and headers of a POST to `path` (relative to the base URL), up to
        the `Content-Length`, which `post` adds. Header values may not hold line breaks."""
        lines = [f"POST {self.base_path}{path} HTTP/1.1", f"Host: {self.authority}"]
        lines.append(f"User-Agent: {self.user_agent}")
        for name, value in headers.items():
            if any(c in value for c in "\r\n\0") or any(c in name for c in "\r\n\0: "):
                raise ValueError(f"the {name.split(':')[0]!r} header holds a line break")
            lines.append(f"{name}: {value}")
        return ("\r\n".join(lines) + "\r\n").encode("latin-1")

    async def post(self, head: bytes, body: bytes) -> Answer:
        """POST `body` with the prepared `head` (from `head()`); the whole answer, whatever its
        status. Raises `TimeoutError` after `timeout_s`, `HttpClientError` on the wire."""
        self.bind()
        assert self._slots is not None
        data = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        async with self._slots, asyncio.timeout(self.timeout_s):
            for _attempt in range(2):
                connection, reused = await self._connection()
                try:
                    answer = await connection.call(data)
                except HttpClientError:
                    connection.close()
                    if reused and not connection.received:
                        continue  # closed by the server as the call was written: a new one
                    raise
                except BaseException:  # a timeout or a cancel: the answer may still come
                    connection.close()
                    raise
                if connection.keep_alive and not connection.closed:
                    self._idle.append((connection, time.monotonic()))
                else:
                    connection.close()
                return answer
        raise HttpClientError("the server closed two connections before answering")

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection, _ in idle:
            connection.close()
        self._loop = None
        self._slots = None

    def bind(self) -> None:
        """Bind the pool to the running loop (the first call) or check it is that loop."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._slots = asyncio.Semaphore(self._limit)
        elif self._loop is not loop:
            raise RuntimeError("this connection pool is bound to another event loop")

    async def _connection(self) -> tuple[_Connection, bool]:
        now = time.monotonic()
        while self._idle:
            connection, since = self._idle.pop()
            if not connection.closed and now - since < self.keepalive_s:
                return connection, True
            connection.close()
        assert self._loop is not None
        if self.tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        try:
            _, connection = await self._loop.create_connection(
                _Connection,
                self.host,
                self.port,
                ssl=self._ssl if self.tls else None,
                server_hostname=self.host if self.tls else None,
            )
        except (OSError, ssl.SSLError) as exc:
            raise HttpClientError(f"cannot connect ({type(exc).__name__})") from None
        return connection, False
