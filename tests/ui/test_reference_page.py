"""The API reference page (`/docs`, setting `api_docs`) in a real Chromium: it renders every
operation's error responses as problems under its strict Content-Security-Policy, with nothing
blocked and nothing loaded from elsewhere (issue 11, findings 14 and 16)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.kit import Site, need_chromium, screenshot, serving


@pytest.fixture
def docs_site(tmp_path: Path, sqlite_database_url: str) -> Iterator[Site]:
    need_chromium()
    with serving(tmp_path, sqlite_database_url, api_docs=True) as served:
        yield served


def test_the_reference_page_lists_each_operations_problems(docs_site: Site, page: Any) -> None:
    complaints: list[str] = []
    page.on("console", lambda m: complaints.append(m.text) if m.type == "error" else None)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.set_extra_http_headers({"Authorization": f"Bearer {docs_site.key('reader', 'viewer')}"})

    page.goto(f"{docs_site.base}/docs")

    heading = page.get_by_role("heading", name="POST /v1/tasks/{task}/decisions", exact=True)
    section = page.locator("section").filter(has=heading)
    conflict = section.locator("li", has_text="409")
    assert "application/problem+json" in conflict.inner_text()
    assert "Idempotency-Key is already in use" in conflict.inner_text()
    assert "(required)" in section.locator("li", has_text="Idempotency-Key").first.inner_text()
    assert section.locator("li", has_text="with Retry-After").count() == 2  # 429 and 503
    assert complaints == []
    assert requested == [f"{docs_site.base}/docs"]
    screenshot(page, "api-reference")
