"""Budgets and the records that are pushed or read mid-batch: a refusing limit never turns a
record into a failed decision. A webhook push at the limit gets 429 with Retry-After (when
the limit resets) and a problem naming the limit, and nothing of it is stored; a batch
crossing the limit keeps the records before the first refused one, stores nothing of the
rest and leaves the cursor before them. Against the fault-injecting upstream, both backends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lockgate.runtime import Runtime
from lockgate.server import create_app
from lockgate.settings import load_settings
from lockgate.testing.fault_server import Fault, FaultServer
from tests.cli.kit import lockgate, make_project
from tests.intake.kit import decision_keys, drop, folder_source, intake_once, query, show
from tests.intake.test_webhook import signed

HEAD = """\
name: routing
input:
  text: {type: string}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
models:
  - {provider: openai, model: test-model, retries: 0, logprobs: true, max_tokens: 20}
budget:
  per_day: {calls: LIMIT}
  on_hard_limit: refuse
sources:
"""
WEBHOOK = """\
  - name: crm
    kind: webhook
    secret_env: CRM_HOOK_SECRET
    key: "{ticket_id}"
    map:
      text: subject
"""


def _project(root: Path, database_url: str, upstream: FaultServer, task: str) -> Path:
    project = make_project(root, task)
    (project / "lockgate.yaml").write_text(
        f"openai_base_url: {upstream.url}\nprices:\n  test-model: {{per_call: 0.001}}\n"
    )
    lockgate("release", "create", "routing", cwd=project, database=database_url)
    lockgate("release", "promote", "routing@1", cwd=project, database=database_url)
    return project


def test_a_push_at_a_refusing_limit_gets_429_with_retry_after_and_stores_nothing(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_HOOK_SECRET", "s3cret-for-tests")
    with FaultServer() as upstream:
        upstream.set_default(Fault.logprobs(-0.01))
        project = _project(
            tmp_path / "p", database_url, upstream, HEAD.replace("LIMIT", "2") + WEBHOOK
        )
        settings = load_settings(project, database_url=database_url)
        runtime = Runtime.open(settings)
        try:
            with TestClient(create_app(settings, runtime=runtime)) as client:
                tickets = [{"ticket_id": f"T-{n}", "subject": f"card {n}"} for n in range(3)]
                crossing = client.post("/v1/intake/crm", **signed(tickets, key="p1"))
                at_limit = client.post(
                    "/v1/intake/crm",
                    **signed({"ticket_id": "T-9", "subject": "card 9"}, key="p2"),
                )
        finally:
            runtime.close()
        calls = upstream.request_count

    # The push that crossed the limit: its first two records taken, the third not stored.
    assert crossing.status_code == 429, crossing.text
    assert crossing.headers["content-type"] == "application/problem+json"
    problem = crossing.json()
    assert "per_day limit of task routing (2 calls)" in problem["detail"]
    assert "2 of 3 records of this push were taken" in problem["detail"]
    # At the limit: refused before anything is read or decided.
    assert at_limit.status_code == 429, at_limit.text
    assert int(at_limit.headers["retry-after"]) >= 1
    problem = at_limit.json()
    assert "per_day limit of task routing (2 calls) is reached" in problem["detail"]
    assert "nothing of this push was taken" in problem["detail"]
    assert problem["resets_at"]
    assert calls == 2
    assert sorted(decision_keys(database_url)) == ["crm:T-0", "crm:T-1"]
    statuses = {r[0] for r in query(database_url, "select status from decisions")}
    assert "failed" not in statuses
    assert query(database_url, "select count(*) from intake_quarantine") == [(0,)]
    shown = show(project, database_url, "crm")
    assert (shown["records"], shown["decided"], shown["quarantined"]) == (2, 2, 0)


def test_a_batch_crossing_the_limit_keeps_the_rest_pending_and_decides_it_once_raised(
    tmp_path: Path, database_url: str
) -> None:
    task = HEAD + folder_source(batch_size="5")
    with FaultServer() as upstream:
        upstream.set_default(Fault.logprobs(-0.01))
        project = _project(tmp_path / "p", database_url, upstream, task.replace("LIMIT", "3"))
        drop(project, "tickets.csv", "text\n" + "".join(f"card {n}\n" for n in range(8)))

        [first] = intake_once(project, database_url)
        assert upstream.request_count == 3
        assert first["decided"] == 3 and first["paused"]
        assert "per_day limit of task routing (3 calls)" in first["paused"]
        shown = show(project, database_url, "inbox")
        # The cursor stops after the records decided, not after the batch they were read in.
        assert shown["status"] == "paused"
        assert (shown["cursor"]["row"], shown["records"], shown["decided"]) == (3, 3, 3)
        assert len(decision_keys(database_url)) == 3
        assert (project / "inbox" / "tickets.csv").exists()

        (project / "tasks" / "routing.yaml").write_text(task.replace("LIMIT", "50"))
        lockgate("release", "create", "routing", cwd=project, database=database_url)
        lockgate("release", "promote", "routing@2", cwd=project, database=database_url)
        [rest] = intake_once(project, database_url)
        assert rest["paused"] is None and rest["decided"] == 5
        assert upstream.request_count == 8

    rows = query(database_url, "select idempotency_key, status from decisions")
    assert len(rows) == 8 and len({key for key, _ in rows}) == 8
    assert "failed" not in {status for _, status in rows}
    shown = show(project, database_url, "inbox")
    assert (shown["records"], shown["decided"], shown["duplicates"]) == (8, 8, 0)
    assert (project / "inbox" / "processed" / "tickets.csv").exists()
    report = json.loads((project / "inbox" / "processed" / "tickets.csv.report.json").read_text())
    assert report["decided"] == 8
