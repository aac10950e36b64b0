"""Fixtures for the review-page tests: a served site and a fresh Chromium page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.kit import Site, browser, need_chromium, serving


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """The app on SQLite (the pages do not touch SQL; the main flow also runs on PostgreSQL)."""
    need_chromium()
    with serving(tmp_path, f"sqlite:///{tmp_path}/lockgate.db") as served:
        yield served


@pytest.fixture
def site_on_each_backend(tmp_path: Path, database_url: str) -> Iterator[Site]:
    need_chromium()
    with serving(tmp_path, database_url) as served:
        yield served


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    need_chromium()
    with browser(tmp_path / "chromium-profile") as opened:
        yield opened
