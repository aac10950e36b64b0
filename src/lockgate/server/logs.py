"""The server's logs: uvicorn's records (its errors and its access log) go through the same
redacted JSON handler as Lockgate's own, and the access log carries no query strings.

A query string may hold personal data (`?email=...`) that no pattern recognises, so it is cut
before the record reaches any handler; the redaction filter then sees the rest.
"""

from __future__ import annotations

import logging
import re
from typing import IO

from lockgate.monitor.logging import LockgateLogHandler, Redactor, configure_logging
from lockgate.settings import Settings

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
QUERY_MARK = "?…"
"""What is left of a query string in the access log: that there was one."""


class WithoutQueryString(logging.Filter):
    """Cuts the query string from uvicorn's access records
    (`'%s - "%s %s HTTP/%s" %d'` with client, method, path and query, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path, mark, _query = args[2].partition("?")
            record.args = (args[0], args[1], path + (QUERY_MARK if mark else ""), *args[3:])
        return True


_DECIDED = re.compile(r"/v1/tasks/[^/?]+/decisions")


class WithoutDecidedRequests(logging.Filter):
    """Drops the access record of a decision request answered 200 or 201: its `decision` line
    (logger `lockgate.decisions`) says the same and more (request id, decision id, route,
    status, latency), and on the busiest endpoint one line per request is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (
            isinstance(args, tuple)
            and len(args) == 5
            and args[1] == "POST"
            and args[4] in (200, 201)
            and isinstance(args[2], str)
            and _DECIDED.fullmatch(args[2]) is not None
        )


def configure_server_logging(
    settings: Settings, stream: IO[str], *, redactor: Redactor | None = None
) -> LockgateLogHandler:
    """`configure_logging`, with uvicorn's loggers sent to the same handler: their own
    handlers (plain text on stdout and stderr, unredacted) are removed."""
    handler = configure_logging(settings, stream, redactor=redactor)
    # The JSON lines carry no caller's file and line, thread or process: do not look them up
    # for every record (the logging module's documented switches for this).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, WithoutDecidedRequests) for f in access.filters):
        access.addFilter(WithoutDecidedRequests())
    if not any(isinstance(f, WithoutQueryString) for f in access.filters):
        access.addFilter(WithoutQueryString())
    return handler
