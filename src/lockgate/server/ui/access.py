"""Who is visiting the review pages: the signed session cookie, the key behind it (checked
against the store on every request, so a revoked key is out at once), and the CSRF and
same-origin checks every form post passes before anything changes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
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
    same_origin,
    token_matches,
)

T = TypeVar("T")


async def run(fn: Callable[..., T], *args: Any) -> T:
    """A blocking store or review call, off the event loop."""
    return await anyio.to_thread.run_sync(partial(fn, *args))


def key_by_id(runtime: Runtime, key_id: str) -> ApiKey | None:
    stored = runtime.store.keys.list_all()
    return next((k for k in stored if k.id == key_id), None)


@dataclass
class Visit:
    """One request's view of the session: who is signed in, and the cookie to send back."""

    request: Request
    runtime: Runtime
    session: Session
    principal: Principal | None
    renew: bool
    """The session changed (new, expired, or its key revoked): send the cookie again."""


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
        if session is not None and session.key_id is not None:
            key = await run(key_by_id, runtime, session.key_id)
            if key is not None and not key.revoked:
                principal = Principal.of(key)
            else:
                session, renew = None, True
        return Visit(request, runtime, session or self.signer.new(now), principal, renew)

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
