"""Authentication and authorisation: one dependency, checked against `security.PERMISSIONS`."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lockgate.errors import Unauthorized
from lockgate.runtime import Runtime
from lockgate.security import Action, Principal, least_role

bearer = HTTPBearer(auto_error=False, description="An API key from `lockgate keys create`.")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


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
            raise Unauthorized(
                "the API key is unknown or revoked",
                hint="check the key, or ask an admin for a new one",
            )
        principal = Principal.of(key)
        principal.require(self.action, request.path_params.get("task"))
        return principal
