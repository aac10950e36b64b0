"""The quarantine page under /ui/: operators see held records (personal data masked) and
replay or discard them; a viewer sees them but has no buttons and cannot post."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lockgate.runtime import Runtime
from lockgate.security import Role
from lockgate.server import create_app
from lockgate.settings import load_settings
from tests.intake.kit import drop, folder_source, intake_once, prepare, set_sources, show

SOURCE = "    map:\n      text: {from: [text]}\n"
FIXED = "    map:\n      text: {from: [text], aliases: [body]}\n"


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[tuple[TestClient, Path, Runtime]]:
    project = prepare(tmp_path / "p", database_url, folder_source(SOURCE))
    drop(project, "a.csv", 'body\n"my card was stolen, call +44 20 7946 0958"\nhello\n')
    intake_once(project, database_url)
    settings = load_settings(project, database_url=database_url, environ={})
    runtime = Runtime.open(settings)
    try:
        with TestClient(create_app(settings, runtime=runtime)) as client:
            yield client, project, runtime
    finally:
        runtime.close()


def sign_in(client: TestClient, runtime: Runtime, role: Role) -> None:
    _, secret = runtime.store.keys.create(role, role, (), actor="test")
    client.post(
        "/ui/sign-in",
        data={"api_key": secret, "csrf_token": csrf(client.get("/ui/sign-in").text)},
        headers={"Origin": "http://testserver"},
    )


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def test_an_operator_replays_held_records_after_fixing_the_mapping(
    site: tuple[TestClient, Path, Runtime], database_url: str
) -> None:
    client, project, runtime = site
    sign_in(client, runtime, "operator")
    page = client.get("/ui/quarantine/routing")
    assert page.status_code == 200
    assert page.text.count("missing required field text") == 2
    assert "7946 0958" not in page.text, "personal data is masked"

    set_sources(project, folder_source(FIXED))
    ids = re.search(r'name="ids" value="([^"]+)"', page.text)
    assert ids is not None
    done = client.post(
        "/ui/quarantine/routing/replay",
        data={"csrf_token": csrf(page.text), "ids": ids.group(1)},
        headers={"Origin": "http://testserver"},
    )
    assert done.status_code == 200 and "2 replayed: 2 decided" in done.text
    assert "Nothing is held in quarantine" in done.text
    counts = show(project, database_url, "inbox")
    assert (counts["decided"], counts["quarantined"]) == (2, 0)


def test_a_viewer_sees_the_records_but_may_not_discard_them(
    site: tuple[TestClient, Path, Runtime], database_url: str
) -> None:
    client, project, runtime = site
    sign_in(client, runtime, "viewer")
    page = client.get("/ui/quarantine/routing")
    assert page.status_code == 200 and 'id="discard-all"' not in page.text
    refused = client.post(
        "/ui/quarantine/routing/discard",
        data={"csrf_token": csrf(page.text), "ids": "1,2"},
        headers={"Origin": "http://testserver"},
    )
    assert refused.status_code == 403
    assert show(project, database_url, "inbox")["quarantined"] == 2
