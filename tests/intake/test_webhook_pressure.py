"""Back-pressure on the webhook source: past `max_in_flight` pushes a source answers 503 with
Retry-After instead of queueing without bound, and the refused push stores nothing."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from lockgate.runtime import Runtime
from lockgate.server import create_app
from lockgate.settings import load_settings
from lockgate.testing.fault_server import Fault, FaultServer
from tests.cli.kit import lockgate, make_project
from tests.intake.kit import decision_keys
from tests.intake.test_webhook import signed

SLOW = """\
name: routing
input:
  text: {type: string, max_length: 4000}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
models:
  - {provider: openai, model: test-model, timeout_s: 20, retries: 0}
sources:
  - name: crm
    kind: webhook
    secret_env: CRM_HOOK_SECRET
    max_in_flight: 1
    key: "{ticket_id}"
    map:
      text: subject
"""


def test_a_push_past_max_in_flight_gets_503_and_stores_nothing(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_HOOK_SECRET", "s3cret-for-tests")
    with FaultServer() as upstream:
        upstream.set_default(Fault.ok(json.dumps({"queue": "cards"})).after(2.0))
        project = make_project(tmp_path / "p", SLOW)
        lockgate("release", "create", "routing", cwd=project, database=database_url)
        lockgate("release", "promote", "routing@1", cwd=project, database=database_url)
        settings = load_settings(
            project, database_url=database_url, environ={"OPENAI_BASE_URL": upstream.url}
        )
        runtime = Runtime.open(settings)
        try:
            with TestClient(create_app(settings, runtime=runtime)) as client:
                first: list[httpx.Response] = []
                slow = threading.Thread(
                    target=lambda: first.append(
                        client.post(
                            "/v1/intake/crm", **signed({"ticket_id": "T-1", "subject": "a"})
                        )
                    )
                )
                slow.start()
                deadline = time.monotonic() + 10
                while upstream.request_count == 0 and time.monotonic() < deadline:
                    time.sleep(0.02)
                second = client.post(
                    "/v1/intake/crm", **signed({"ticket_id": "T-2", "subject": "b"}, key="d2")
                )
                slow.join(30)
        finally:
            runtime.close()
    assert second.status_code == 503 and int(second.headers["retry-after"]) >= 1
    assert first[0].status_code == 202
    assert decision_keys(database_url) == ["crm:T-1"]
