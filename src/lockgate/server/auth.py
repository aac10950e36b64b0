"""Authentication and authorisation: one dependency, checked against `security.PERMISSIONS`.

A key that was found live is trusted for `settings.api_key_cache_seconds` (a few seconds) by
the process that checked it, so a busy client costs one key lookup per few seconds rather than
one per request. That is the revocation delay: `lockgate keys revoke` stops a key at once in
the database, and within that bound on every replica. Unknown and revoked keys are never
remembered: every failed check reaches the database and counts towards the 429.
"""

from __future__ import annotations

import time

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lockgate.errors import TooManyAttempts, Unauthorized
from lockgate.runtime import Runtime
from lockgate.security import Action, ApiKey, Principal, hash_key, least_role
from lockgate.server.attempts import FailedAttempts

bearer = HTTPBearer(auto_error=False, description="An API key from `lockgate keys create`.")


async def get_runtime(request: Request) -> Runtime:
    # async on purpose: FastAPI runs a plain `def` dependency in a worker thread, which costs
    # more than everything this does.
    runtime: Runtime = request.app.state.runtime
    return runtime


def failed_attempts(request: Request) -> FailedAttempts:
    attempts: FailedAttempts = request.app.state.failed_attempts
    return attempts


def client_address(request: Request) -> str | None:
    """The caller's address as uvicorn reports it (behind a proxy, the forwarded one when
    `--forwarded-allow-ips` trusts the proxy)."""
    return request.client.host if request.client is not None else None


def refuse_if_too_many(request: Request, secret: str) -> None:
    """Count a failed key check; a 429 with `Retry-After` past the limit."""
    wait = failed_attempts(request).failed(client_address(request), secret)
    if wait is not None:
        raise TooManyAttempts(
            "too many failed API-key checks from this address or with this key",
            hint=f"wait {wait} s, then send a valid key",
            retry_after_seconds=wait,
        )


class KeyCache:
    """Live keys this process checked recently, by the hash of their secret."""

    MAX_KEYS = 10_000
    """Kept at most; past it the cache starts afresh (bounded memory under key spraying)."""

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl_seconds = ttl_seconds
        self._keys: dict[str, tuple[float, ApiKey]] = {}

    async def authenticate(self, runtime: Runtime, secret: str) -> ApiKey | None:
        """The live key with this secret, from the cache or the database; None if unknown or
        revoked."""
        digest = hash_key(secret)
        now = time.monotonic()
        cached = self._keys.get(digest)
        if cached is not None and now < cached[0]:
            return cached[1]
        key = await runtime.store.executor.read(runtime.store.keys.authenticate, secret)
        if key is None:
            self._keys.pop(digest, None)
        elif self.ttl_seconds > 0:
            if len(self._keys) >= self.MAX_KEYS:
                self._keys.clear()
            self._keys[digest] = (now + self.ttl_seconds, key)
        return key


def key_cache(request: Request) -> KeyCache:
    cache: KeyCache = request.app.state.key_cache
    return cache


class Authorize:
    """`Depends(Authorize("decide"))`: the caller's key, allowed to do `action` on the task
    named in the path (if any); 401 without a valid key, 403 without the permission."""

    def __init__(self, action: Action) -> None:
        self.action = action

    async def __call__(
        self,
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
        runtime: Runtime = Depends(get_runtime),
    ) -> Principal:
        if credentials is None:
            raise Unauthorized(
                "this endpoint needs an API key",
                hint="send `Authorization: Bearer KEY`; `lockgate keys create --name my-client "
                f"--role {least_role(self.action)}` makes one",
            )
        key = await key_cache(request).authenticate(runtime, credentials.credentials)
        if key is None:
            refuse_if_too_many(request, credentials.credentials)
            raise Unauthorized(
                "the API key is unknown or revoked",
                hint="check the key, or ask an admin for a new one",
            )
        principal = Principal.of(key)
        principal.require(self.action, request.path_params.get("task"))
        return principal
