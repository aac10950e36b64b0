"""Two `lockgate serve` processes on one PostgreSQL database act as one service."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from tests.cli.kit import lockgate, make_project
from tests.server.test_serve import start_server, submitter_key, wait_until_healthy


def test_replicas_share_idempotency_keys_without_deciding_twice(
    tmp_path: Path, postgres_database_url: str
) -> None:
    database = postgres_database_url
    project = make_project(tmp_path / "project")
    lockgate("release", "create", "routing", cwd=project, database=database)
    lockgate("release", "promote", "routing@1", cwd=project, database=database)
    key = submitter_key(project, database)
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
