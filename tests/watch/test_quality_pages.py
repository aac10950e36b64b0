"""The spot-check page in Chromium: automated, delivered decisions marked "spot check"; a
reviewer's verdicts there count toward live accuracy and change nothing about the decision."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.kit import REVIEW_TASK, browser, chromium, need_chromium, screenshot, serving, sign_in

SPOT_TASK = REVIEW_TASK.replace("  review_sla_minutes: 30\n", "") + "  spot_check_rate: 1.0\n"


@pytest.fixture(scope="module")
def chromium_browser() -> Iterator[Any]:
    need_chromium()
    with chromium() as launched:
        yield launched


def test_a_reviewer_checks_delivered_decisions_on_the_spot_check_page(
    tmp_path: Path, sqlite_database_url: str, chromium_browser: Any
) -> None:
    need_chromium()
    with serving(tmp_path, sqlite_database_url, task=SPOT_TASK) as site:
        right = site.submit("a payment went missing", "p-1")
        wrong = site.submit("a payment went missing again", "p-2")
        assert site.status(right) == site.status(wrong) == "decided"
        delivered = site.runtime.store.decisions.get(wrong)
        assert delivered is not None and delivered.output != {"queue": "fraud"}
        site.runtime.quality.sweep()
        page: Any
        with browser(chromium_browser) as page:
            sign_in(page, site, site.key("alice", "reviewer"))
            with page.expect_navigation():
                page.click("nav >> text=Spot checks")
            cards = page.locator("section.spot-check")
            assert cards.count() == 2
            assert "spot check" in cards.first.inner_text()
            assert "a payment went missing" in page.inner_text("main")
            screenshot(page, "13-spot-checks")
            with page.expect_navigation():
                page.locator(f"#spot-{right} button", has_text="Right").click()
            assert "approved" in page.inner_text("#notice")
            card = page.locator(f"#spot-{wrong}")
            card.locator("select").select_option("fraud")
            card.locator(f"#correct-{wrong}").fill("a chargeback")
            with page.expect_navigation():
                card.locator("button", has_text="Wrong: it should be this").click()
            assert "corrected" in page.inner_text("#notice")
            assert page.locator("section.spot-check").count() == 0
            # The decision's own page shows the check and a downstream system's feedback.
            billing = site.principal("billing", "feedback")
            site.runtime.quality.add_feedback(billing, wrong, False, None, "ask ana@example.org")
            page.goto(f"{site.base}/ui/items/{wrong}")
            after = page.inner_text("#live-quality")
            assert "spot check" in after and "alice corrected it to queue: fraud" in after
            assert "billing said it was wrong" in after and "ana@example.org" not in after
            screenshot(page, "14-item-after-delivery")
        release = site.runtime.quality.accuracy("routing").release(1)
        assert release is not None and (release.overall.n, release.overall.agree) == (2, 1)
        assert site.runtime.store.decisions.get(wrong) == delivered  # not changed by the verdict
