"""Sessions and CSRF tokens for the review pages: signed cookies, never the API key itself.

Sessions are kept server-side (`SessionStore`, the store's `ui_sessions` table): on sign-in the
server opens one and the cookie holds its random id, with an expiry and a random nonce, signed
with HMAC-SHA256. Every request looks the id up, so sign-out, the key's revocation and the
session's expiry end it at once, on every replica sharing the database: a copied cookie is
worth nothing after. The nonce is the session's CSRF token: every state-changing form carries
it in a hidden field, and it is compared in constant time with the one in the (HTTP-only)
cookie. Before sign-in the cookie holds only a nonce, so the sign-in form is protected the
same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import urlsplit

from lockgate.security import ApiKey

COOKIE_NAME = "lockgate_session"
CSRF_FIELD = "csrf_token"


class SessionStore(Protocol):
    """Where sessions live (`Store.sessions`): shared by every replica on the database."""

    def open(self, key_id: str, now: datetime, expires_at: datetime) -> str:
        """A new session of the key; its random id, for the cookie."""
        ...

    def key_of(self, session_id: str, now: datetime) -> ApiKey | None:
        """The key of a live session (not signed out, not expired, its key not revoked)."""
        ...

    def close(self, session_id: str, now: datetime) -> None:
        """End the session (sign-out)."""
        ...


@dataclass(frozen=True)
class Session:
    """What a valid cookie says: the nonce (the CSRF token) and, once signed in, the id of the
    server-side session (looked up on every request; the cookie alone signs no one in)."""

    nonce: str
    session_id: str | None
    expires_at: int
    """Unix seconds."""

    @property
    def signed_in(self) -> bool:
        return self.session_id is not None


class SessionSigner:
    """Signs and checks session cookies with one secret (a setting, or random per process)."""

    def __init__(self, secret: bytes, max_age_seconds: int) -> None:
        if len(secret) < 16:
            raise ValueError("a session secret needs at least 16 bytes")
        self._secret = secret
        self.max_age_seconds = max_age_seconds

    def new(self, now: int, session_id: str | None = None) -> Session:
        """A fresh session (a new nonce each time, so signing in never keeps an old token)."""
        return Session(secrets.token_urlsafe(24), session_id, now + self.max_age_seconds)

    def dump(self, session: Session) -> str:
        payload = json.dumps(
            {"n": session.nonce, "s": session.session_id, "e": session.expires_at},
            separators=(",", ":"),
        ).encode()
        body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{body}.{self._mac(body)}"

    def load(self, cookie: str | None, now: int) -> Session | None:
        """The session in a cookie, or None when it is missing, forged, malformed or expired."""
        if not cookie or cookie.count(".") != 1 or len(cookie) > 1024:
            return None
        body, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            session = Session(str(data["n"]), data["s"], int(data["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.session_id is not None and not isinstance(session.session_id, str):
            return None
        return session if session.expires_at > now else None

    def _mac(self, body: str) -> str:
        return hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()


def token_matches(session: Session | None, submitted: str | None) -> bool:
    """True when the form's CSRF token is this session's (constant-time comparison)."""
    if session is None or not submitted:
        return False
    return hmac.compare_digest(session.nonce.encode(), submitted.encode())


def same_origin(origin: str | None, referer: str | None, expected: str) -> bool:
    """True unless the browser says the form came from another site.

    `expected` is this server's `scheme://host[:port]`. Browsers send `Origin` with every POST;
    without it the `Referer` is checked; with neither, the CSRF token alone decides.
    """
    if origin is not None and origin != "null":
        return origin.rstrip("/") == expected
    if origin == "null":
        return False
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}" == expected
    return True
