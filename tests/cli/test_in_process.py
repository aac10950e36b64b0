"""A command run in-process (`lockgate.cli.main.main`, as tests and library users call it)
leaves the process as it found it."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import pytest

from tests.cli.kit import lockgate, make_project


def test_the_directory_and_environment_are_restored_after_a_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "91")
    monkeypatch.delenv("LOCKGATE_DATABASE_URL", raising=False)
    project = make_project(tmp_path / "project")
    before = os.getcwd()

    listed = lockgate("tasks", cwd=project, database=f"sqlite:///{tmp_path}/lockgate.db")

    assert "routing" in listed.stdout
    assert os.getcwd() == before
    assert os.environ["COLUMNS"] == "91"
    assert "LOCKGATE_DATABASE_URL" not in os.environ


def test_the_worker_removes_the_log_handler_it_installed(tmp_path: Path) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    project = make_project(tmp_path / "project")

    done = lockgate("worker", "--once", cwd=project)

    assert done.stdout.startswith("delivered 0,")
    assert (root.handlers, root.level) == (handlers, level)


def test_the_worker_puts_back_the_signal_handlers_it_found(tmp_path: Path) -> None:
    def custom(signum: int, frame: object) -> None:  # pragma: no cover - never delivered
        raise AssertionError("not expected to run")

    project = make_project(tmp_path / "project")
    previous = signal.signal(signal.SIGINT, custom)
    try:
        lockgate("worker", "--once", cwd=project)
        assert signal.getsignal(signal.SIGINT) is custom
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_usage_error_exits_2_with_the_message_on_stderr(tmp_path: Path) -> None:
    result = lockgate("release", "promote", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert "Usage: lockgate release promote" in result.stderr
    assert "Missing argument" in result.stderr
