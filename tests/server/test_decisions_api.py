"""Deciding over HTTP: idempotency, problems for bad requests, batches, reading and listing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.kit import Api, running_api

PROBLEM = "application/problem+json"


@pytest.fixture
def api(tmp_path: Path, database_url: str) -> Iterator[Api]:
    with running_api(tmp_path, database_url) as api:
        yield api


def assert_problem(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["type"] and body["title"] and body["detail"]
    return body


def test_a_new_decision_is_created_with_201(api: Api) -> None:
    response = api.decide("My card was stolen", "k-1")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["output"] == {"queue": "fraud"}
    assert body["release"] == "routing@1"
    assert body["route"] == "review" and body["status"] == "pending_review"
    assert body["replayed"] is False
    assert "input" not in body


def test_the_same_key_and_body_replays_the_stored_decision_with_200(api: Api) -> None:
    first = api.decide("My card was stolen", "k-1").json()
    again = api.decide("My card was stolen", "k-1")
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert again.json()["replayed"] is True


def test_the_same_key_with_another_body_is_a_409_that_does_not_echo_the_key(api: Api) -> None:
    api.decide("My card was stolen", "k-1")
    body = assert_problem(api.decide("Where is my refund", "k-1"), 409)
    assert "already in use" in body["detail"]
    assert "k-1" not in str(body)


def test_bad_input_is_a_422_naming_the_field_without_echoing_the_value(api: Api) -> None:
    secret = "x" * 4001 + "jane@example.com"
    body = assert_problem(api.decide(secret, "k-1"), 422)
    assert "text" in body["detail"]
    assert "jane@example.com" not in str(body)


def test_a_body_that_is_not_the_schema_is_a_422_naming_the_field(api: Api) -> None:
    response = api.client.post(
        "/v1/tasks/routing/decisions",
        json={"inputs": {"text": "jane@example.com"}},
        headers={**api.auth("submitter"), "Idempotency-Key": "k-1"},
    )
    body = assert_problem(response, 422)
    assert "body.input" in body["detail"]
    assert "jane@example.com" not in str(body)


def test_malformed_json_is_a_422_problem(api: Api) -> None:
    response = api.client.post(
        "/v1/tasks/routing/decisions",
        content=b'{"input": {"text": "jane@example.com"',
        headers={
            **api.auth("submitter"),
            "Idempotency-Key": "k-1",
            "Content-Type": "application/json",
        },
    )
    body = assert_problem(response, 422)
    assert "jane@example.com" not in str(body)


def test_a_missing_idempotency_key_is_a_400(api: Api) -> None:
    response = api.client.post(
        "/v1/tasks/routing/decisions",
        json={"input": {"text": "hello"}},
        headers=api.auth("submitter"),
    )
    body = assert_problem(response, 400)
    assert "Idempotency-Key" in body["detail"]


def test_an_unknown_task_and_an_unknown_route_are_404_problems(api: Api) -> None:
    response = api.client.post(
        "/v1/tasks/nope/decisions",
        json={"input": {"text": "hello"}},
        headers={**api.auth("submitter"), "Idempotency-Key": "k-1"},
    )
    assert_problem(response, 404)
    assert_problem(api.client.get("/v1/nothing-here", headers=api.auth("admin")), 404)


def test_a_body_over_the_limit_is_a_413_problem(tmp_path: Path, database_url: str) -> None:
    with running_api(tmp_path, database_url, max_body_bytes=1000) as api:
        response = api.decide("a" * 2000, "k-1")
        assert_problem(response, 413)


def test_a_batch_reports_each_item_good_or_bad_in_order(api: Api) -> None:
    api.decide("first", "b-1")
    items = [
        {"input": {"text": "My card was stolen"}, "idempotency_key": "b-0"},
        {"input": {"text": "first"}, "idempotency_key": "b-1"},
        {"input": {"wrong": "jane@example.com"}, "idempotency_key": "b-2"},
        {"input": {"text": "other"}, "idempotency_key": "b-1"},
    ]
    response = api.client.post(
        "/v1/tasks/routing/decisions:batch", json={"items": items}, headers=api.auth("submitter")
    )
    assert response.status_code == 200, response.text
    results = response.json()["items"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert results[0]["decision"]["output"] == {"queue": "fraud"}
    assert results[1]["decision"]["replayed"] is True
    assert results[2]["error"]["status"] == 422
    assert results[3]["error"]["status"] == 409
    assert response.json()["errors"] == 2
    assert "jane@example.com" not in response.text


def test_a_batch_over_the_configured_size_is_refused(tmp_path: Path, database_url: str) -> None:
    with running_api(tmp_path, database_url, batch_max_items=2) as api:
        items = [{"input": {"text": "t"}, "idempotency_key": f"b-{i}"} for i in range(3)]
        response = api.client.post(
            "/v1/tasks/routing/decisions:batch",
            json={"items": items},
            headers=api.auth("submitter"),
        )
        assert "at most 2" in assert_problem(response, 422)["detail"]


def test_a_decision_is_read_by_id_with_its_attempts(api: Api) -> None:
    created = api.decide("My card was stolen", "k-1").json()
    response = api.client.get(f"/v1/decisions/{created['id']}", headers=api.auth("viewer"))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == created["id"]
    assert [a["provider"] for a in body["attempts"]] == ["deterministic"]
    assert_problem(api.client.get("/v1/decisions/" + "0" * 26, headers=api.auth("viewer")), 404)


def test_listing_pages_through_every_decision_newest_first(api: Api) -> None:
    ids = [api.decide(f"ticket {i}", f"k-{i}").json()["id"] for i in range(7)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        response = api.client.get(
            "/v1/tasks/routing/decisions", params=params, headers=api.auth("viewer")
        )
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [d["id"] for d in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(ids))


def test_listing_filters_by_status_and_route(api: Api) -> None:
    api.decide("My card was stolen", "k-1")
    api.decide("hello", "k-2")
    response = api.client.get(
        "/v1/tasks/routing/decisions",
        params={"status": "pending_review", "route": "review", "since": "2000-01-01T00:00:00Z"},
        headers=api.auth("viewer"),
    )
    assert [d["idempotency_key"] for d in response.json()["items"]] == ["k-1"]


def test_a_forged_cursor_is_a_400_problem(api: Api) -> None:
    response = api.client.get(
        "/v1/tasks/routing/decisions", params={"cursor": "!!nope"}, headers=api.auth("viewer")
    )
    assert_problem(response, 400)


def test_readyz_is_503_with_reasons_until_a_release_is_live(
    tmp_path: Path, database_url: str
) -> None:
    with running_api(tmp_path, database_url, live=False) as api:
        assert api.client.get("/healthz").status_code == 200
        body = assert_problem(api.client.get("/readyz"), 503)
        assert "routing has no live release" in body["detail"]
        api.release()
        ready = api.client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready"}


def test_openapi_is_served(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    assert "/v1/tasks/{task}/decisions" in spec["paths"]


def test_an_unknown_task_is_named_as_such_with_the_close_names(api: Api) -> None:
    response = api.client.post(
        "/v1/tasks/routin/decisions",
        json={"input": {"text": "hi"}},
        headers={**api.auth("submitter"), "Idempotency-Key": "u-1"},
    )
    body = assert_problem(response, 404)
    assert "there is no task named 'routin'" in body["detail"]
    assert "did you mean routing?" in body["detail"]
    assert "release create" not in body["detail"]


def test_a_decision_carries_its_reason_as_a_sentence_beside_the_machine_form(api: Api) -> None:
    body = api.decide("My card was stolen", "r-1").json()
    assert body["reason"] == "policy.review_when.0 matched (output queue equals fraud)"
    assert body["reason_text"] == "queue is fraud: the policy sends fraud to review"
