"""The review pages: server-rendered HTML under `/ui/`, plain forms plus a small script for
keyboard shortcuts. `build_router(settings)` is included by `create_app`."""

from __future__ import annotations

from fastapi import APIRouter

from lockgate.server.ui.routes import ReviewPages
from lockgate.settings import Settings

__all__ = ["build_router"]


def build_router(settings: Settings) -> APIRouter:
    """The `/ui` router; its session secret is `settings.session_secret`, or random."""
    return ReviewPages(settings).router()
