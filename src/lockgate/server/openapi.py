"""`/openapi.json` as the server behaves: every error an operation can answer, each an
`application/problem+json` body (the `Problem` schema, what `problems.problem` sends).

FastAPI describes the happy path and a 422 in its own format. `install` completes that once,
on first use: the statuses that follow from how a route is built (its API-key check and the
permission it needs, its parameters and body, its use of the database) are derived from the
route itself; the few that come from what an operation does (`OUTCOMES`) are listed here by
route name, so that one file says what each endpoint can answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from lockgate.security import PERMISSIONS, ROLES
from lockgate.server.auth import Authorize, bearer, get_runtime
from lockgate.server.params import HEADER_KEY_PATTERN, json_body
from lockgate.server.problems import MEDIA_TYPE
from lockgate.settings import Settings

__all__ = ["ALSO_SUCCEEDS", "OUTCOMES", "PROBLEM_SCHEMA", "install"]

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": (
        "An error (RFC 9457): what is wrong and how to fix it. It never carries the request's "
        "values or secrets."
    ),
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {
            "type": "string",
            "pattern": "^urn:lockgate:problem:[a-z-]+$",
            "description": "The kind of problem, from the status: urn:lockgate:problem:not-found.",
            "examples": ["urn:lockgate:problem:conflict"],
        },
        "title": {"type": "string", "description": "The status's phrase: Conflict."},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "What is wrong, then how to fix it."},
        "errors": {
            "type": "array",
            "description": "Invalid fields (a 400 or 422 from the request's own schema).",
            "items": {
                "type": "object",
                "required": ["field", "problem"],
                "properties": {
                    "field": {"type": "string", "examples": ["body.input"]},
                    "problem": {"type": "string"},
                },
            },
        },
        "reasons": {
            "type": "array",
            "description": "Why the process is not ready (503 from /readyz).",
            "items": {"type": "string"},
        },
    },
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

#: What an operation can answer because of what it does, by route name (its function's name).
OUTCOMES: dict[str, dict[int, str]] = {
    "readyz": {
        503: "not ready: the database is unreachable, its schema is not current, or a task "
        "has no live release (`reasons` lists which)",
    },
    "metrics": {
        403: "the key's role may not read tasks (the feedback role)",
        503: "this process does not collect metrics",
    },
    "push": {
        401: "the push is not signed, its signature does not match, or its timestamp is "
        "outside the replay window",
        404: "no webhook source with this name",
        422: "the body is not JSON, is an empty array, has more records than batch_max_items, "
        "or the Idempotency-Key header is not 1-200 printable characters",
        429: "the task's budget has a refusing limit that is reached (the detail names it; "
        "Retry-After and `resets_at` say when it resets): the records not decided are not "
        "stored, so send the push again then",
        503: "the source's secret is not configured, it has too many pushes in flight, or it "
        "is stopped (Retry-After)",
    },
    "create_decision": {
        400: "the Idempotency-Key header is missing, longer than 255 characters or has "
        "control characters",
        404: "no task with this name, or it has no live release",
        409: "the Idempotency-Key is already in use (for another input or by another client)",
        422: "the input does not match the task's input schema; for a task whose file "
        "declares an `api` source, the input could not be mapped and is held in quarantine "
        "(`quarantine_id`; `lockgate quarantine replay ID` decides it)",
        429: "a hard budget limit is reached and the task refuses until the period ends "
        "(Retry-After, `resets_at`); nothing was stored",
    },
    "create_decisions": {404: "no task with this name, or it has no live release"},
    "task_budget": {404: "no task with this name"},
    "task_history": {
        404: "no task with this name",
        422: "`from`, `to` or `step` does not match its pattern (a time, a duration ago, "
        "`now`; a step such as `minute` or `5m`)",
    },
    "get_decision": {404: "no decision with this id that this key may read"},
    "list_decisions": {400: "`cursor` is not a cursor this API issued"},
    "promote": {
        403: "`override_reason` from a role other than admin",
        404: "no such release",
        409: "the release is already live, or it fails its gate (the detail gives the figures)",
    },
    "rollback": {
        404: "the task has no live release",
        409: "there is no earlier live release to go back to",
    },
    "shadow_report": {404: "no shadow runs for the task, or no such release"},
    "sample": {404: "no shadow runs for the task, or no such release"},
    "get_review": {404: "no decision with this id that this key may read"},
    **{
        name: {
            403: "this key submitted the decision, or already approved it (separation of duties)",
            404: "no decision with this id that this key may read",
            409: "the decision is not pending review, is claimed by another reviewer, or this "
            "key's claim has expired",
        }
        for name in ("claim_review", "approve_review", "correct_review", "reject_review")
    },
    "suggest_report": {403: "the submitter role may not read review figures"},
    "give_feedback": {
        404: "no decision with this id that this key may read (a submitter's own only)",
        422: "`output` does not match the task's output schema, comes with `correct: true`, "
        "or the decision has no output to call correct",
    },
    "judge_spot_check": {
        403: "this key submitted the decision (separation of duties)",
        404: "no decision with this id that this key may read, or it has no spot check",
        409: "the spot check already has a verdict",
        422: "`output` does not match the task's output schema or is the model's output, or "
        "a reason is missing",
    },
    "live_accuracy": {
        403: "the submitter role may not read live accuracy",
        404: "no task with this name, or it has no live release",
    },
}
OUTCOMES["correct_review"] = {
    **OUTCOMES["correct_review"],
    422: "`output` does not match the task's output schema",
}

#: Successful answers besides FastAPI's one per route, by route name.
ALSO_SUCCEEDS: dict[str, dict[int, str]] = {
    "create_decision": {
        200: "The decision stored earlier for this Idempotency-Key and the same input "
        "(`replayed: true`); nothing is decided twice."
    },
}

#: Headers an operation cannot go without although its handler reads them as optional (to
#: refuse their absence with a problem that says how to fix it), by operation: the decision
#: endpoint's `Idempotency-Key` (a webhook push may leave it out).
REQUIRED_HEADER_OPERATIONS = ("create_decision_",)
REQUIRED_HEADERS: dict[str, dict[str, Any]] = {
    "Idempotency-Key": {
        "type": "string",
        "maxLength": 255,
        "pattern": HEADER_KEY_PATTERN,
        "description": (
            "A unique key per input, e.g. ticket-4711: 1 to 255 characters, no control "
            "characters. The same key with the same input returns the stored decision (200)."
        ),
        "examples": ["ticket-4711"],
    },
}


def install(app: FastAPI, settings: Settings) -> None:
    """Make `app.openapi()` (and so `/openapi.json` and `/docs`) return the completed
    description, built once."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(generate(), app.routes, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(spec: dict[str, Any], routes: list[Any], settings: Settings) -> dict[str, Any]:
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    limit = schemas.get("BatchBody", {}).get("properties", {}).get("items")
    if limit is not None:
        limit["maxItems"] = settings.batch_max_items
    for route in api_routes(routes):
        for method in route.methods:
            operation = spec["paths"][route.path_format][method.lower()]
            _parameters(operation)
            errors = outcomes(route, operation, settings)
            responses = operation.setdefault("responses", {})
            for status in [s for s in responses if int(s) >= 400]:
                del responses[status]
            for status, about in ALSO_SUCCEEDS.get(route.name, {}).items():
                success = next(r for s, r in responses.items() if s.startswith("2"))
                responses[str(status)] = {**success, "description": about}
            for status, reasons in errors.items():
                responses[str(status)] = _problem_response(status, reasons)
            operation["responses"] = dict(sorted(responses.items()))
    return spec


def outcomes(
    route: APIRoute, operation: dict[str, Any], settings: Settings
) -> dict[int, list[str]]:
    """Every error status `route` can answer, each with why."""
    found: dict[int, list[str]] = {}

    def add(status: int, why: str) -> None:
        found.setdefault(status, []).append(why)

    calls = list(_calls(route.dependant))
    if bearer in calls:
        add(401, "no API key, or an unknown or revoked one")
        add(429, "too many failed API-key checks from this address or with this key")
    for check in (c for c in calls if isinstance(c, Authorize)):
        if any(check.action not in PERMISSIONS[role] for role in ROLES):
            add(403, f"the key's role may not {check.action.replace('_', ' ')}")
        if "{task}" in route.path_format:
            add(403, "the key is limited to other tasks")
    if any(p["in"] in ("path", "query") for p in operation.get("parameters", [])):
        add(422, "a path or query parameter does not match its schema")
    if route.body_field is not None:
        add(400, "a value no JSON text can carry: a lone surrogate, NaN, an overflowing number")
        add(422, "the body is not JSON or does not match its schema")
    if "POST" in (route.methods or ()):  # a body may come, whatever the operation reads of it
        add(413, f"the body is larger than max_body_bytes ({settings.max_body_bytes} bytes)")
        if json_body in calls:
            add(415, "the body is sent with a media type other than JSON")
    if get_runtime in calls:
        add(503, "the database is locked or unreachable; retry after Retry-After seconds")
    # The time limit (server.limits) holds for every request.
    add(
        504,
        f"the request took longer than request_timeout_seconds "
        f"({settings.request_timeout_seconds:g} s)",
    )
    for status, why in OUTCOMES.get(route.name, {}).items():
        add(status, why)
    return found


def api_routes(routes: list[Any]) -> Iterator[Any]:
    """The API routes in the description, each as FastAPI sees it once included (prefix and
    router dependencies applied): an `APIRoute`, or a FastAPI 0.16x route context in its
    place."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", iter)(routes)
    for route in contexts:
        original = getattr(route, "original_route", route)
        if isinstance(original, APIRoute) and route.include_in_schema:
            yield route


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _parameters(operation: dict[str, Any]) -> None:
    """A parameter is absent or a string in the URL or a header, never JSON null; a header
    the handler needs is required."""
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        branches = schema.get("anyOf")
        if branches is not None:
            kept = [b for b in branches if b.get("type") != "null"]
            if len(kept) == 1:
                del schema["anyOf"]
                schema.update(kept[0])
        if (
            parameter["in"] == "header"
            and parameter["name"] in REQUIRED_HEADERS
            and operation.get("operationId", "").startswith(REQUIRED_HEADER_OPERATIONS)
        ):
            parameter["required"] = True
            parameter["schema"] = dict(REQUIRED_HEADERS[parameter["name"]])
            parameter["description"] = parameter["schema"].pop("description")


def _problem_response(status: int, reasons: list[str]) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": "; ".join(dict.fromkeys(reasons)),
        "content": {MEDIA_TYPE: {"schema": _PROBLEM_REF}},
    }
    if status == 401:
        response["headers"] = {
            "WWW-Authenticate": {"required": True, "schema": {"type": "string", "const": "Bearer"}}
        }
    elif status == 429:
        response["headers"] = {"Retry-After": _retry_after(required=True)}
    elif status == 503:
        response["headers"] = {"Retry-After": _retry_after(required=False)}
    return response


def _retry_after(*, required: bool) -> dict[str, Any]:
    return {
        "required": required,
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"},
    }
