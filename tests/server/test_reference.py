"""The API reference: no CDN pages, `/docs` only when `api_docs` is on, behind an API key, with
no script and a Content-Security-Policy; `/openapi.json` stays public."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.server.kit import running_api


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
def test_no_docs_page_is_served_by_default(tmp_path: Path, database_url: str, path: str) -> None:
    with running_api(tmp_path, database_url, live=False) as api:
        answer = api.client.get(path, headers=api.auth("admin"))
    assert answer.status_code == 404


def test_the_openapi_description_is_served_without_a_key(tmp_path: Path, database_url: str) -> None:
    with running_api(tmp_path, database_url, live=False) as api:
        answer = api.client.get("/openapi.json")
    assert answer.status_code == 200
    assert "/v1/tasks/{task}/decisions" in answer.json()["paths"]


def test_docs_when_enabled_need_an_api_key(tmp_path: Path, database_url: str) -> None:
    with running_api(tmp_path, database_url, live=False, api_docs=True) as api:
        anonymous = api.client.get("/docs")
        wrong = api.client.get("/docs", headers={"Authorization": "Bearer lg_not-a-key"})
        viewer = api.client.get("/docs", headers=api.auth("viewer"))
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert wrong.status_code == 401
    assert viewer.status_code == 200


def test_docs_load_no_script_and_send_a_content_security_policy(
    tmp_path: Path, database_url: str
) -> None:
    with running_api(tmp_path, database_url, live=False, api_docs=True) as api:
        answer = api.client.get("/docs", headers=api.auth("viewer"))
    assert answer.headers["content-type"].startswith("text/html")
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "script-src" not in policy
    page = answer.text.lower()
    assert "<script" not in page and "<link" not in page and "src=" not in page
    assert "cdn" not in page and "https://" not in page
    assert "<code>POST /v1/tasks/{task}/decisions</code>".lower() in page


def test_redoc_stays_off_when_docs_are_enabled(tmp_path: Path, database_url: str) -> None:
    with running_api(tmp_path, database_url, live=False, api_docs=True) as api:
        answer = api.client.get("/redoc", headers=api.auth("viewer"))
    assert answer.status_code == 404
