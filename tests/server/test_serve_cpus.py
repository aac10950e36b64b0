"""`lockgate serve --cpus`: the server and every thread it starts run on the CPUs given, and a
list it cannot use is refused in one line before anything starts."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.cli.kit import lockgate, make_project
from tests.server.test_serve import live_project, start_server, wait_until_healthy

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity"), reason="CPU affinity is a Linux feature"
)


@pytest.mark.parametrize(
    ("cpus", "said"),
    [
        ("x-1", "'x-1' is not a list of CPUs"),
        ("3-1", "'3-1' is not a list of CPUs"),
        ("4000", "CPU 4000 is not one this process may use"),
    ],
)
def test_a_cpu_list_it_cannot_use_is_refused_before_anything_starts(
    tmp_path: Path, cpus: str, said: str
) -> None:
    project = make_project(tmp_path / "project")
    before = os.sched_getaffinity(0)
    refused = lockgate("serve", "--cpus", cpus, "--port", "0", cwd=project, check=False)
    assert refused.returncode != 0
    assert said in refused.stderr
    assert "--cpus" in refused.stderr and "hint:" in refused.stderr
    assert os.sched_getaffinity(0) == before


def test_the_server_and_its_threads_run_on_the_cpus_given(
    tmp_path: Path, sqlite_database_url: str
) -> None:
    project, secret = live_project(tmp_path, sqlite_database_url)
    cpu = str(min(os.sched_getaffinity(0)))
    server, base = start_server(project, sqlite_database_url, "--cpus", cpu)
    try:
        wait_until_healthy(server, base)
        decided = httpx.post(
            f"{base}/v1/tasks/routing/decisions",
            json={"input": {"text": "my card was stolen"}},
            headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": "cpu-1"},
            timeout=30,
        )
        threads = list(Path(f"/proc/{server.pid}/task").iterdir())
        allowed = {thread.name: _allowed(thread / "status") for thread in threads}
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert decided.status_code == 201, decided.text
    assert len(threads) > 1  # the event loop and the store's threads at least
    assert set(allowed.values()) == {cpu}, allowed


def _allowed(status: Path) -> str:
    for line in status.read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no Cpus_allowed_list in {status}")
