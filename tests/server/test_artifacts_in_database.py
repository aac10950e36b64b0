"""A release carries its model files in the database: a replica on another machine, with an
empty project folder, decides with the live release, and a tampered copy is refused."""

from __future__ import annotations

import csv
import hashlib
import random
import signal
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from lockgate.errors import ConfigError
from lockgate.store import Store
from lockgate.store.tables import model_artifacts
from tests.cli.kit import lockgate
from tests.server.test_serve import start_server, submitter_key, wait_until_healthy

TASK = """\
name: routing
input:
  text: {type: string}
output:
  queue: {type: enum, values: [billing, tech]}
models:
  - provider: local-classifier
policy:
  auto_min_confidence: 0.0
"""

WORDS = {"billing": ["invoice", "refund", "charged"], "tech": ["crash", "error", "login"]}


def classifier_project(root: Path, database: str) -> Path:
    (root / "tasks").mkdir(parents=True)
    (root / "tasks" / "routing.yaml").write_text(TASK)
    rng = random.Random(3)
    with (root / "train.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "queue"])
        for _ in range(20):
            for label, words in WORDS.items():
                writer.writerow([" ".join(rng.sample(words, 2)), label])
    lockgate("train", "routing", "--data", "train.csv", cwd=root, database=database)
    lockgate("release", "create", "routing", cwd=root, database=database)
    lockgate("release", "promote", "routing@1", cwd=root, database=database)
    return root


def stored_artifacts(database: str) -> dict[str, bytes]:
    engine = sa.create_engine(database, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(model_artifacts.c.sha256, model_artifacts.c.content))
            return {sha: bytes(content) for sha, content in rows}
    finally:
        engine.dispose()


def test_a_replica_with_an_empty_project_folder_decides_with_the_live_release(
    tmp_path: Path, postgres_database_url: str
) -> None:
    database = postgres_database_url
    project = classifier_project(tmp_path / "project", database)
    (sha,) = stored_artifacts(database)  # release create stored the pinned classifier
    key = submitter_key(project, database)
    elsewhere = tmp_path / "elsewhere"  # another machine: no tasks, no trained files
    elsewhere.mkdir()
    server, base = start_server(elsewhere, database)
    try:
        wait_until_healthy(server, base)
        response = httpx.post(
            f"{base}/v1/tasks/routing/decisions",
            json={"input": {"text": "refund invoice"}},
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "far-1"},
            timeout=30,
        )
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
    assert response.status_code == 201, response.text
    assert response.json()["output"] == {"queue": "billing"}
    assert response.json()["release"] == "routing@1"
    cached = list((elsewhere / ".lockgate").rglob(f"{sha}.joblib"))
    assert len(cached) == 1, "the fetched artifact is kept on local disk"


def test_an_artifact_whose_bytes_do_not_match_its_hash_is_refused(database_url: str) -> None:
    store = Store(database_url)
    try:
        data = b"model bytes"
        sha = hashlib.sha256(data).hexdigest()
        with pytest.raises(ConfigError, match="do not hash to its name"):
            store.artifacts.put(sha, b"other bytes")
        store.artifacts.put(sha, data)
        store.artifacts.put(sha, data)  # the same content again: a no-op
        assert store.artifacts.get(sha) == data
        assert store.artifacts.get("0" * 64) is None
    finally:
        store.close()
