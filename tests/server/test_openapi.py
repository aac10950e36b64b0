"""`/openapi.json` describes what the server does: each operation's error statuses as
`application/problem+json`, the required `Idempotency-Key`, and patterns for `reason`, `cursor`
and `since` that accept exactly what the server accepts (issue 11, finding 16). The live
check of all of it is test_openapi_conformance.py (schemathesis)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.server import openapi, params
from tests.server.kit import Api, running_api

PROBLEM = "application/problem+json"

#: The contract, operation by operation: every error status it can answer.
ERRORS = {
    "GET /healthz": [504],
    "GET /readyz": [503, 504],
    "GET /metrics": [401, 403, 429, 503, 504],
    "POST /v1/tasks/{task}/decisions": [400, 401, 403, 404, 409, 413, 415, 422, 429, 503, 504],
    "GET /v1/tasks/{task}/decisions": [400, 401, 403, 422, 429, 503, 504],
    "POST /v1/tasks/{task}/decisions:batch": [400, 401, 403, 404, 413, 415, 422, 429, 503, 504],
    "GET /v1/decisions/{decision_id}": [401, 403, 404, 422, 429, 503, 504],
    "GET /v1/tasks": [401, 403, 429, 503, 504],
    "GET /v1/tasks/{task}/releases": [401, 403, 422, 429, 503, 504],
    "POST /v1/tasks/{task}/releases/{number}:promote": [
        400, 401, 403, 404, 409, 413, 415, 422, 429, 503, 504,
    ],
    "POST /v1/tasks/{task}:rollback": [400, 401, 403, 404, 409, 413, 415, 422, 429, 503, 504],
    "GET /v1/tasks/{task}/shadow-report": [401, 403, 404, 422, 429, 503, 504],
    "POST /v1/tasks/{task}/shadow-report:sample": [
        400, 401, 403, 404, 413, 415, 422, 429, 503, 504,
    ],
    "GET /v1/reviews": [401, 403, 422, 429, 503, 504],
    "GET /v1/reviews/{decision_id}": [401, 403, 404, 422, 429, 503, 504],
    "POST /v1/reviews/{decision_id}/claim": [
        401, 403, 404, 409, 413, 415, 422, 429, 503, 504,
    ],
    "POST /v1/reviews/{decision_id}/approve": [
        400, 401, 403, 404, 409, 413, 415, 422, 429, 503, 504,
    ],
    "POST /v1/reviews/{decision_id}/correct": [
        400, 401, 403, 404, 409, 413, 415, 422, 429, 503, 504,
    ],
    "POST /v1/reviews/{decision_id}/reject": [
        400, 401, 403, 404, 409, 413, 415, 422, 429, 503, 504,
    ],
    "GET /v1/tasks/{task}/suggest-report": [401, 403, 422, 429, 503, 504],
    "POST /v1/decisions/{decision_id}/feedback": [
        400, 401, 403, 404, 413, 415, 422, 429, 503, 504,
    ],
    "GET /v1/spot-checks": [401, 403, 422, 429, 503, 504],
    "POST /v1/spot-checks/{decision_id}/verdict": [
        400, 401, 403, 404, 409, 413, 415, 422, 429, 503, 504,
    ],
    "GET /v1/tasks/{task}/accuracy": [401, 403, 404, 422, 429, 503, 504],
    "GET /v1/tasks/{task}/budget": [401, 403, 404, 422, 429, 503, 504],
    "GET /v1/tasks/{task}/history": [401, 403, 404, 422, 429, 503, 504],
    "POST /v1/intake/{source}": [401, 404, 413, 415, 422, 429, 503, 504],
}  # fmt: skip


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("openapi")
    (root / "lockgate.db").write_bytes(sqlite_template.read_bytes())
    with running_api(root, f"sqlite:///{root / 'lockgate.db'}") as api:
        yield api


@pytest.fixture(scope="module")
def spec(api: Api) -> dict[str, Any]:
    answer = api.client.get("/openapi.json")
    assert answer.status_code == 200
    described: dict[str, Any] = answer.json()
    return described


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def test_every_operation_lists_the_error_statuses_it_can_answer(spec: dict[str, Any]) -> None:
    listed = {
        name: sorted(int(s) for s in operation["responses"] if int(s) >= 400)
        for name, operation in operations(spec)
    }
    assert listed == ERRORS


def test_every_error_is_a_problem_with_its_schema(spec: dict[str, Any]) -> None:
    problem = spec["components"]["schemas"]["Problem"]
    assert problem["required"] == ["type", "title", "status", "detail"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for name, operation in operations(spec):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response["content"] == {
                    PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, f"{name} {status}"
                assert response["description"], f"{name} {status}"


def test_a_refusal_carries_what_its_response_documents(api: Api, spec: dict[str, Any]) -> None:
    anonymous = api.client.get("/v1/tasks")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == PROBLEM
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert set(anonymous.json()) <= set(spec["components"]["schemas"]["Problem"]["properties"])
    documented = spec["paths"]["/v1/tasks"]["get"]["responses"]["401"]["headers"]
    assert documented["WWW-Authenticate"]["required"] is True


def test_a_replayed_decision_is_a_documented_200(spec: dict[str, Any]) -> None:
    responses = spec["paths"]["/v1/tasks/{task}/decisions"]["post"]["responses"]
    assert {"200", "201"} <= set(responses)
    assert "replayed" in responses["200"]["description"]


def test_the_idempotency_key_is_a_required_header_with_its_rule(spec: dict[str, Any]) -> None:
    parameters = spec["paths"]["/v1/tasks/{task}/decisions"]["post"]["parameters"]
    key = next(p for p in parameters if p["name"] == "Idempotency-Key")
    assert key["in"] == "header" and key["required"] is True
    assert key["schema"]["pattern"] == params.HEADER_KEY_PATTERN
    assert key["schema"]["maxLength"] == 255


def test_a_webhook_push_documents_its_body_and_signature_headers(spec: dict[str, Any]) -> None:
    push = spec["paths"]["/v1/intake/{source}"]["post"]
    required = {p["name"]: p["required"] for p in push["parameters"] if p["in"] == "header"}
    assert required == {
        "X-Lockgate-Timestamp": True,
        "X-Lockgate-Signature": True,
        "Idempotency-Key": False,  # a push without one is named by its body's hash
    }
    body = push["requestBody"]
    assert body["required"] is True
    assert [s["type"] for s in body["content"]["application/json"]["schema"]["oneOf"]] == [
        "object",
        "array",
    ]


def test_a_decision_without_an_idempotency_key_is_the_documented_400(api: Api) -> None:
    answer = api.client.post(
        "/v1/tasks/routing/decisions", json={"input": {"text": "t"}}, headers=api.auth("admin")
    )
    assert answer.status_code == 400
    assert "Idempotency-Key" in answer.json()["detail"]


def query_schema(spec: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    parameters = spec["paths"][path]["get"]["parameters"]
    schema: dict[str, Any] = next(p for p in parameters if p["name"] == name)["schema"]
    return schema


def test_cursor_and_since_are_strings_with_the_servers_patterns(spec: dict[str, Any]) -> None:
    path = "/v1/tasks/{task}/decisions"
    assert query_schema(spec, path, "cursor")["pattern"] == params.CURSOR_PATTERN
    assert query_schema(spec, path, "since")["pattern"] == params.SINCE_PATTERN
    for _, operation in operations(spec):
        for parameter in operation.get("parameters", []):
            assert "anyOf" not in parameter["schema"], "a query parameter is never null"


@pytest.mark.parametrize(
    ("schema", "field", "pattern", "longest"),
    [
        ("RejectBody", "reason", params.STATED_PATTERN, 2000),
        ("CorrectBody", "reason", params.STATED_PATTERN, 2000),
        ("ApproveBody", "reason", params.TEXT_PATTERN, 2000),
        ("ChangeBody", "reason", params.TEXT_PATTERN, 1000),
        ("ChangeBody", "override_reason", params.STATED_PATTERN, 1000),
    ],
)
def test_reasons_are_documented_with_their_rule(
    spec: dict[str, Any], schema: str, field: str, pattern: str, longest: int
) -> None:
    described = spec["components"]["schemas"][schema]["properties"][field]
    text = next((b for b in described.get("anyOf", []) if b["type"] == "string"), described)
    assert text["pattern"] == pattern
    assert text["maxLength"] == longest


def test_a_batch_documents_its_item_limit(api: Api, spec: dict[str, Any]) -> None:
    items = spec["components"]["schemas"]["BatchBody"]["properties"]["items"]
    assert items["maxItems"] == api.runtime.settings.batch_max_items


def test_every_listed_outcome_names_a_route(api: Api) -> None:
    names = {route.name for route in openapi.api_routes(api.client.app.routes)}
    assert set(openapi.OUTCOMES) <= names
    assert set(openapi.ALSO_SUCCEEDS) <= names


def test_a_wrong_method_names_every_method_of_the_path(api: Api) -> None:
    answer = api.client.request("PUT", "/v1/tasks/routing/decisions", headers=api.auth("admin"))
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, POST"
    assert answer.headers["content-type"] == PROBLEM


# ---- the patterns accept what the server accepts, and nothing else


def test_blank_is_exactly_what_python_strips() -> None:
    import re

    blank = re.compile(f"[{params.BLANK}]")
    every = (chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    assert {c for c in every if blank.fullmatch(c)} == {
        chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()
    }


@settings(max_examples=300, deadline=None)
@given(st.from_regex(params.SINCE_PATTERN, fullmatch=True))
def test_every_since_of_the_pattern_is_a_point_in_utc(text: str) -> None:
    at = params.parse_since(text)
    assert at.tzinfo == UTC


@pytest.mark.parametrize(
    "text",
    ["-1.28e-59", "1700000000", "2026-02-30", "2025-02-29", "0000-01-01", "2026-01-31T24:00",
     "2026-01-31T09:00:60", "2026-01-31T09", "2026-01-31 09:00", "2026-01-31T09:00+0500",
     "2026-01-31T09:00:00.1234567", "2026-01-31\n", ""],
)  # fmt: skip
def test_since_refuses_what_the_pattern_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        params.parse_since(text)


def test_since_past_the_ends_of_time_becomes_the_first_or_last_instant() -> None:
    assert params.parse_since("0001-01-01T00:00+01:00") == datetime.min.replace(tzinfo=UTC)
    assert params.parse_since("9999-12-31T23:59-01:00") == datetime.max.replace(tzinfo=UTC)
    assert params.parse_since("2024-02-29") == datetime(2024, 2, 29, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(params.CURSOR_PATTERN, fullmatch=True).filter(bool))
def test_every_cursor_of_the_pattern_is_a_position(cursor: str) -> None:
    position = params.decode_cursor(cursor)
    assert position is not None
    at, last_id = position
    assert params.encode_cursor(at, last_id).split("-")[1] == last_id


@given(
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(5000, 1, 1)),
    st.from_regex(r"[0-9a-f]{1,32}", fullmatch=True),
)
def test_a_cursor_names_the_position_it_was_made_from(at: datetime, last_id: str) -> None:
    cursor = params.encode_cursor(at, last_id)
    assert params.decode_cursor(cursor) == (at.replace(tzinfo=UTC), last_id)


@pytest.mark.parametrize("text", ["", " ", "\t\n", "\u3000\x1c", "\x85"])
def test_a_required_reason_of_whitespace_alone_is_refused(text: str) -> None:
    import re

    assert not re.fullmatch(params.STATED_PATTERN, text)
    with pytest.raises(ValueError, match="reason is required"):
        params.stated(text)


@pytest.mark.parametrize("text", ["x", " wrong queue ", "\ufeff", "\u200b"])
def test_a_reason_with_a_visible_or_other_character_is_kept(text: str) -> None:
    import re

    assert re.fullmatch(params.STATED_PATTERN, text)
    assert params.stated(text) == text
