"""Two `lockgate serve` processes on one PostgreSQL database act as one service."""

from __future__ import annotations

import itertools
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from tests.cli.kit import lockgate, make_project
from tests.server.test_group_commit import LoggedServer
from tests.server.test_serve import live_project, start_server, submitter_key, wait_until_healthy


def test_replicas_share_idempotency_keys_without_deciding_twice(
    tmp_path: Path, postgres_database_url: str
) -> None:
    database = postgres_database_url
    project, key = live_project(tmp_path, database)
    servers = [start_server(project, database) for _ in range(2)]
    try:
        for process, base in servers:
            wait_until_healthy(process, base)

        def post(job: tuple[int, int]) -> tuple[int, int, str]:
            n, replica = job
            response = httpx.post(
                f"{servers[replica][1]}/v1/tasks/routing/decisions",
                json={"input": {"text": f"ticket {n}"}},
                headers={"Authorization": f"Bearer {key}", "Idempotency-Key": f"k-{n}"},
                timeout=30,
            )
            assert response.status_code in (200, 201), response.text
            return n, response.status_code, response.json()["id"]

        # every key is sent to both replicas at about the same time
        jobs = [(n, replica) for n in range(100) for replica in (0, 1)]
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(post, jobs))
    finally:
        for process, _ in servers:
            process.send_signal(signal.SIGTERM)
        for process, _ in servers:
            process.communicate(timeout=30)

    ids: dict[int, set[str]] = {}
    created: dict[int, int] = {}
    for n, status, decision_id in results:
        ids.setdefault(n, set()).add(decision_id)
        created[n] = created.get(n, 0) + (status == 201)
    assert all(len(found) == 1 for found in ids.values()), "a key got two decisions"
    assert all(count == 1 for count in created.values()), "a key was created twice"
    engine = sa.create_engine(database, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            stored = conn.execute(sa.text("select count(*) from decisions")).scalar_one()
    finally:
        engine.dispose()
    assert stored == 100


# ---------------------------------------------------------------- caches across replicas

KEY_CACHE_SECONDS = 1.0
RELEASE_REFRESH_SECONDS = 1.0
SLACK_SECONDS = 0.25
"""Between this process's clock reading and the server's (one machine, one monotonic clock):
a request *sent* later than the bound after the change must see the change. The answer may
arrive later still on a loaded machine; only when it was sent matters."""


@dataclass
class Replicas:
    project: Path
    database: str
    bases: list[str]
    key: str

    def post(self, base: str, key: str, secret: str | None = None) -> tuple[float, httpx.Response]:
        """When the request was sent (monotonic), and its answer."""
        sent = time.monotonic()
        response = httpx.post(
            f"{base}/v1/tasks/routing/decisions",
            json={"input": {"text": "my card was charged twice"}},
            headers={
                "Authorization": f"Bearer {secret or self.key}",
                "Idempotency-Key": f"{key}-{uuid.uuid4().hex}",
            },
            timeout=30,
        )
        return sent, response


@pytest.fixture
def replicas(tmp_path: Path, postgres_database_url: str) -> Iterator[Replicas]:
    """Two `lockgate serve` on one PostgreSQL database, keys cached for 1 s and the serving
    release read again after 1 s (lockgate.yaml); `routing@1` live."""
    database = postgres_database_url
    project = make_project(tmp_path / "project")
    (project / "lockgate.yaml").write_text(
        f"api_key_cache_seconds: {KEY_CACHE_SECONDS}\n"
        f"release_refresh_seconds: {RELEASE_REFRESH_SECONDS}\n"
    )
    lockgate("release", "create", "routing", cwd=project, database=database)
    lockgate("release", "promote", "routing@1", cwd=project, database=database)
    key = submitter_key(project, database)
    servers = [LoggedServer(project, database, tmp_path / f"serve-{n}.log") for n in range(2)]
    try:
        bases = [server.wait_until_serving() for server in servers]
        yield Replicas(project, database, bases, key)
    finally:
        for server in servers:
            server.stop()


def test_revocation_and_release_moves_reach_every_replica_within_their_bounds(
    replicas: Replicas,
) -> None:
    """Both checks on one pair of replicas (starting them costs more than the checks)."""
    a_revoked_key_stops_on_every_replica_within_api_key_cache_seconds(replicas)
    promote_and_rollback_reach_every_replica_within_release_refresh_seconds(replicas)


def first_change(
    replicas: Replicas,
    changed_at: float,
    send: Callable[[str, int], tuple[float, httpx.Response]],
    changed: Callable[[httpx.Response], bool],
) -> dict[str, float]:
    """Poll every replica until it answers changed; per replica, how long after `changed_at`
    the last request that still got the old answer was sent (0 if none). Fails when a replica
    keeps the old answer 15 s, or goes back to it once changed."""
    last_old = dict.fromkeys(replicas.bases, 0.0)
    pending = set(replicas.bases)
    deadline = changed_at + 15
    for attempt in itertools.count():
        for base in sorted(pending):
            sent, response = send(base, attempt)
            if changed(response):
                pending.discard(base)
                # Changed for good: the very next request agrees.
                assert changed(send(base, attempt)[1]), f"{base} went back to the old answer"
            else:
                last_old[base] = max(last_old[base], sent - changed_at)
        if not pending:
            return last_old
        assert time.monotonic() < deadline, f"still the old answer after 15 s: {pending}"
        time.sleep(0.05)
    raise AssertionError("unreachable")


def a_revoked_key_stops_on_every_replica_within_api_key_cache_seconds(
    replicas: Replicas,
) -> None:
    run = lambda *args: lockgate(*args, cwd=replicas.project, database=replicas.database)  # noqa: E731
    secret = run("keys", "create", "--name", "leaving", "--role", "submitter").stdout.split()[-1]
    for base in replicas.bases:  # both replicas checked the key and keep it
        for n in range(2):
            assert replicas.post(base, f"before-{n}", secret)[1].status_code == 201

    run("keys", "revoke", "leaving")
    revoked_at = time.monotonic()

    def send(base: str, attempt: int) -> tuple[float, httpx.Response]:
        return replicas.post(base, f"after-{attempt}", secret)

    def refused(response: httpx.Response) -> bool:
        assert response.status_code in (201, 401), response.text
        return response.status_code == 401

    last_accepted = first_change(replicas, revoked_at, send, refused)
    for base, after in last_accepted.items():
        assert after <= KEY_CACHE_SECONDS + SLACK_SECONDS, (base, after)
    # The other keys are not affected.
    assert all(replicas.post(b, "other")[1].status_code == 201 for b in replicas.bases)


def promote_and_rollback_reach_every_replica_within_release_refresh_seconds(
    replicas: Replicas,
) -> None:
    run = lambda *args: lockgate(*args, cwd=replicas.project, database=replicas.database)  # noqa: E731
    live = {replicas.post(b, "warm")[1].json()["release"] for b in replicas.bases}
    assert len(live) == 1
    (before,) = live
    task_file = replicas.project / "tasks" / "routing.yaml"
    task_file.write_text(task_file.read_text().replace("confidence: 0.9", "confidence: 0.85"))
    run("release", "create", "routing")
    number = _newest_release(replicas.database)
    assert f"routing@{number}" != before
    after = f"routing@{number}"

    def send(base: str, attempt: int) -> tuple[float, httpx.Response]:
        return replicas.post(base, f"moved-{attempt}")

    for command, old, new in (
        (("release", "promote", after), before, after),
        (("release", "rollback", "routing"), after, before),
    ):
        run(*command)
        moved_at = time.monotonic()

        def moved(response: httpx.Response, old: str = old, new: str = new) -> bool:
            assert response.status_code == 201, response.text
            assert response.json()["release"] in (old, new)
            return bool(response.json()["release"] == new)

        last_old = first_change(replicas, moved_at, send, moved)
        for base, late in last_old.items():
            assert late <= RELEASE_REFRESH_SECONDS + SLACK_SECONDS, (command, base, late)


def _newest_release(database: str) -> int:
    """The newest release number of `routing`."""
    engine = sa.create_engine(database, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text("select max(number) from releases where task = 'routing'")
                ).scalar_one()
            )
    finally:
        engine.dispose()
