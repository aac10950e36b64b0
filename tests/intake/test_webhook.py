"""The webhook source: signed pushes to POST /v1/intake/{source}; 202 means committed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from lockgate.delivery.sinks.signature import sign
from lockgate.runtime import Runtime
from lockgate.server import create_app
from lockgate.settings import load_settings
from tests.intake.kit import decision_keys, prepare, query, show
from tests.server.test_serve import start_server, wait_until_healthy

SECRET = "s3cret-for-tests"
SOURCE = """\
  - name: crm
    kind: webhook
    secret_env: CRM_HOOK_SECRET
    tolerance_s: 300
    key: "{ticket_id}"
    map:
      text: {from: [subject, title]}
"""


@pytest.fixture
def api(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("CRM_HOOK_SECRET", SECRET)
    project = prepare(tmp_path / "p", database_url, SOURCE)
    settings = load_settings(project, database_url=database_url, environ={})
    runtime = Runtime.open(settings)
    try:
        with TestClient(create_app(settings, runtime=runtime)) as client:
            client.project = project  # type: ignore[attr-defined]
            yield client
    finally:
        runtime.close()


def signed(payload: Any, *, secret: str = SECRET, at: float | None = None, key: str = "d1") -> dict:
    body = json.dumps(payload).encode()
    timestamp = str(int(time.time() if at is None else at))
    return {
        "content": body,
        "headers": {
            "Content-Type": "application/json",
            "X-Lockgate-Timestamp": timestamp,
            "X-Lockgate-Signature": sign(secret, timestamp, body),
            "Idempotency-Key": key,
        },
    }


def test_a_signed_push_is_committed_before_the_202(api: TestClient, database_url: str) -> None:
    response = api.post("/v1/intake/crm", **signed({"ticket_id": "T-1", "subject": "card stolen"}))
    assert response.status_code == 202, response.text
    assert response.json() == {"records": 1, "decided": 1, "duplicates": 0, "quarantined": 0}
    assert decision_keys(database_url) == ["crm:T-1"]


def test_the_same_push_sent_again_is_a_duplicate_not_a_second_decision(
    api: TestClient, database_url: str
) -> None:
    payload = {"ticket_id": "T-1", "subject": "card stolen"}
    api.post("/v1/intake/crm", **signed(payload))
    again = api.post("/v1/intake/crm", **signed(payload))
    assert again.status_code == 202
    assert again.json()["duplicates"] == 1
    assert decision_keys(database_url) == ["crm:T-1"]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda r: r["headers"].pop("X-Lockgate-Signature"), id="unsigned"),
        pytest.param(lambda r: r.update(content=r["content"] + b" "), id="body-changed"),
        pytest.param(
            lambda r: r["headers"].update(signed({}, secret="wrong")["headers"]), id="wrong-secret"
        ),
    ],
)
def test_a_push_not_signed_with_the_secret_is_refused(
    api: TestClient, database_url: str, tamper: Any
) -> None:
    request = signed({"ticket_id": "T-1", "subject": "card stolen"})
    tamper(request)
    response = api.post("/v1/intake/crm", **request)
    assert response.status_code == 401
    assert SECRET not in response.text
    assert decision_keys(database_url) == []


def test_a_push_outside_the_replay_window_is_refused(api: TestClient, database_url: str) -> None:
    old = signed({"ticket_id": "T-1", "subject": "card stolen"}, at=time.time() - 3600)
    response = api.post("/v1/intake/crm", **old)
    assert response.status_code == 401
    assert "replay window" in response.json()["detail"]
    assert decision_keys(database_url) == []


def test_records_of_a_push_that_cannot_be_mapped_are_quarantined_with_their_reason(
    api: TestClient, database_url: str
) -> None:
    payload = [
        {"ticket_id": "T-1", "title": "lost my card"},
        {"ticket_id": "T-2"},
        "not an object",
    ]
    response = api.post("/v1/intake/crm", **signed(payload, key="batch-7"))
    assert response.status_code == 202
    assert response.json() == {"records": 3, "decided": 1, "duplicates": 0, "quarantined": 2}
    rows = query(database_url, "select position, reason from intake_quarantine order by id")
    assert [tuple(r) for r in rows] == [
        ("delivery batch-7 item 2", "missing required field text (looked for: subject, title)"),
        ("delivery batch-7 item 3", "item 3 is not a JSON object"),
    ]
    counts = show(api.project, database_url, "crm")  # type: ignore[attr-defined]
    assert (counts["records"], counts["quarantined"]) == (3, 2)


def test_an_unknown_source_is_404(api: TestClient) -> None:
    response = api.post("/v1/intake/nope", **signed({"ticket_id": "T-1"}))
    assert response.status_code == 404


def test_a_real_serve_process_takes_a_signed_push_over_loopback(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_HOOK_SECRET", SECRET)  # inherited by the server process
    project = prepare(tmp_path / "p", database_url, SOURCE)
    server, base = start_server(project, database_url)
    try:
        wait_until_healthy(server, base)
        pushed = httpx.post(
            f"{base}/v1/intake/crm", **signed({"ticket_id": "T-9", "subject": "card stolen"})
        )
        forged = httpx.post(
            f"{base}/v1/intake/crm",
            **signed({"ticket_id": "T-10", "subject": "x"}, secret="guessed"),
        )
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert pushed.status_code == 202, pushed.text
    assert forged.status_code == 401
    assert decision_keys(database_url) == ["crm:T-9"]
