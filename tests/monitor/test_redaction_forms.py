"""Personal data is recognised in the forms people write it, and ordinary numbers are kept.

Generated, not listed: card numbers (Luhn-valid, 13 to 19 digits) with spaces, dashes, dots or
no separator; IBANs (valid check digits) in upper, lower or mixed case, grouped or not; e-mail
addresses in upper case, with international letters or written "name (at) host (dot) org";
phone numbers with a country code, brackets around the area code and any separator.
"""

from __future__ import annotations

import re
import string
from datetime import date

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lockgate.monitor.redaction import luhn_valid, redact_text

SEPARATORS = ("", " ", "-", ".")
IBAN_COUNTRIES = ("DE", "FR", "GB", "NL", "ES", "IT", "BE", "CH", "AT", "PL")


def luhn_complete(body: str) -> str:
    """`body` with the check digit that makes it Luhn-valid."""
    return next(body + d for d in string.digits if luhn_valid(body + d))


def iban_complete(country: str, bban: str) -> str:
    """The IBAN with correct check digits (ISO 13616: mod 97 of the rearranged number is 1)."""
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


@st.composite
def cards(draw: st.DrawFn) -> tuple[str, str]:
    """(the card as written, its digits)."""
    length = draw(st.integers(13, 19))
    body = draw(st.text(string.digits, min_size=length - 1, max_size=length - 1))
    digits = luhn_complete(draw(st.sampled_from("3456")) + body[1:])
    sep = draw(st.sampled_from(SEPARATORS))
    written = sep.join(digits[i : i + 4] for i in range(0, len(digits), 4))
    return written, digits


@st.composite
def ibans(draw: st.DrawFn) -> tuple[str, str]:
    """(the IBAN as written, in its case and grouping; its compact upper-case form)."""
    country = draw(st.sampled_from(IBAN_COUNTRIES))
    bban = draw(st.text(string.digits + string.ascii_uppercase, min_size=11, max_size=26))
    compact = iban_complete(country, bban)
    case = draw(st.sampled_from([str.upper, str.lower, lambda s: s[:4].lower() + s[4:]]))
    groups = [compact[i : i + 4] for i in range(0, len(compact), 4)]
    written = " ".join(groups) if draw(st.booleans()) else compact
    return case(written), compact


_LOCAL = st.text(string.ascii_letters + string.digits + "._+-", min_size=1, max_size=12).filter(
    lambda s: s[0].isalnum()
)
_LABEL = st.text(string.ascii_lowercase + string.digits, min_size=2, max_size=10)


@st.composite
def emails(draw: st.DrawFn) -> tuple[str, str]:
    """(the address as written, the part that must not survive)."""
    local = draw(_LOCAL | st.sampled_from(["jürgen", "zoë.müller", "JANE.DOE"]))
    domain = draw(_LABEL | st.sampled_from(["münchen", "EXAMPLE"]))
    tld = draw(st.sampled_from(["com", "de", "co.uk", "ORG", "io"]))
    style = draw(st.sampled_from(["plain", "(at)", "[at]", " at "]))
    if style == "plain":
        return f"{local}@{domain}.{tld}", f"{local}@{domain}"
    at = style.strip()
    dot = {"(at)": " (dot) ", "[at]": "[dot]", "at": " dot "}[at]
    return f"{local} {at} {domain}{dot}{tld}", f"{local} {at} {domain}"


@st.composite
def phones(draw: st.DrawFn) -> tuple[str, str]:
    """(the number as written, its subscriber digits); at most 15 digits, as E.164 allows."""
    country = draw(st.sampled_from(["+44", "+1", "+49", "0049", "+353", "+33"]))
    area = draw(st.text(string.digits, min_size=2, max_size=4))
    groups = draw(st.lists(st.text(string.digits, min_size=3, max_size=4), min_size=2, max_size=2))
    sep = draw(st.sampled_from([" ", "-", ".", ""]))
    bracketed = draw(st.booleans())
    area_part = f"({area})" if bracketed else area
    written = f"{country} {area_part} {sep.join(groups)}"
    return written, "".join(groups)


def digits_of(text: str) -> str:
    return re.sub(r"\D", "", text)


@settings(max_examples=300)
@given(cards(), st.sampled_from(["card {} lost", "{}", "paid with {}.", "({})"]))
@example(("4012.8888.8888.1881", "4012888888881881"), "card {} lost")
def test_a_luhn_valid_card_is_masked_with_any_separator(
    card: tuple[str, str], template: str
) -> None:
    written, digits = card
    shown = redact_text(template.format(written))
    assert written not in shown
    assert digits[-8:] not in digits_of(shown)


@settings(max_examples=300)
@given(ibans(), st.sampled_from(["iban {} please", "{}", "to {}."]))
@example(("fr14 2004 1010 0505 0001 3m02 606", "FR1420041010050500013M02606"), "iban {} please")
def test_an_iban_is_masked_in_any_case_grouped_or_not(iban: tuple[str, str], template: str) -> None:
    written, compact = iban
    shown = redact_text(template.format(written))
    assert compact[4:] not in re.sub(r"\s", "", shown).upper()


@settings(max_examples=300)
@given(emails())
@example(("JANE.DOE@EXAMPLE.COM", "JANE.DOE@EXAMPLE"))
@example(("jürgen@münchen.de", "jürgen@münchen"))
@example(("jane (at) example (dot) com", "jane (at) example"))
def test_an_email_address_is_masked_in_its_common_forms(email: tuple[str, str]) -> None:
    written, secret = email
    shown = redact_text(f"write to {written} today")
    assert secret not in shown
    assert written not in shown


@settings(max_examples=300)
@given(phones())
@example(("+44 (0)20 7946 0958", "79460958"))
@example(("+1-555-010-4477", "5550104477"))
def test_a_phone_number_is_masked_in_its_common_forms(phone: tuple[str, str]) -> None:
    written, subscriber = phone
    shown = redact_text(f"call {written} now")
    assert subscriber not in digits_of(shown)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("order 12345 for 120.50 EUR", id="amount"),
        pytest.param("on 2024-03-12, 12/03/2024, 12.03.2024 and 2024.03.12", id="dates"),
        pytest.param("version 1.24.3 on 10.0.0.1", id="version-and-address"),
        pytest.param("ticket ab12cdef34 and build fe12ab34cd56", id="hex-ids"),
        pytest.param("number 4012.8888.8888.1882 fails luhn", id="dotted-not-a-card"),
        pytest.param("the ISO code fr14 is not an account", id="short-iban-like"),
        pytest.param("sum 1.234.567,89 EUR", id="grouped-amount"),
        pytest.param("meet at noon at the office", id="the-word-at"),
    ],
)
def test_ordinary_text_is_not_masked(text: str) -> None:
    assert redact_text(text) == text


@settings(max_examples=300)
@given(st.integers(0, 999_999), st.integers(0, 99))
def test_amounts_and_short_numbers_are_kept(units: int, cents: int) -> None:
    text = f"total {units} items, {units}.{cents:02d} EUR"
    assert redact_text(text) == text


@settings(max_examples=200)
@given(st.dates(date(1900, 1, 1), date(2100, 12, 31)))
def test_dates_are_kept(day: date) -> None:
    text = f"due {day:%Y-%m-%d}, {day:%d.%m.%Y}, {day:%d/%m/%Y} or {day:%Y.%m.%d}"
    assert redact_text(text) == text
