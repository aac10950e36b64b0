"""Errors as `application/problem+json` (RFC 9457): one renderer for every error the API returns.

A problem says what is wrong and how to fix it; it never carries input values or secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import fastapi.routing
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from lockgate.errors import (
    BudgetExceeded,
    LockgateError,
    TooManyAttempts,
    Unavailable,
    retry_after_seconds,
)
from lockgate.store.database import unavailable

MEDIA_TYPE = "application/problem+json"

_DEFAULT_DETAIL = {
    401: (
        "send an API key as `Authorization: Bearer KEY`; "
        "`lockgate keys create --name my-client --role submitter` makes one"
    ),
    404: "no such endpoint; /openapi.json lists the API",
    405: "this endpoint does not accept this method; /openapi.json lists the API",
    413: "the request body is too large; send less data per request (setting max_body_bytes)",
}


class BodyTooLarge(HTTPException):
    """Raised while reading a body past the limit (an HTTPException so FastAPI passes it on)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"the request body is larger than {limit} bytes; send fewer or smaller inputs "
            "per request",
        )


def slug(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "-")
    except ValueError:
        return "error"


def problem(
    status: int, detail: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body = {
        "type": f"urn:lockgate:problem:{slug(status)}",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc) or "request"


async def _lockgate_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LockgateError)
    return lockgate_problem(exc)


def lockgate_problem(exc: LockgateError) -> JSONResponse:
    """The problem for one of Lockgate's own errors: its status, message and hint."""
    detail = exc.message if exc.hint is None else f"{exc.message}; {exc.hint}"
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    if isinstance(exc, Unavailable | TooManyAttempts | BudgetExceeded):
        headers = {"Retry-After": str(exc.retry_after_seconds)}
    if isinstance(exc, BudgetExceeded) and exc.resets_at is not None:
        return problem(exc.status, detail, headers=headers, resets_at=exc.resets_at)
    # Members an error adds (a quarantined input's `quarantine_id`), never input values.
    return problem(exc.status, detail, headers=headers, **getattr(exc, "problem_fields", {}))


def unavailable_problem(retry_after_seconds: int) -> JSONResponse:
    """503: the database was locked or unreachable for as long as the request could wait."""
    return problem(
        503,
        "the database is locked or unreachable; retry later with the same Idempotency-Key "
        "(a stored decision is returned, never made twice)",
        headers={"Retry-After": str(retry_after_seconds)},
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Only where and what, never the offending value: it may be personal data.
    errors = [
        {"field": _field(e.get("loc", ())), "problem": e.get("msg", "")} for e in exc.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['problem']}" for e in errors)
    # Text that is not Unicode (a lone surrogate) is a malformed request, as in the pipeline.
    status = 400 if all(e.get("type") == "string_unicode" for e in exc.errors()) else 422
    return problem(status, f"{detail}; fix these fields and send the request again", errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    try:
        default = HTTPStatus(exc.status_code).phrase
    except ValueError:
        default = ""
    detail = str(exc.detail)
    if detail == default:
        detail = _DEFAULT_DETAIL.get(exc.status_code, detail)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return problem(exc.status_code, detail, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method the requested path takes, for a 405's `Allow` (Starlette names only those
    of the first route whose path matches, e.g. POST but not GET for `/v1/tasks/x/decisions`)."""
    methods: set[str] = set()
    flatten = getattr(fastapi.routing, "iter_route_contexts", iter)  # FastAPI 0.16x nests routes
    for route in flatten(request.app.router.routes):
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    return unexpected_problem(exc, getattr(request.app.state, "settings", None))


def unexpected_problem(exc: Exception, settings: Any) -> JSONResponse:
    """500 for an error no handler knows; 503 if it is the database being unavailable (a store
    call made outside the store's executor, e.g. in a thread)."""
    if unavailable(exc):
        timeout = settings.request_timeout_seconds if settings is not None else 1.0
        return unavailable_problem(retry_after_seconds(timeout))
    return problem(500, "an unexpected error occurred; it was not caused by the request")


def install(app: FastAPI) -> None:
    app.add_exception_handler(LockgateError, _lockgate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
