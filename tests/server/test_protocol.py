"""`serve`'s HTTP protocol (`server.protocol`) answers as the app does, over real sockets.

uvicorn runs in a thread of the test process with the protocol `serve` picks, in front of
the same runtime as the in-process apps of `test_group_commit`. An app with the decision
route and the ASGI fast path taken out answers 404 to any decision request that reaches it,
so a 201 there can only come from the protocol itself.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from lockgate.runtime import Runtime
from lockgate.server import create_app, protocol
from lockgate.server.fast_path import DecideFastPath
from lockgate.settings import load_settings
from lockgate.testing.fault_server import Fault, FaultServer
from tests.cli.kit import make_project
from tests.server.kit import TestClient
from tests.server.test_group_commit import (
    fast_and_route_apps,
    request_shapes,
    role_keys,
    shown,
)
from tests.server.test_serve import SLOW_TASK

PATH = "/v1/tasks/routing/decisions"


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """uvicorn with `serve`'s protocol on a free loopback port, in a thread; its base URL."""
    assert protocol.supported(), "the installed uvicorn lacks what the protocol builds on"
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, http=protocol.PATH, loop="uvloop", log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def without_asgi_decisions(app: Any) -> Any:
    """The app with the decision endpoints and the ASGI fast path taken out."""
    from lockgate.server import decisions

    app.user_middleware = [m for m in app.user_middleware if m.cls is not DecideFastPath]
    app.router.routes = [
        r for r in app.router.routes if getattr(r, "original_router", None) is not decisions.router
    ]
    return app


def raw_exchange(base: str, payload: bytes, replies: int) -> bytes:
    """Send bytes on one connection; read until `replies` HTTP responses came (or it closed)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(payload)
        received = b""
        while received.count(b"HTTP/1.1 ") < replies or not _complete(received, replies):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def _complete(data: bytes, replies: int) -> bool:
    """Whether `data` holds `replies` whole responses with Content-Length bodies."""
    rest = data
    for _ in range(replies):
        head, sep, rest = rest.partition(b"\r\n\r\n")
        if not sep:
            return False
        lengths = [
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ]
        length = lengths[0] if lengths else 0  # an interim 100 Continue has no body
        if len(rest) < length:
            return False
        rest = rest[length:]
    return True


def request(key: str, idempotency: str, text: str, extra: str = "") -> bytes:
    body = json.dumps({"input": {"text": text}}).encode()
    return (
        f"POST {PATH} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nIdempotency-Key: {idempotency}\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def test_the_protocol_answers_every_request_as_the_app_does(
    tmp_path: Path, database_url: str
) -> None:
    with fast_and_route_apps(tmp_path, database_url) as apps:
        shapes = request_shapes(role_keys(apps["runtime"]))
        with TestClient(apps["route"]) as client:
            expected = {shape: shown(send(client, "p"), "p") for shape, send in shapes.items()}
        with serving(apps["fast"]) as base, httpx.Client(base_url=base) as client:
            seen = {shape: shown(send(client, "q"), "q") for shape, send in shapes.items()}
        lone = without_asgi_decisions(apps["fast alone"])
        with serving(lone) as base, httpx.Client(base_url=base) as client:
            decided = shapes["decided"](client, "r")
            refused = shapes["no key"](client, "r")
    for shape in shapes:
        assert seen[shape] == expected[shape], shape
    # The protocol decided on its own where the app could not have ...
    assert decided.status_code == 201, decided.text
    assert decided.headers["content-type"] == "application/json"
    assert "date" in decided.headers
    # ... and handed the refused request on to the app (which no longer knows the route).
    assert refused.status_code == 404


def test_pipelined_requests_and_connection_close_on_one_socket(
    tmp_path: Path, sqlite_database_url: str
) -> None:
    with fast_and_route_apps(tmp_path, sqlite_database_url) as apps:
        runtime = apps["runtime"]
        key = runtime.store.keys.create("submitter", "submitter", (), actor="test")[1]
        with serving(without_asgi_decisions(apps["fast alone"])) as base:
            # Two requests in one write, the second asking to close: two answers in order.
            pipelined = request(key, "pipe-1", "my card was stolen") + request(
                key, "pipe-2", "refund please", "Connection: close\r\n"
            )
            answers = raw_exchange(base, pipelined, replies=2)
        with serving(apps["fast"]) as base:
            # A client that waits for 100 Continue: the app reads the body (uvicorn writes
            # the 100 then) and decides it.
            expecting = raw_exchange(
                base, request(key, "expect-1", "hello", "Expect: 100-continue\r\n"), replies=2
            )
    first, second = answers.split(b"HTTP/1.1 ")[1:3]
    assert first.startswith(b"201 Created") and b"pipe-1" in first
    assert b"connection: close" not in first.lower()
    assert second.startswith(b"201 Created") and b"pipe-2" in second
    assert b"connection: close" in second.lower()
    assert expecting.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created")
    assert b"expect-1" in expecting


def test_a_body_over_the_limit_gets_the_apps_413(tmp_path: Path, sqlite_database_url: str) -> None:
    with fast_and_route_apps(tmp_path, sqlite_database_url) as apps:
        runtime = apps["runtime"]
        key = runtime.store.keys.create("submitter", "submitter", (), actor="test")[1]
        limit = runtime.settings.max_body_bytes
        with serving(apps["fast"]) as base, httpx.Client(base_url=base) as client:
            answer = client.post(
                PATH,
                headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "big"},
                json={"input": {"text": "x" * (limit + 1)}},
            )
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"
    assert runtime.store.decisions.find("routing", ["big"]) == {}


def test_a_decision_past_the_time_limit_is_a_504_and_its_retry_gets_the_decision(
    tmp_path: Path, sqlite_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FaultServer() as upstream:
        upstream.set_default(Fault.delay(1.5))
        monkeypatch.setenv("OPENAI_BASE_URL", upstream.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        project = make_project(tmp_path / "project", SLOW_TASK)
        (project / "lockgate.yaml").write_text("request_timeout_seconds: 0.5\n")
        settings = load_settings(project, database_url=sqlite_database_url)
        runtime = Runtime.open(settings)
        try:
            release, _ = runtime.create_release("routing", "test")
            runtime.store.releases.promote("routing", release.number, "test")
            key = runtime.store.keys.create("submitter", "submitter", (), actor="test")[1]
            app = without_asgi_decisions(create_app(settings, runtime=runtime))
            headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "slow-1"}
            body = {"input": {"text": "my card was stolen"}}
            with serving(app) as base, httpx.Client(base_url=base, timeout=30) as client:
                stopped = client.post(PATH, headers=headers, json=body)
                time.sleep(1.5)  # the model answers; the decision is committed all the same
                retried = client.post(PATH, headers=headers, json=body)
        finally:
            runtime.close()
    # The protocol answered both: the app has no decision route any more.
    assert stopped.status_code == 504, stopped.text
    assert stopped.headers["content-type"] == "application/problem+json"
    assert "longer than 0.5 s" in stopped.json()["detail"]
    assert retried.status_code == 200, retried.text
    assert retried.json()["replayed"] is True
    assert upstream.request_count == 1
