"""Session cookies and CSRF tokens, without a browser."""

from __future__ import annotations

import pytest

from lockgate.server.ui.sessions import SessionSigner, same_origin, token_matches

SECRET = b"0123456789abcdef0123456789abcdef"
NOW = 1_800_000_000


def test_a_signed_session_round_trips_and_carries_no_secret_but_the_session_id() -> None:
    signer = SessionSigner(SECRET, max_age_seconds=3600)
    session = signer.new(NOW, session_id="s-01a2b3")
    cookie = signer.dump(session)
    assert signer.load(cookie, NOW + 10) == session


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda c: c[:-1] + ("0" if c[-1] != "0" else "1"), id="changed-signature"),
        pytest.param(lambda c: "x" + c, id="changed-body"),
        pytest.param(lambda c: c.split(".")[0], id="no-signature"),
        pytest.param(lambda c: "", id="empty"),
        pytest.param(lambda c: c + "." + c, id="two-dots"),
    ],
)
def test_a_tampered_cookie_is_no_session(tamper: object) -> None:
    signer = SessionSigner(SECRET, max_age_seconds=3600)
    cookie = signer.dump(signer.new(NOW, session_id="s-01a2b3"))
    assert callable(tamper)
    assert signer.load(tamper(cookie), NOW) is None


def test_a_cookie_signed_by_another_process_secret_is_no_session() -> None:
    ours = SessionSigner(SECRET, max_age_seconds=3600)
    theirs = SessionSigner(b"another secret of 32 bytes......", max_age_seconds=3600)
    assert ours.load(theirs.dump(theirs.new(NOW, session_id="s-01a2b3")), NOW) is None


def test_a_session_ends_at_its_expiry() -> None:
    signer = SessionSigner(SECRET, max_age_seconds=60)
    cookie = signer.dump(signer.new(NOW, session_id="s-01a2b3"))
    assert signer.load(cookie, NOW + 59) is not None
    assert signer.load(cookie, NOW + 60) is None


def test_each_new_session_has_its_own_csrf_token() -> None:
    signer = SessionSigner(SECRET, max_age_seconds=60)
    first, second = signer.new(NOW), signer.new(NOW)
    assert first.nonce != second.nonce
    assert token_matches(first, first.nonce)
    assert not token_matches(first, second.nonce)
    assert not token_matches(first, "")
    assert not token_matches(None, first.nonce)


@pytest.mark.parametrize(
    ("origin", "referer", "allowed"),
    [
        pytest.param("http://127.0.0.1:8000", None, True, id="same-origin"),
        pytest.param("http://127.0.0.1:8001", None, False, id="other-port"),
        pytest.param("https://127.0.0.1:8000", None, False, id="other-scheme"),
        pytest.param("null", None, False, id="opaque-origin"),
        pytest.param(None, "http://127.0.0.1:8000/ui/items/1", True, id="same-referer"),
        pytest.param(None, "http://evil.example/x", False, id="foreign-referer"),
        pytest.param(None, None, True, id="neither-token-decides"),
    ],
)
def test_same_origin_check(origin: str | None, referer: str | None, allowed: bool) -> None:
    assert same_origin(origin, referer, "http://127.0.0.1:8000") is allowed


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        SessionSigner(b"short", max_age_seconds=60)
