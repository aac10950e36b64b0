"""The lean HTTP/1.1 client the openai provider calls model servers with: every way a server
frames an answer, keep-alive and its failures, the time limit, TLS. Against a real server on
loopback that answers each request with the bytes a test gives it (uvloop, as `serve` runs)."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop

from lockgate.providers.http_client import HttpClientError, HttpPool

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


class Scripted:
    """A loopback server: each request read whole, then `answer(n)` decides what to send
    (bytes, then whether to close) for the n-th request on the server."""

    def __init__(self, answer: Callable[[int], tuple[bytes, bool]]) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                self.requests.append(head + await reader.readexactly(length))
                data, close = self.answer(len(self.requests))
                writer.write(data)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=ssl_context)
        port = self.server.sockets[0].getsockname()[1]
        return f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None


def run(test: Callable[[], Awaitable[Any]]) -> Any:
    return uvloop.run(test())


async def call(pool: HttpPool, body: bytes = b'{"q":1}') -> Any:
    head = pool.head("/chat/completions", {"Content-Type": "application/json"})
    return await pool.post(head, body)


def test_a_content_length_answer_and_the_connection_kept_for_the_next_call() -> None:
    async def scenario() -> None:
        server = Scripted(lambda n: (OK, False))
        pool = HttpPool(await server.start())
        for _ in range(3):
            answer = await call(pool)
            assert (answer.status, answer.body) == (200, b'{"ok":true}')
            assert answer.headers["content-type"] == "application/json"
        assert server.connections == 1  # kept alive
        first = server.requests[0]
        assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
        assert b"Content-Length: 7\r\n" in first and first.endswith(b'{"q":1}')
        await pool.aclose()
        await server.stop()

    run(scenario)


def test_a_chunked_answer_and_one_that_ends_with_the_connection() -> None:
    chunked = (
        b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"a"\r\n3\r\n:1}\r\n0\r\n\r\n'
    )
    until_close = b'HTTP/1.1 200 OK\r\n\r\n{"b":2}'

    async def scenario() -> None:
        server = Scripted(lambda n: (chunked, False) if n == 1 else (until_close, True))
        pool = HttpPool(await server.start())
        assert (await call(pool)).body == b'{"a":1}'
        assert (await call(pool)).body == b'{"b":2}'
        assert (await call(pool)).body == b'{"b":2}'  # the closed one was not reused
        assert server.connections == 2
        await pool.aclose()
        await server.stop()

    run(scenario)


def test_connection_close_is_honoured_and_a_status_is_an_answer() -> None:
    closing = (
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nConnection: close\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )

    async def scenario() -> None:
        server = Scripted(lambda n: (closing, True))
        pool = HttpPool(await server.start())
        answer = await call(pool)
        assert answer.status == 429 and answer.headers["retry-after"] == "7"
        await call(pool)
        assert server.connections == 2
        await pool.aclose()
        await server.stop()

    run(scenario)


def test_a_kept_connection_the_server_closed_is_replaced_without_an_error() -> None:
    async def scenario() -> None:
        # The server answers, keeps the connection open in HTTP terms, then drops it.
        server = Scripted(lambda n: (OK, True))
        pool = HttpPool(await server.start())
        await call(pool)
        await asyncio.sleep(0.05)
        answer = await call(pool)  # the idle connection was closed: a new one, no error
        assert answer.status == 200 and server.connections == 2
        await pool.aclose()
        await server.stop()

    run(scenario)


def test_an_answer_cut_short_or_not_http_is_an_error_naming_no_content() -> None:
    cut = b'HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"secret-part'
    garbage = b"SSH-2.0-OpenSSH_9.2\r\n\r\n"

    async def scenario() -> None:
        server = Scripted(lambda n: (cut, True) if n == 1 else (garbage, True))
        pool = HttpPool(await server.start())
        with pytest.raises(HttpClientError, match="closed the connection") as short:
            await call(pool)
        assert "secret" not in str(short.value)
        with pytest.raises(HttpClientError, match="not valid HTTP"):
            await call(pool)
        await pool.aclose()
        await server.stop()

    run(scenario)


def test_nobody_listening_is_an_error_and_the_time_limit_closes_the_connection() -> None:
    async def scenario() -> None:
        server = Scripted(lambda n: (b"", False))  # reads, never answers
        url = await server.start()
        assert server.server is not None
        pool = HttpPool(url, timeout_s=0.3)
        with pytest.raises(TimeoutError):
            await call(pool)
        assert pool._idle == []  # a timed-out connection is never reused
        await pool.aclose()
        await server.stop()
        refused = HttpPool(url)
        with pytest.raises(HttpClientError, match=r"cannot connect \(ConnectionRefusedError\)"):
            await call(refused)

    run(scenario)


def test_a_header_value_with_a_line_break_is_refused() -> None:
    pool = HttpPool("http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="Authorization"):
        pool.head("/x", {"Authorization": "Bearer a\r\nX-Injected: 1"})


def test_https_with_a_verified_certificate(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    openssl += ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
    openssl += ["-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(openssl, check=True, capture_output=True)
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))

    async def scenario() -> None:
        server = Scripted(lambda n: (OK, False))
        url = await server.start(serving)
        assert url.startswith("https://")
        pool = HttpPool(url, ssl_context=trusting)
        assert (await call(pool)).body == b'{"ok":true}'
        strict = HttpPool(url)  # the system's authorities do not know this certificate
        with pytest.raises(HttpClientError, match="SSLCertVerificationError"):
            await call(strict)
        await pool.aclose()
        await server.stop()

    run(scenario)
