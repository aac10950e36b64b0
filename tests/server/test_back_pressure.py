"""A locked database slows no one else down: decisions answer 503 with `Retry-After` once their
time limit passes, probes keep answering, and a retry with the same key decides exactly once.

The lock is real: a separate SQLite connection holds the write lock (`BEGIN IMMEDIATE`), as a
backup, a migration or another process's long transaction would.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from tests.cli.kit import lockgate, make_project
from tests.server.kit import running_api
from tests.server.test_serve import start_server, submitter_key, wait_until_healthy

LOCK_SECONDS = 10.0
REQUEST_TIMEOUT_SECONDS = 1.0
HEALTHZ_BOUND_SECONDS = 0.1
"""The issue's bound; /healthz answers from memory in about a millisecond, so this holds on a
loaded machine, and fails by seconds when the event loop waits on the database."""


@contextmanager
def write_lock_held(database_url: str, seconds: float) -> Iterator[threading.Event]:
    """Hold SQLite's write lock from another connection for `seconds`, then roll back; yields
    an event set once the lock is released."""
    path = make_url(database_url).database
    assert path is not None
    held, released = threading.Event(), threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            held.set()
            time.sleep(seconds)
            conn.execute("ROLLBACK")
        finally:
            conn.close()
            released.set()

    holder = threading.Thread(target=hold, name="write-lock-holder")
    holder.start()
    assert held.wait(10), "the test could not take the write lock"
    try:
        yield released
    finally:
        holder.join()


def poll_healthz(base: str, until: threading.Event) -> list[float]:
    """Latencies of GET /healthz every 100 ms until `until` is set."""
    latencies: list[float] = []
    with httpx.Client(base_url=base, timeout=LOCK_SECONDS * 3) as client:
        while not until.is_set():
            started = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(max(0.0, 0.1 - latencies[-1]))
    return latencies


def test_while_another_connection_holds_the_write_lock_probes_answer_and_decisions_get_503(
    tmp_path: Path, sqlite_database_url: str
) -> None:
    url = sqlite_database_url
    project = make_project(tmp_path / "project")
    (project / "lockgate.yaml").write_text(f"request_timeout_seconds: {REQUEST_TIMEOUT_SECONDS}\n")
    lockgate("release", "create", "routing", cwd=project, database=url)
    lockgate("release", "promote", "routing@1", cwd=project, database=url)
    headers = {"Authorization": f"Bearer {submitter_key(project, url)}"}
    keys = [f"locked-{n}" for n in range(6)]
    server, base = start_server(project, url)
    try:
        wait_until_healthy(server, base)
        with httpx.Client(base_url=base, headers=headers, timeout=LOCK_SECONDS * 3) as client:

            def decide(key: str) -> tuple[httpx.Response, float]:
                started = time.perf_counter()
                response = client.post(
                    "/v1/tasks/routing/decisions",
                    json={"input": {"text": f"My card was stolen ({key})"}},
                    headers={"Idempotency-Key": key},
                )
                return response, time.perf_counter() - started

            assert decide("warm-up")[0].status_code == 201  # the release is loaded
            with write_lock_held(url, LOCK_SECONDS) as released, ThreadPoolExecutor(8) as pool:
                polls = pool.submit(poll_healthz, base, released)
                locked = list(pool.map(decide, keys))
                still_locked = not released.is_set()
                latencies = polls.result()

            retried = [decide(key)[0] for key in keys]
            replayed = [decide(key)[0] for key in keys]
    finally:
        server.terminate()
        server.communicate(timeout=30)

    slowest = max(latencies)
    print(f"\n/healthz under a held write lock: {len(latencies)} polls, slowest {slowest:.4f} s")
    assert slowest < HEALTHZ_BOUND_SECONDS, sorted(latencies)[-5:]
    assert len(latencies) >= LOCK_SECONDS * 5, "the probe did not poll throughout the lock"

    assert still_locked, "the decision requests waited for the lock to be released"
    for response, elapsed in locked:
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert int(response.headers["retry-after"]) >= 1
        assert "Idempotency-Key" in response.json()["detail"]
        assert REQUEST_TIMEOUT_SECONDS * 0.9 <= elapsed < REQUEST_TIMEOUT_SECONDS * 4

    # Nothing was stored under the lock, or it was stored once: either way one decision a key.
    assert {r.status_code for r in retried} <= {200, 201}, [r.text for r in retried]
    assert [r.status_code for r in replayed] == [200] * len(keys)
    assert [r.json()["id"] for r in replayed] == [r.json()["id"] for r in retried]
    conn = sqlite3.connect(str(make_url(url).database))
    try:
        counts = dict(
            conn.execute(
                "SELECT idempotency_key, count(*) FROM decisions GROUP BY idempotency_key"
            ).fetchall()
        )
    finally:
        conn.close()
    assert counts == {"warm-up": 1, **dict.fromkeys(keys, 1)}


def test_readyz_answers_while_another_connection_holds_the_write_lock(
    tmp_path: Path, sqlite_database_url: str
) -> None:
    with (
        running_api(tmp_path, sqlite_database_url, request_timeout_seconds=2.0) as api,
        write_lock_held(sqlite_database_url, 4.0) as released,
    ):
        started = time.perf_counter()
        response = api.client.get("/readyz")
        elapsed = time.perf_counter() - started
        assert not released.is_set(), "/readyz waited for the write lock"
    assert response.status_code == 200, response.text
    assert elapsed < 1.0
