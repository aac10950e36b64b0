"""Redaction of personal data and secrets from text before it is shown or logged.

Patterns: e-mail addresses, phone numbers, payment card numbers (Luhn-checked), IBANs,
national id numbers (US SSN and similar dash-grouped forms), API keys and bearer tokens.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}")
_API_KEY = re.compile(r"\b(?:sk|pk|rk|lg|api|key)[-_][A-Za-z0-9_-]{12,}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_NATIONAL_ID = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_PHONE = re.compile(r"(?<![\w+])(?:\+|00)?\d[\d ().-]{6,}\d(?!\w)")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return "[card]"
    return match.group()


_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}")


def _phone(match: re.Match[str]) -> str:
    if _DATE.fullmatch(match.group()):
        return match.group()
    digits = re.sub(r"\D", "", match.group())
    return "[phone]" if 7 <= len(digits) <= 15 else match.group()


def redact_text(text: str) -> str:
    """Replace every recognised piece of personal data or secret in `text` by a placeholder."""
    if not text:
        return text
    text = _BEARER.sub("Bearer [secret]", text)
    text = _API_KEY.sub("[secret]", text)
    text = _EMAIL.sub("[email]", text)
    text = _IBAN.sub("[iban]", text)
    text = _CARD.sub(_card, text)
    text = _NATIONAL_ID.sub("[national-id]", text)
    return _PHONE.sub(_phone, text)


def redact_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an input record for display: patterns redacted in every string field.

    Logs and traces never carry input values at all, only ids; `mask_record` hides whole fields.
    """
    return {k: redact_text(v) if isinstance(v, str) else v for k, v in record.items()}


def mask_record(record: Mapping[str, Any], pii_fields: tuple[str, ...]) -> dict[str, Any]:
    """A copy with every `pii: true` field replaced by a length marker."""
    return {
        k: (f"[{len(str(v))} characters hidden]" if k in pii_fields and v is not None else v)
        for k, v in record.items()
    }
