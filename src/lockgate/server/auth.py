"""Authentication and authorisation: one dependency, checked against `security.PERMISSIONS`."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lockgate.errors import TooManyAttempts, Unauthorized
from lockgate.runtime import Runtime
from lockgate.security import Action, Principal, least_role
from lockgate.server.attempts import FailedAttempts

bearer = HTTPBearer(auto_error=False, description="An API key from `lockgate keys create`.")


def get_runtime(request: Request) -> Runtime:
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
        key = await runtime.store.executor.read(
            runtime.store.keys.authenticate, credentials.credentials
        )
        if key is None:
            refuse_if_too_many(request, credentials.credentials)
            raise Unauthorized(
                "the API key is unknown or revoked",
                hint="check the key, or ask an admin for a new one",
            )
        principal = Principal.of(key)
        principal.require(self.action, request.path_params.get("task"))
        return principal
