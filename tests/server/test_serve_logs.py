"""What a running `lockgate serve` prints carries no personal data: not when the database
fails under a request, not in the access log of a request whose query string holds some."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.cli.kit import lockgate, make_project
from tests.server.test_serve import start_server, submitter_key, wait_until_healthy
from tests.store.test_database_errors import refuse_new_decisions

PLAIN_PII = "Alice Example of 221B Baker Street"
"""Personal data no pattern recognises: only leaving parameters out of errors keeps it out."""
EMAIL = "jane.doe@example.com"
CARD = "4012.8888.8888.1881"


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


def live_project(tmp_path: Path, database_url: str) -> tuple[Path, str]:
    project = make_project(tmp_path / "project")
    lockgate("release", "create", "routing", cwd=project, database=database_url)
    lockgate("release", "promote", "routing@1", cwd=project, database=database_url)
    return project, submitter_key(project, database_url)


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


def test_the_access_log_is_json_without_query_strings(tmp_path: Path, database_url: str) -> None:
    project, key = live_project(tmp_path, database_url)
    with serving(project, database_url) as (base, output):
        response = httpx.get(
            f"{base}/v1/tasks/routing/decisions",
            params={"limit": 5, "note": f"{EMAIL} {PLAIN_PII}", "card": CARD},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
    stdout, stderr = output
    assert response.status_code == 200
    access = [
        record
        for record in map(json.loads, stderr.splitlines())
        if record["logger"] == "uvicorn.access"
    ]
    assert any("GET /v1/tasks/routing/decisions?… HTTP/1.1" in r["event"] for r in access)
    for needle in (PLAIN_PII, "Alice", EMAIL, "jane.doe", CARD, key):
        assert needle not in stdout
        assert needle not in stderr


def test_serve_output_is_json_lines_only(tmp_path: Path, database_url: str) -> None:
    project, _ = live_project(tmp_path, database_url)
    with serving(project, database_url) as (base, output):
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
    stdout, stderr = output
    assert stdout == ""
    events = [json.loads(line)["event"] for line in stderr.splitlines()]
    assert any(e.startswith("Uvicorn running on") for e in events)
    assert "Application shutdown complete." in events
