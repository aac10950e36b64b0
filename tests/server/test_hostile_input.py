"""Hostile input, one list for both databases: each input gets its exact status and problem
type, and nothing is stored or changed on the way (findings of issue 11).

A case's body is raw JSON text, sent as it is, so that escapes such as `\\ud800`, and tokens
such as `NaN`, reach the server the way a hostile client would send them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from lockgate.security import Role
from tests.server.kit import Api, running_api

PROBLEM = "application/problem+json"
DECISIONS = "/v1/tasks/routing/decisions"
BATCH = "/v1/tasks/routing/decisions:batch"
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    """May name `{pending}` (claimed by the reviewer) or `{final}` (approved by it)."""
    body: str | None
    status: int
    type: str
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    role: Role = "admin"
    client: str | None = None
    """The name of the API key sending it (default: one key per role)."""
    detail: str = ""
    """A part of the problem's detail, e.g. the field it names."""


def deep_cursor() -> str:
    return base64.urlsafe_b64encode(b"[" * 3000).decode()


def problem_type(slug: str) -> str:
    return f"urn:lockgate:problem:{slug}"


def decide(
    body: str, key: str = "hostile", content_type: str = "application/json", **kw: Any
) -> Case:
    headers = (("Content-Type", content_type), ("Idempotency-Key", key))
    return Case("POST", DECISIONS, body, headers=headers, **kw)


CASES: list[Any] = [
    # 1: a lone surrogate cannot be encoded as text: 400, naming the field.
    pytest.param(decide(r'{"input": {"text": "a\ud800"}}', status=400,
                        type=problem_type("bad-request"), detail="input.text"),
                 id="lone-surrogate-in-input"),
    pytest.param(decide(r'{"input": {"text": "t"}, "metadata": {"note": "\udfff b"}}',
                        status=400, type=problem_type("bad-request"), detail="metadata.note"),
                 id="lone-surrogate-in-metadata-value"),
    pytest.param(decide(r'{"input": {"text": "t"}, "metadata": {"a\ud800": 1}}', status=400,
                        type=problem_type("bad-request"), detail="metadata"),
                 id="lone-surrogate-in-metadata-key"),
    pytest.param(Case("POST", BATCH,
                      r'{"items": [{"input": {"text": "t"}, "idempotency_key": "k\ud800"}]}',
                      status=400, type=problem_type("bad-request"),
                      detail="body.items.0.idempotency_key"),
                 id="lone-surrogate-in-batch-key"),
    pytest.param(Case("POST", "/v1/reviews/{pending}/reject", r'{"reason": "spam \ud800"}',
                      status=400, type=problem_type("bad-request"), detail="body.reason",
                      role="reviewer"),
                 id="lone-surrogate-in-review-reason"),
    # 2: numbers JSON cannot carry, and NUL in free text: refused alike on both databases.
    pytest.param(decide('{"input": {"text": "t"}, "metadata": {"score": NaN}}', status=400,
                        type=problem_type("bad-request"), detail="metadata.score"),
                 id="nan-in-metadata"),
    pytest.param(decide('{"input": {"text": "t"}, "metadata": {"score": 1e400}}', status=400,
                        type=problem_type("bad-request"), detail="metadata.score"),
                 id="overflowing-number-in-metadata"),
    pytest.param(decide('{"input": {"text": "t"}, "metadata": {"s": [1, -Infinity]}}',
                        status=400, type=problem_type("bad-request"), detail="metadata.s.1"),
                 id="infinity-in-metadata-list"),
    pytest.param(decide('{"input": {"text": "t", "extra": NaN}}', status=400,
                        type=problem_type("bad-request"), detail="input.extra"),
                 id="nan-in-input"),
    pytest.param(Case("POST", "/v1/reviews/{pending}/reject", r'{"reason": "spam\u0000"}',
                      status=422, type=problem_type("unprocessable-entity"), detail="reason",
                      role="reviewer"),
                 id="nul-in-reject-reason"),
    pytest.param(Case("POST", "/v1/reviews/{pending}/approve", r'{"reason": "\u0000"}',
                      status=422, type=problem_type("unprocessable-entity"), detail="reason",
                      role="reviewer"),
                 id="nul-in-approve-reason"),
    pytest.param(Case("POST", "/v1/reviews/{pending}/correct",
                      r'{"output": {"queue": "cards"}, "reason": "a\u0000"}', status=422,
                      type=problem_type("unprocessable-entity"), detail="reason",
                      role="reviewer"),
                 id="nul-in-correct-reason"),
    # 3: a forged cursor nested 3,000 deep.
    pytest.param(Case("GET", f"{DECISIONS}?cursor={deep_cursor()}", None, status=400,
                      type=problem_type("bad-request"), detail="invalid cursor"),
                 id="deeply-nested-forged-cursor"),
    pytest.param(decide('{"input": {"text": "t"}, "metadata": {"x": ' + "[" * 3000
                        + "]" * 3000 + "}}", status=400, type=problem_type("bad-request"),
                        detail="error parsing the body"),
                 id="deeply-nested-body"),
    # 4: `since` is an ISO 8601 date-time, never a number.
    pytest.param(Case("GET", f"{DECISIONS}?since=-1.28e-59", None, status=422,
                      type=problem_type("unprocessable-entity"), detail="query.since"),
                 id="since-as-tiny-number"),
    pytest.param(Case("GET", f"{DECISIONS}?since=1700000000", None, status=422,
                      type=problem_type("unprocessable-entity"), detail="query.since"),
                 id="since-as-unix-seconds"),
    # 9: a taken key, whatever the reason, one answer that does not echo the key.
    pytest.param(decide('{"input": {"text": "another input"}}', key="taken-key", status=409,
                        type=problem_type("conflict"), detail="already in use",
                        role="submitter"),
                 id="key-taken-by-another-input"),
    pytest.param(decide('{"input": {"text": "the first input"}}', key="taken-key", status=409,
                        type=problem_type("conflict"), detail="already in use",
                        role="submitter", client="another-client"),
                 id="key-taken-by-another-client"),
    # 15: acting on an item that is already final.
    pytest.param(Case("POST", "/v1/reviews/{final}/approve", None, status=409,
                      type=problem_type("conflict"), detail="not pending", role="reviewer"),
                 id="approve-again-after-final"),
    pytest.param(Case("POST", "/v1/reviews/{final}/reject", '{"reason": "changed my mind"}',
                      status=409, type=problem_type("conflict"), detail="not pending",
                      role="reviewer"),
                 id="reject-after-final-approval"),
    pytest.param(Case("POST", "/v1/reviews/{final}/claim", None, status=409,
                      type=problem_type("conflict"), detail="not pending", role="reviewer"),
                 id="claim-after-final"),
    # 17: a JSON body sent as a form (curl -d's default) or as plain text.
    pytest.param(decide('{"input": {"text": "t"}}', status=415,
                        type=problem_type("unsupported-media-type"),
                        detail="Content-Type: application/json",
                        content_type="application/x-www-form-urlencoded"),
                 id="json-sent-as-form"),
    pytest.param(Case("POST", "/v1/reviews/{pending}/reject", '{"reason": "spam"}',
                      headers=(("Content-Type", "text/plain"),), status=415,
                      type=problem_type("unsupported-media-type"),
                      detail="Content-Type: application/json", role="reviewer"),
                 id="json-sent-as-text-plain"),
]  # fmt: skip


@dataclass
class Setting:
    api: Api
    pending: str
    final: str


@contextmanager
def prepared(root: Path, database_url: str) -> Iterator[Setting]:
    """An API with a decision under the idempotency key `taken-key`, one pending review
    claimed by the reviewer and one approved by it."""
    with running_api(root, database_url) as api:
        first = api.decide("the first input", "taken-key")
        assert first.status_code == 201, first.text
        ids = []
        for key in ("to-review", "to-finish"):
            made = api.decide("my card was stolen", key)
            assert made.json()["status"] == "pending_review", made.text
            ids.append(made.json()["id"])
            claim = api.client.post(f"/v1/reviews/{ids[-1]}/claim", headers=api.auth("reviewer"))
            assert claim.status_code == 200, claim.text
        approve = api.client.post(f"/v1/reviews/{ids[1]}/approve", headers=api.auth("reviewer"))
        assert approve.json()["status"] == "approved", approve.text
        yield Setting(api, *ids)


@pytest.fixture
def setting(tmp_path: Path, database_url: str) -> Iterator[Setting]:
    with prepared(tmp_path, database_url) as made:
        yield made


@pytest.fixture(scope="module")
def shared_setting(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> Iterator[Setting]:
    """One API per backend for the matrix of hostile inputs: each case shows that its refusal
    changed nothing stored, so the cases cannot disturb one another, and a fresh API per case
    was most of the module's time."""
    with prepared(tmp_path_factory.mktemp("hostile"), module_database_url) as made:
        yield made


def stored(api: Api) -> list[Any]:
    """Every decision and verdict as stored, to show that a refusal changed nothing."""
    listing = api.client.get(DECISIONS + "?limit=500", headers=api.auth("admin")).json()
    return [
        api.client.get(f"/v1/reviews/{d['id']}", headers=api.auth("admin")).json()
        if d["status"] != "decided"
        else d
        for d in listing["items"]
    ]


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_input_gets_its_exact_status_and_problem_type(
    shared_setting: Setting, case: Case
) -> None:
    setting = shared_setting
    api = setting.api
    before = stored(api)
    auth = api.auth(case.role, name=case.client)
    response = api.client.request(
        case.method,
        case.path.format(pending=setting.pending, final=setting.final),
        content=case.body.encode() if case.body is not None else None,
        headers={**auth, **dict(case.headers)},
    )
    assert response.status_code == case.status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert (body["status"], body["type"]) == (case.status, case.type)
    assert case.detail in body["detail"]
    assert "taken-key" not in response.text
    assert stored(api) == before


def test_a_batch_decides_every_item_but_the_one_with_a_lone_surrogate(setting: Setting) -> None:
    api = setting.api
    body = (
        r'{"items": [{"input": {"text": "good one"}, "idempotency_key": "b-0"},'
        r' {"input": {"text": "bad \ud800"}, "idempotency_key": "b-1"},'
        r' {"input": {"text": "t"}, "metadata": {"n": NaN}, "idempotency_key": "b-2"},'
        r' {"input": {"text": "good two"}, "idempotency_key": "b-3"}]}'
    )
    response = api.client.post(
        BATCH, content=body.encode(), headers={**api.auth("submitter"), **JSON}
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [i["index"] for i in items] == [0, 1, 2, 3]
    assert "id" in items[0]["decision"]
    assert "id" in items[3]["decision"]
    assert items[1]["error"]["status"] == 400
    assert "input.text" in items[1]["error"]["detail"]
    assert items[2]["error"]["status"] == 400
    assert "metadata.n" in items[2]["error"]["detail"]
    assert response.json()["errors"] == 2


def test_a_json_body_without_a_content_type_is_read_as_json(setting: Setting) -> None:
    api = setting.api
    response = api.client.post(
        DECISIONS,
        content=json.dumps({"input": {"text": "no header"}}).encode(),
        headers={**api.auth("submitter"), "Idempotency-Key": "no-content-type"},
    )
    assert "content-type" not in response.request.headers
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("hours", [5, -5, 0], ids=["plus-5h", "minus-5h", "utc"])
def test_since_with_an_offset_means_that_instant_on_both_databases(
    setting: Setting, hours: int
) -> None:
    api = setting.api
    made = api.decide("timed", "timed").json()
    created = datetime.fromisoformat(made["created_at"]).astimezone(
        timezone(timedelta(hours=hours))
    )

    def listed(since: datetime) -> list[str]:
        response = api.client.get(
            DECISIONS, params={"since": since.isoformat()}, headers=api.auth("admin")
        )
        assert response.status_code == 200, response.text
        return [d["id"] for d in response.json()["items"]]

    assert made["id"] in listed(created - timedelta(seconds=1))
    assert listed(created + timedelta(seconds=1)) == []


def test_since_may_be_a_date_and_is_then_midnight_utc(setting: Setting) -> None:
    api = setting.api
    made = api.decide("dated", "dated").json()
    day = datetime.fromisoformat(made["created_at"]).date()
    response = api.client.get(
        DECISIONS, params={"since": day.isoformat()}, headers=api.auth("admin")
    )
    assert made["id"] in [d["id"] for d in response.json()["items"]]
    later = (day + timedelta(days=1)).isoformat()
    response = api.client.get(DECISIONS, params={"since": later}, headers=api.auth("admin"))
    assert response.json()["items"] == []
