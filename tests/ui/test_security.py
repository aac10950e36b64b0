"""Sign-in, sessions and forgery protection of the review pages, in real Chromium."""

from __future__ import annotations

import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.ui.kit import Site, screenshot, sign_in
from tests.ui.test_review_pages import FRAUD, claim


def csrf_token(page: Any) -> str:
    token: str = page.get_attribute("input[name=csrf_token]", "value")
    return token


def post(page: Any, site: Site, path: str, form: dict[str, str], origin: str | None) -> Any:
    """A form post from this browser session (its cookies), not following redirects."""
    headers = {"Origin": origin} if origin is not None else {}
    return page.request.post(f"{site.base}{path}", form=form, headers=headers, max_redirects=0)


def test_a_post_without_or_with_a_wrong_csrf_token_or_from_another_site_is_refused(
    site: Site, page: Any
) -> None:
    decision = site.submit(FRAUD, "t-1")
    alice = site.principal("alice", "reviewer")
    sign_in(page, site, site.key("alice", "reviewer"))
    page.goto(f"{site.base}/ui/items/{decision}")
    token = csrf_token(page)
    path = f"/ui/items/{decision}/claim"

    refused = [
        post(page, site, path, {}, site.base),
        post(page, site, path, {"csrf_token": "not-the-token"}, site.base),
        post(page, site, path, {"csrf_token": token + "x"}, site.base),
        post(page, site, path, {"csrf_token": token}, "http://evil.example"),
    ]
    assert [r.status for r in refused] == [403, 403, 403, 403]
    assert "nothing was changed" in refused[0].text()
    assert site.runtime.reviews.item(alice, decision).claimed_by is None

    accepted = post(page, site, path, {"csrf_token": token}, site.base)
    assert accepted.status == 303
    assert site.runtime.reviews.item(alice, decision).claimed_by == "alice"


@pytest.mark.parametrize("guess", ["", "guess"], ids=["no-token", "guessed-token"])
def test_a_form_on_another_origin_cannot_act_for_the_signed_in_reviewer(
    site: Site, page: Any, tmp_path: Path, guess: str
) -> None:
    """A page on another port of the same host (the same site, so the cookie is sent) posts a
    form to /ui/: the Origin check and the missing token refuse it, and nothing is claimed."""
    decision = site.submit(FRAUD, "t-1")
    sign_in(page, site, site.key("alice", "reviewer"))
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "forge.html").write_text(
        f'<form id="f" method="post" action="{site.base}/ui/items/{decision}/claim">'
        f'<input name="csrf_token" value="{guess}"></form>'
    )
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as other:
        threading.Thread(target=other.serve_forever, daemon=True).start()
        try:
            page.goto(f"http://127.0.0.1:{other.server_address[1]}/forge.html")
            with page.expect_navigation():
                page.evaluate("document.getElementById('f').submit()")
            assert "Form refused" in page.inner_text("h1")
        finally:
            other.shutdown()
    alice = site.principal("alice", "reviewer")
    assert site.runtime.reviews.item(alice, decision).claimed_by is None


def test_the_session_cookie_is_http_only_same_site_strict_and_never_holds_the_key(
    site: Site, page: Any
) -> None:
    secret = site.key("alice", "reviewer")
    sign_in(page, site, secret)
    (cookie,) = page.context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == (
        "lockgate_session",
        True,
        "Strict",
    )
    assert secret not in cookie["value"]
    assert secret[3:20] not in cookie["value"]
    assert page.evaluate("document.cookie") == ""


def test_an_unknown_key_is_refused_with_a_message_and_no_session(site: Site, page: Any) -> None:
    page.goto(f"{site.base}/ui/queue")
    assert page.url.endswith("/ui/sign-in")
    page.fill("#api_key", "lg_" + "x" * 43)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert "unknown or revoked" in page.inner_text(".error")
    screenshot(page, "00-sign-in-refused")
    page.goto(f"{site.base}/ui/queue")
    assert page.url.endswith("/ui/sign-in")


def test_a_revoked_key_is_signed_out_on_its_next_request(site: Site, page: Any) -> None:
    sign_in(page, site, site.key("alice", "reviewer"))
    assert page.url.endswith("/ui/queue")
    site.runtime.store.keys.revoke("alice", actor="test")
    page.reload()
    assert page.url.endswith("/ui/sign-in")


def test_signing_out_ends_the_session(site: Site, page: Any) -> None:
    sign_in(page, site, site.key("alice", "reviewer"))
    with page.expect_navigation():
        page.click("text=Sign out")
    assert "signed out" in page.inner_text(".notice")
    page.goto(f"{site.base}/ui/queue")
    assert page.url.endswith("/ui/sign-in")


def test_a_viewer_key_can_sign_in_but_cannot_claim_or_give_a_verdict(site: Site, page: Any) -> None:
    decision = site.submit(FRAUD, "t-1")
    sign_in(page, site, site.key("watcher", "viewer"))
    assert "Not allowed" in page.inner_text(".error")

    page.goto(f"{site.base}/ui/items/{decision}")
    token = csrf_token(page)
    for action, form in [
        ("claim", {}),
        ("approve", {}),
        ("reject", {"reason": "no"}),
        ("correct", {"output.queue": "cards", "reason": "no"}),
    ]:
        answer = post(page, site, f"/ui/items/{decision}/{action}", {"csrf_token": token, **form},
                      site.base)  # fmt: skip
        assert answer.status == 403, action
        assert "viewer" in answer.text()
    assert site.status(decision) == "pending_review"
    reviewer = site.principal("alice", "reviewer")
    assert site.runtime.reviews.item(reviewer, decision).claimed_by is None


def test_a_claimed_item_can_still_be_corrected_after_the_browser_reloads(
    site: Site, page: Any
) -> None:
    decision = site.submit(FRAUD, "t-1")
    sign_in(page, site, site.key("alice", "reviewer"))
    page.goto(f"{site.base}/ui/items/{decision}")
    claim(page)
    page.reload()
    assert page.is_visible("#correct-form")
