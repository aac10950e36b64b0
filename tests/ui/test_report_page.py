"""The suggest-mode report page shows the review core's agreement figures."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lockgate.rollout.shadow import build_shadow_report
from tests.ui.kit import REVIEW_TASK, browser, need_chromium, screenshot, serving, sign_in

SUGGEST_TASK = REVIEW_TASK + "  mode: suggest\n"


def test_the_report_page_counts_agreement_between_suggestions_and_verdicts(
    tmp_path: Path, chromium_browser: Any
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
        with browser(chromium_browser) as page:
            sign_in(page, site, site.key("alice", "reviewer"))
            with page.expect_navigation():
                page.click("text=routing report")
            screenshot(page, "06-suggest-report")
            assert page.inner_text("#overall-reviewed") == "4"
            assert page.inner_text("#overall-agreement") == "75.0%"
            labels = page.inner_text("#labels")
            assert "fraud" in labels and "payments" in labels
            assert "not yet" in labels  # far fewer reviews than a label needs


def test_the_shadow_page_shows_the_shadow_release_beside_live(
    tmp_path: Path, chromium_browser: Any
) -> None:
    need_chromium()
    with serving(tmp_path, f"sqlite:///{tmp_path}/lockgate.db") as site:
        tasks_file = site.runtime.settings.tasks_dir / "routing.yaml"
        tasks_file.write_text(tasks_file.read_text().replace("queue: fraud}", "queue: cards}"))
        candidate, _ = site.runtime.create_release("routing", "test")
        site.runtime.store.rollout.start_shadow("routing", candidate.number, "test")
        for n in range(3):
            site.submit(f"my card was stolen, case {n}", f"sh-{n}")
        site.submit("payment unsure", "sh-3")
        deadline = time.monotonic() + 30
        while (
            site.runtime.store.rollout.shadow_counts("routing", candidate.number).get("done", 0) < 4
        ):
            assert time.monotonic() < deadline, "the shadow worker did not finish in 30 s"
            time.sleep(0.2)
        expected = build_shadow_report(
            site.runtime.store.rollout, site.runtime.store.releases, "routing"
        )
        page: Any
        with browser(chromium_browser) as page:
            sign_in(page, site, site.key("alice", "reviewer"))
            with page.expect_navigation():
                page.click("text=routing shadow")
            screenshot(page, "08-shadow-report")
            assert page.inner_text("#shadow-compared") == "4"
            assert expected.agreement == 0.25  # the shadow answers cards where live said fraud
            assert page.inner_text("#shadow-agreement") == "25.0%"
            cells = page.eval_on_selector_all(
                "#confusion tr", "rows => rows.map(r => [...r.children].map(c => c.textContent))"
            )
            assert cells == [["", "cards", "payments"], ["fraud", "3", "0"], ["payments", "0", "1"]]


def test_each_page_says_what_is_true_for_the_case_shown(
    tmp_path: Path, chromium_browser: Any
) -> None:
    """The report of a task not in suggest mode does not claim that every decision waits for a
    person; a viewer, who may not review, reads why, not also "Nothing to review here"."""
    need_chromium()
    with serving(tmp_path, f"sqlite:///{tmp_path}/lockgate.db") as site:  # gated mode
        site.submit("card stolen", "g-1")
        page: Any
        with browser(chromium_browser) as page:
            sign_in(page, site, site.key("alice", "reviewer"))
            page.goto(f"{site.base}/ui/reports/routing")
            mode = page.inner_text("#mode")
            assert "every decision waits for a person" not in mode
            assert "routing is not in suggest mode now" in mode
        with browser(chromium_browser) as page:
            sign_in(page, site, site.key("vera", "viewer"))
            page.goto(f"{site.base}/ui/queue")
            screenshot(page, "11-queue-for-a-viewer")
            text = page.inner_text("main")
            assert "Nothing to review here" not in text
            assert page.query_selector(".error") is not None
