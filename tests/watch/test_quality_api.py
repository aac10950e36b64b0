"""Live quality over HTTP: feedback on a decision (who may give it, what a reader of the
decision then sees), spot checks and their verdicts, live accuracy; on both backends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lockgate.monitor.telemetry import build_observer
from lockgate.runtime import Runtime
from lockgate.server import create_app
from lockgate.settings import load_settings
from tests.cli.kit import DETERMINISTIC_TASK, make_project
from tests.server.kit import Api, TestClient

PROBLEM = "application/problem+json"
TASK = (
    DETERMINISTIC_TASK.replace(
        "    answers:\n", '    answers:\n      - {if_contains: "parcel", output: {queue: cards}}\n'
    )
    + "  spot_check_rate: 1.0\n"
)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[Api]:
    root = make_project(tmp_path_factory.mktemp("quality") / "project", TASK)
    config = load_settings(root, database_url=module_database_url, environ={}).with_changes(
        spot_check_interval_seconds=0  # the test sweeps when it wants to
    )
    runtime = Runtime.open(config, observer=build_observer(config))
    api = Api(TestClient(create_app(config, runtime=runtime)), runtime)
    try:
        api.release()
        with api.client:
            yield api
    finally:
        runtime.close()


def decided(api: Api, key: str, name: str = "crm") -> str:
    answer = api.decide(f"a parcel arrived damaged {key}", key, "submitter", name=name)
    assert answer.status_code == 201, answer.text
    assert answer.json()["route"] == "auto"
    return str(answer.json()["id"])


def feedback(api: Api, decision_id: str, body: Any, **key: Any) -> Any:
    return api.client.post(f"/v1/decisions/{decision_id}/feedback", json=body, headers=key)


def test_feedback_is_taken_from_the_feedback_role_and_a_submitter_on_its_own_decision(
    api: Api,
) -> None:
    mine = decided(api, "fb-1")
    answer = feedback(
        api,
        mine,
        {"correct": False, "output": {"queue": "payments"}, "comment": "ana@example.org said so"},
        **api.auth("submitter", name="crm"),
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["correct"] is False and answer.json()["by"] == "crm"
    assert feedback(api, mine, {"correct": True}, **api.auth("feedback")).status_code == 201

    other = feedback(api, mine, {"correct": True}, **api.auth("submitter", name="other"))
    assert other.status_code == 404 and other.headers["content-type"] == PROBLEM
    viewer = feedback(api, mine, {"correct": True}, **api.auth("viewer"))
    assert viewer.status_code == 403 and "may not feedback" in viewer.json()["detail"]
    bad = feedback(api, mine, {"correct": False, "output": {"queue": "x"}}, **api.auth("feedback"))
    assert bad.status_code == 422 and "output schema" in bad.json()["detail"]

    # A reader of the decision sees the feedback, the comment's personal data redacted.
    shown = api.client.get(f"/v1/decisions/{mine}", headers=api.auth("submitter", name="crm"))
    assert shown.status_code == 200
    given = shown.json()["feedback"]
    assert [f["correct"] for f in given] == [False, True]
    assert given[0]["output"] == {"queue": "payments"}
    assert "ana@example.org" not in given[0]["comment"] and "said so" in given[0]["comment"]


def test_a_spot_check_takes_one_verdict_over_http_and_moves_live_accuracy(api: Api) -> None:
    decision_id = decided(api, "sc-1")
    api.runtime.quality.sweep()
    reviewer = api.auth("reviewer")
    listed = api.client.get("/v1/spot-checks?task=routing&limit=500", headers=reviewer).json()
    item = next(i for i in listed["items"] if i["id"] == decision_id)
    assert item["spot_check"]["verdict"] is None and item["status"] == "decided"

    before = api.client.get("/v1/tasks/routing/accuracy", headers=api.auth("viewer")).json()
    judged = before["releases"][0]["n"] if before["releases"] else 0
    answer = api.client.post(
        f"/v1/spot-checks/{decision_id}/verdict", json={"verdict": "approve"}, headers=reviewer
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["spot_check"]["verdict"] == "approve"
    again = api.client.post(
        f"/v1/spot-checks/{decision_id}/verdict",
        json={"verdict": "reject", "reason": "no"},
        headers=api.auth("admin"),
    )
    assert again.status_code == 409 and again.headers["content-type"] == PROBLEM

    after = api.client.get("/v1/tasks/routing/accuracy", headers=api.auth("viewer")).json()
    assert after["releases"][0]["n"] == judged + 1
    shown = api.client.get(f"/v1/decisions/{decision_id}", headers=api.auth("viewer")).json()
    assert shown["status"] == "decided"  # the verdict never changes the decision
    assert shown["spot_check"]["verdict"] == "approve"
    refused = api.client.get("/v1/tasks/routing/accuracy", headers=api.auth("submitter"))
    assert refused.status_code == 403
    submitter_verdict = api.client.post(
        f"/v1/spot-checks/{decision_id}/verdict",
        json={"verdict": "approve"},
        headers=api.auth("submitter"),
    )
    assert submitter_verdict.status_code == 403


def test_serve_queues_spot_checks_by_itself(tmp_path: Path, sqlite_database_url: str) -> None:
    root = make_project(tmp_path / "project", TASK)
    config = load_settings(root, database_url=sqlite_database_url, environ={}).with_changes(
        spot_check_interval_seconds=0.05
    )
    runtime = Runtime.open(config, observer=build_observer(config))
    api = Api(TestClient(create_app(config, runtime=runtime)), runtime)
    try:
        api.release()
        with api.client:
            decision_id = decided(api, "sweep-1")
            deadline = time.monotonic() + 30
            while runtime.store.quality.spot_check(decision_id) is None:
                assert time.monotonic() < deadline, "no spot check queued in 30 s"
                time.sleep(0.05)
    finally:
        runtime.close()
