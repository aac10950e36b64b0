"""`lockgate serve` delivers in-process by default, and not at all with
`delivery_in_process: false` (when `lockgate worker` processes do it)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from lockgate.testing.receiver import Receiver
from tests.cli.kit import lockgate
from tests.delivery.kit import SECRET, SECRET_ENV, webhook, write_project
from tests.delivery.processes import rows
from tests.server.test_serve import start_server, submitter_key, wait_until_healthy


def serve_and_decide(
    project: Path, database_url: str, texts: list[str]
) -> tuple[list[str], tuple[int, str]]:
    """Start `lockgate serve`, decide `texts` over HTTP, return the decision ids; the server
    is stopped with SIGTERM once `rows(...)` of the outbox are all delivered or after 2 s."""
    key = submitter_key(project, database_url)
    server, base = start_server(project, database_url)
    try:
        wait_until_healthy(server, base)
        ids = []
        for i, text in enumerate(texts):
            answer = httpx.post(
                f"{base}/v1/tasks/routing/decisions",
                json={"input": {"text": text}},
                headers={"Authorization": f"Bearer {key}", "Idempotency-Key": f"k{i}"},
            )
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["id"])
        deadline = time.monotonic() + 2
        while rows(project, database_url, "pending") and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    return ids, (server.returncode, stderr)


@pytest.mark.parametrize("in_process", [True, False], ids=["default", "turned-off"])
def test_serve_delivers_in_process_unless_turned_off(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, in_process: bool
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with Receiver(SECRET) as receiver:
        project = write_project(
            tmp_path / "proj",
            [webhook(receiver.url)],
            {"delivery_in_process": in_process},
        )
        lockgate("release", "create", "routing", cwd=project, database=database_url)
        lockgate("release", "promote", "routing@1", cwd=project, database=database_url)
        ids, (code, stderr) = serve_and_decide(
            project, database_url, ["transfer 1", "transfer 2", "my card was stolen"]
        )

    assert code in (0, -signal.SIGTERM), stderr
    automated = ids[:2]  # the stolen card waits for review
    if in_process:
        assert sorted(receiver.applied) == sorted(automated)
        assert {r.status for r in rows(project, database_url)} == {"delivered"}
    else:
        assert receiver.requests == 0
        assert sorted(r.decision_id for r in rows(project, database_url, "pending")) == sorted(
            automated
        )
