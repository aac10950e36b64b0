"""The rollout over HTTP: the promote endpoint applies the gate (admins alone may override),
the shadow report endpoint, and the shadow worker running inside the app."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import func, select

from lockgate.store.tables import shadow_runs
from tests.cli.kit import DETERMINISTIC_TASK
from tests.rollout.kit import metrics, record_eval
from tests.server.kit import Api, running_api

GATE = "evaluation:\n  gate_dataset: gate\n  gate:\n    min_accuracy: 0.9\n"


def _candidate(api: Api, text: str) -> int:
    (api.runtime.settings.project_dir / "tasks" / "routing.yaml").write_text(text)
    release, _ = api.runtime.create_release("routing", "test")
    return release.number


def test_promote_refuses_a_failing_gate_and_only_an_admin_may_override(
    tmp_path: Path, database_url: str
) -> None:
    with running_api(tmp_path, database_url) as api:
        number = _candidate(api, DETERMINISTIC_TASK + GATE)
        record_eval(api.runtime.store, number, metrics(accuracy=0.7))
        url = f"/v1/tasks/routing/releases/{number}:promote"

        refused = api.client.post(url, headers=api.auth("operator"))
        assert refused.status_code == 409
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "FAIL min_accuracy = 0.7 (bound 0.9)" in refused.json()["detail"]

        body = {"override_reason": "known gap in the eval set"}
        denied = api.client.post(url, json=body, headers=api.auth("operator"))
        assert denied.status_code == 403
        assert api.runtime.store.releases.live("routing").number == 1

        done = api.client.post(url, json=body, headers=api.auth("admin"))
        assert done.status_code == 200
        assert done.json()["stage"] == "live"
        assert done.json()["gate"]["passed"] is False
        (entry,) = api.runtime.store.audit.entries(action="release.gate_override")
        assert entry.actor == "admin-all"


def test_a_passing_release_is_promoted_with_its_gate_in_the_answer(
    tmp_path: Path, database_url: str
) -> None:
    with running_api(tmp_path, database_url) as api:
        number = _candidate(api, DETERMINISTIC_TASK + GATE)
        record_eval(api.runtime.store, number, metrics(accuracy=0.95))
        done = api.client.post(
            f"/v1/tasks/routing/releases/{number}:promote", headers=api.auth("operator")
        )
        assert done.status_code == 200
        assert done.json()["gate"]["checks"][0] == {
            "check": "min_accuracy",
            "figure": 0.95,
            "threshold": 0.9,
            "passed": True,
            "note": "",
        }


def test_the_app_runs_shadow_work_in_the_background_and_reports_it(
    tmp_path: Path, database_url: str
) -> None:
    with running_api(tmp_path, database_url) as api:
        number = _candidate(api, DETERMINISTIC_TASK.replace("confidence: 0.9", "confidence: 0.85"))
        api.runtime.store.rollout.start_shadow("routing", number, "test")
        for i in range(12):
            answer = api.decide(f"ticket {i}", key=f"shadowed-{i}")
            assert answer.status_code == 201
            assert set(answer.json()) == {
                "id",
                "task",
                "release",
                "idempotency_key",
                "output",
                "confidence",
                "route",
                "status",
                "reason",
                "reason_text",
                "cost",
                "latency_ms",
                "created_at",
                "cached_from",
                "replayed",
            }
            assert answer.json()["release"] == "routing@1"

        def pending() -> int:
            with api.runtime.store.engine.connect() as conn:
                query = select(func.count()).select_from(shadow_runs)
                return int(
                    conn.execute(query.where(shadow_runs.c.status == "pending")).scalar_one()
                )

        deadline = time.monotonic() + 60
        while pending() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pending() == 0, "the in-process shadow worker did not run"

        report = api.client.get("/v1/tasks/routing/shadow-report", headers=api.auth("viewer"))
        assert report.status_code == 200
        body = report.json()
        assert body["release"] == f"routing@{number}"
        assert body["compared"] == 12 and body["agreement"] == 1.0
        missing = api.client.get(
            "/v1/tasks/routing/shadow-report?release=99", headers=api.auth("viewer")
        )
        assert missing.status_code == 404
        sample = api.client.post(
            "/v1/tasks/routing/shadow-report:sample",
            json={"count": 3},
            headers=api.auth("viewer"),
        )
        assert sample.status_code == 403
