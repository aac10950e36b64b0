"""Odd and hostile requests get a 4xx problem, never a 500, on both databases."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from lockgate.server.limits import Limits
from tests.server.kit import Api, TestClient, running_api


@pytest.fixture
def api(tmp_path: Path, database_url: str) -> Iterator[Api]:
    with running_api(tmp_path, database_url) as api:
        yield api


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[Api]:
    """One API per backend for the matrix of bad requests: each is refused before anything is
    stored, and a fresh API per case was most of the module's time."""
    with running_api(tmp_path_factory.mktemp("bad-requests"), module_database_url) as api:
        yield api


FORGED_CURSOR = base64.urlsafe_b64encode(b'["2026-01-01T00:00:00+00:00", "a\\u0000"]').decode()

CASES: list[Any] = [
    pytest.param("POST", "/v1/tasks/rout%00ing/decisions", {"input": {"text": "t"}}, {}, 422,
                 id="nul-in-task"),
    pytest.param("POST", "/v1/tasks/" + "a" * 300 + "/decisions", {"input": {"text": "t"}}, {},
                 422, id="long-task"),
    pytest.param("GET", "/v1/decisions/%00", None, {}, 422, id="nul-in-id"),
    pytest.param("GET", "/v1/decisions/" + "f" * 33, None, {}, 422, id="long-id"),
    pytest.param("POST", "/v1/tasks/routing/decisions", {"input": {"text": "t"}},
                 {"Idempotency-Key": "k" * 256}, 400, id="long-key"),
    pytest.param("POST", "/v1/tasks/routing/decisions:batch",
                 {"items": [{"input": {"text": "t"}, "idempotency_key": "a\u0000b"}]}, {}, 422,
                 id="nul-in-batch-key"),
    pytest.param("POST", "/v1/tasks/routing/decisions:batch", {"items": []}, {}, 422,
                 id="empty-batch"),
    pytest.param("POST", "/v1/tasks/routing/decisions", {"input": []}, {"Idempotency-Key": "k"},
                 422, id="input-not-object"),
    pytest.param("POST", "/v1/tasks/routing/decisions", {"input": {"text": 5}},
                 {"Idempotency-Key": "k"}, 422, id="wrong-type"),
    pytest.param("GET", "/v1/tasks/routing/decisions?limit=0", None, {}, 422, id="limit-0"),
    pytest.param("GET", "/v1/tasks/routing/decisions?status=nope", None, {}, 422,
                 id="bad-status"),
    pytest.param("GET", "/v1/tasks/routing/decisions?since=yesterday", None, {}, 422,
                 id="bad-since"),
    pytest.param("POST", "/v1/tasks/routing/releases/99:promote", None, {}, 404,
                 id="no-such-release"),
    pytest.param("POST", "/v1/tasks/routing/releases/x:promote", None, {}, 422,
                 id="release-not-number"),
    pytest.param("POST", "/v1/tasks/routing/releases/99999999999:promote", None, {}, 422,
                 id="release-number-too-big"),
    pytest.param("GET", "/v1/tasks/routing/decisions?cursor=" + FORGED_CURSOR, None, {}, 400,
                 id="forged-cursor-with-nul"),
    pytest.param("DELETE", "/v1/tasks", None, {}, 405, id="wrong-method"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body", "headers", "status"), CASES)
def test_a_bad_request_is_a_4xx_problem(
    shared_api: Api, method: str, path: str, body: Any, headers: dict[str, str], status: int
) -> None:
    api = shared_api
    response = api.client.request(method, path, json=body, headers={**api.auth("admin"), **headers})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_nul_characters_inside_the_input_are_stored_or_refused_cleanly(api: Api) -> None:
    response = api.client.post(
        "/v1/tasks/routing/decisions",
        json={"input": {"text": "a\u0000b"}, "metadata": {"k\u0000": "v\u0000"}},
        headers={**api.auth("admin"), "Idempotency-Key": "nul"},
    )
    assert response.status_code < 500, response.text


def test_a_request_over_the_time_limit_is_a_504_problem() -> None:
    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(5)

    client = TestClient(Limits(slow, max_body_bytes=100, timeout_seconds=0.05))
    response = client.get("/")
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    assert "Idempotency-Key" in response.json()["detail"]


def test_a_streamed_body_over_the_limit_is_a_413_problem(api: Api) -> None:
    # No Content-Length: the body arrives in chunks and is counted as it is read.
    def chunks() -> Iterator[bytes]:
        yield b'{"input": {"text": "'
        for _ in range(2000):
            yield b"a" * 1000
        yield b'"}}'

    response = api.client.post(
        "/v1/tasks/routing/decisions",
        content=chunks(),
        headers={**api.auth("admin"), "Idempotency-Key": "big", "Content-Type": "application/json"},
    )
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
