"""The review pages under test: `lockgate`'s app served by uvicorn on a loopback port, and
Debian's Chromium driven by Playwright: one browser per test run, a fresh context per test.

Decisions are made through the real HTTP API by a submitter key; reviewers sign in with keys
made in the store, as an admin would with `lockgate keys create`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from lockgate.runtime import Runtime
from lockgate.security import Principal, Role
from lockgate.server import create_app
from lockgate.settings import load_settings
from tests.cli.kit import database_made_on_purpose, make_project

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

#: The routing task with a second, non-personal input field and a policy that sends every
#: fraud case and every low-confidence answer to review.
REVIEW_TASK = """\
name: routing
input:
  text: {type: string, max_length: 4000, pii: true}
  channel: {type: string, required: false}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
models:
  - provider: deterministic
    confidence: 0.9
    answers:
      - {if_contains: "stolen", output: {queue: fraud}}
      - {if_contains: "unsure", output: {queue: payments}, confidence: 0.4}
policy:
  auto_min_confidence: 0.8
  review_when:
    - {field: queue, equals: fraud}
"""


def need_chromium() -> None:
    """Skip without Debian's Chromium; in CI (`CI` set) fail instead, never lose these tests."""
    if CHROMIUM.exists():
        return
    reason = (
        "Debian's chromium is not installed at /usr/bin/chromium; "
        "`make test` installs it (scripts/test-tools.sh)"
    )
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Site:
    """A running server: its base URL, the runtime behind it, and keys by name."""

    base: str
    runtime: Runtime
    secrets: dict[str, str] = field(default_factory=dict)

    def key(self, name: str, role: Role, tasks: tuple[str, ...] = ()) -> str:
        if name not in self.secrets:
            _, secret = self.runtime.store.keys.create(name, role, tasks, actor="test")
            self.secrets[name] = secret
        return self.secrets[name]

    def principal(self, name: str, role: Role) -> Principal:
        """The key named `name` as the review core sees it (made first if needed)."""
        self.key(name, role)
        stored = self.runtime.store.keys.list_all()
        return Principal.of(next(k for k in stored if k.name == name))

    def submit(self, text: str, idempotency_key: str, **extra: Any) -> str:
        """Decide one input through the API as the `app` submitter; the decision's id."""
        response = httpx.post(
            f"{self.base}/v1/tasks/routing/decisions",
            json={"input": {"text": text, **extra}},
            headers={
                "Authorization": f"Bearer {self.key('app', 'submitter')}",
                "Idempotency-Key": idempotency_key,
            },
            timeout=10,
        )
        assert response.status_code == 201, response.text
        decision_id: str = response.json()["id"]
        return decision_id

    def status(self, decision_id: str) -> str:
        decision = self.runtime.store.decisions.get(decision_id)
        assert decision is not None
        return decision.status


@contextmanager
def serving(
    root: Path, database_url: str, task: str = REVIEW_TASK, **settings: Any
) -> Iterator[Site]:
    """`create_app` behind a real uvicorn server on 127.0.0.1, with routing@1 live."""
    project = make_project(root / "project", task)
    database_made_on_purpose(database_url)
    config = load_settings(project, database_url=database_url, environ={}).with_changes(**settings)
    runtime = Runtime.open(config)
    release, _ = runtime.create_release("routing", "test")
    runtime.store.releases.promote("routing", release.number, "test")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config, runtime=runtime),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            ws="none",
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, "uvicorn did not start in 20 s"
            time.sleep(0.05)
        yield Site(f"http://127.0.0.1:{port}", runtime)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        runtime.close()


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright; one serves a test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def browser(chromium: Any) -> Iterator[Any]:
    """A page in a fresh context of ``chromium``: no cookies or storage from other tests."""
    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    try:
        context.set_default_timeout(15_000)
        yield context.new_page()
    finally:
        context.close()


def sign_in(page: Any, site: Site, secret: str) -> None:
    page.goto(f"{site.base}/ui/sign-in")
    page.fill("#api_key", secret)
    with page.expect_navigation():
        page.click("button[type=submit]")


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
