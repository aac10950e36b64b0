"""The review pages over HTTP without a browser: what every response carries, and the pages
served by a real `lockgate serve` process."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from lockgate.store import Store
from tests.cli.kit import database_made_on_purpose, make_project
from tests.server.kit import running_api
from tests.server.test_serve import start_server, wait_until_healthy


def test_under_https_the_session_cookie_is_secure_http_only_and_strict(tmp_path: Path) -> None:
    with running_api(tmp_path, f"sqlite:///{tmp_path}/db.sqlite") as api:
        api.client.base_url = "https://testserver"
        answer = api.client.get("/ui/sign-in")
    cookie = answer.headers["set-cookie"].lower()
    for attribute in ("secure", "httponly", "samesite=strict", "path=/ui"):
        assert attribute in cookie


def test_pages_are_not_cached_not_framed_and_run_only_scripts_from_the_server(
    tmp_path: Path,
) -> None:
    with running_api(tmp_path, f"sqlite:///{tmp_path}/db.sqlite") as api:
        answer = api.client.get("/ui/sign-in")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-frame-options"] == "DENY"
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "set-cookie" in answer.headers and "secure" not in answer.headers["set-cookie"].lower()


@pytest.mark.parametrize(
    "path",
    ["/ui/queue", "/ui/items/01a2b3", "/ui/reports/routing", "/ui/shadow/routing", "/ui/next"],
)
def test_without_a_session_every_page_sends_the_browser_to_sign_in(
    tmp_path: Path, path: str
) -> None:
    with running_api(tmp_path, f"sqlite:///{tmp_path}/db.sqlite") as api:
        answer = api.client.get(path, follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (303, "/ui/sign-in")


@pytest.mark.parametrize("name", ["app.css", "keys.js"])
def test_the_stylesheet_and_script_are_served(tmp_path: Path, name: str) -> None:
    with running_api(tmp_path, f"sqlite:///{tmp_path}/db.sqlite") as api:
        answer = api.client.get(f"/ui/static/{name}")
    assert answer.status_code == 200 and answer.content


@pytest.mark.parametrize("name", ["base.html", "..%2F__init__.py", "missing.js"])
def test_nothing_else_is_served_as_a_static_file(tmp_path: Path, name: str) -> None:
    with running_api(tmp_path, f"sqlite:///{tmp_path}/db.sqlite") as api:
        answer = api.client.get(f"/ui/static/{name}")
    assert answer.status_code == 404


def test_lockgate_serve_serves_the_sign_in_page_and_signs_a_reviewer_in(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path / "project")
    database = database_made_on_purpose(f"sqlite:///{tmp_path}/serve.db")
    server, base = start_server(project, database)
    try:
        wait_until_healthy(server, base)
        store = Store(database)
        try:
            _, secret = store.keys.create("alice", "reviewer", (), actor="test")
        finally:
            store.close()
        with httpx.Client(base_url=base, timeout=10) as browser:
            form = browser.get("/ui/sign-in")
            assert form.status_code == 200 and "Sign in" in form.text
            match = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert match is not None
            signed_in = browser.post(
                "/ui/sign-in",
                data={"csrf_token": match.group(1), "api_key": secret},
                headers={"Origin": base},
                follow_redirects=True,
            )
        assert signed_in.status_code == 200
        assert "Review queue" in signed_in.text and "alice" in signed_in.text
        assert secret not in signed_in.text
    finally:
        server.terminate()
        server.communicate(timeout=30)
