"""`lockgate keys` and `lockgate serve` as an operator runs them: real processes, real sockets."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from lockgate.testing.fault_server import Fault, FaultServer
from tests.cli.kit import lockgate, lockgate_command, make_project
from tests.server.kit import running_api


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


SLOW_TASK = """\
name: routing
input:
  text: {type: string, max_length: 4000}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
models:
  - {provider: openai, model: test-model, timeout_s: 20, retries: 0}
"""


def live_project(tmp_path: Path, database_url: str) -> tuple[Path, str]:
    """A project whose `routing` task has a live release, and a submitter's key for it."""
    project = make_project(tmp_path / "project")
    lockgate("release", "create", "routing", cwd=project, database=database_url)
    lockgate("release", "promote", "routing@1", cwd=project, database=database_url)
    return project, submitter_key(project, database_url)


def start_server(
    project: Path, database_url: str, *options: str
) -> tuple[subprocess.Popen[str], str]:
    """`lockgate serve` on a free port, with `options` added to its command line."""
    port = free_port()
    env = {**os.environ, "LOCKGATE_DATABASE_URL": database_url}
    server = subprocess.Popen(
        lockgate_command("serve", "--project", str(project), "--port", str(port), *options),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return server, f"http://127.0.0.1:{port}"


def wait_until_healthy(server: subprocess.Popen[str], base: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert server.poll() is None, server.communicate()
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not start in 30 s"
        time.sleep(0.1)


def submitter_key(project: Path, database_url: str) -> str:
    created = lockgate(
        "keys", "create", "--name", "app", "--role", "submitter", cwd=project, database=database_url
    )
    return created.stdout.splitlines()[-1]


def test_keys_create_prints_the_key_alone_on_the_last_line_and_it_authenticates(
    tmp_path: Path, database_url: str
) -> None:
    project = make_project(tmp_path / "project")
    created = lockgate(
        "keys", "create", "--name", "crm", "--role", "viewer", "--task", "routing",
        cwd=project, database=database_url,
    )  # fmt: skip
    secret = created.stdout.splitlines()[-1]
    assert secret.startswith("lg_") and " " not in secret
    listed = lockgate("keys", "list", cwd=project, database=database_url).stdout
    assert "crm" in listed and secret not in listed
    # No key cache here: revocation within `api_key_cache_seconds` has its own test (replicas).
    with running_api(tmp_path / "api", database_url, api_key_cache_seconds=0) as api:
        headers = {"Authorization": f"Bearer {secret}"}
        assert api.client.get("/v1/tasks/routing/releases", headers=headers).status_code == 200
        lockgate("keys", "revoke", "crm", cwd=project, database=database_url)
        assert api.client.get("/v1/tasks/routing/releases", headers=headers).status_code == 401


def test_revoking_a_revoked_key_is_refused_and_not_audited_again(
    tmp_path: Path, database_url: str
) -> None:
    project = make_project(tmp_path / "project")
    run = lambda *a, **kw: lockgate(*a, cwd=project, database=database_url, **kw)  # noqa: E731
    run("keys", "create", "--name", "alice", "--role", "reviewer")
    assert "revoked key alice" in run("keys", "revoke", "alice").stdout

    again = run("keys", "revoke", "alice", check=False)

    assert again.returncode == 1
    assert "API key 'alice' was already revoked at 20" in again.stderr
    listed = run("audit", "list", "--action", "key.revoked", "--json").stdout
    assert len(json.loads(listed)) == 1


def test_keys_create_refuses_an_unknown_role(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    result = lockgate("keys", "create", "--name", "x", "--role", "root", cwd=project, check=False)
    assert result.returncode != 0
    assert "unknown role 'root'" in result.stderr and "Traceback" not in result.stderr


def test_serve_answers_decisions_and_shuts_down_cleanly_on_sigterm(
    tmp_path: Path, database_url: str
) -> None:
    project = make_project(tmp_path / "project")
    lockgate("release", "create", "routing", cwd=project, database=database_url)
    lockgate("release", "promote", "routing@1", cwd=project, database=database_url)
    secret = submitter_key(project, database_url)
    server, base = start_server(project, database_url)
    try:
        wait_until_healthy(server, base)
        assert httpx.get(f"{base}/readyz").status_code == 200
        response = httpx.post(
            f"{base}/v1/tasks/routing/decisions",
            json={"input": {"text": "My card was stolen"}},
            headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": "t-1"},
        )
        assert response.status_code == 201, response.text
        assert response.json()["output"] == {"queue": "fraud"}
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    # uvicorn finishes its shutdown, then re-raises SIGTERM so that the parent sees how the
    # process ended; systemd and Kubernetes count that as a clean stop.
    assert server.returncode in (0, -signal.SIGTERM), stderr
    assert stderr.index("Shutting down") < stderr.index("Application shutdown complete")
    assert "Application shutdown complete" in stderr
    assert "Traceback" not in stderr
    assert secret not in stderr


def test_sigterm_lets_a_request_in_flight_finish(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FaultServer() as upstream:
        upstream.set_default(Fault.delay(2.0))
        monkeypatch.setenv("OPENAI_BASE_URL", upstream.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        project = make_project(tmp_path / "project", SLOW_TASK)
        lockgate("release", "create", "routing", cwd=project, database=database_url)
        lockgate("release", "promote", "routing@1", cwd=project, database=database_url)
        secret = submitter_key(project, database_url)
        server, base = start_server(project, database_url)
        try:
            wait_until_healthy(server, base)
            with ThreadPoolExecutor(1) as pool:
                pending = pool.submit(
                    httpx.post,
                    f"{base}/v1/tasks/routing/decisions",
                    json={"input": {"text": "slow"}},
                    headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": "slow-1"},
                    timeout=30,
                )
                deadline = time.monotonic() + 10
                while upstream.request_count == 0:  # the request is inside the model call
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
                server.send_signal(signal.SIGTERM)
                response = pending.result(timeout=30)
            _, stderr = server.communicate(timeout=30)
        finally:
            if server.poll() is None:
                server.kill()
                server.communicate()
    assert response.status_code == 201, response.text
    assert response.json()["output"] == {"queue": "cards"}
    assert server.returncode in (0, -signal.SIGTERM), stderr
    assert "Traceback" not in stderr
