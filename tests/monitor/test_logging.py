"""JSON log lines, one per event, with patterns, protected values and tracebacks redacted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from lockgate.monitor.logging import LockgateLogHandler, Redactor, configure_logging
from lockgate.settings import Settings

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"


@pytest.fixture
def redactor() -> Redactor:
    return Redactor()


@pytest.fixture
def logs(tmp_path: Path, redactor: Redactor) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    settings = Settings(project_dir=tmp_path, database_url="sqlite://")
    handler = configure_logging(settings, stream, redactor=redactor)
    try:
        yield stream
    finally:
        logging.getLogger().removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_event_is_one_json_line_with_its_fields(logs: io.StringIO) -> None:
    log = logging.getLogger("lockgate.test")
    log.info("decision", extra={"decision_id": "d1", "request_id": "r1", "attempts": 2})
    log.warning("second\nevent")

    first, second = lines(logs)

    assert first["event"] == "decision"
    assert (first["decision_id"], first["request_id"], first["attempts"]) == ("d1", "r1", 2)
    assert first["level"] == "info"
    assert first["logger"] == "lockgate.test"
    assert second["event"] == "second\nevent"


def test_messages_arguments_and_extra_fields_are_redacted(logs: io.StringIO) -> None:
    logging.getLogger("lockgate.test").info(
        "mail from %s", EMAIL, extra={"note": f"card {CARD}", "items": [EMAIL]}
    )

    text = logs.getvalue()

    assert EMAIL not in text
    assert CARD not in text
    (line,) = lines(logs)
    assert line["event"] == "mail from [email]"
    assert line["note"] == "card [card]"


def test_exception_tracebacks_are_redacted(logs: io.StringIO) -> None:
    try:
        raise ValueError(f"could not parse {EMAIL} and {CARD}")
    except ValueError:
        logging.getLogger("lockgate.test").exception("parse failed")

    (line,) = lines(logs)

    assert "Traceback" in str(line["exception"])
    assert "ValueError: could not parse [email] and [card]" in str(line["exception"])
    assert EMAIL not in logs.getvalue()


def test_protected_values_are_removed_only_while_protected(
    logs: io.StringIO, redactor: Redactor
) -> None:
    log = logging.getLogger("lockgate.test")
    secret_text = "Alice Example of Baker Street"
    with redactor.protect([secret_text, "no"]):
        log.info("echo: %s", secret_text, extra={"reason": f"unexpected field {secret_text}"})
        log.info("say no")
    log.info("afterwards %s", secret_text)

    during, short, after = lines(logs)

    assert during["event"] == "echo: [pii]"
    assert during["reason"] == "unexpected field [pii]"
    assert short["event"] == "say no"  # too short to scrub
    assert after["event"] == f"afterwards {secret_text}"


def test_configuring_again_replaces_the_handler(tmp_path: Path) -> None:
    settings = Settings(project_dir=tmp_path, database_url="sqlite://")
    root = logging.getLogger()
    first = configure_logging(settings, io.StringIO())
    second = configure_logging(settings, io.StringIO())
    try:
        ours = [h for h in root.handlers if isinstance(h, LockgateLogHandler)]
        assert ours == [second]
    finally:
        root.removeHandler(first)
        root.removeHandler(second)
