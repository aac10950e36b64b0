"""A receiver can check that a webhook came from Lockgate, unaltered and recent."""

from __future__ import annotations

import time

import pytest

from lockgate.delivery.sinks import sign, verify_signature

BODY = b'{"id":"01a2","output":{"queue":"cards"}}'
SECRET = "s3cret-for-hooks"


def test_a_signature_verifies_with_the_secret_that_made_it() -> None:
    timestamp = str(int(time.time()))
    signature = sign(SECRET, timestamp, BODY)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify_signature(SECRET, timestamp, BODY, signature)


@pytest.mark.parametrize(
    ("secret", "body", "shift_s"),
    [
        pytest.param("another-secret", BODY, 0, id="other-secret"),
        pytest.param(SECRET, BODY.replace(b"cards", b"fraud"), 0, id="altered-body"),
        pytest.param(SECRET, BODY, -3600, id="an-hour-old"),
    ],
)
def test_a_signature_fails_with_another_secret_body_or_an_old_timestamp(
    secret: str, body: bytes, shift_s: int
) -> None:
    timestamp = str(int(time.time()) + shift_s)
    signature = sign(SECRET, timestamp, BODY)
    assert not verify_signature(secret, timestamp, body, signature)


def test_the_signature_covers_the_timestamp() -> None:
    now = int(time.time())
    signature = sign(SECRET, str(now), BODY)
    assert not verify_signature(SECRET, str(now - 1), BODY, signature)
    assert not verify_signature(SECRET, "not-a-number", BODY, signature)
