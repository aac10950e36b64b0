"""Who may call what: every role against every endpoint, keys limited to tasks, submitters
seeing only their own decisions, and 401 for missing, wrong or revoked keys."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from lockgate.security import ROLES, Role
from tests.server.kit import Api, running_api


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    allowed: frozenset[str]
    ok: int  # the status an allowed role gets here
    body: Any = None

    def call(self, api: Api, headers: dict[str, str], decision_id: str, key: str) -> Any:
        return api.client.request(
            self.method,
            self.path.format(id=decision_id),
            json=self.body,
            headers={**headers, "Idempotency-Key": key},
        )


#: Every role but `feedback`, which only says whether outcomes were right.
EVERYONE = frozenset(ROLES) - {"feedback"}
ENDPOINTS = [
    Endpoint(
        "POST",
        "/v1/tasks/routing/decisions",
        frozenset({"admin", "submitter"}),
        201,
        {"input": {"text": "new ticket"}},
    ),
    Endpoint(
        "POST",
        "/v1/tasks/routing/decisions:batch",
        frozenset({"admin", "submitter"}),
        200,
        {"items": [{"input": {"text": "t"}, "idempotency_key": "matrix-batch"}]},
    ),
    Endpoint("GET", "/v1/decisions/{id}", EVERYONE, 200),
    Endpoint("GET", "/v1/tasks/routing/decisions", EVERYONE, 200),
    Endpoint("GET", "/v1/tasks", EVERYONE, 200),
    Endpoint("GET", "/v1/tasks/routing/releases", EVERYONE, 200),
    # Release 1 is live already and there is nothing before it: allowed callers get a 409.
    Endpoint("POST", "/v1/tasks/routing/releases/1:promote", frozenset({"admin", "operator"}), 409),
    Endpoint("POST", "/v1/tasks/routing:rollback", frozenset({"admin", "operator"}), 409),
    # The submitter's own decision: a submitter may give feedback on it.
    Endpoint(
        "POST",
        "/v1/decisions/{id}/feedback",
        frozenset({"admin", "feedback", "submitter"}),
        201,
        {"correct": True},
    ),
]


@pytest.fixture
def api(tmp_path: Path, database_url: str) -> Iterator[Api]:
    with running_api(tmp_path, database_url) as api:
        yield api


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[Api]:
    """One API per backend for the matrices below: each test uses its own idempotency keys and
    key names, and no endpoint in them changes what another test of the matrix sees."""
    with running_api(tmp_path_factory.mktemp("roles"), module_database_url) as api:
        yield api


def own_decision(api: Api, key: str) -> str:
    """A decision submitted with the submitter key used below, so it may read it back."""
    response = api.decide("existing ticket", key, role="submitter")
    assert response.status_code == 201, response.text
    decision_id: str = response.json()["id"]
    return decision_id


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(shared_api: Api, role: Role, endpoint: Endpoint) -> None:
    api, case = shared_api, f"{role} {endpoint.method} {endpoint.path}"
    decision_id = own_decision(api, f"existing {case}")
    response = endpoint.call(api, api.auth(role), decision_id, f"new {case}")
    expected = endpoint.ok if role in endpoint.allowed else 403
    assert response.status_code == expected, response.text
    if expected >= 400:
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
@pytest.mark.parametrize("credential", ["none", "wrong", "revoked", "not-bearer"])
def test_every_endpoint_needs_a_valid_key(
    shared_api: Api, endpoint: Endpoint, credential: str
) -> None:
    api, case = shared_api, f"{credential} {endpoint.method} {endpoint.path}"
    decision_id = own_decision(api, f"existing {case}")
    gone = f"gone {case}"
    secret = api.key("admin", name=gone)
    api.runtime.store.keys.revoke(gone, actor="test")
    headers = {
        "none": {},
        "wrong": {"Authorization": "Bearer lg_" + "A" * 43},
        "revoked": {"Authorization": f"Bearer {secret}"},
        "not-bearer": {"Authorization": f"Basic {secret}"},
    }[credential]
    response = endpoint.call(api, headers, decision_id, f"new {case}")
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert secret not in response.text


def test_health_endpoints_need_no_key(api: Api) -> None:
    assert api.client.get("/healthz").status_code == 200
    assert api.client.get("/readyz").status_code == 200


def test_a_submitter_sees_only_its_own_decisions(api: Api) -> None:
    mine = api.decide("mine", "k-mine", role="submitter", name="alice").json()
    theirs = api.decide("theirs", "k-theirs", role="submitter", name="bob").json()
    alice = api.auth("submitter", name="alice")
    listed = api.client.get("/v1/tasks/routing/decisions", headers=alice).json()["items"]
    assert [d["id"] for d in listed] == [mine["id"]]
    assert api.client.get(f"/v1/decisions/{mine['id']}", headers=alice).status_code == 200
    assert api.client.get(f"/v1/decisions/{theirs['id']}", headers=alice).status_code == 404
    # Nor can it fetch bob's decision by replaying bob's idempotency key.
    assert api.decide("theirs", "k-theirs", role="submitter", name="alice").status_code == 409
    viewer = api.client.get("/v1/tasks/routing/decisions", headers=api.auth("viewer"))
    assert len(viewer.json()["items"]) == 2


def test_a_task_limited_key_is_refused_other_tasks(api: Api) -> None:
    limited = api.auth("admin", tasks=("billing",))
    assert api.decide("hi", "k-1", role="admin", tasks=("billing",)).status_code == 403
    for path in ("/v1/tasks/routing/decisions", "/v1/tasks/routing/releases"):
        assert api.client.get(path, headers=limited).status_code == 403
    assert api.client.get("/v1/tasks", headers=limited).json() == {"items": []}
    allowed = api.auth("admin", tasks=("routing",))
    assert api.client.get("/v1/tasks", headers=allowed).json()["items"] == [
        {"name": "routing", "live_release": "routing@1"}
    ]
    created = api.decide("hi", "k-2", role="admin").json()
    assert api.client.get(f"/v1/decisions/{created['id']}", headers=limited).status_code == 404


def test_release_changes_are_audited_with_the_key_name(api: Api) -> None:
    # A second release with other content (as if the task file had changed).
    draft = api.runtime.draft_release(api.runtime.task("routing"))
    api.runtime.store.releases.create(replace(draft, content_hash="f" * 64), "test")
    headers = api.auth("operator", name="ops-bot")
    promoted = api.client.post(
        "/v1/tasks/routing/releases/2:promote", json={"reason": "better"}, headers=headers
    )
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["stage"] == "live"
    rolled = api.client.post("/v1/tasks/routing:rollback", headers=headers)
    assert rolled.json()["ref"] == "routing@1"
    actions = [(e.action, e.actor) for e in api.runtime.store.audit.entries("routing")]
    assert ("release.promote", "ops-bot") in actions
    assert ("release.rollback", "ops-bot") in actions
