"""`lockgate run` under a budget that refuses: the records past the limit are stored as failed
decisions with the reason, and a later run (after the limit is raised) decides them."""

from __future__ import annotations

import json
from pathlib import Path

from lockgate.testing.fault_server import Fault, FaultServer
from tests.cli.kit import lockgate, make_project

TASK = """\
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
"""


def test_a_batch_job_stores_refused_records_as_failed_and_a_later_run_decides_them(
    tmp_path: Path, database_url: str
) -> None:
    records = tmp_path / "tickets.jsonl"
    records.write_text("".join(json.dumps({"id": n, "text": f"card {n}"}) + "\n" for n in range(5)))
    with FaultServer() as upstream:
        upstream.set_default(Fault.logprobs(-0.01))
        project = make_project(tmp_path / "project", TASK.replace("LIMIT", "3"))
        (project / "lockgate.yaml").write_text(
            f"openai_base_url: {upstream.url}\nprices:\n  test-model: {{per_call: 0.001}}\n"
        )
        run = lambda *a: lockgate(*a, cwd=project, database=database_url)  # noqa: E731
        run("release", "create", "routing")
        run("release", "promote", "routing@1")

        first = json.loads(run("run", "routing", str(records), "--json").stdout)
        out = tmp_path / "out.jsonl"
        assert upstream.request_count == 3
        (project / "tasks" / "routing.yaml").write_text(TASK.replace("LIMIT", "10"))
        run("release", "create", "routing")
        run("release", "promote", "routing@2")
        second = json.loads(run("run", "routing", str(records), "--json", "--out", str(out)).stdout)

    assert first["by_status"] == {"decided": 3, "failed": 2}
    assert first["failures"] == [
        {
            "reason": "budget: the per_day limit of task routing (3 calls) is reached",
            "count": 2,
            "examples": ["3", "4"],
        }
    ]
    assert second["retried"] == 2 and second["by_status"] == {"decided": 5}
    assert upstream.request_count == 5
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["status"] for line in lines] == ["decided"] * 5
