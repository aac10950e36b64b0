"""`GET /docs`: the API reference, rendered on the server from the OpenAPI description.

It replaces FastAPI's Swagger UI and ReDoc pages, which load their scripts from a CDN: this page
has no script at all, carries a Content-Security-Policy that forbids every other resource,
needs an API key like the API, and is served only when the `api_docs` setting is on.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from lockgate.server.auth import Authorize

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
METHODS = ("get", "post", "put", "patch", "delete")

router = APIRouter(include_in_schema=False)


@router.get("/docs", dependencies=[Depends(Authorize("read_tasks"))])
async def reference(request: Request) -> HTMLResponse:
    return HTMLResponse(render(request.app.openapi()), headers=HEADERS)


def render(spec: dict[str, Any]) -> str:
    info = spec.get("info", {})
    title = f"{info.get('title', 'API')} {info.get('version', '')}".strip()
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)} API reference</title></head><body>",
        f"<h1>{escape(title)} API reference</h1>",
        f"<p>{escape(info.get('description', ''))} The machine-readable description is "
        '<a href="/openapi.json">/openapi.json</a>.</p>',
    ]
    for path, operations in spec.get("paths", {}).items():
        for method in METHODS:
            if method in operations:
                parts.append(_operation(method, path, operations[method]))
    parts.append("</body></html>")
    return "\n".join(parts)


def _operation(method: str, path: str, operation: dict[str, Any]) -> str:
    lines = [f"<section><h2><code>{method.upper()} {escape(path)}</code></h2>"]
    if operation.get("summary"):
        lines.append(f"<p><strong>{escape(operation['summary'])}</strong></p>")
    if operation.get("description"):
        lines.append(f"<pre>{escape(operation['description'])}</pre>")
    parameters = operation.get("parameters", [])
    if parameters:
        lines.append("<h3>Parameters</h3><ul>")
        for p in parameters:
            required = " (required)" if p.get("required") else ""
            schema = p.get("schema", {})
            about = escape(p.get("description") or schema.get("description", ""))
            lines.append(
                f"<li><code>{escape(p['name'])}</code> in {escape(p['in'])}{required} {about}"
                f"{_constraints(schema)}</li>"
            )
        lines.append("</ul>")
    body = operation.get("requestBody", {}).get("content", {})
    if body:
        lines.append("<h3>Body</h3><ul>")
        for media, content in body.items():
            schema = escape(_schema_name(content.get("schema", {})))
            lines.append(f"<li><code>{escape(media)}</code>: {schema}</li>")
        lines.append("</ul>")
    responses = operation.get("responses", {})
    if responses:
        lines.append("<h3>Responses</h3><ul>")
        for status, response in responses.items():
            about = escape(response.get("description", ""))
            media = "".join(
                f" <code>{escape(name)}</code> ({escape(_schema_name(content.get('schema', {})))})"
                for name, content in response.get("content", {}).items()
            )
            headers = "".join(
                f" with <code>{escape(name)}</code>" for name in response.get("headers", {})
            )
            lines.append(f"<li><code>{escape(str(status))}</code>{media}{headers}: {about}</li>")
        lines.append("</ul>")
    lines.append("</section>")
    return "\n".join(lines)


_SHOWN_PATTERN = 80  # longer ones (a calendar date) would run off the page


def _constraints(schema: dict[str, Any]) -> str:
    """What a parameter accepts, as the description states it: values, range, pattern."""
    parts = []
    if "enum" in schema:
        parts.append(
            "one of " + ", ".join(f"<code>{escape(str(v))}</code>" for v in schema["enum"])
        )
    if "minimum" in schema or "maximum" in schema:
        low, high = schema.get("minimum", ""), schema.get("maximum", "")
        parts.append(f"from {escape(str(low))} to {escape(str(high))}".replace("from  ", "up "))
    if "maxLength" in schema:
        parts.append(f"at most {escape(str(schema['maxLength']))} characters")
    pattern = schema.get("pattern")
    if pattern is not None and len(pattern) <= _SHOWN_PATTERN:
        parts.append(f"matching <code>{escape(pattern)}</code>")
    elif pattern is not None:
        parts.append("matching the pattern given in /openapi.json")
    return f" ({'; '.join(parts)})" if parts else ""


def _schema_name(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return ref.rsplit("/", 1)[-1]
    return {"object": "JSON object", "string": "text"}.get(schema.get("type", ""), "JSON")
