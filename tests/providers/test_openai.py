"""The openai provider against a real fault-injecting server on loopback."""

from __future__ import annotations

import asyncio
import json
import math
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lockgate.decide.task import TaskSpec, parse_task
from lockgate.errors import ConfigError
from lockgate.providers.base import (
    Candidate,
    PreparedRequest,
    Provider,
    ProviderContext,
    ProviderError,
)
from lockgate.providers.openai import OpenAIProvider
from lockgate.settings import Price, Secret, Settings
from lockgate.testing.fault_server import Fault, FaultServer

KEY = "sk-test-123"
T = TypeVar("T")


def make_task(**model: Any) -> TaskSpec:
    return parse_task(
        {
            "name": "t",
            "instructions": "Route the ticket to a team.",
            "input": {"text": {"type": "string"}},
            "output": {
                "team": {"type": "enum", "values": ["billing", "tech"]},
                "urgent": {"type": "boolean"},
            },
            "models": [{"provider": "openai", "model": "m", **model}],
        },
        "tasks/t.yaml",
    )


def make_context(
    server_url: str, tmp_path: Path, *, key: str = KEY, **model: Any
) -> ProviderContext:
    settings = Settings(
        project_dir=tmp_path,
        database_url="sqlite://",
        openai_base_url=server_url,
        openai_api_key=Secret(key),
        prices={"m": Price(input_per_1k=1.0, output_per_1k=2.0)},
    )
    return ProviderContext(task=make_task(**model), settings=settings)


def make_provider(
    server_url: str, tmp_path: Path, *, key: str = KEY, **model: Any
) -> OpenAIProvider:
    context = make_context(server_url, tmp_path, key=key, **model)
    return OpenAIProvider.from_spec(context.task.models[0], context)


def request_for(provider: OpenAIProvider, hint: str | None = None) -> PreparedRequest:
    return PreparedRequest(
        task=provider._task, input={"text": "my card was charged twice"}, repair_hint=hint
    )


def call(provider: OpenAIProvider, times: int = 1) -> list[Candidate]:
    """Complete `times` requests in one event loop, then close the provider."""

    async def run() -> list[Candidate]:
        try:
            return [await provider.complete(request_for(provider)) for _ in range(times)]
        finally:
            await provider.aclose()

    return asyncio.run(run())


def fails(provider: OpenAIProvider) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        call(provider)
    return info.value


def in_loop(provider: OpenAIProvider, body: Callable[[], Awaitable[T]]) -> T:
    async def run() -> T:
        try:
            return await body()
        finally:
            await provider.aclose()

    return asyncio.run(run())


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


def test_is_a_provider_with_a_breaker_identity(server: FaultServer, tmp_path: Path) -> None:
    context = make_context(server.url, tmp_path)
    provider = OpenAIProvider.from_spec(context.task.models[0], context)
    assert isinstance(provider, Provider)
    assert provider.name == "openai"
    assert provider.endpoint == f"openai:{server.url}:m"
    assert provider.can_repair is True
    assert OpenAIProvider.pinned_artifacts(context.task.models[0], context) == {}


def test_a_model_name_is_required(tmp_path: Path) -> None:
    context = make_context("http://127.0.0.1:1/v1", tmp_path, model=None)
    with pytest.raises(ConfigError, match="needs `model:`"):
        OpenAIProvider.from_spec(context.task.models[0], context)


def test_a_valid_answer_is_a_candidate_with_usage_and_cost(
    server: FaultServer, tmp_path: Path
) -> None:
    [candidate] = call(make_provider(server.url, tmp_path))

    assert json.loads(str(candidate.output)) == {"team": "billing", "urgent": False}
    assert candidate.confidence is None
    usage = candidate.usage
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.cost == pytest.approx(
        usage.input_tokens / 1000 * 1.0 + usage.output_tokens / 1000 * 2.0
    )


def test_the_request_carries_instructions_schema_input_and_structured_output(
    server: FaultServer, tmp_path: Path
) -> None:
    call(make_provider(server.url, tmp_path, temperature=0.3))

    [body] = server.requests
    system, user = body["messages"]
    assert body["model"] == "m"
    assert body["temperature"] == 0.3
    assert "Route the ticket to a team." in system["content"]
    assert '"enum":["billing","tech"]' in system["content"]
    assert json.loads(user["content"]) == {"text": "my card was charged twice"}
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["team", "urgent"]
    assert "logprobs" not in body


def test_a_repair_hint_asks_for_a_corrected_object(server: FaultServer, tmp_path: Path) -> None:
    provider = make_provider(server.url, tmp_path)
    in_loop(
        provider, lambda: provider.complete(request_for(provider, "team: 'sales' is not allowed"))
    )

    last = server.requests[0]["messages"][-1]["content"]
    assert "team: 'sales' is not allowed" in last
    assert "corrected JSON object" in last


def test_content_that_is_not_json_is_returned_as_is(server: FaultServer, tmp_path: Path) -> None:
    server.enqueue(Fault.content("not json {"))
    [candidate] = call(make_provider(server.url, tmp_path))
    assert candidate.output == "not json {"


def test_json_schema_rejection_falls_back_to_json_object_and_is_remembered(
    server: FaultServer, tmp_path: Path
) -> None:
    server.set_default(Fault.reject_json_schema())
    provider = make_provider(server.url, tmp_path)

    first, second = call(provider, times=2)

    kinds = [body["response_format"]["type"] for body in server.requests]
    assert kinds == ["json_schema", "json_object", "json_object"]
    assert json.loads(str(first.output)) == {"team": "billing", "urgent": False}
    assert second.output == first.output
    assert provider.json_schema_supported is False


@pytest.mark.parametrize(
    ("status", "error_class", "is_retryable"),
    [
        pytest.param(429, "rate_limited", True, id="429-rate-limited"),
        pytest.param(500, "server_error", True, id="500-server-error"),
        pytest.param(503, "server_error", True, id="503-server-error"),
        pytest.param(401, "auth", False, id="401-auth"),
        pytest.param(403, "auth", False, id="403-auth"),
        pytest.param(400, "bad_request", False, id="400-bad-request"),
        pytest.param(404, "bad_request", False, id="404-bad-request"),
    ],
)
def test_http_errors_are_classified(
    server: FaultServer, tmp_path: Path, status: int, error_class: str, is_retryable: bool
) -> None:
    server.enqueue(Fault.status(status, retry_after=1 if status == 429 else None))

    error = fails(make_provider(server.url, tmp_path))

    assert (error.error_class, error.retryable) == (error_class, is_retryable)
    assert str(status) in str(error)
    assert server.request_count == 1


def test_a_plain_400_does_not_trigger_the_json_object_fallback(
    server: FaultServer, tmp_path: Path
) -> None:
    server.enqueue(Fault.status(400))
    provider = make_provider(server.url, tmp_path)
    fails(provider)
    assert provider.json_schema_supported is True


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("<html>502 Bad Gateway</html>", id="not-json"),
        pytest.param('{"id": "x"}', id="no-choices"),
        pytest.param('{"choices": [{"message": {"content": null}}]}', id="no-content"),
        pytest.param("[1, 2]", id="not-an-object"),
    ],
)
def test_a_malformed_body_is_a_retryable_bad_response(
    server: FaultServer, tmp_path: Path, body: str
) -> None:
    server.enqueue(Fault.malformed_body(body))
    error = fails(make_provider(server.url, tmp_path))
    assert (error.error_class, error.retryable) == ("bad_response", True)


def test_a_hang_is_cut_by_the_callers_timeout_and_the_server_stays_usable(
    server: FaultServer, tmp_path: Path
) -> None:
    server.enqueue(Fault.hang())
    provider = make_provider(server.url, tmp_path)

    async def hang_then_answer() -> Candidate:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(provider.complete(request_for(provider)), 0.2)
        return await provider.complete(request_for(provider))

    candidate = in_loop(provider, hang_then_answer)

    assert json.loads(str(candidate.output))["team"] == "billing"
    assert server.wait_for_requests(2) == 2


def test_the_model_timeout_is_a_retryable_timeout(server: FaultServer, tmp_path: Path) -> None:
    server.enqueue(Fault.delay(5))
    error = fails(make_provider(server.url, tmp_path, timeout_s=0.2))
    assert (error.error_class, error.retryable) == ("timeout", True)


def test_an_unreachable_server_is_a_retryable_connection_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = fails(make_provider(f"http://127.0.0.1:{port}/v1", tmp_path))
    assert (error.error_class, error.retryable) == ("connection", True)


def test_the_key_is_sent_but_never_shown(server: FaultServer, tmp_path: Path) -> None:
    provider = make_provider(server.url, tmp_path)
    call(provider)
    assert server.request_headers[0]["Authorization"] == f"Bearer {KEY}"
    assert KEY not in repr(provider)

    messages = []
    for fault in (Fault.status(401), Fault.status(500), Fault.malformed_body(), Fault.hang()):
        server.enqueue(fault)
        with pytest.raises(ProviderError) as info:
            call(make_provider(server.url, tmp_path, timeout_s=0.2))
        messages.append(f"{info.value} {info.value!r}")
    assert all(KEY not in m and "my card" not in m for m in messages)


def test_a_key_from_a_named_environment_variable(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_LLM_KEY", "sk-other-456")
    call(make_provider(server.url, tmp_path, api_key_env="LOCAL_LLM_KEY"))
    assert server.request_headers[0]["Authorization"] == "Bearer sk-other-456"


def test_a_missing_key_variable_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOCAL_LLM_KEY", raising=False)
    with pytest.raises(ConfigError, match="LOCAL_LLM_KEY"):
        make_provider("http://127.0.0.1:1/v1", tmp_path, api_key_env="LOCAL_LLM_KEY")


def test_no_authorization_header_without_a_key(server: FaultServer, tmp_path: Path) -> None:
    call(make_provider(server.url, tmp_path, key=""))
    assert "Authorization" not in server.request_headers[0]


def test_a_base_url_option_overrides_the_setting(server: FaultServer, tmp_path: Path) -> None:
    provider = make_provider("http://127.0.0.1:1/v1", tmp_path, base_url=server.url + "/")
    call(provider)
    assert provider.endpoint == f"openai:{server.url}:m"
    assert server.request_count == 1


def test_logprobs_give_a_confidence(server: FaultServer, tmp_path: Path) -> None:
    server.enqueue(Fault.logprobs(math.log(0.9)))
    [candidate] = call(make_provider(server.url, tmp_path, logprobs=True))
    assert server.requests[0]["logprobs"] is True
    assert candidate.confidence == pytest.approx(0.9)


def test_the_pool_is_reused_and_reopens_after_aclose(server: FaultServer, tmp_path: Path) -> None:
    provider = make_provider(server.url, tmp_path)

    async def many() -> list[Candidate]:
        return list(
            await asyncio.gather(*(provider.complete(request_for(provider)) for _ in range(50)))
        )

    assert len(in_loop(provider, many)) == 50
    assert len(call(provider)) == 1
    assert server.request_count == 51


def test_works_with_a_fault_server_started_inside_the_loop(tmp_path: Path) -> None:
    async def run() -> tuple[int, Candidate]:
        async with FaultServer() as server:
            provider = make_provider(server.url, tmp_path)
            server.enqueue(Fault.status(503))
            try:
                with pytest.raises(ProviderError):
                    await provider.complete(request_for(provider))
                candidate = await provider.complete(request_for(provider))
            finally:
                await provider.aclose()
            return server.request_count, candidate

    count, candidate = asyncio.run(run())
    assert count == 2
    assert json.loads(str(candidate.output))["urgent"] is False
