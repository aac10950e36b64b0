"""A shadow release's paid calls count against its task's budget: `lockgate release
shadow-run` (and `serve`'s shadow worker, which is built the same way) stops calling the
paid model at the limit, and the ledger agrees with the upstream's own count."""

from __future__ import annotations

import json
from pathlib import Path

from lockgate.testing.fault_server import Fault, FaultServer
from tests.cli.kit import DETERMINISTIC_TASK, lockgate, make_project

PAID = """\
name: routing
input:
  text: {type: string}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
models:
  - {provider: openai, model: test-model, retries: 0, logprobs: true, max_tokens: 20}
budget:
  per_day: {calls: 3}
  on_hard_limit: refuse
"""


def test_shadow_runs_stop_calling_a_paid_model_at_the_budget(
    tmp_path: Path, database_url: str
) -> None:
    records = tmp_path / "tickets.jsonl"
    records.write_text("".join(json.dumps({"id": n, "text": f"card {n}"}) + "\n" for n in range(6)))
    with FaultServer() as upstream:
        upstream.set_default(Fault.logprobs(-0.01))
        project = make_project(tmp_path / "project", DETERMINISTIC_TASK)
        (project / "lockgate.yaml").write_text(
            f"openai_base_url: {upstream.url}\nprices:\n  test-model: {{per_call: 0.001}}\n"
        )
        run = lambda *a: lockgate(*a, cwd=project, database=database_url)  # noqa: E731
        run("release", "create", "routing")
        run("release", "promote", "routing@1")  # live: the free deterministic model
        (project / "tasks" / "routing.yaml").write_text(PAID)
        run("release", "create", "routing")
        run("release", "shadow", "routing@2")  # shadow: the paid model, 3 calls a day

        run("run", "routing", str(records))  # six live decisions, six shadow runs queued
        assert "6 shadow runs decided" in run("release", "shadow-run", "routing").stdout
        assert upstream.request_count == 3

    shown = json.loads(run("budget", "show", "routing", "--json").stdout)
    (day, _month) = shown["periods"]  # the ledger of the task, live and shadow alike
    assert (day["spent_calls"], day["reserved_calls"]) == (3, 0)
