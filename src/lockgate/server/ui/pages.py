"""Rendering for the review pages: the Jinja2 templates, the two static files, and the headers
every page carries (no caching of personal data, no framing, scripts only from this server)."""

from __future__ import annotations

from http import HTTPStatus
from importlib import resources
from typing import Any

from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from lockgate.decide.reasons import reason_text
from lockgate.errors import LockgateError

BASE = "/ui"

_STATIC = {"app.css": "text/css; charset=utf-8", "keys.js": "text/javascript; charset=utf-8"}

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_TITLES = {
    401: "Sign-in needed",
    403: "Not allowed",
    404: "Not found",
    409: "Cannot do that now",
    422: "Check the form",
}

#: What every template may use; a page overrides what it knows.
_DEFAULTS: dict[str, Any] = {
    "base": BASE,
    "principal": None,
    "csrf_token": "",
    "done_today": None,
    "report_tasks": (),
    "shadow_tasks": (),
    "nav": "",
    "notice": None,
    "error": None,
}


class Shown:
    """An error as a page shows it: a short title and the message with its hint."""

    def __init__(self, title: str, text: str) -> None:
        self.title = title
        self.text = text

    @classmethod
    def of(cls, exc: LockgateError) -> Shown:
        text = exc.message if exc.hint is None else f"{exc.message}; {exc.hint}"
        text = text[:1].upper() + text[1:]
        return cls(title_for(exc.status), text if text.endswith((".", "?", "!")) else text + ".")


def title_for(status: int) -> str:
    if status in _TITLES:
        return _TITLES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class Templates:
    """The page templates, loaded from the package (built by the router, not at import)."""

    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("lockgate.server.ui", "templates"),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["reason_text"] = reason_text

    def page(self, name: str, *, code: int = 200, **context: Any) -> HTMLResponse:
        """Template `name` as an HTML response with HTTP status `code`."""
        html = self.env.get_template(name).render({**_DEFAULTS, **context})
        return HTMLResponse(html, status_code=code, headers=_HEADERS)

    def message(self, heading: str, text: str, *, code: int, **context: Any) -> HTMLResponse:
        return self.page("message.html", code=code, heading=heading, text=text, **context)


def redirect(path: str) -> RedirectResponse:
    """A 303 after a form post, so reloading the next page never posts again."""
    return RedirectResponse(BASE + path, status_code=303, headers={"Cache-Control": "no-store"})


def static_file(name: str) -> Response:
    if name not in _STATIC:
        return Response("not found", status_code=404, media_type="text/plain")
    body = (resources.files("lockgate.server.ui") / "static" / name).read_bytes()
    return Response(
        body,
        media_type=_STATIC[name],
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
