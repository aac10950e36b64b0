"""`lockgate serve` sets the garbage collector for a server once its releases are loaded."""

from __future__ import annotations

import gc
import time
from pathlib import Path

from lockgate.monitor.telemetry import build_observer
from lockgate.runtime import Runtime
from lockgate.server import create_app, heap
from lockgate.settings import load_settings
from tests.cli.kit import DETERMINISTIC_TASK, database_made_on_purpose, make_project
from tests.server.kit import TestClient


def test_a_serving_process_freezes_its_start_up_objects_and_still_decides(
    tmp_path: Path, database_url: str
) -> None:
    project = make_project(tmp_path / "project", DETERMINISTIC_TASK)
    database_made_on_purpose(database_url)
    config = load_settings(project, database_url=database_url, environ={})
    runtime = Runtime.open(config, observer=build_observer(config))
    release, _ = runtime.create_release("routing", "test")
    runtime.store.releases.promote("routing", release.number, "test")
    _, secret = runtime.store.keys.create("client", "submitter", (), actor="test")
    threshold = gc.get_threshold()
    try:
        with TestClient(create_app(config, runtime=runtime, whole_process=True)) as client:
            deadline = time.monotonic() + 10
            while gc.get_freeze_count() == 0 and time.monotonic() < deadline:
                client.get("/healthz")  # the loop runs the settling once the releases load
                time.sleep(0.05)
            assert gc.get_freeze_count() > 0
            assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD
            answer = client.post(
                "/v1/tasks/routing/decisions",
                json={"input": {"text": "refund please"}},
                headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": "k-1"},
            )
            assert answer.status_code == 201, answer.text
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
        runtime.close()
