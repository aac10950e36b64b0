"""No log line and no span attribute carries personal data or secrets, on any path.

Inputs seeded with an e-mail address, a phone number, Luhn-valid card numbers (grouped by
space, dash or dot, and ungrouped), IBANs (upper and lower case), a national id, an API key and
a bearer token go through success, invalid model output (the model echoes them back as field
names), provider errors and bad input; every log line and every span is then scanned for each
seeded value and for the `pii: true` field's full text. `tests/server/test_serve_logs.py`
sends the same seeds through a real `lockgate serve`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from lockgate.decide.pipeline import DecisionRequest
from lockgate.errors import InputError
from lockgate.testing.fault_server import Fault, FaultServer
from tests.monitor.kit import Observed, observed_kit
from tests.pipeline_kit import openai_model, rules_model

SEEDS = {
    "email": "jane.doe@example.com",
    "phone": "+44 20 7946 0958",
    "card": "4111 1111 1111 1111",
    "card-dashed": "5500-0000-0000-0004",
    "card-dotted": "4012.8888.8888.1881",
    "card-plain": "378282246310005",
    "iban": "DE89 3704 0044 0532 0130 00",
    "iban-lower": "fr14 2004 1010 0505 0001 3m02 606",
    "national-id": "123-45-6789",
    "api-key": "sk-live-abcdefghijklmnop1234",
    "bearer": "Bearer eyJhbGciOiJIUzI1NiJ9.payload",
}
NEEDLES = {
    **SEEDS,
    "phone": "7946 0958",
    "card-digits": "4111111111111111",
    "card-dashed-digits": "5500000000000004",
    "card-dotted-digits": "4012888888881881",
    "iban-compact": "DE89370400440532013000",
    "iban-lower-compact": "fr1420041010050500013m02606",
    "api-key": "abcdefghijklmnop1234",
    "bearer": "eyJhbGciOiJIUzI1NiJ9",
}
PLAIN_PII = "Alice Example of 221B Baker Street"
"""Personal data no pattern recognises: only the `pii: true` marking can keep it out."""
SEEDED_TEXT = "card stolen: " + ", ".join(SEEDS.values())


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        running.set_default(Fault.logprobs(-0.01))
        yield running


@pytest.fixture
def observed(database_url: str, tmp_path: Path, server: FaultServer) -> Iterator[Observed]:
    models = [openai_model(retries=1), rules_model(pattern="(?i)never-matches")]
    with observed_kit(database_url, tmp_path, models, server_url=server.url) as running:
        yield running


def decide(observed: Observed, text: str, **extra: str) -> None:
    kit = observed.kit
    request = DecisionRequest(
        input={"text": text, "channel": SEEDS["email"], **extra},
        idempotency_key=f"key-{len(text)}-{kit.request('').idempotency_key}",
        request_id="req-1",
    )
    with contextlib.suppress(InputError):
        kit.run(lambda: kit.pipeline.decide(kit.runtime, request))


def echo(*values: str) -> Fault:
    """A schema-violating answer whose field names repeat the input back."""
    return Fault.content(json.dumps({"queue": "cards", **{v: 1 for v in values}}))


def scan(observed: Observed) -> list[str]:
    """Every captured text: log lines, span names, attributes and statuses."""
    texts = observed.logs.getvalue().splitlines()
    for span in observed.finished_spans():
        texts.append(span.name)
        texts.extend(f"{k}={v}" for k, v in (span.attributes or {}).items())
        texts.append(str(span.status.description))
        texts.extend(str(event.attributes) for event in span.events)
    return texts


def test_no_log_line_or_span_carries_seeded_personal_data(
    observed: Observed, server: FaultServer
) -> None:
    # success
    decide(observed, SEEDED_TEXT)
    decide(observed, PLAIN_PII)
    # invalid output echoing the input, then its repair, also invalid
    server.enqueue(echo(SEEDED_TEXT, *SEEDS.values()), echo(SEEDED_TEXT))
    decide(observed, SEEDED_TEXT + " (invalid output)")
    server.enqueue(echo(PLAIN_PII), echo(PLAIN_PII))
    decide(observed, PLAIN_PII)
    # provider errors on every try, then the rules fallback finds nothing
    server.enqueue(Fault.status(500), Fault.status(503))
    decide(observed, SEEDED_TEXT + " (provider error)")
    # bad input: too long, and an unknown field named after a seed
    decide(observed, SEEDED_TEXT + " " + "x" * 400)
    decide(observed, SEEDED_TEXT, **{SEEDS["email"]: SEEDS["card"]})
    # an exception whose text carries input, logged with its traceback
    with observed.observer.protect([PLAIN_PII]):
        try:
            raise RuntimeError(f"crash while handling {SEEDED_TEXT} for {PLAIN_PII}")
        except RuntimeError:
            logging.getLogger("lockgate.test").exception("handler crashed")

    texts = scan(observed)

    events = [json.loads(line)["event"] for line in observed.logs.getvalue().splitlines()]
    assert events.count("decision") >= 5
    assert "input rejected" in events
    assert "model attempt failed" in events
    assert "handler crashed" in events
    assert sum(1 for s in observed.finished_spans() if s.name == "model_attempt") >= 8
    log_text = observed.logs.getvalue()
    assert "[pii]" in log_text  # the echoed plain text was there to leak, and was scrubbed
    assert "[email]" in log_text
    hits = {
        name: [t for t in texts if needle in t]
        for name, needle in {**NEEDLES, "pii-text": PLAIN_PII, "seeded-text": SEEDED_TEXT}.items()
    }
    assert {name: found for name, found in hits.items() if found} == {}
