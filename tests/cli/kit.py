"""Running the `lockgate` command as a user would: in this process by default (the same
`main()` the console script calls), or as a real process where the process is the point."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.pool import Pool

DETERMINISTIC_TASK = """\
name: routing
input:
  text: {type: string, max_length: 4000, pii: true}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
models:
  - provider: deterministic
    confidence: 0.9
    answers:
      - {if_contains: "stolen", output: {queue: fraud}}
policy:
  auto_min_confidence: 0.8
  review_when:
    - {field: queue, equals: fraud}
  reject_when:
    - {input: text, empty: true}
"""


THREAD_GRACE_SECONDS = 5.0


def lockgate_command(*args: str) -> list[str]:
    """`python -m lockgate ARGS`, for tests that need a process of its own (signals, kill -9,
    a server)."""
    return [sys.executable, "-m", "lockgate", *args]


def lockgate(
    *args: str, cwd: Path, database: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `lockgate ARGS` in this process, in `cwd`, with empty stdin; the exit code and the
    output as a finished process would give them."""
    from lockgate.cli.main import main

    environment = {"COLUMNS": "200"}
    if database is not None:
        environment["LOCKGATE_DATABASE_URL"] = database
    stdout, stderr = io.StringIO(), io.StringIO()
    crash: Exception | None = None
    with (
        nothing_left_open(args),
        environment_set(environment),
        working_directory(cwd),
        stdin_empty(),
        redirect_stdout(stdout),
        redirect_stderr(stderr),
    ):
        try:
            main(list(args))
            returncode = 0
        except SystemExit as exit_:
            returncode = exit_status(exit_.code, stderr)
        except Exception as exc:  # what the interpreter would print before exiting 1
            crash = exc
            traceback.print_exc(file=stderr)
            returncode = 1
    result = subprocess.CompletedProcess(
        ["lockgate", *args], returncode, stdout.getvalue(), stderr.getvalue()
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"lockgate {' '.join(args)} exited {result.returncode}\n{result.stdout}\n"
            f"{result.stderr}"
        ) from crash
    return result


class _OpenConnections:
    """Database connections (DBAPI level) opened and not yet closed, over every pool."""

    def __init__(self) -> None:
        self.open: set[int] = set()
        event.listen(Pool, "connect", self.opened)
        event.listen(Pool, "close", self.closed)
        event.listen(Pool, "close_detached", self.closed_detached)

    def opened(self, dbapi_connection: Any, record: Any) -> None:
        self.open.add(id(dbapi_connection))

    def closed(self, dbapi_connection: Any, record: Any) -> None:
        self.open.discard(id(dbapi_connection))

    def closed_detached(self, dbapi_connection: Any) -> None:
        self.open.discard(id(dbapi_connection))


_connections = _OpenConnections()


@contextmanager
def nothing_left_open(args: tuple[str, ...]) -> Iterator[None]:
    """Fail when the command leaves behind what a process exit would have cleaned up:
    database connections, threads, log handlers, signal handlers."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    threads = set(threading.enumerate())
    connections = set(_connections.open)
    yield
    left = []
    if connections_left := _connections.open - connections:
        left.append(f"{len(connections_left)} database connection(s)")
    if threads_left := [t.name for t in threads_still_running(threads)]:
        left.append(f"threads {threads_left}")
    if (root.handlers, root.level) != (handlers, level):
        left.append(f"root log handlers {root.handlers} at level {root.level}")
    if changed := [s.name for s, h in signals.items() if signal.getsignal(s) != h]:
        left.append(f"signal handlers for {changed}")
    if left:
        raise AssertionError(f"lockgate {' '.join(args)} left open: {'; '.join(left)}")


def threads_still_running(
    before: set[threading.Thread], grace_seconds: float = THREAD_GRACE_SECONDS
) -> list[threading.Thread]:
    """Threads started since `before` and still running after a grace period: some stop on
    their own once the event loop that used them is closed (AnyIO's worker threads).

    A thread that joined a pool already running before (an in-process server's store
    readers, grown by its own background loops while the command ran) is that pool's, not
    the command's, and is left out."""
    pools_before = {pool for t in before if (pool := _pool_of(t)) is not None}
    deadline = time.monotonic() + grace_seconds
    started = [t for t in set(threading.enumerate()) - before if _pool_of(t) not in pools_before]
    for thread in started:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    return [t for t in started if t.is_alive()]


def _pool_of(thread: threading.Thread) -> object | None:
    """The `ThreadPoolExecutor` a worker thread belongs to: CPython starts each worker with a
    weak reference to its executor as the first argument."""
    args = getattr(thread, "_args", ())
    if args and isinstance(args[0], weakref.ref):
        return args[0]()
    return None


def exit_status(code: object, stderr: io.StringIO) -> int:
    """The process exit status `sys.exit(code)` gives."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=stderr)
    return 1


@contextmanager
def environment_set(values: dict[str, str]) -> Iterator[None]:
    """`values` set in os.environ; afterwards the environment is as before, whatever the
    command changed."""
    before = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        for name in set(os.environ) - set(before):
            del os.environ[name]
        for name, value in before.items():
            if os.environ.get(name) != value:
                os.environ[name] = value


@contextmanager
def working_directory(path: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@contextmanager
def stdin_empty() -> Iterator[None]:
    before = sys.stdin
    sys.stdin = io.StringIO("")
    try:
        yield
    finally:
        sys.stdin = before


def make_project(root: Path, task_text: str = DETERMINISTIC_TASK) -> Path:
    (root / "tasks").mkdir(parents=True, exist_ok=True)
    (root / "tasks" / "routing.yaml").write_text(task_text)
    return root


def database_made_on_purpose(url: str) -> str:
    """`url`, its database made the way a user makes one outside a project (`lockgate db
    upgrade`): commands refuse to create a SQLite file outside the project folder themselves,
    since there it is more likely a typo than a new database."""
    from lockgate.store import Store

    Store(url).close()
    return url
