"""Group commit over HTTP keeps every promise of the decision endpoint.

Groups only form under real concurrency, so the first test sends many requests at once from
threads to a real `lockgate serve` process (one per backend; its checks keep apart by their
keys and tasks). The fast path is compared with the documented route in
process, and a server killed with SIGKILL under load is restarted on the same database.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from lockgate.decide.router import in_canary
from lockgate.runtime import Runtime
from lockgate.server import create_app, decisions
from lockgate.server.fast_path import DecideFastPath
from lockgate.settings import load_settings
from tests.cli.kit import DETERMINISTIC_TASK, lockgate, lockgate_command, make_project
from tests.server.kit import TestClient
from tests.server.test_serve import live_project, submitter_key

CANARY_PERCENT = 30.0
CLIENTS = 16
"""Threads sending at once: enough for groups to form on two cores."""


# ---------------------------------------------------------------- a real server


class LoggedServer:
    """`lockgate serve` with its output in a file: a server answering hundreds of requests
    logs more than a pipe holds, and would stop when nobody reads the pipe. It listens on a
    port the system picks (`--port 0`), read from its log: no other process can hold it."""

    def __init__(self, project: Path, database_url: str, log: Path) -> None:
        self.log = log
        self.offset = log.stat().st_size if log.exists() else 0
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                lockgate_command("serve", "--project", str(project), "--port", "0"),
                env={**os.environ, "LOCKGATE_DATABASE_URL": database_url},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        with self.log.open("rb") as log:
            log.seek(self.offset)
            return log.read().decode(errors="replace")

    def wait_until_serving(self) -> str:
        """The base URL, once `/healthz` answers there."""
        deadline = time.monotonic() + 60
        base = None
        while True:
            assert self.process.poll() is None, self.output()
            if base is None:
                found = _LISTENING.search(self.output())
                base = found.group(1) if found else None
            if base is not None:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        return base
                except httpx.TransportError:
                    pass
            assert time.monotonic() < deadline, "the server did not start in 60 s"
            time.sleep(0.1)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        assert self.process.returncode == -signal.SIGKILL

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_LISTENING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:[0-9]+)")


def task_named(name: str, confidence: float = 0.9) -> str:
    return DETERMINISTIC_TASK.replace("name: routing", f"name: {name}").replace(
        "confidence: 0.9", f"confidence: {confidence}"
    )


def count(database_url: str, query: str, **params: Any) -> list[Any]:
    engine = sa.create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(query), params))
    finally:
        engine.dispose()


@dataclass
class Served:
    base: str
    key: str
    database_url: str
    server: LoggedServer | None = None

    def assert_no_group_failed(self) -> None:
        """A group that fails as a whole is decided again one by one, which hides the failure
        from clients; with valid input and a healthy database it must not happen at all."""
        assert self.server is not None
        failed = [line for line in self.server.output().splitlines() if "decisions failed" in line]
        assert not failed, failed[:3]

    def post(
        self, client: httpx.Client, task: str, key: str, text: str = "hello"
    ) -> httpx.Response:
        return client.post(
            f"/v1/tasks/{task}/decisions",
            json={"input": {"text": text}},
            headers={"Authorization": f"Bearer {self.key}", "Idempotency-Key": key},
        )

    def post_all(
        self, jobs: Sequence[tuple[str, str, str]]
    ) -> list[tuple[str, str, httpx.Response]]:
        """(task, key, text) jobs sent by `CLIENTS` threads at once; (key, text, response)."""
        limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        with (
            httpx.Client(base_url=self.base, timeout=60, limits=limits) as client,
            ThreadPoolExecutor(CLIENTS) as pool,
        ):
            return list(pool.map(lambda job: (job[1], job[2], self.post(client, *job)), jobs))

    def stored(self, task: str, prefix: str) -> dict[str, str]:
        """The task's stored decisions whose key starts with `prefix`: id by key."""
        rows = count(
            self.database_url,
            "select idempotency_key, id from decisions where task = :task "
            "and idempotency_key like :prefix",
            task=task,
            prefix=f"{prefix}%",
        )
        found = {key: id_ for key, id_ in rows}
        assert len(found) == len(rows), "a key was stored twice"
        return found


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[Served]:
    """`routing` live; `split` live with a canary deciding 30 % of keys; `mirror` live with a
    shadow release; one server."""
    url = database_url
    root = tmp_path
    project = make_project(root / "project")
    (project / "tasks" / "split.yaml").write_text(task_named("split"))
    (project / "tasks" / "mirror.yaml").write_text(task_named("mirror"))
    run = lambda *args: lockgate(*args, cwd=project, database=url)  # noqa: E731
    for task in ("routing", "split", "mirror"):
        run("release", "create", task)
        run("release", "promote", f"{task}@1")
    for task in ("split", "mirror"):
        (project / "tasks" / f"{task}.yaml").write_text(task_named(task, confidence=0.85))
        run("release", "create", task)
    run("release", "canary", "split@2", "--percent", str(CANARY_PERCENT))
    run("release", "shadow", "mirror@2")
    key = submitter_key(project, url)
    server = LoggedServer(project, url, root / "serve.log")
    try:
        yield Served(server.wait_until_serving(), key, url, server)
    finally:
        server.stop()
    assert "Traceback" not in server.output()


# ---------------------------------------------------------------- concurrent requests


def test_concurrent_requests_keep_every_promise_of_the_decision_endpoint(
    served: Served,
) -> None:
    """The checks share one server per backend (starting one costs more than all of them);
    each keeps apart by its keys and task."""
    for check in (
        distinct_keys_are_each_decided_once,
        the_same_key_at_once_is_decided_once_and_replayed_to_the_rest,
        the_same_key_with_two_inputs_at_once_decides_one_and_refuses_the_other,
        canary_buckets_are_unchanged,
        every_decision_has_its_shadow_run_queued,
    ):
        check(served)
        served.assert_no_group_failed()


def distinct_keys_are_each_decided_once(served: Served) -> None:
    jobs = [("routing", f"distinct-{n}", f"ticket {n}") for n in range(120)]

    answers = served.post_all(jobs)

    assert [r.status_code for _, _, r in answers] == [201] * 120, {
        r.status_code: r.text for _, _, r in answers if r.status_code != 201
    }
    ids = {key: r.json()["id"] for key, _, r in answers}
    assert len(set(ids.values())) == 120
    assert all(r.json()["idempotency_key"] == key for key, _, r in answers)
    assert served.stored("routing", "distinct-") == ids


def the_same_key_at_once_is_decided_once_and_replayed_to_the_rest(
    served: Served,
) -> None:
    jobs = [("routing", "same-key", "my card was stolen")] * 24

    answers = served.post_all(jobs)

    statuses = sorted(r.status_code for _, _, r in answers)
    assert statuses == [200] * 23 + [201], statuses
    assert len({r.json()["id"] for _, _, r in answers}) == 1
    assert [r.json()["replayed"] for _, _, r in answers].count(False) == 1
    assert len(served.stored("routing", "same-key")) == 1


def the_same_key_with_two_inputs_at_once_decides_one_and_refuses_the_other(
    served: Served,
) -> None:
    jobs = [("routing", "two-inputs", f"my card was {w}") for w in ("stolen", "lost") * 12]

    answers = served.post_all(jobs)

    (winner,) = [text for _, text, r in answers if r.status_code == 201]
    for _, text, response in answers:
        if text == winner:
            assert response.status_code in (200, 201), response.text
            assert response.json()["idempotency_key"] == "two-inputs"
        else:
            assert response.status_code == 409, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert "two-inputs" not in response.text
    assert len({r.json()["id"] for _, text, r in answers if text == winner}) == 1
    assert len(served.stored("routing", "two-inputs")) == 1


def canary_buckets_are_unchanged(served: Served) -> None:
    jobs = [("split", f"bucket-{n}", f"ticket {n}") for n in range(160)]

    answers = served.post_all(jobs)

    releases = {key: r.json()["release"] for key, _, r in answers if r.status_code == 201}
    assert len(releases) == 160
    for key, release in releases.items():
        expected = "split@2" if in_canary("split", key, CANARY_PERCENT) else "split@1"
        assert release == expected, key
    assert set(releases.values()) == {"split@1", "split@2"}
    rows = count(
        served.database_url,
        "select idempotency_key, release from decisions where task = 'split'",
    )
    assert {key: f"split@{number}" for key, number in rows} == releases


def every_decision_has_its_shadow_run_queued(served: Served) -> None:
    jobs = [("mirror", f"shadowed-{n}", f"ticket {n}") for n in range(80)]

    answers = served.post_all(jobs)

    assert {r.status_code for _, _, r in answers} == {201}
    ids = {r.json()["id"] for _, _, r in answers}
    assert {r.json()["release"] for _, _, r in answers} == {"mirror@1"}
    runs = count(
        served.database_url,
        "select decision_id, release from shadow_runs where task = 'mirror'",
    )
    assert sorted(decision for decision, _ in runs) == sorted(ids), "a run missing or twice"
    assert {release for _, release in runs} == {2}


# ---------------------------------------------------------------- fast path and route


@contextmanager
def fast_and_route_apps(root: Path, database_url: str) -> Iterator[dict[str, Any]]:
    """Three apps on one runtime, by name: "fast" as served; "route", the documented route
    alone (the fast path taken out of the middleware before the app starts); "fast alone",
    the fast path with the route taken out (what it serves itself still answers there)."""
    project = make_project(root / "project")
    settings = load_settings(project, database_url=database_url, environ={})
    runtime = Runtime.open(settings)
    try:
        release, _ = runtime.create_release("routing", "test")
        runtime.store.releases.promote("routing", release.number, "test")
        fast = create_app(settings, runtime=runtime)
        route = create_app(settings, runtime=runtime)
        assert any(m.cls is DecideFastPath for m in route.user_middleware)
        route.user_middleware = [m for m in route.user_middleware if m.cls is not DecideFastPath]
        alone = create_app(settings, runtime=runtime)
        # FastAPI keeps an included router as one entry; the decision endpoints go together.
        alone.router.routes = [
            r
            for r in alone.router.routes
            if getattr(r, "original_router", None) is not decisions.router
        ]
        yield {"fast": fast, "route": route, "fast alone": alone, "runtime": runtime}
    finally:
        runtime.close()


def layers(app: Any) -> list[type]:
    """The middleware an app was built with, outermost first."""
    found: list[type] = []
    layer = app.middleware_stack
    while layer is not None and layer is not app.router:
        found.append(type(layer))
        layer = getattr(layer, "app", None)
    return found


def role_keys(runtime: Runtime) -> dict[str, str]:
    """Secrets by name: a submitter, a viewer, a submitter for another task, and none issued."""
    create = runtime.store.keys.create
    return {
        "submitter": create("submitter", "submitter", (), actor="test")[1],
        "viewer": create("viewer", "viewer", (), actor="test")[1],
        "scoped": create("scoped", "submitter", ("other",), actor="test")[1],
        "unknown": "lg_this-key-was-never-issued",
    }


def request_shapes(
    keys: dict[str, str],
) -> dict[str, Callable[[TestClient, str], Any]]:
    """Requests by name; each takes a client and a prefix for its idempotency keys."""
    path = "/v1/tasks/routing/decisions"
    body = {"input": {"text": "my card was stolen"}}

    def bearer(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {keys[role]}"}

    def post(
        role: str | None = "submitter",
        key: str | None = "k",
        url: str = path,
        **kwargs: Any,
    ) -> Callable[[TestClient, str], Any]:
        def send(client: TestClient, prefix: str) -> Any:
            options = dict(kwargs)
            headers = dict(options.pop("headers", {}))
            if role is not None:
                headers.update(bearer(role))
            if key is not None:
                headers["Idempotency-Key"] = f"{prefix}-{key}"
            if not {"json", "content", "data"} & set(options):
                options["json"] = body
            return client.post(url, headers=headers, **options)

        return send

    def replayed(client: TestClient, prefix: str) -> Any:
        assert post(key="again")(client, prefix).status_code == 201
        return post(key="again")(client, prefix)

    def reused(client: TestClient, prefix: str) -> Any:
        assert post(key="reused")(client, prefix).status_code == 201
        return post(key="reused", json={"input": {"text": "another input"}})(client, prefix)

    return {
        "decided": post(key="new"),
        "replayed": replayed,
        "key reused with another input": reused,
        "json with a charset": post(
            key="charset",
            content=b'{"input": {"text": "hi"}}',
            headers={"Content-Type": "application/json; charset=utf-8"},
        ),
        "no content type": post(key="untyped", content=b'{"input": {"text": "hi"}}'),
        "no key": post(role=None),
        "unknown key": post(role="unknown"),
        "not a bearer key": post(role=None, headers={"Authorization": "Basic dXNlcjpwdw=="}),
        "a role that may not decide": post(role="viewer"),
        "a key for another task": post(role="scoped"),
        "malformed json": post(
            content=b'{"input": {"text": "hi"', headers={"Content-Type": "application/json"}
        ),
        "not the body schema": post(json={"inputs": {"text": "hi"}}),
        "input against the task schema": post(json={"input": {"text": 42}}),
        "no idempotency key": post(key=None),
        "an idempotency key too long": post(key="x" * 300),
        "a form": post(data={"input": "hi"}),
        "text/plain": post(
            content=b'{"input": {"text": "hi"}}', headers={"Content-Type": "text/plain"}
        ),
        "an unknown task": post(url="/v1/tasks/nosuch/decisions"),
        "an invalid task name": post(url="/v1/tasks/No_Such!/decisions"),
    }


def shown(response: httpx.Response, prefix: str) -> dict[str, Any]:
    """What a client sees, without what differs between two equal requests (ids, times)."""
    body = response.json()
    if "id" in body:  # a decision
        body = {k: v for k, v in body.items() if k not in ("id", "created_at", "latency_ms")}
        body["idempotency_key"] = body["idempotency_key"].removeprefix(prefix)
    return {
        "status": response.status_code,
        "content-type": response.headers.get("content-type"),
        "www-authenticate": response.headers.get("www-authenticate"),
        "retry-after": response.headers.get("retry-after"),
        "body": body,
    }


def test_the_fast_path_answers_every_request_as_the_documented_route(
    tmp_path: Path, database_url: str
) -> None:
    with fast_and_route_apps(tmp_path, database_url) as apps:
        shapes = request_shapes(role_keys(apps["runtime"]))
        seen: dict[str, dict[str, dict[str, Any]]] = {}
        for name in ("fast", "route", "fast alone"):
            app = apps[name]
            with TestClient(app) as client:
                seen[name] = {
                    shape: shown(send(client, name), name) for shape, send in shapes.items()
                }
    assert DecideFastPath in layers(apps["fast"])
    assert DecideFastPath not in layers(apps["route"])
    for shape in shapes:
        assert seen["fast"][shape] == seen["route"][shape], shape
    statuses = {shape: seen["fast"][shape]["status"] for shape in shapes}
    assert statuses == {
        "decided": 201,
        "replayed": 200,
        "key reused with another input": 409,
        "json with a charset": 201,
        "no content type": 201,
        "no key": 401,
        "unknown key": 401,
        "not a bearer key": 401,
        "a role that may not decide": 403,
        "a key for another task": 403,
        "malformed json": 422,
        "not the body schema": 422,
        "input against the task schema": 422,
        "no idempotency key": 400,
        "an idempotency key too long": 400,
        "a form": 415,
        "text/plain": 415,
        "an unknown task": 404,
        "an invalid task name": 422,
    }
    assert seen["fast"]["decided"]["content-type"] == "application/json"
    assert seen["fast"]["no key"]["content-type"] == "application/problem+json"
    # Not a comparison of the route with itself: the fast path served these on its own ...
    served_by_fast_path = {
        "decided",
        "replayed",
        "key reused with another input",
        "json with a charset",
        "no content type",
        "input against the task schema",
        "no idempotency key",
        "an idempotency key too long",
    }
    for shape in served_by_fast_path:
        assert seen["fast alone"][shape] == seen["fast"][shape], shape
    # ... and handed every refused request on to the route.
    for shape in set(shapes) - served_by_fast_path - {"an unknown task"}:
        assert seen["fast alone"][shape]["status"] == 404, shape


# ---------------------------------------------------------------- kill -9 under load


def test_kill_9_under_load_loses_no_acknowledged_decision(
    tmp_path: Path, sqlite_database_url: str
) -> None:
    url = sqlite_database_url
    project, key = live_project(tmp_path, url)
    served = Served("", key, url)
    log = tmp_path / "serve.log"
    server = LoggedServer(project, url, log)
    acknowledged: dict[str, str] = {}
    attempted: list[str] = []
    refused: list[str] = []
    numbers = itertools.count()
    lock = threading.Lock()
    stop = threading.Event()
    try:
        served.base = server.wait_until_serving()

        def client() -> None:
            with httpx.Client(base_url=served.base, timeout=60) as http:
                while not stop.is_set():
                    key = f"load-{next(numbers)}"
                    with lock:
                        attempted.append(key)
                    try:
                        response = served.post(http, "routing", key, f"ticket {key}")
                    except httpx.TransportError:
                        return  # the server is gone
                    with lock:
                        if response.status_code in (200, 201):
                            acknowledged[key] = response.json()["id"]
                        else:
                            refused.append(f"{response.status_code} {response.text}")

        with ThreadPoolExecutor(CLIENTS) as pool:
            clients = [pool.submit(client) for _ in range(CLIENTS)]
            try:
                deadline = time.monotonic() + 60
                while len(acknowledged) < 100:
                    assert time.monotonic() < deadline and not refused, refused
                    time.sleep(0.01)
                server.kill()  # mid-load: every client has a request in flight
            finally:
                stop.set()
            for done in clients:
                done.result()
        assert not refused, refused

        server = LoggedServer(project, url, log)
        served.base = server.wait_until_serving()
        stored = served.stored("routing", "load-")
        lost = {key for key in acknowledged if key not in stored}
        assert not lost, f"{len(lost)} acknowledged decisions were lost"
        assert {key: stored[key] for key in acknowledged} == acknowledged

        again = served.post_all([("routing", key, f"ticket {key}") for key in attempted])
    finally:
        server.stop()
    for key, _, response in again:
        assert response.status_code in (200, 201), response.text
        if key in acknowledged:
            assert response.status_code == 200
            assert response.json()["id"] == acknowledged[key]
    stored = served.stored("routing", "load-")
    assert sorted(stored) == sorted(attempted)
    assert {key: r.json()["id"] for key, _, r in again} == stored
    output = log.read_text(errors="replace")
    assert "decisions failed" not in output and "Traceback" not in output
