"""Personal data and secrets are recognised and replaced."""

from __future__ import annotations

import pytest

from lockgate.monitor.redaction import luhn_valid, mask_record, redact_record, redact_text


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        pytest.param(
            "write to jane.doe+bank@example.co.uk today", "jane.doe+bank@example.co.uk", id="email"
        ),
        pytest.param("call +44 20 7946 0958", "7946 0958", id="phone-intl"),
        pytest.param("call (555) 010-4477 now", "010-4477", id="phone-us"),
        pytest.param("card 4111 1111 1111 1111 lost", "4111 1111 1111 1111", id="card-spaced"),
        pytest.param("card 5500-0000-0000-0004", "5500-0000-0000-0004", id="card-dashed"),
        pytest.param("iban GB82 WEST 1234 5698 7654 32", "GB82 WEST", id="iban"),
        pytest.param("ssn 123-45-6789", "123-45-6789", id="national-id"),
        pytest.param("key sk-proj-abcdefghijklmnop", "abcdefghijklmnop", id="api-key"),
        pytest.param("Authorization: Bearer eyJhbGciOi.J9.abc", "eyJhbGciOi", id="bearer"),
    ],
)
def test_personal_data_is_redacted(text: str, secret: str) -> None:
    assert secret not in redact_text(text)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("order 12345 for 120.50 EUR", id="amount"),
        pytest.param("on 2024-03-12 and 12/03/2024", id="dates"),
        pytest.param("number 4111111111111112 fails luhn", id="not-a-card"),
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert redact_text(text) == text


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")


def test_records_are_redacted_field_by_field() -> None:
    record = {"text": "mail a@b.io", "count": 3}
    assert redact_record(record) == {"text": "mail [email]", "count": 3}


def test_masking_hides_whole_pii_fields() -> None:
    masked = mask_record({"text": "hello there", "queue": "x"}, ("text",))
    assert masked == {"text": "[11 characters hidden]", "queue": "x"}
