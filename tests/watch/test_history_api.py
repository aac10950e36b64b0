"""`GET /v1/tasks/{task}/history` and `lockgate history`: what `lockgate serve` rolled up, on
both backends; readable by viewers, refused outside a key's tasks, clear about bad input."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli.kit import lockgate
from tests.server.kit import Api, running_api


def history_when(
    api: Api, decisions: int, query: str = "from=1h&step=1h", backlog: bool = False
) -> dict[str, Any]:
    """The history once serve's roll-up loop has counted `decisions` decisions (and, with
    `backlog`, sampled the backlog after them: a round samples it in a transaction of its
    own, after the decisions')."""
    deadline = time.monotonic() + 20
    while True:
        response = api.client.get(f"/v1/tasks/routing/history?{query}", headers=api.auth("viewer"))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        sampled = not backlog or any(b["review_backlog"] for b in body["buckets"])
        if sum(b["decisions"] for b in body["buckets"]) >= decisions and sampled:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def test_serve_rolls_up_decisions_into_history_that_the_api_and_cli_return(
    tmp_path: Path, database_url: str
) -> None:
    with running_api(tmp_path, database_url, history_rollup_seconds=0.2) as api:
        for n, text in enumerate(["where is my card", "my card was stolen", "refund please"]):
            assert api.decide(text, f"k-{n}").status_code in (200, 201)
        body = history_when(api, 3, backlog=True)
        assert body["task"] == "routing" and body["step"] == "1h"
        (bucket,) = body["buckets"]
        assert bucket["release"] == "routing@1"
        assert (bucket["decisions"], bucket["auto"], bucket["review"]) == (3, 2, 1)
        assert bucket["failed"] == 0 and bucket["reject"] == 0
        assert bucket["labels"]["fraud"] == 1 and sum(bucket["labels"].values()) == 3
        assert bucket["latency_p95_ms"] is not None and bucket["latency_p95_ms"] > 0
        assert sum(bucket["confidence_histogram"].values()) == 3
        assert bucket["verdicts"] == {"approved": 0, "corrected": 0, "rejected": 0}
        # The one review item waits: the backlog is sampled each round.
        assert bucket["review_backlog"] == 1
        per_minute = history_when(api, 3, "from=1h&step=minute")
        assert sum(b["decisions"] for b in per_minute["buckets"]) == 3
        project = api.runtime.settings.project_dir
    # The same figures from the command line, with the server stopped: history survives it.
    result = lockgate("history", "routing", "--from", "1h", "--step", "1h", "--json",
                      cwd=project, database=database_url)  # fmt: skip

    # (the backlog's age is sampled again by the command, so it is left out)
    def without_age(buckets: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in b.items() if k != "review_oldest_s"} for b in buckets]

    assert without_age(json.loads(result.stdout)["buckets"]) == without_age(body["buckets"])
    table = lockgate("history", "routing", "--from", "1h", cwd=project, database=database_url)
    assert "routing@1" in table.stdout and "decisions" in table.stdout


def test_history_is_refused_outside_the_keys_tasks_and_for_bad_input(
    tmp_path: Path, sqlite_database_url: str
) -> None:
    with running_api(tmp_path, sqlite_database_url) as api:
        other = api.client.get(
            "/v1/tasks/routing/history", headers=api.auth("viewer", tasks=("billing",))
        )
        assert other.status_code == 403
        missing = api.client.get("/v1/tasks/nothing/history", headers=api.auth("viewer"))
        assert missing.status_code == 404
        bad = api.client.get("/v1/tasks/routing/history?from=yesterday", headers=api.auth("viewer"))
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert "from" in bad.json()["detail"]
        backwards = api.client.get(
            "/v1/tasks/routing/history?from=1h&to=2h", headers=api.auth("viewer")
        )
        assert backwards.status_code == 200 and backwards.json()["buckets"] == []
        # A step that would make more than 10,000 buckets is widened, and the answer says so.
        wide = api.client.get(
            "/v1/tasks/routing/history?from=900d&step=minute", headers=api.auth("viewer")
        )
        assert wide.status_code == 200 and wide.json()["step"] == "1d"
        assert api.client.get("/v1/tasks/routing/history").status_code == 401
        project = api.runtime.settings.project_dir
    failed = lockgate("history", "routing", "--step", "7s", cwd=project,
                      database=sqlite_database_url, check=False)  # fmt: skip
    assert failed.returncode != 0
    assert failed.stderr.startswith("error: step:") and "Traceback" not in failed.stderr


def test_history_without_a_server_rolls_up_what_the_command_line_decided(
    tmp_path: Path, database_url: str
) -> None:
    from tests.cli.kit import make_project

    project = make_project(tmp_path / "project")
    run = lambda *a: lockgate(*a, cwd=project, database=database_url)  # noqa: E731
    run("release", "create", "routing")
    run("release", "promote", "routing@1")
    run("decide", "routing", "--input", '{"text": "my card was stolen"}')
    run("decide", "routing", "--input", '{"text": "where is my card"}')
    (bucket,) = json.loads(run("history", "routing", "--from", "1h", "--json").stdout)["buckets"]
    assert (bucket["decisions"], bucket["auto"], bucket["review"]) == (2, 1, 1)
    assert bucket["review_backlog"] == 1
    # Asked again, nothing is counted twice.
    again = json.loads(run("history", "routing", "--from", "1h", "--json").stdout)["buckets"]
    assert again[0]["decisions"] == 2


def test_a_task_with_a_wrong_alert_rule_does_not_stop_the_others_alerts(
    tmp_path: Path, sqlite_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from lockgate.decide.decision import utcnow
    from lockgate.server.history import measure
    from tests.cli.kit import DETERMINISTIC_TASK

    with running_api(tmp_path, sqlite_database_url, live=False) as api:
        broken = DETERMINISTIC_TASK.replace("name: routing", "name: billing") + (
            "alerts:\n  - {condition: live_acuracy}\n"
        )
        (api.runtime.settings.tasks_dir / "billing.yaml").write_text(broken)
        with caplog.at_level("ERROR", logger="lockgate.alerts"):
            rules, values = measure(api.runtime, utcnow())
    assert {r.task for r in rules} == {"routing"} and len(values) == len(rules)
    (record,) = [r for r in caplog.records if r.getMessage() == "alerts.rules_invalid"]
    assert record.task == "billing"  # type: ignore[attr-defined]
    assert "alerts.0.condition: unknown condition 'live_acuracy'" in record.error  # type: ignore[attr-defined]
