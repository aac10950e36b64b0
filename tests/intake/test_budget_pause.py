"""A source slows down at a refusing budget limit instead of deciding records as failed: it
stops reading before the next batch, its cursor stays, the file stays in the inbox, and
`lockgate sources show` says why and until when; once the limit is raised, the next run
decides the rest exactly once. Against the fault-injecting upstream, on both backends."""

from __future__ import annotations

from pathlib import Path

from lockgate.testing.fault_server import Fault, FaultServer
from tests.cli.kit import lockgate, make_project
from tests.intake.kit import drop, folder_source, intake_once, query, show

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
sources:
""" + folder_source(batch_size="2")


def test_a_source_pauses_at_a_refusing_limit_and_decides_the_rest_once_it_is_raised(
    tmp_path: Path, database_url: str
) -> None:
    with FaultServer() as upstream:
        upstream.set_default(Fault.logprobs(-0.01))
        project = make_project(tmp_path / "p", TASK.replace("LIMIT", "4"))
        (project / "lockgate.yaml").write_text(
            f"openai_base_url: {upstream.url}\nprices:\n  test-model: {{per_call: 0.001}}\n"
        )
        run = lambda *a: lockgate(*a, cwd=project, database=database_url)  # noqa: E731
        run("release", "create", "routing")
        run("release", "promote", "routing@1")
        drop(project, "tickets.csv", "text\n" + "".join(f"card {n}\n" for n in range(10)))

        [first] = intake_once(project, database_url)
        assert upstream.request_count == 4  # two batches of two, then the limit
        assert first["decided"] == 4
        assert first["paused"].startswith(
            "budget: the per_day limit of task routing (4 calls) is reached; reading resumes at "
        )
        shown = show(project, database_url, "inbox")
        assert shown["status"] == "paused" and shown["status_reason"] == first["paused"]
        assert shown["cursor"]["row"] == 4 and shown["decided"] == 4
        assert (project / "inbox" / "tickets.csv").exists()  # the rest is not consumed

        [again] = intake_once(project, database_url)  # still at the limit: reads nothing
        assert again["paused"] == first["paused"] and again["decided"] == 0
        assert upstream.request_count == 4
        assert show(project, database_url, "inbox")["cursor"]["row"] == 4

        (project / "tasks" / "routing.yaml").write_text(TASK.replace("LIMIT", "20"))
        run("release", "create", "routing")
        run("release", "promote", "routing@2")
        [rest] = intake_once(project, database_url)
        assert rest["paused"] is None and rest["decided"] == 6
        assert upstream.request_count == 10

    statuses = query(database_url, "select idempotency_key, status from decisions")
    assert len(statuses) == 10 and len({key for key, _ in statuses}) == 10
    assert {status for _, status in statuses} <= {"decided", "pending_review"}
    shown = show(project, database_url, "inbox")
    assert (shown["status"], shown["status_reason"], shown["decided"]) == ("active", "", 10)
    assert not (project / "inbox" / "tickets.csv").exists()
    assert (project / "inbox" / "processed" / "tickets.csv").exists()
