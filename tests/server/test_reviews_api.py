"""The review API: who may call it, the claim-then-verdict flow, refusals as problem+json that
say why, the suggest report, and escalation running inside the server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lockgate.security import ROLES, Role
from lockgate.server import create_app
from lockgate.settings import load_settings
from tests.cli.kit import DETERMINISTIC_TASK, database_made_on_purpose, make_project
from tests.server.kit import Api, TestClient, running_api

PROBLEM = "application/problem+json"


@pytest.fixture
def api(tmp_path: Path, database_url: str) -> Iterator[Api]:
    with running_api(tmp_path, database_url) as api:
        yield api


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[Api]:
    """One API per backend for the refusal matrix: a refused call changes nothing, and each
    case submits its own decision."""
    with running_api(tmp_path_factory.mktemp("reviews"), module_database_url) as api:
        yield api


def pending(api: Api, key: str = "k1", role: Role = "submitter", **kwargs: Any) -> str:
    response = api.decide("my card was stolen, mail ana@example.org", key, role, **kwargs)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "pending_review"
    return str(response.json()["id"])


def post(api: Api, path: str, role: Role, body: Any = None, **kwargs: Any) -> Any:
    return api.client.post(path, json=body, headers=api.auth(role, **kwargs))


REVIEW_CALLS = [
    ("GET", "/v1/reviews", None),
    ("GET", "/v1/reviews/{id}", None),
    ("POST", "/v1/reviews/{id}/claim", None),
    ("POST", "/v1/reviews/{id}/approve", None),
    ("POST", "/v1/reviews/{id}/correct", {"output": {"queue": "cards"}, "reason": "lost"}),
    ("POST", "/v1/reviews/{id}/reject", {"reason": "spam"}),
]


@pytest.mark.parametrize("role", [r for r in ROLES if r not in ("admin", "reviewer")])
@pytest.mark.parametrize(("method", "path", "body"), REVIEW_CALLS, ids=lambda v: str(v))
def test_roles_without_the_review_permission_get_403_on_every_review_call(
    shared_api: Api, role: Role, method: str, path: str, body: Any
) -> None:
    api = shared_api
    decision_id = pending(api, key=f"{role} {method} {path}")
    response = api.client.request(
        method, path.format(id=decision_id), json=body, headers=api.auth(role)
    )
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert f"the {role} role may not review" in response.json()["detail"]


def test_review_calls_need_a_key(api: Api) -> None:
    assert api.client.get("/v1/reviews").status_code == 401


def test_a_reviewer_claims_then_approves_and_the_decision_is_final(api: Api) -> None:
    decision_id = pending(api)
    queue = api.client.get("/v1/reviews", headers=api.auth("reviewer")).json()
    assert [i["id"] for i in queue["items"]] == [decision_id]

    claimed = post(api, f"/v1/reviews/{decision_id}/claim", "reviewer")
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["claimed_by"] == "reviewer-all"
    assert claimed.json()["input"] == {"text": "my card was stolen, mail [email]"}
    assert "ana@example.org" not in claimed.text  # the input is shown redacted
    approved = post(api, f"/v1/reviews/{decision_id}/approve", "reviewer", {"reason": "ok"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["verdicts"][0]["reviewer"] == "reviewer-all"

    stored = api.client.get(f"/v1/decisions/{decision_id}", headers=api.auth("viewer")).json()
    assert stored["status"] == "approved"
    assert api.client.get("/v1/reviews", headers=api.auth("reviewer")).json()["items"] == []


def test_a_claim_held_by_another_reviewer_is_a_409_that_names_the_holder(api: Api) -> None:
    decision_id = pending(api)
    assert post(api, f"/v1/reviews/{decision_id}/claim", "reviewer", name="ana").status_code == 200
    second = post(api, f"/v1/reviews/{decision_id}/claim", "reviewer", name="ben")
    assert second.status_code == 409
    assert second.headers["content-type"].startswith(PROBLEM)
    assert "claimed by ana" in second.json()["detail"]
    verdict = post(
        api, f"/v1/reviews/{decision_id}/reject", "reviewer", {"reason": "x"}, name="ben"
    )
    assert verdict.status_code == 409
    assert "claimed by ana" in verdict.json()["detail"]


def test_an_approval_needs_no_body(api: Api) -> None:
    decision_id = pending(api)
    post(api, f"/v1/reviews/{decision_id}/claim", "reviewer")
    approved = api.client.post(f"/v1/reviews/{decision_id}/approve", headers=api.auth("reviewer"))
    assert approved.status_code == 200, approved.text
    assert approved.json()["verdicts"][0]["reason"] is None


def test_the_submitting_key_may_not_review_its_own_decision(api: Api) -> None:
    decision_id = pending(api, role="admin")  # admin may decide and review
    refused = post(api, f"/v1/reviews/{decision_id}/claim", "admin")
    assert refused.status_code == 403
    assert "submitted the decision" in refused.json()["detail"]


def test_an_invalid_correction_is_a_422_that_names_the_field_not_the_value(api: Api) -> None:
    decision_id = pending(api)
    post(api, f"/v1/reviews/{decision_id}/claim", "reviewer")
    body = {"output": {"queue": "secret-value-xyz"}, "reason": "wrong"}
    refused = post(api, f"/v1/reviews/{decision_id}/correct", "reviewer", body)
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith(PROBLEM)
    assert "queue: must be one of" in refused.json()["detail"]
    assert "secret-value-xyz" not in refused.text

    corrected = post(
        api, f"/v1/reviews/{decision_id}/correct", "reviewer", {"output": {"queue": "cards"},
                                                                 "reason": "only lost"}
    )  # fmt: skip
    assert (corrected.json()["status"], corrected.json()["output"]) == (
        "corrected",
        {"queue": "cards"},
    )


def test_a_reject_without_a_reason_is_refused(api: Api) -> None:
    decision_id = pending(api)
    post(api, f"/v1/reviews/{decision_id}/claim", "reviewer")
    assert post(api, f"/v1/reviews/{decision_id}/reject", "reviewer", {}).status_code == 422
    blank = post(api, f"/v1/reviews/{decision_id}/reject", "reviewer", {"reason": " "})
    assert blank.status_code == 422
    assert "reason is required" in blank.json()["detail"]


@pytest.mark.parametrize(("role", "status"), [("viewer", 200), ("reviewer", 200),
                                              ("operator", 200), ("submitter", 403)])  # fmt: skip
def test_the_suggest_report_is_for_every_role_but_submitters(
    api: Api, role: Role, status: int
) -> None:
    response = api.client.get("/v1/tasks/routing/suggest-report", headers=api.auth(role))
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["overall"]["reviewed"] == 0


def test_lockgate_serve_escalates_overdue_items_in_the_background(tmp_path: Path) -> None:
    task = DETERMINISTIC_TASK + "  review_sla_minutes: 0.0001\n"
    project = make_project(tmp_path / "project", task)
    settings = load_settings(
        project,
        database_url=database_made_on_purpose(f"sqlite:///{tmp_path}/db.sqlite"),
        environ={},
    ).with_changes(review_escalation_interval_seconds=0.05)
    with TestClient(create_app(settings)) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        release, _ = runtime.create_release("routing", "test")
        runtime.store.releases.promote("routing", release.number, "test")
        _, submitter = runtime.store.keys.create("client", "submitter", (), actor="test")
        _, reviewer = runtime.store.keys.create("rita", "reviewer", (), actor="test")
        created = client.post(
            "/v1/tasks/routing/decisions",
            json={"input": {"text": "card stolen"}},
            headers={"Authorization": f"Bearer {submitter}", "Idempotency-Key": "one"},
        )
        assert created.json()["status"] == "pending_review"
        deadline = time.monotonic() + 30
        item: dict[str, Any] = {}
        while time.monotonic() < deadline and not item.get("escalated"):
            time.sleep(0.05)
            item = client.get(
                f"/v1/reviews/{created.json()['id']}",
                headers={"Authorization": f"Bearer {reviewer}"},
            ).json()
        assert item["escalated"] is True
        assert item["priority"] == 100
