"""Domain errors. Each carries a status so that one handler can render it (CLI or HTTP)."""

from __future__ import annotations

import math


class LockgateError(Exception):
    """Base for every error Lockgate raises on purpose; its message is safe to show."""

    status = 400
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")


class ConfigError(LockgateError):
    """A project, task file or setting is wrong; the message says where and how to fix it."""

    exit_code = 2


class TaskFileError(ConfigError):
    """Every problem found in one task file, each as `file: field.path: what is expected`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class MalformedInput(LockgateError):
    """A value no JSON text can carry: a lone surrogate, NaN, an infinite or overflowing
    number. Refused before anything is stored, the same on every database."""

    status = 400


class NotFound(LockgateError):
    status = 404


class Conflict(LockgateError):
    """The request contradicts stored state (e.g. an idempotency key reused with other input)."""

    status = 409


class KeyTaken(Conflict):
    """An idempotency key already holds another input, or another client's decision. One
    answer for both, which never echoes the key: a client learns nothing about what another
    client sent."""

    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key is already in use",
            hint="send a new key with each new input; the same key with the same input "
            "returns the stored decision to the client that sent it",
        )


class InputError(LockgateError):
    """An input record does not match the task's input schema."""

    status = 422


class Unauthorized(LockgateError):
    """No API key, or one that is unknown or revoked."""

    status = 401


class Forbidden(LockgateError):
    """The API key is valid but its role or task scope does not allow this action."""

    status = 403


class TooManyAttempts(LockgateError):
    """Too many failed API-key checks or sign-ins from one address or with one key prefix;
    the caller may try again after `retry_after_seconds`."""

    status = 429

    def __init__(
        self, message: str, *, hint: str | None = None, retry_after_seconds: int = 1
    ) -> None:
        super().__init__(message, hint=hint)
        self.retry_after_seconds = retry_after_seconds


def retry_after_seconds(timeout_seconds: float) -> int:
    """The whole seconds (at least 1) a client told `Retry-After` should wait, for a call that
    gave up after `timeout_seconds`."""
    return max(1, math.ceil(timeout_seconds))


class Unavailable(LockgateError):
    """The database is locked or unreachable beyond the time a request may wait; nothing was
    stored, and the same request may be retried (with the same idempotency key) later."""

    status = 503

    def __init__(
        self, message: str, *, hint: str | None = None, retry_after_seconds: int = 1
    ) -> None:
        super().__init__(message, hint=hint)
        self.retry_after_seconds = retry_after_seconds


class BudgetExceeded(LockgateError):
    """A hard budget limit is reached and the task refuses until its period ends: nothing was
    decided or stored, and the same request may be sent again after `retry_after_seconds`."""

    status = 429

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        retry_after_seconds: int = 1,
        resets_at: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.retry_after_seconds = retry_after_seconds
        self.resets_at = resets_at
        """When the period ends (ISO 8601, UTC)."""
