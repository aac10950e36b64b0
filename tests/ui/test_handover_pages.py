"""The readiness report and the runbook as pages, for a viewer: the same items, evidence and
commands as `lockgate readiness`, and the runbook of the live release."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lockgate.server.readiness import report
from tests.ui.kit import Site, browser, screenshot, sign_in


def test_a_viewer_reads_the_readiness_report_and_the_runbook(
    site: Site, chromium_browser: Any, tmp_path: Path
) -> None:
    expected = report(site.runtime, "routing")
    page: Any
    with browser(chromium_browser) as page:
        sign_in(page, site, site.key("vera", "viewer"))
        page.goto(f"{site.base}/ui/readiness/routing")
        screenshot(page, "20-readiness")
        assert page.inner_text("#score").startswith(f"{expected.score}% ready")
        for item in expected.items:
            row = page.inner_text(f"#item-{item.name}")
            assert item.status in row and item.evidence in row
            for command in item.commands:
                assert command in row
        assert "live: routing@1" in page.inner_text("#score")
        with page.expect_navigation():
            page.click("text=runbook")
        screenshot(page, "21-runbook")
        text = page.inner_text("#runbook")
        assert text.startswith("# Runbook: routing")
        assert "routing@1" in text and "## Failure modes" in text
        answer = page.goto(f"{site.base}/ui/readiness/nosuchtask")
        assert answer is not None and answer.status == 404
        assert page.inner_text("main").startswith("Not found")


def test_a_key_for_another_task_may_not_read_its_readiness(
    site: Site, chromium_browser: Any
) -> None:
    page: Any
    with browser(chromium_browser) as page:
        sign_in(page, site, site.key("olga", "viewer", ("other",)))
        answer = page.goto(f"{site.base}/ui/readiness/routing")
        assert answer is not None and answer.status == 403
        answer = page.goto(f"{site.base}/ui/runbook/routing")
        assert answer is not None and answer.status == 403
