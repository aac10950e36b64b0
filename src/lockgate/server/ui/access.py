"""Who is visiting the review pages: the signed session cookie, the server-side session and
key behind it (looked up on every request, so sign-out, a revoked key and expiry end it at
once), and the CSRF and same-origin checks every form post passes before anything changes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread
from fastapi import Request
from fastapi.responses import Response

from lockgate.runtime import Runtime
from lockgate.security import ApiKey, Principal
from lockgate.server.ui.pages import BASE, Templates
from lockgate.server.ui.sessions import (
    COOKIE_NAME,
    CSRF_FIELD,
    Session,
    SessionSigner,
    SessionStore,
    same_origin,
    token_matches,
)

T = TypeVar("T")


async def run(fn: Callable[..., T], *args: Any) -> T:
    """A blocking store or review call, off the event loop."""
    return await anyio.to_thread.run_sync(partial(fn, *args))


def sessions_of(runtime: Runtime) -> SessionStore:
    return runtime.store.sessions


def at(unix_seconds: int) -> datetime:
    return datetime.fromtimestamp(unix_seconds, UTC)


@dataclass
class Visit:
    """One request's view of the session: who is signed in, and the cookie to send back."""

    request: Request
    runtime: Runtime
    session: Session
    principal: Principal | None
    renew: bool
    """The session changed (new, expired, ended, or its key revoked): send the cookie again."""


class Access:
    """Sessions and form checks for the pages (one per app, holding the signing secret)."""

    def __init__(self, signer: SessionSigner, templates: Templates) -> None:
        self.signer = signer
        self.templates = templates

    async def visit(self, request: Request) -> Visit:
        runtime: Runtime = request.app.state.runtime
        now = int(time.time())
        session = self.signer.load(request.cookies.get(COOKIE_NAME), now)
        renew = session is None
        principal = None
        if session is not None and session.session_id is not None:
            key: ApiKey | None = await run(sessions_of(runtime).key_of, session.session_id, at(now))
            if key is not None:
                principal = Principal.of(key)
            else:
                session, renew = None, True
        return Visit(request, runtime, session or self.signer.new(now), principal, renew)

    async def sign_in(self, visit: Visit, key: ApiKey) -> Session:
        """Open a server-side session for the key; the cookie's session, with a new nonce (a
        token seen before signing in is worth nothing after)."""
        now = int(time.time())
        opened = await run(
            sessions_of(visit.runtime).open, key.id, at(now), at(now + self.signer.max_age_seconds)
        )
        return self.signer.new(now, opened)

    async def sign_out(self, visit: Visit) -> Session:
        """End the visit's server-side session (every copy of its cookie with it); the fresh,
        signed-out session to send back."""
        now = int(time.time())
        if visit.session.session_id is not None:
            await run(sessions_of(visit.runtime).close, visit.session.session_id, at(now))
        return self.signer.new(now)

    def send(self, visit: Visit, response: Response, session: Session | None = None) -> Response:
        if session is not None or visit.renew:
            https = visit.request.url.scheme == "https"
            response.set_cookie(
                COOKIE_NAME,
                self.signer.dump(session or visit.session),
                max_age=self.signer.max_age_seconds,
                path=BASE,
                httponly=True,
                samesite="strict",
                secure=https,
            )
        return response

    async def checked_form(self, visit: Visit) -> dict[str, str] | Response:
        """The posted form when it carries this session's token and comes from this site;
        otherwise the 403 page (and nothing is changed)."""
        request = visit.request
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        here = f"{request.url.scheme}://{request.url.netloc}"
        origin_ok = same_origin(request.headers.get("origin"), request.headers.get("referer"), here)
        if origin_ok and token_matches(visit.session, fields.get(CSRF_FIELD)):
            return fields
        page = self.templates.message(
            "Form refused",
            "This form was out of date or did not come from this site, so nothing was changed. "
            "Reload the page and try again.",
            code=403,
            principal=visit.principal,
            csrf_token=visit.session.nonce,
        )
        return self.send(visit, page)
