"""The real `lockgate` commands for delivery tests: a project, a batch of decisions, workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lockgate.delivery.types import OutboxRow
from lockgate.settings import load_settings
from lockgate.store import Store
from tests.cli.kit import lockgate, lockgate_command
from tests.delivery.kit import SECRET, SECRET_ENV, write_project


def prepare(
    root: Path, database_url: str, sinks: list[dict[str, Any]], records: int, **settings: Any
) -> Path:
    """A project delivering to `sinks`, release 1 live, and `records` automated decisions
    made by `lockgate run`."""
    project = write_project(root / "proj", sinks, settings)
    lockgate("release", "create", "routing", cwd=project, database=database_url)
    lockgate("release", "promote", "routing@1", cwd=project, database=database_url)
    (project / "in.jsonl").write_text(
        "".join(json.dumps({"id": f"r{i}", "text": f"transfer {i}"}) + "\n" for i in range(records))
    )
    lockgate("run", "routing", "in.jsonl", cwd=project, database=database_url)
    return project


def environment(database_url: str) -> dict[str, str]:
    return {**os.environ, SECRET_ENV: SECRET, "LOCKGATE_DATABASE_URL": database_url}


def start_worker(project: Path, database_url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        lockgate_command("worker", *args),
        cwd=project,
        env=environment(database_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a child started from a non-interactive shell may inherit SIGINT as ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def stop_worker(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    """SIGTERM, then the exit code and output."""
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def rows(project: Path, database_url: str, status: str | None = None) -> list[OutboxRow]:
    store = Store(load_settings(project, database_url=database_url).database_url, migrate=False)
    try:
        return store.outbox.listing(status=status, limit=100_000)
    finally:
        store.close()


def wait_for(condition: Callable[[], bool], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        time.sleep(0.05)


def delivered_count(output: str) -> int:
    """N from the worker's last line, "delivered N, retries scheduled ..."."""
    line = output.strip().splitlines()[-1]
    return int(line.split(",")[0].removeprefix("delivered "))
