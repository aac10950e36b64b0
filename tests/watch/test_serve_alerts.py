"""Alerts inside a real `lockgate serve`: the rule fires once to a signed webhook and by e-mail,
and a restarted server sends no duplicate; `lockgate alerts list|test|silence` as an operator
runs them."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lockgate.testing.mailbox import free_port
from lockgate.testing.receiver import Receiver
from lockgate.testing.smtp import SmtpServer
from tests.cli.kit import lockgate, make_project
from tests.server.test_serve import start_server, submitter_key, wait_until_healthy

SECRET = "alert-hook-secret"
FAILING_TASK = """\
name: routing
input:
  text: {type: string, max_length: 4000}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
models:
  - {provider: openai, model: gone, timeout_s: 2, retries: 0}
alerts:
  - {condition: failure_rate, threshold: 0.5, window: 15m, channels: [ops, oncall], repeat: 1h}
"""


def settings_file(receiver: Receiver, smtp: SmtpServer) -> str:
    return (
        "history_rollup_seconds: 0.3\n"
        "alert_interval_seconds: 0.5\n"
        "alert_channels:\n"
        f"  ops: {{type: webhook, url: '{receiver.url}', secret_env: ALERT_HOOK}}\n"
        f"  oncall: {{type: email, host: {smtp.host}, port: {smtp.port}, "
        "from: lockgate@example.com, to: [oncall@example.com]}\n"
    )


@pytest.fixture
def setup(
    tmp_path: Path, sqlite_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, Receiver, SmtpServer]]:
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ALERT_HOOK", SECRET)
    receiver = Receiver(secret=SECRET, path="/hooks/alerts").start()
    smtp = SmtpServer().start()
    project = make_project(tmp_path / "project", FAILING_TASK)
    (project / "lockgate.yaml").write_text(settings_file(receiver, smtp))
    lockgate("release", "create", "routing", cwd=project, database=sqlite_database_url)
    lockgate("release", "promote", "routing@1", cwd=project, database=sqlite_database_url)
    yield project, receiver, smtp
    receiver.stop()
    smtp.stop()


def stop(server: subprocess.Popen[str]) -> str:
    server.send_signal(signal.SIGTERM)
    try:
        _, stderr = server.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        _, stderr = server.communicate()
    return stderr


def test_serve_fires_once_and_a_restart_sends_no_duplicate(
    setup: tuple[Path, Receiver, SmtpServer], sqlite_database_url: str
) -> None:
    project, receiver, smtp = setup
    secret = submitter_key(project, sqlite_database_url)
    server, base = start_server(project, sqlite_database_url)
    try:
        wait_until_healthy(server, base)
        for n in range(12):
            httpx.post(
                f"{base}/v1/tasks/routing/decisions",
                json={"input": {"text": f"ticket {n}"}},
                headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": f"s-{n}"},
                timeout=10,
            )
        deadline = time.monotonic() + 30
        while not receiver.applied:
            assert time.monotonic() < deadline and server.poll() is None, "no notice in 30 s"
            time.sleep(0.1)
    finally:
        stderr = stop(server)
    assert "Traceback" not in stderr and SECRET not in stderr
    # Restarted: it evaluates the same firing rule again and again, and sends nothing new.
    server, base = start_server(project, sqlite_database_url)
    try:
        wait_until_healthy(server, base)
        time.sleep(3)  # several evaluation rounds (every 0.5 s)
    finally:
        stderr = stop(server)
    assert "Traceback" not in stderr
    (notice,) = receiver.applied.values()
    assert notice["kind"] == "firing" and notice["rule"] == "failure_rate"
    assert notice["value"] == 1.0 and notice["task"] == "routing"
    assert receiver.requests == 1 and receiver.bad_signatures == 0
    (mail,) = smtp.wait_for(1)
    assert str(mail["Subject"]).startswith("Lockgate alert [FIRING] routing: failure_rate")
    listed = lockgate("alerts", "list", "--json", cwd=project, database=sqlite_database_url)
    rule = next(r for r in json.loads(listed.stdout)["rules"] if r["name"] == "failure_rate")
    assert rule["firing"] is True and rule["channels"] == ["ops", "oncall"]
    audit = lockgate("audit", "list", "--action", "alert.firing", "--json", cwd=project,
                     database=sqlite_database_url)  # fmt: skip
    fired = [e["subject"] for e in json.loads(audit.stdout)]
    # The shipped breaker_open rule fired too (to the log): the model's endpoint is gone.
    assert sorted(fired) == ["breaker_open", "failure_rate"]


def test_alerts_test_and_silence_from_the_command_line(
    setup: tuple[Path, Receiver, SmtpServer], sqlite_database_url: str
) -> None:
    project, receiver, smtp = setup
    run = lambda *a, **kw: lockgate(*a, cwd=project, database=sqlite_database_url, **kw)  # noqa: E731
    assert "test notice sent to oncall" in run("alerts", "test", "oncall").stdout
    (mail,) = smtp.wait_for(1)
    assert "[TEST]" in str(mail["Subject"])
    run("alerts", "test", "ops")
    assert receiver.bad_signatures == 0 and len(receiver.applied) == 1
    unknown = run("alerts", "test", "pager", check=False)
    assert unknown.returncode != 0 and unknown.stderr.startswith("error: no alert channel named")
    silenced = run("alerts", "silence", "failure_rate", "--for", "2h", "--actor", "lead")
    assert "failure_rate silenced until" in silenced.stdout
    listed = json.loads(run("alerts", "list", "--json").stdout)["rules"]
    assert next(r for r in listed if r["name"] == "failure_rate")["silenced_until"]
    audit = json.loads(run("audit", "list", "--action", "alert.silenced", "--json").stdout)
    assert len(audit) == 1 and audit[0]["actor"] == "lead"
    bad = run("alerts", "silence", "failure_rate", "--for", "later", check=False)
    assert bad.returncode != 0 and bad.stderr.startswith("error: --for:")
