"""Redaction of personal data and secrets from text before it is shown or logged.

Patterns: e-mail addresses (also with international letters, and spelled out as
`name (at) host (dot) org`), phone numbers (with a country code, brackets and any of the
separators space, dash, dot), payment card numbers (Luhn-checked; grouped by space, dash or
dot, or not at all), IBANs (in any case, grouped or not; check digits verified unless written
in capitals), national id numbers (US SSN and similar dash-grouped forms), API keys and bearer
tokens. Dates and amounts (`2024.03.12`, `1.234.567,89`) are not taken for phone numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_EMAIL = re.compile(r"(?<![\w.%+'-])[\w.%+'-]+@(?:[\w-]+\.)+[^\W\d_]{2,}")
_EMAIL_SPELLED = re.compile(
    r"(?i)(?<![\w.%+'-])[\w.%+'-]+"
    r"(?:\s*[\[(]\s*at\s*[\])]\s*(?:[\w-]+\s*[\[(]\s*dot\s*[\])]\s*)+"
    r"|\s+at\s+(?:[\w-]+\s+dot\s+)+)[^\W\d_]{2,}"
)
"""An address written out against scrapers: `jane (at) example (dot) com`, `jane at x dot org`.
(Neither e-mail pattern starts inside a word: that keeps a long token from costing n² steps.)"""
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}")
_API_KEY = re.compile(r"\b(?:sk|pk|rk|lg|api|key)[-_][A-Za-z0-9_-]{12,}\b")
_IBAN = re.compile(r"(?i)\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b")
_CARD = re.compile(r"(?<!\d)(?<!\d[.-])(?:\d[ .-]?){12,18}\d(?!\d|[.-]\d)")
_CARD_SEPARATOR = re.compile(r"([ .-])")
_NATIONAL_ID = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_PHONE = re.compile(r"(?<![\w+(])(?:\+|00)?\(?\d[\d ().-]{6,}\d(?!\w)")


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


def iban_valid(iban: str) -> bool:
    """ISO 13616 check digits: the number with its first four characters moved to the end,
    letters as 10..35, leaves 1 when divided by 97."""
    compact = re.sub(r"\s", "", iban).upper()
    if not compact.isalnum() or not compact.isascii():
        return False
    return int("".join(str(int(c, 36)) for c in compact[4:] + compact[:4])) % 97 == 1


def _iban(match: re.Match[str]) -> str:
    # Written in capitals, as banks print them: masked as before, check digits or not. In other
    # cases the check digits must be right, so that ordinary lower-case ids are left alone. The
    # match may have taken in a following word ("... 606 please"): try it cut at each space.
    text = match.group()
    ends = [len(text), *(i for i in range(len(text) - 1, 0, -1) if text[i] == " ")]
    for end in ends:
        candidate = text[:end]
        if _IBAN.fullmatch(candidate) and (candidate == candidate.upper() or iban_valid(candidate)):
            return "[iban]" + text[end:]
    return text


def _card(match: re.Match[str]) -> str:
    text = match.group()
    if _is_card(re.sub(r"\D", "", text)):
        return "[card]"
    # The run may join a card to a number beside it ("order 12 4111 1111 1111 1111"): try the
    # longest runs of whole digit groups. `parts` alternates groups and separators.
    parts = _CARD_SEPARATOR.split(text)
    count = len(parts) // 2 + 1
    for size in range(count - 1, 0, -1):
        for start in range(count - size + 1):
            end = start + size
            if _is_card("".join(parts[2 * start : 2 * end : 2])):
                return "".join(parts[: 2 * start]) + "[card]" + "".join(parts[2 * end - 1 :])
    return text


def _is_card(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


_DATE = re.compile(r"\d{4}[./-]\d{1,2}[./-]\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}")
_AMOUNT = re.compile(r"\d{1,3}(?:([.,'])\d{3})(?:\1\d{3})*(?:[.,]\d{1,2})?|\d+[.,]\d{1,2}")
"""1.234.567,89, 1,234,567.89, 10000.00: money, not a phone number."""


def _phone(match: re.Match[str]) -> str:
    text = match.group()
    if _DATE.fullmatch(text) or _AMOUNT.fullmatch(text):
        return text
    digits = re.sub(r"\D", "", text.removeprefix("00"))
    return "[phone]" if 7 <= len(digits) <= 15 else text


_DIGIT = re.compile(r"\d")


def redact_text(text: str) -> str:
    """Replace every recognised piece of personal data or secret in `text` by a placeholder.

    Each pattern runs only where the text has what it cannot match without (every log line
    passes here, so the common case must be cheap): an `@` for an address, "dot" for a
    spelled-out one, "bearer" for a token, `-` or `_` for an API key, a digit for IBANs,
    cards, national ids and phone numbers.
    """
    if not text:
        return text
    lower = text.lower()
    if "bearer" in lower:
        text = _BEARER.sub("Bearer [secret]", text)
    if "-" in text or "_" in text:
        text = _API_KEY.sub("[secret]", text)
    if "@" in text:
        text = _EMAIL.sub("[email]", text)
    if "dot" in lower:
        text = _EMAIL_SPELLED.sub("[email]", text)
    if _DIGIT.search(text) is None:
        return text
    text = _IBAN.sub(_iban, text)
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


HIDDEN = "[hidden: personal data]"


def redact_value(value: Any) -> Any:
    """`value` with `redact_text` applied to every string in it, at any depth of lists and
    mappings (keys included)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {redact_text(str(k)): redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


def shown_record(
    record: Mapping[str, Any], pii_fields: tuple[str, ...], *, clear: bool
) -> dict[str, Any]:
    """A copy of a record for a reader: patterns redacted in every string at any depth, and
    every `pii: true` field hidden whole unless the reader may see personal data (`clear`),
    who gets the redacted copy."""
    return {
        redact_text(str(k)): (
            HIDDEN if k in pii_fields and v is not None and not clear else redact_value(v)
        )
        for k, v in record.items()
    }
