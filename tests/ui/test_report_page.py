"""The suggest-mode report page shows the review core's agreement figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.ui.kit import REVIEW_TASK, browser, need_chromium, screenshot, serving, sign_in

SUGGEST_TASK = REVIEW_TASK + "  mode: suggest\n"


def test_the_report_page_counts_agreement_between_suggestions_and_verdicts(
    tmp_path: Path,
) -> None:
    need_chromium()
    with serving(tmp_path, f"sqlite:///{tmp_path}/lockgate.db", task=SUGGEST_TASK) as site:
        ids = [site.submit(f"card stolen, case {n}", f"s-{n}") for n in range(3)]
        ids.append(site.submit("payment unsure", "s-3"))
        alice = site.principal("alice", "reviewer")
        reviews = site.runtime.reviews
        for decision_id in ids:
            reviews.claim(alice, decision_id)
        reviews.approve(alice, ids[0])
        reviews.approve(alice, ids[1])
        reviews.correct(alice, ids[2], {"queue": "cards"}, "a lost card")
        reviews.approve(alice, ids[3])
        page: Any
        with browser(tmp_path / "profile") as page:
            sign_in(page, site, site.key("alice", "reviewer"))
            with page.expect_navigation():
                page.click("text=routing report")
            screenshot(page, "06-suggest-report")
            assert page.inner_text("#overall-reviewed") == "4"
            assert page.inner_text("#overall-agreement") == "75.0%"
            labels = page.inner_text("#labels")
            assert "fraud" in labels and "payments" in labels
            assert "not yet" in labels  # far fewer reviews than a label needs
