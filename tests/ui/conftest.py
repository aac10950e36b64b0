"""Fixtures for the review-page tests: a served site and a fresh Chromium page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.kit import Site, browser, chromium, need_chromium, serving


@pytest.fixture
def site(tmp_path: Path, sqlite_database_url: str) -> Iterator[Site]:
    """The app on SQLite (the pages do not touch SQL; the main flow also runs on PostgreSQL)."""
    need_chromium()
    with serving(tmp_path, sqlite_database_url) as served:
        yield served


@pytest.fixture
def site_on_each_backend(tmp_path: Path, database_url: str) -> Iterator[Site]:
    need_chromium()
    with serving(tmp_path, database_url) as served:
        yield served


@pytest.fixture(scope="module")
def chromium_browser() -> Iterator[Any]:
    """One Chromium per test module; tests share only the process.

    Not one per run: while Playwright's sync API is started it keeps an asyncio event loop
    running in the main thread, and `asyncio.run` in any later test of the same worker would
    fail with "cannot be called from a running event loop"."""
    need_chromium()
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(chromium_browser: Any) -> Iterator[Any]:
    """A page in a fresh browser context, so no cookies or storage cross between tests."""
    with browser(chromium_browser) as opened:
        yield opened
