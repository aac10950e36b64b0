"""An SMTP server on loopback that keeps what it receives, for tests and demos (aiosmtpd).

    with SmtpServer() as smtp:
        ...                       # point an `email` alert channel at smtp.host, smtp.port
        smtp.wait_for(1)          # the messages received, parsed
        assert smtp.messages[0]["Subject"].startswith("Lockgate alert")

With `user` and `password` it requires AUTH LOGIN/PLAIN (allowed without TLS on loopback).
"""

from __future__ import annotations

import threading
import time
import warnings
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from lockgate.testing.mailbox import free_port


class SmtpServer:
    """aiosmtpd's `Controller` in its own thread; `messages` are the e-mails received."""

    def __init__(
        self, *, host: str = "127.0.0.1", user: str | None = None, password: str | None = None
    ) -> None:
        self.host = host
        self.port = free_port()
        self.user, self.password = user, password
        self._lock = threading.Lock()
        self._messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.failed_logins = 0
        self._controller: Any = None

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return list(self._messages)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self._messages.append(parsed)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.user
            and auth_data.password.decode() == self.password
        )
        if not ok:
            with self._lock:
                self.failed_logins += 1
        return AuthResult(success=ok)

    def start(self) -> SmtpServer:
        from aiosmtpd.controller import Controller

        auth: dict[str, Any] = {}
        if self.user is not None:
            auth = {
                "authenticator": self._authenticate,
                "auth_required": True,
                "auth_require_tls": False,
            }

        class _Controller(Controller):
            def factory(self) -> Any:
                # Loopback only: AUTH without TLS is what the tests want, not a risk here.
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
                    return super().factory()

        self._controller = _Controller(self, hostname=self.host, port=self.port, **auth)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[EmailMessage]:
        """The messages once at least `count` arrived; AssertionError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.messages
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"expected {count} e-mails, got {len(self.messages)}")

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
