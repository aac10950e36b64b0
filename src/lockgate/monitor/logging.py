"""Structured JSON logs, one line per event, with personal data and secrets redacted.

`configure_logging(settings, stream)` is called at an entry point (never at import). Every
record that reaches its handler passes `RedactingFilter` first: the message, every string
attribute and the formatted exception (traceback included) go through `redact_text`, and any
value registered with `Redactor.protect` (an input's `pii: true` fields) is removed outright.
The code never logs input on purpose; this layer is the safety net.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from lockgate import jsontext
from lockgate.monitor.redaction import redact_text
from lockgate.settings import Settings

PII_PLACEHOLDER = "[pii]"
MIN_PROTECTED_LENGTH = 4
"""Shorter values (a "no", a digit) are left alone: scrubbing them would shred every line."""

_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class Generated(str):
    """A value Lockgate made itself (a new id): it holds nothing to redact, so the filter
    passes it as it is. Anything a caller sent stays a plain `str` and is redacted."""

    __slots__ = ()


_CACHE_TEXT_MAX = 256
_CACHE_ENTRIES_MAX = 4096


class Redactor:
    """Redacts text: known patterns everywhere, plus the values protected in this context.

    Short texts recur (a task name, a reason, an access-log line per connection), so their
    redacted form is remembered: at most `_CACHE_ENTRIES_MAX` of them, then it starts afresh.
    """

    def __init__(self) -> None:
        self._protected: ContextVar[frozenset[str]] = ContextVar(
            f"lockgate_protected_{id(self)}", default=frozenset()
        )
        self._seen: dict[str, str] = {}

    @contextlib.contextmanager
    def protect(self, values: Iterable[str]) -> Iterator[None]:
        """Scrub `values` from everything redacted in this context (and tasks started in it)."""
        extra = frozenset(v for v in values if len(v) >= MIN_PROTECTED_LENGTH)
        token = self._protected.set(self._protected.get() | extra)
        try:
            yield
        finally:
            self._protected.reset(token)

    def __call__(self, text: str) -> str:
        protected = self._protected.get()
        if protected:
            # Longest first, so a value containing another is removed whole.
            for value in sorted(protected, key=len, reverse=True):
                if value in text:
                    text = text.replace(value, PII_PLACEHOLDER)
        if len(text) > _CACHE_TEXT_MAX:
            return redact_text(text)
        done = self._seen.get(text)
        if done is None:
            if len(self._seen) >= _CACHE_ENTRIES_MAX:
                self._seen = {}
            done = self._seen[text] = redact_text(text)
        return done

    def value(self, value: Any) -> Any:
        """Redact a string, or every string inside a list, tuple or dict."""
        kind = type(value)
        if kind in _UNTOUCHED:  # most values of a record: one lookup decides
            return value
        if kind is str:
            return self(value)
        if isinstance(value, Generated):
            return value
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


_UNTOUCHED = frozenset((Generated, int, float, bool, type(None)))
"""Types of values that hold nothing to redact (`Generated` is exactly that type, no subclass)."""


class RedactingFilter(logging.Filter):
    """Rewrites each record in place so nothing after it sees unredacted text."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self.redactor
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            text = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = redact(text.rstrip("\n"))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        attributes = record.__dict__
        for name in [n for n in attributes if n not in _STANDARD_ATTRIBUTES]:
            attributes[name] = redact.value(attributes[name])
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, then the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD_ATTRIBUTES and not name.startswith("_"):
                line[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return jsontext.dumps(line, default=str).decode()


class LockgateLogHandler(logging.StreamHandler[IO[str]]):
    """The handler `configure_logging` installs (replaced, not stacked, when called again)."""


def configure_logging(
    settings: Settings,
    stream: IO[str],
    *,
    redactor: Redactor | None = None,
    level: int = logging.INFO,
) -> LockgateLogHandler:
    """Send every log record of the process to `stream` as redacted JSON lines.

    Pass the observer's `redactor` so values it protects are also scrubbed from logs. Returns
    the handler; `logging.getLogger().removeHandler(handler)` undoes the configuration.
    """
    del settings  # reserved for log settings (level, format); none exist yet
    _lean_records()
    handler = LockgateLogHandler(stream)
    handler.addFilter(RedactingFilter(redactor or Redactor()))
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, LockgateLogHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


_RECORD_FLAGS = ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing")


def _lean_records() -> None:
    """Records without what the JSON lines never show: the caller's file and line (a walk up
    the stack per record), the thread's and the process's names. The logging HOWTO's
    "Optimization" section names these switches; a server logs a line per decision, and they
    took a fifth of a line's CPU (19 against 24 us here)."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


@contextlib.contextmanager
def logging_configured(
    settings: Settings,
    stream: IO[str],
    *,
    redactor: Redactor | None = None,
    level: int = logging.INFO,
) -> Iterator[LockgateLogHandler]:
    """`configure_logging` for the length of a block (a command run in-process, a worker
    started from a library): afterwards the handler is gone and the root level is restored."""
    root = logging.getLogger()
    previous_level = root.level
    previous_flags = {name: getattr(logging, name) for name in _RECORD_FLAGS}
    handler = configure_logging(settings, stream, redactor=redactor, level=level)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        for name, value in previous_flags.items():
            setattr(logging, name, value)
