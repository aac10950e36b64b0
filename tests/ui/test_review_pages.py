"""The review pages in real Chromium against a real server: what a reviewer sees and does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.ui.kit import (
    REVIEW_TASK,
    Site,
    screenshot,
    serving,
    sign_in,
)

FRAUD = "My card was stolen in Lisbon yesterday, please block it. Write to jane.doe@example.com"
CARD_FRAUD = "Someone has stolen my card 4111 1111 1111 1111 and used it twice"


def claim(page: Any) -> None:
    with page.expect_navigation():
        page.click("text=Claim to review")


def rows(page: Any) -> list[str]:
    return [row.get_attribute("data-href") for row in page.query_selector_all("#queue tbody tr")]


def test_a_reviewer_signs_in_claims_and_corrects_an_item_which_then_leaves_the_queue(
    site_on_each_backend: Site, page: Any
) -> None:
    site = site_on_each_backend
    first = site.submit(FRAUD, "t-1")
    second = site.submit("A stolen wallet, card inside, please help", "t-2", channel="email")
    sign_in(page, site, site.key("alice", "reviewer"))

    assert page.url.endswith("/ui/queue")
    assert rows(page) == [f"/ui/items/{first}", f"/ui/items/{second}"]  # oldest first
    assert "0 done today" in page.inner_text("#done-today")
    screenshot(page, "01-queue")

    page.click(f"a[href='/ui/items/{first}']")
    assert page.is_visible("text=Claim to review")
    assert page.query_selector("#correct-form") is None  # no verdict before a claim
    claim(page)
    screenshot(page, "02-item-claimed")

    page.select_option("#field-queue", "cards")
    page.fill("#correct-reason", "a lost card, not fraud")
    page.click("text=Save correction")

    assert "/ui/queue" in page.url
    assert "corrected" in page.inner_text(".notice")
    assert rows(page) == [f"/ui/items/{second}"]
    assert "1 done today" in page.inner_text("#done-today")
    screenshot(page, "03-queue-after-correction")
    corrected = site.runtime.store.decisions.get(first)
    assert corrected is not None
    assert (corrected.status, dict(corrected.output or {})) == ("corrected", {"queue": "cards"})


def test_rejecting_needs_a_reason_and_a_rejected_item_is_never_approved(
    site: Site, page: Any
) -> None:
    decision = site.submit(FRAUD, "t-1")
    sign_in(page, site, site.key("alice", "reviewer"))
    page.goto(f"{site.base}/ui/items/{decision}")
    claim(page)

    page.click("#reject-form button[type=submit]")  # empty reason: the browser holds the form
    assert site.status(decision) == "pending_review"

    page.fill("#reject-reason", "spam sent to the fraud line")
    page.click("#reject-form button[type=submit]")
    assert "rejected" in page.inner_text(".notice")
    assert rows(page) == []
    assert site.status(decision) == "rejected"


def test_keyboard_shortcuts_move_in_the_queue_open_an_item_and_approve_it(
    site: Site, page: Any
) -> None:
    older = site.submit(FRAUD, "t-1")
    newer = site.submit(CARD_FRAUD, "t-2")
    sign_in(page, site, site.key("alice", "reviewer"))

    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith(f"/ui/items/{older}")
    claim(page)
    with page.expect_navigation():
        page.keyboard.press("a")

    assert site.status(older) == "approved"
    assert rows(page) == [f"/ui/items/{newer}"]
    page.goto(f"{site.base}/ui/items/{older}")
    with page.expect_navigation():
        page.keyboard.press("n")
    assert page.url.endswith(f"/ui/items/{newer}")
    claim(page)
    page.keyboard.press("c")
    assert page.evaluate("document.activeElement.id") == "field-queue"
    page.keyboard.press("Escape")
    page.keyboard.press("r")
    assert page.evaluate("document.activeElement.id") == "reject-reason"


def test_personal_fields_are_masked_for_a_reviewer_and_clear_for_an_admin(
    site: Site, page: Any
) -> None:
    earlier = site.submit(
        "My card was stolen, call +44 20 7946 0958 or jane.doe@example.com", "t-0"
    )
    bob = site.principal("bob", "reviewer")
    site.runtime.reviews.claim(bob, earlier)
    site.runtime.reviews.approve(bob, earlier)
    decision = site.submit(CARD_FRAUD + ", write to jane.doe@example.com", "t-1", channel="chat")
    sign_in(page, site, site.key("alice", "reviewer"))
    page.goto(f"{site.base}/ui/items/{decision}")

    html = page.content()
    # The phone number's digits with their space: ids are hex and, being time-ordered, held
    # "7946" alone for a stretch of 2026-11-30 (the test failed then).
    for personal in ("jane.doe@example.com", "4111 1111 1111 1111", "7946 0958"):
        assert personal not in html
    assert "[email]" in html and "[card]" in html
    assert "chat" in page.inner_text("dl.input")  # a field not marked pii is shown as it is
    assert "call [phone] or [email]" in page.inner_text("ul.similar")  # masked there too
    screenshot(page, "04-item-masked")

    page.click("text=Sign out")
    sign_in(page, site, site.key("root", "admin"))
    page.goto(f"{site.base}/ui/items/{decision}")
    assert "jane.doe@example.com" in page.inner_text("dl.input")


def test_a_refusal_by_the_review_core_is_shown_as_a_message_on_the_page(
    site: Site, page: Any
) -> None:
    decision = site.submit(FRAUD, "t-1")
    site.runtime.reviews.claim(site.principal("alice", "reviewer"), decision)
    sign_in(page, site, site.key("bob", "reviewer"))
    page.goto(f"{site.base}/ui/items/{decision}")
    assert "Claimed by alice" in page.inner_text("#actions")

    claim(page)
    assert "Cannot do that now" in page.inner_text(".error")
    assert "alice" in page.inner_text(".error")
    screenshot(page, "05-claim-conflict")
    assert site.runtime.reviews.item(site.principal("bob", "reviewer"), decision).claimed_by == (
        "alice"
    )


def test_a_correction_that_breaks_the_output_schema_is_refused_on_the_page_without_its_value(
    site: Site, page: Any
) -> None:
    decision = site.submit(FRAUD, "t-1")
    sign_in(page, site, site.key("alice", "reviewer"))
    page.goto(f"{site.base}/ui/items/{decision}")
    claim(page)
    token = page.get_attribute("input[name=csrf_token]", "value")
    answer = page.request.post(
        f"{site.base}/ui/items/{decision}/correct",
        form={"csrf_token": token, "output.queue": "jane.doe@example.com", "reason": "typo"},
        headers={"Origin": site.base},
    )
    assert answer.status == 422
    assert "queue" in answer.text()
    assert "jane.doe@example.com" not in answer.text()
    assert site.status(decision) == "pending_review"


def test_an_approval_that_needs_a_second_reviewer_stays_in_the_queue_and_says_so(
    tmp_path: Path, sqlite_database_url: str, page: Any
) -> None:
    task = REVIEW_TASK + "  two_person_when:\n    - {field: queue, equals: fraud}\n"
    with serving(tmp_path, sqlite_database_url, task=task) as site:
        decision = site.submit(FRAUD, "t-1")
        sign_in(page, site, site.key("alice", "reviewer"))
        page.goto(f"{site.base}/ui/items/{decision}")
        claim(page)
        with page.expect_navigation():
            page.click("#approve-form button")
        assert f"/ui/items/{decision}" in page.url
        assert "another reviewer must approve" in page.inner_text(".notice")
        assert "so far: alice" in page.inner_text("#actions")
        screenshot(page, "07-first-of-two-approvals")
        assert site.status(decision) == "pending_review"

        bob = site.principal("bob", "reviewer")
        site.runtime.reviews.claim(bob, decision)
        site.runtime.reviews.approve(bob, decision)
        assert site.status(decision) == "approved"


def test_an_item_waiting_for_a_second_reviewer_is_greyed_and_skipped_by_its_first_reviewer(
    tmp_path: Path, sqlite_database_url: str, page: Any
) -> None:
    task = REVIEW_TASK + "  two_person_when:\n    - {field: queue, equals: fraud}\n"
    with serving(tmp_path, sqlite_database_url, task=task) as site:
        first = site.submit(FRAUD, "t-1")
        second = site.submit(CARD_FRAUD, "t-2")
        sign_in(page, site, site.key("alice", "reviewer"))
        page.goto(f"{site.base}/ui/items/{first}")
        claim(page)
        with page.expect_navigation():
            page.click("#approve-form button")

        page.goto(f"{site.base}/ui/queue")
        waiting = page.query_selector(f"#queue tr[data-href='/ui/items/{first}']")
        assert waiting is not None and "waiting" in (waiting.get_attribute("class") or "")
        assert "waiting for a second reviewer, 1 of 2 approvals" in waiting.inner_text()
        screenshot(page, "10-waiting-for-a-second-reviewer")
        page.keyboard.press("j")  # the first row waits for someone else: j selects the next
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.url.endswith(f"/ui/items/{second}")
        with page.expect_navigation():
            page.keyboard.press("n")  # next: not the one alice approved already
        assert page.url.endswith("/ui/queue?task=routing")

        page.goto(f"{site.base}/ui/items/{first}")
        assert "Nothing for you to do here: waiting for a second reviewer" in page.inner_text(
            "#actions"
        )
        assert page.query_selector("#claim-form") is None

        bob = site.key("bob", "reviewer")
        page.context.clear_cookies()
        sign_in(page, site, bob)
        assert page.query_selector("#queue tr.waiting") is None  # bob may give the second


def test_the_queue_serves_a_team_lead(tmp_path: Path, sqlite_database_url: str, page: Any) -> None:
    """Counts per task, a masked preview, age and time left to the SLA, my claims, releasing
    a claim, search by id or words, and finished lists that say who acted, when and why, with
    the policy's rejections apart from the reviewers'."""
    task = REVIEW_TASK + (
        "  review_sla_minutes: 30\n  reject_when:\n    - {input: text, matches: '^SPAM'}\n"
    )
    with serving(tmp_path, sqlite_database_url, task=task) as site:
        first = site.submit(FRAUD, "t-1")
        second = site.submit(CARD_FRAUD, "t-2")
        spam = site.submit("SPAM: cheap watches", "t-3")
        sign_in(page, site, site.key("alice", "reviewer"))

        assert page.inner_text("#pending-counts") == "2 pending: routing 2"
        row = page.inner_text(f"#queue tr[data-href='/ui/items/{first}']")
        assert "My card was stolen in Lisbon" in row
        assert "jane.doe@example.com" not in row  # masked for a reviewer
        assert "min left" in row and "0 min" in row  # 30-minute SLA, just received
        screenshot(page, "12-queue-for-a-lead")

        page.goto(f"{site.base}/ui/items/{first}")
        assert page.inner_text("#reason") == "queue is fraud: the policy sends fraud to review"
        claim(page)
        page.goto(f"{site.base}/ui/queue?mine=1")
        assert rows(page) == [f"/ui/items/{first}"]
        page.goto(f"{site.base}/ui/items/{first}")
        with page.expect_navigation():
            page.click("#release-form button")
        assert "You released your claim" in page.inner_text(".notice")
        assert (
            site.runtime.reviews.item(site.principal("alice", "reviewer"), first).claimed_by is None
        )
        page.goto(f"{site.base}/ui/queue?mine=1")
        assert rows(page) == []

        page.goto(f"{site.base}/ui/queue?q={second[-10:]}")
        assert rows(page) == [f"/ui/items/{second}"]
        page.goto(f"{site.base}/ui/queue?q=used+it+twice")
        assert rows(page) == [f"/ui/items/{second}"]
        page.goto(f"{site.base}/ui/queue?q=jane.doe")  # personal data is never searched
        assert rows(page) == []

        page.goto(f"{site.base}/ui/items/{first}")
        claim(page)
        page.fill("#reject-reason", "a test ticket")
        with page.expect_navigation():
            page.click("#reject-form button")
        page.goto(f"{site.base}/ui/queue?status=rejected")
        assert rows(page) == [f"/ui/items/{first}"]
        assert "alice" in page.inner_text("#queue") and "a test ticket" in page.inner_text("#queue")
        page.goto(f"{site.base}/ui/queue?status=rejected_by_policy")
        assert rows(page) == [f"/ui/items/{spam}"]
        assert "by the policy" in page.inner_text("#queue")


def test_selected_items_are_approved_together_but_never_across_the_two_person_rule(
    tmp_path: Path, sqlite_database_url: str, page: Any
) -> None:
    task = REVIEW_TASK + "  two_person_when:\n    - {field: queue, equals: payments}\n"
    task = task.replace(
        "  review_when:\n", "  review_when:\n    - {field: queue, equals: payments}\n"
    )
    with serving(tmp_path, sqlite_database_url, task=task) as site:
        first = site.submit(FRAUD, "t-1")
        second = site.submit(CARD_FRAUD, "t-2")
        two = site.submit("a payment, unsure", "t-3")
        sign_in(page, site, site.key("alice", "reviewer"))
        assert page.query_selector(f"input[name='select.{two}']") is None  # two reviewers
        page.check(f"input[name='select.{first}']")  # a tick never opens the item
        assert page.url.endswith("/ui/queue")
        page.check(f"input[name='select.{second}']")
        with page.expect_navigation():
            page.click("#approve-selected")
        assert "Approved 2 selected item(s)." in page.inner_text(".notice")
        assert (site.status(first), site.status(second)) == ("approved", "approved")
        assert site.status(two) == "pending_review"
        assert rows(page) == [f"/ui/items/{two}"]
