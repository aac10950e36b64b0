"""The `openai` provider: any OpenAI-compatible chat-completions endpoint.

Works with OpenAI, vLLM, Ollama and llama.cpp's server. Asks for structured output with
`response_format: json_schema`; a server that does not support it is asked for `json_object`
instead, from then on. One pool of keep-alive connections per provider (`http_client`), bound to
the event loop that first calls it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from lockgate import jsontext
from lockgate.decide.task import ModelSpec, TaskSpec
from lockgate.errors import ConfigError
from lockgate.providers.base import (
    Candidate,
    PreparedRequest,
    ProviderContext,
    ProviderError,
    Usage,
    fatal,
    retryable,
)
from lockgate.providers.http_client import HttpClientError, HttpPool
from lockgate.settings import Price, Secret

_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
_PATH = "/chat/completions"
_REJECTION_MARKERS = ("response_format", "json_schema")


class OpenAIProvider:
    """One model on an OpenAI-compatible server."""

    name = "openai"
    can_repair = True

    def __init__(
        self,
        *,
        model: str,
        base_url: str,
        api_key: Secret,
        task: TaskSpec,
        price: Price | None = None,
        timeout_s: float = 30.0,
        temperature: float = 0.0,
        logprobs: bool = False,
        max_tokens: int | None = None,
        max_connections: int = 100,
    ) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.endpoint = f"openai:{self.base_url}:{model}"
        self._api_key = api_key
        self._price = price or Price()
        self._timeout_s = timeout_s
        self._temperature = temperature
        self._logprobs = logprobs
        self._max_tokens = max_tokens
        self._max_connections = max_connections
        self._task = task
        self._system_message = system_message(task)
        self.json_schema_supported = True
        """False once the server has refused `response_format: json_schema`."""
        self._pool: HttpPool | None = None
        self._head = b""

    @classmethod
    def from_spec(cls, spec: ModelSpec, context: ProviderContext) -> OpenAIProvider:
        if not spec.model:
            raise ConfigError(
                f"task {context.task.name}: the openai provider needs `model:` "
                "(the model name the server knows, e.g. gpt-4o-mini or llama3.1)"
            )
        settings = context.settings
        api_key = settings.openai_api_key
        key_env = spec.option("api_key_env")
        if key_env:
            value = os.environ.get(str(key_env))
            if not value:
                raise ConfigError(
                    f"task {context.task.name}: model {spec.model}: api_key_env names "
                    f"{key_env}, which is not set",
                    hint=f"export {key_env}=... before starting lockgate",
                )
            api_key = Secret(value)
        max_tokens = spec.option("max_tokens")
        return cls(
            model=spec.model,
            base_url=str(spec.option("base_url") or settings.openai_base_url),
            api_key=api_key,
            task=context.task,
            price=settings.price(spec.model),
            timeout_s=spec.timeout_s,
            temperature=float(spec.option("temperature", 0)),
            logprobs=bool(spec.option("logprobs", False)),
            max_tokens=int(max_tokens) if max_tokens is not None else None,
            max_connections=int(spec.option("max_connections", 100)),
        )

    @classmethod
    def pinned_artifacts(cls, spec: ModelSpec, context: ProviderContext) -> dict[str, str]:
        return {}

    def __repr__(self) -> str:
        return f"OpenAIProvider(endpoint={self.endpoint!r})"

    # ------------------------------------------------------------------ calls

    async def complete(self, request: PreparedRequest) -> Candidate:
        pool = self._pool_for_loop()
        body = self._body(request, json_schema=self.json_schema_supported)
        status, raw, retry_after = await self._post(pool, body)
        if status in (400, 422) and self.json_schema_supported and _rejects_json_schema(raw):
            self.json_schema_supported = False
            body["response_format"] = {"type": "json_object"}
            status, raw, retry_after = await self._post(pool, body)
        if status >= 400:
            raise _status_error(status, retry_after)
        return self._candidate(raw)

    async def aclose(self) -> None:
        """Close the connection pool; the provider may be used again (a new pool opens)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()

    def _pool_for_loop(self) -> HttpPool:
        if self._pool is None:
            try:
                pool = HttpPool(
                    self.base_url, limit=self._max_connections, timeout_s=self._timeout_s
                )
            except ValueError as exc:
                raise fatal("config", f"base_url {self.base_url!r}: {exc}") from None
            headers = dict(_JSON_HEADERS)
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key.reveal()}"
            try:
                self._head = pool.head(_PATH, headers)
            except ValueError:
                raise fatal("config", "the API key holds a line break; check it") from None
            self._pool = pool
        try:
            self._pool.bind()
        except RuntimeError as exc:
            raise RuntimeError(f"{self!r}: {exc}; call aclose() in that loop first") from None
        return self._pool

    async def _post(self, pool: HttpPool, body: dict[str, Any]) -> tuple[int, bytes, float | None]:
        data = jsontext.dumps(body)
        try:
            answer = await pool.post(self._head, data)
        except TimeoutError:
            raise retryable("timeout", "the model server did not answer in time") from None
        except HttpClientError as exc:
            raise retryable("connection", f"the call to the model server failed: {exc}") from None
        return answer.status, answer.body, _seconds(answer.headers)

    def _body(self, request: PreparedRequest, *, json_schema: bool) -> dict[str, Any]:
        task = request.task
        system = self._system_message if task is self._task else system_message(task)
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": _compact(dict(request.input))},
        ]
        if request.repair_hint:
            messages.append(
                {
                    "role": "user",
                    "content": "Your previous answer was invalid: "
                    f"{request.repair_hint}\nAnswer again with one corrected JSON object only.",
                }
            )
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": self._temperature,
            "response_format": (
                {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "output",
                        "schema": task.output_json_schema(),
                        "strict": True,
                    },
                }
                if json_schema
                else {"type": "json_object"}
            ),
        }
        if self._logprobs:
            body["logprobs"] = True
        if self._max_tokens is not None:
            body["max_tokens"] = self._max_tokens
        return body

    def _candidate(self, raw: bytes) -> Candidate:
        try:
            payload = jsontext.loads(raw)
        except ValueError:
            raise retryable("bad_response", "the model server's answer is not JSON") from None
        if not isinstance(payload, dict):
            raise retryable("bad_response", "the model server's answer is not a JSON object")
        usage = self._usage(payload.get("usage"))
        choices = payload.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        message = choice.get("message") if isinstance(choice, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            raise ProviderError(
                "bad_response",
                "the model server's answer has no message content",
                retryable=True,
                usage=usage,
            )
        assert isinstance(choice, dict)
        return Candidate(output=content, usage=usage, confidence=_confidence(choice))

    def _usage(self, usage: Any) -> Usage:
        if not isinstance(usage, dict):
            return Usage(cost=self._price.cost(0, 0))
        tokens_in = _count(usage.get("prompt_tokens"))
        tokens_out = _count(usage.get("completion_tokens"))
        return Usage(tokens_in, tokens_out, self._price.cost(tokens_in, tokens_out))


def system_message(task: TaskSpec) -> str:
    """The task's instructions, the output schema as compact JSON, and the answer format."""
    parts = [task.instructions.strip()] if task.instructions.strip() else []
    parts.append(
        "Answer with one JSON object only, no other text, following this JSON Schema: "
        + _compact(task.output_json_schema())
    )
    return "\n\n".join(parts)


def _compact(value: Mapping[str, Any]) -> str:
    return jsontext.dumps(value).decode()


def _rejects_json_schema(raw: bytes) -> bool:
    text = raw.decode("utf-8", errors="replace").lower()
    return any(marker in text for marker in _REJECTION_MARKERS)


def _seconds(headers: Mapping[str, str]) -> float | None:
    """The Retry-After header in seconds (the delta form; an HTTP date is ignored); `headers`
    has lower-case names."""
    try:
        return max(0.0, float(headers.get("retry-after", "")))
    except ValueError:
        return None


def _status_error(status: int, retry_after: float | None = None) -> ProviderError:
    message = f"the model server answered HTTP {status}"
    if status == 429 or status >= 500:
        error_class = "rate_limited" if status == 429 else "server_error"
        return ProviderError(error_class, message, retryable=True, retry_after=retry_after)
    if status in (401, 403):
        return fatal("auth", f"{message}; check the API key")
    return fatal("bad_request", message)


def _confidence(choice: Mapping[str, Any]) -> float | None:
    """exp(sum of token log-probabilities), clamped to [0, 1]; None without logprobs."""
    logprobs = choice.get("logprobs")
    tokens = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(tokens, list) or not tokens:
        return None
    try:
        total = math.fsum(float(t["logprob"]) for t in tokens)
    except (KeyError, TypeError, ValueError):
        return None
    if math.isnan(total):
        return None
    return min(1.0, max(0.0, math.exp(min(total, 0.0))))


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
