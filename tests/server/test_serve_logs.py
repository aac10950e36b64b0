"""What a running `lockgate serve` prints carries no personal data: not when the database
fails under a request, not in the access log of a request whose query string holds some; and,
end to end, no seeded personal data or secret reaches stdout, stderr, the access log, exported
spans, problem bodies or audit entries on any path."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from lockgate.testing.collector import SpanCollector
from lockgate.testing.fault_server import Fault, FaultServer
from tests.cli.kit import lockgate, make_project
from tests.monitor.test_redaction_paths import NEEDLES, SEEDED_TEXT, SEEDS, echo
from tests.server.test_serve import live_project, start_server, submitter_key, wait_until_healthy
from tests.store.test_database_errors import refuse_new_decisions

PLAIN_PII = "Alice Example of 221B Baker Street"
"""Personal data no pattern recognises: only leaving parameters out of errors keeps it out."""
EMAIL = "jane.doe@example.com"
CARD = "4012.8888.8888.1881"
DECISIONS = "/v1/tasks/routing/decisions"


@contextmanager
def serving(project: Path, database_url: str) -> Iterator[tuple[str, list[str]]]:
    """A `lockgate serve` process; yields its base URL and, once it has stopped, its stdout
    and stderr (in the list)."""
    server, base = start_server(project, database_url)
    output: list[str] = []
    try:
        wait_until_healthy(server, base)
        yield base, output
        server.send_signal(signal.SIGTERM)
        output.extend(server.communicate(timeout=30))
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()


def test_a_database_error_under_a_request_prints_no_personal_data(
    tmp_path: Path, database_url: str
) -> None:
    project, key = live_project(tmp_path, database_url)
    refuse_new_decisions(database_url)
    with serving(project, database_url) as (base, output):
        response = httpx.post(
            f"{base}/v1/tasks/routing/decisions",
            json={
                "input": {"text": f"card {CARD} stolen, mail {EMAIL}"},
                "metadata": {"customer": PLAIN_PII},
            },
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "t-1"},
            timeout=30,
        )
    stdout, stderr = output
    assert response.status_code == 500
    assert "refused by test" in stderr  # the error was logged, with its traceback
    assert "hidden due to hide_parameters" in stderr
    for line in stderr.splitlines():
        json.loads(line)  # every line is one redacted JSON record, none printed around it
    for needle in (PLAIN_PII, EMAIL, CARD, "40128888", key):
        assert needle not in stdout
        assert needle not in stderr
        assert needle not in response.text


@dataclass(frozen=True)
class Session:
    """One `lockgate serve` process from start to stop: its answers to `/healthz` and to a
    listing whose query string holds personal data, and all it printed."""

    health: httpx.Response
    listing: httpx.Response
    key: str
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Session:
    """Shared by the tests of what a whole server lifetime prints, one server per backend
    rather than one per test."""
    project, key = live_project(tmp_path_factory.mktemp("session"), module_database_url)
    with serving(project, module_database_url) as (base, output):
        health = httpx.get(f"{base}/healthz", timeout=10)
        listing = httpx.get(
            f"{base}/v1/tasks/routing/decisions",
            params={"limit": 5, "note": f"{EMAIL} {PLAIN_PII}", "card": CARD},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
    stdout, stderr = output
    return Session(health, listing, key, stdout, stderr)


def test_the_access_log_is_json_without_query_strings(session: Session) -> None:
    assert session.listing.status_code == 200
    access = [
        record
        for record in map(json.loads, session.stderr.splitlines())
        if record["logger"] == "uvicorn.access"
    ]
    assert any("GET /v1/tasks/routing/decisions?… HTTP/1.1" in r["event"] for r in access)
    for needle in (PLAIN_PII, "Alice", EMAIL, "jane.doe", CARD, session.key):
        assert needle not in session.stdout
        assert needle not in session.stderr


def test_a_decided_request_logs_one_decision_line_and_a_refused_one_an_access_line(
    tmp_path: Path, sqlite_database_url: str
) -> None:
    project, key = live_project(tmp_path, sqlite_database_url)
    with serving(project, sqlite_database_url) as (base, output):
        headers = {"Idempotency-Key": "log-1", "X-Request-ID": "req-log-1"}
        decided = httpx.post(
            f"{base}{DECISIONS}",
            json={"input": {"text": "refund please"}},
            headers={**headers, "Authorization": f"Bearer {key}"},
            timeout=30,
        )
        refused = httpx.post(
            f"{base}{DECISIONS}", json={"input": {"text": "x"}}, headers=headers, timeout=30
        )
    records = [json.loads(line) for line in output[1].splitlines()]
    assert decided.status_code == 201 and refused.status_code == 401
    (decision,) = [r for r in records if r["logger"] == "lockgate.decisions"]
    assert decision["request_id"] == "req-log-1"
    assert decision["decision_id"] == decided.json()["id"]
    access = [r["event"] for r in records if r["logger"] == "uvicorn.access"]
    assert [e for e in access if f"POST {DECISIONS}" in e] == [
        e for e in access if f"POST {DECISIONS} HTTP/1.1" in e and e.endswith("401")
    ], access
    assert any(e.endswith("401") for e in access), access


def test_serve_output_is_json_lines_only(session: Session) -> None:
    assert session.health.status_code == 200
    assert session.stdout == ""
    events = [json.loads(line)["event"] for line in session.stderr.splitlines()]
    assert any(e.startswith("Uvicorn running on") for e in events)
    assert "Application shutdown complete." in events


SERVED_TASK = """\
name: routing
input:
  text: {type: string, max_length: 2000, pii: true}
  note: {type: string, max_length: 2000}
metadata:
  customer: {pii: true}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
models:
  - {provider: openai, model: test-model, timeout_s: 10, retries: 1, backoff_s: 0.1}
  - provider: rules
    rules: [{if_matches: "(?i)never-matches", then: {queue: other}, confidence: 0.9}]
policy:
  auto_min_confidence: 0.8
"""


def audit_rows(database_url: str) -> list[str]:
    """Every row of every audit table, as text."""
    engine = sa.create_engine(database_url)
    try:
        names = [n for n in sa.inspect(engine).get_table_names() if n.startswith("audit")]
        with engine.connect() as conn:
            return [
                str(tuple(row))
                for name in names
                for row in conn.execute(sa.text(f"SELECT * FROM {name}"))
            ]
    finally:
        engine.dispose()


def test_seeded_personal_data_reaches_no_output_span_problem_or_audit_entry(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FaultServer() as upstream, SpanCollector() as collector:
        upstream.set_default(Fault.logprobs(-0.01))
        monkeypatch.setenv("OPENAI_BASE_URL", upstream.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("LOCKGATE_OTLP_ENDPOINT", collector.url)
        project = make_project(tmp_path / "project", SERVED_TASK)
        lockgate("release", "create", "routing", cwd=project, database=database_url)
        lockgate("release", "promote", "routing@1", cwd=project, database=database_url)
        key = submitter_key(project, database_url)
        auth = {"Authorization": f"Bearer {key}"}
        answers: dict[str, httpx.Response] = {}
        with (
            serving(project, database_url) as (base, output),
            httpx.Client(base_url=base, timeout=30) as client,
        ):

            def decide(case: str, body: Any, **headers: str) -> None:
                sent = {**auth, "Idempotency-Key": f"key-{case}", **headers}
                if isinstance(body, str):
                    answers[case] = client.post(DECISIONS, content=body, headers=sent)
                else:
                    answers[case] = client.post(DECISIONS, json=body, headers=sent)

            seeded = {
                "input": {"text": SEEDED_TEXT, "note": SEEDED_TEXT},
                "metadata": {"customer": PLAIN_PII, "contact": SEEDS["email"]},
            }
            decide("success", seeded)
            upstream.enqueue(echo(SEEDED_TEXT, *SEEDS.values()), echo(SEEDED_TEXT))
            decide("invalid-output", seeded)
            upstream.enqueue(Fault.status(500), Fault.status(503))
            decide("provider-error", seeded)
            decide("too-long", {"input": {"text": SEEDED_TEXT + " " + "x" * 2000}})
            decide(
                "field-named-by-pii",
                {"input": {"text": "hi", "note": "-", SEEDS["email"]: SEEDS["card"]}},
            )
            decide("not-json", '{"input": {"text": "' + SEEDED_TEXT)
            decide("wrong-type", {"input": {"text": {"nested": SEEDED_TEXT}, "note": "-"}})
            answers["wrong-key"] = client.get(
                "/v1/tasks", headers={"Authorization": f"Bearer {SEEDS['api-key']}"}
            )
            answers["query"] = client.get(
                "/v1/tasks/routing/decisions", params={"q": SEEDED_TEXT}, headers=auth
            )
            refuse_new_decisions(database_url)
            decide("database-error", seeded)
        audit = audit_rows(database_url)
    stdout, stderr = output
    statuses = {case: answer.status_code for case, answer in answers.items()}
    assert statuses["success"] == 201, answers["success"].text
    assert statuses["database-error"] == 500
    assert statuses["wrong-key"] == 401
    assert statuses["field-named-by-pii"] == 201  # extra input fields are kept
    for case in ("too-long", "not-json", "wrong-type"):
        assert 400 <= statuses[case] < 500, (case, answers[case].text)
    assert [answers[c].json()["status"] for c in ("invalid-output", "provider-error")] == [
        "failed",
        "failed",
    ]
    problems = [a.text for a in answers.values() if a.status_code >= 400]
    assert len(problems) == 5
    assert any(r["logger"] == "uvicorn.access" for r in map(json.loads, stderr.splitlines()))
    spans = collector.spans()
    assert any(span.name == "model_attempt" for span in spans)
    # the model saw the seeded input: there was data to leak
    assert any(SEEDS["iban-lower"] in json.dumps(r) for r in upstream.requests)
    assert audit  # the release and the key were audited
    places = {
        "stdout": [stdout],
        "stderr": stderr.splitlines(),
        "spans": [str(span) for span in spans],
        "problems": problems,
        "other answers": [a.text for a in answers.values() if a.status_code < 400],
        "audit": audit,
    }
    needles = {**NEEDLES, "pii-text": PLAIN_PII, "seeded-text": SEEDED_TEXT, "key": key}
    hits = {
        (place, name): [t for t in texts if needle in t]
        for place, texts in places.items()
        for name, needle in needles.items()
    }
    assert {where: found for where, found in hits.items() if found} == {}
