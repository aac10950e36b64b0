"""An API under test: a project with the deterministic task, a live release, keys per role."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lockgate.monitor.telemetry import build_observer
from lockgate.runtime import Runtime
from lockgate.security import Role
from lockgate.server import create_app
from lockgate.settings import load_settings
from tests.cli.kit import DETERMINISTIC_TASK, database_made_on_purpose, make_project

with warnings.catch_warnings():
    # This Starlette warns on import that it would rather use the `httpx2` package; httpx is
    # the one the project depends on and it works. Only this one import is silenced.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient


@dataclass
class Api:
    client: TestClient
    runtime: Runtime
    keys: dict[str, str] = field(default_factory=dict)

    def key(self, role: Role, *, tasks: tuple[str, ...] = (), name: str | None = None) -> str:
        """A key with `role` (made once per name)."""
        name = name or f"{role}-{'-'.join(tasks) or 'all'}"
        if name not in self.keys:
            _, secret = self.runtime.store.keys.create(name, role, tasks, actor="test")
            self.keys[name] = secret
        return self.keys[name]

    def auth(self, role: Role, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key(role, **kwargs)}"}

    def decide(self, text: str, key: str, role: Role = "submitter", **kwargs: Any) -> Any:
        return self.client.post(
            "/v1/tasks/routing/decisions",
            json={"input": {"text": text}},
            headers={**self.auth(role, **kwargs), "Idempotency-Key": key},
        )

    def release(self) -> None:
        """Create and promote release 1 of the routing task."""
        release, _ = self.runtime.create_release("routing", "test")
        self.runtime.store.releases.promote("routing", release.number, "test")


@contextmanager
def running_api(
    root: Path, database_url: str, *, live: bool = True, **settings: Any
) -> Iterator[Api]:
    project = make_project(root / "project", DETERMINISTIC_TASK)
    database_made_on_purpose(database_url)
    config = load_settings(project, database_url=database_url, environ={}).with_changes(**settings)
    runtime = Runtime.open(config, observer=build_observer(config))
    api = Api(TestClient(create_app(config, runtime=runtime)), runtime)
    try:
        if live:
            api.release()
        with api.client:
            yield api
    finally:
        runtime.close()
