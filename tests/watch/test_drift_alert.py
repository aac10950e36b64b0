"""The drift alert from a real `lockgate serve`: a shifted stream of the demo generator's
tickets makes the `drift` rule fire to a signed webhook and by e-mail (aiosmtpd)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from lockgate.decide.decision import input_hash
from lockgate.demo.generator import generate_tickets
from lockgate.evals.types import DatasetRow
from lockgate.store import Store
from lockgate.testing.receiver import Receiver
from lockgate.testing.shifts import stream
from lockgate.testing.smtp import SmtpServer
from tests.cli.kit import lockgate, make_project
from tests.server.test_serve import start_server, submitter_key, wait_until_healthy
from tests.watch.test_drift import DRIFT_TASK
from tests.watch.test_serve_alerts import settings_file, stop

SECRET = "drift-hook-secret"
TASK = DRIFT_TASK + (
    "alerts:\n  - {condition: drift, window: 1h, channels: [ops, oncall], repeat: 1h}\n"
)


def test_a_shifted_stream_fires_the_drift_alert_to_a_webhook_and_by_email(
    tmp_path: Path, sqlite_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALERT_HOOK", SECRET)
    receiver = Receiver(secret=SECRET, path="/hooks/alerts").start()
    smtp = SmtpServer().start()
    try:
        project = make_project(tmp_path / "project", TASK)
        (project / "lockgate.yaml").write_text(settings_file(receiver, smtp))
        store = Store(sqlite_database_url)
        try:
            rows = [
                DatasetRow(i, {"text": t.text}, {"queue": "other"}, input_hash({"text": t.text}))
                for i, t in enumerate(generate_tickets(300, seed=13, id_prefix="G"))
            ]
            store.datasets.add("routing", "gate", rows, sealed=True, source=None, actor="t")
        finally:
            store.close()
        lockgate("release", "create", "routing", cwd=project, database=sqlite_database_url)
        lockgate("release", "promote", "routing@1", cwd=project, database=sqlite_database_url)
        secret = submitter_key(project, sqlite_database_url)
        server, base = start_server(project, sqlite_database_url)
        try:
            wait_until_healthy(server, base)
            # 60 decisions: `start_server` pipes the server's log, which nobody reads until it
            # stops; many more requests would fill the pipe.
            texts = stream(60, seed=33, shift="language", share=0.6)
            with httpx.Client(base_url=base, timeout=30) as client:
                for n, text in enumerate(texts):
                    answer = client.post(
                        "/v1/tasks/routing/decisions",
                        json={"input": {"text": text}},
                        headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": f"d-{n}"},
                    )
                    assert answer.status_code == 201, answer.text
            deadline = time.monotonic() + 60
            while not receiver.applied:
                assert time.monotonic() < deadline and server.poll() is None, "no notice in 60 s"
                time.sleep(0.2)
        finally:
            stderr = stop(server)
        assert "Traceback" not in stderr and SECRET not in stderr
        (notice,) = receiver.applied.values()
        assert notice["kind"] == "firing" and notice["rule"] == "drift"
        assert notice["value"] == 2.0 and notice["task"] == "routing"
        assert receiver.bad_signatures == 0
        (mail,) = smtp.wait_for(1)
        assert str(mail["Subject"]).startswith("Lockgate alert [FIRING] routing: drift")
    finally:
        receiver.stop()
        smtp.stop()
