"""A hard budget limit holds across processes: two `lockgate serve` on one database (PostgreSQL,
and one SQLite file), 64 concurrent requests each, against a real OpenAI-compatible server
that counts what it receives. The upstream's count is the truth: it never passes the limit,
every other request is refused with 429, and the ledger equals the count."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from lockgate.testing.fault_server import Fault, FaultServer
from tests.cli.kit import lockgate, make_project
from tests.server.test_group_commit import LoggedServer
from tests.server.test_serve import submitter_key

LIMIT = 20
PER_REPLICA = 64

TASK = f"""\
name: routing
input:
  text: {{type: string, max_length: 4000}}
output:
  queue: {{type: enum, values: [cards, payments, fraud, other]}}
models:
  - {{provider: openai, model: test-model, timeout_s: 20, retries: 0, logprobs: true,
     max_tokens: 20}}
budget:
  per_day: {{calls: {LIMIT}}}
  on_hard_limit: refuse
"""


def test_two_replicas_never_pass_a_hard_limit_of_calls(tmp_path: Path, database_url: str) -> None:
    with FaultServer() as upstream:
        # A valid, confident answer, a little slow, so that the replicas' calls overlap.
        upstream.set_default(Fault.logprobs(-0.01).after(0.05))
        project = make_project(tmp_path / "project", TASK)
        (project / "lockgate.yaml").write_text(
            f"openai_base_url: {upstream.url}\n"
            "prices:\n  test-model: {per_call: 0.001, input_per_1k: 0.001}\n"
        )
        run = lambda *a: lockgate(*a, cwd=project, database=database_url)  # noqa: E731
        run("release", "create", "routing")
        run("release", "promote", "routing@1")
        key = submitter_key(project, database_url)
        servers = [
            LoggedServer(project, database_url, tmp_path / f"serve-{n}.log") for n in range(2)
        ]
        try:
            bases = [server.wait_until_serving() for server in servers]

            def post(job: tuple[int, str]) -> httpx.Response:
                n, base = job
                return httpx.post(
                    f"{base}/v1/tasks/routing/decisions",
                    json={"input": {"text": f"ticket {n}: my card was charged twice"}},
                    headers={"Authorization": f"Bearer {key}", "Idempotency-Key": f"k-{n}"},
                    timeout=60,
                )

            jobs = [(n, bases[n % 2]) for n in range(2 * PER_REPLICA)]
            with ThreadPoolExecutor(max_workers=2 * PER_REPLICA) as pool:
                responses = list(pool.map(post, jobs))
            report = httpx.get(
                f"{bases[1]}/v1/tasks/routing/budget",
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
        finally:
            for server in servers:
                server.stop()
        calls = upstream.request_count

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 429}, [r.text for r in responses if r.status_code >= 400][:3]
    assert calls == LIMIT  # never more; and none lost while the limit was not reached
    assert statuses.count(201) == calls
    refused = [r for r in responses if r.status_code == 429]
    assert len(refused) == 2 * PER_REPLICA - LIMIT
    for response in refused:
        assert response.headers["content-type"].startswith("application/problem+json")
        assert int(response.headers["retry-after"]) >= 1
        problem = response.json()
        assert problem["detail"].startswith(
            f"budget: the per_day limit of task routing ({LIMIT} calls) is reached"
        )
        assert problem["resets_at"].endswith("T00:00:00+00:00")

    assert report.status_code == 200, report.text
    (day, _month) = report.json()["periods"]
    assert (day["spent_calls"], day["reserved_calls"], day["left_calls"]) == (calls, 0, 0)
    shown = json.loads(
        lockgate("budget", "show", "routing", "--json", cwd=project, database=database_url).stdout
    )
    assert shown["periods"] == report.json()["periods"]
    text = lockgate("budget", "show", "routing", cwd=project, database=database_url).stdout
    assert f"in {calls} calls" in text and f"limit {LIMIT} calls (0 left)" in text
