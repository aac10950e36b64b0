"""The command kit's leak check blames the command for its own threads only."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from tests.cli.kit import threads_still_running


def test_a_pool_running_before_may_grow_but_a_thread_the_command_left_is_reported() -> None:
    stop = threading.Event()
    server_pool = ThreadPoolExecutor(4, thread_name_prefix="server-pool")
    try:
        server_pool.submit(stop.wait)
        before = set(threading.enumerate())
        # While "the command" runs: the server's pool grows, and the command leaves a thread.
        server_pool.submit(stop.wait)
        left = threading.Thread(target=stop.wait, name="left-by-the-command")
        left.start()

        running = threads_still_running(before, grace_seconds=0.1)

        assert [t.name for t in running] == ["left-by-the-command"]
    finally:
        stop.set()
        server_pool.shutdown(wait=True)
