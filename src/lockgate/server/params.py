"""Path, query, header and body fields shared by the routers, checked before any query runs.

Each pattern here is the rule the server applies, written so that it reads the same in every
regular-expression dialect that meets it (Python, pydantic's Rust engine, ECMA-262 in OpenAPI
tools): no `\\d` or `\\s` (Unicode-wide in some dialects, ASCII in others), no look-arounds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Path, Request
from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema
from starlette.exceptions import HTTPException

from lockgate.decide.task import NAME_PATTERN

#: An idempotency key: 1-255 characters, no control characters.
KEY_PATTERN = r"^[^\x00-\x1f\x7f]{1,255}$"

#: The same in an `Idempotency-Key` header, where HTTP drops spaces and tabs around a value:
#: at least one character besides them.
HEADER_KEY_PATTERN = r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$"

TaskName = Annotated[
    str, Path(pattern=NAME_PATTERN, description="Task name, e.g. routing.", examples=["routing"])
]
DecisionId = Annotated[
    str, Path(pattern=r"^[0-9a-f]{1,32}$", description="Decision id, as returned on creation.")
]
ReleaseNumber = Annotated[int, Path(ge=1, le=2**31 - 1, description="Release number.")]


# ---- points in time

_YEAR = r"(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
_LEAP_YEAR = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_DATE = (
    rf"(?:{_YEAR}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
    rf"|{_LEAP_YEAR}-02-29)"
)
_TIME = r"T(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?"
_OFFSET = r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"

#: What `since` accepts: a calendar date (`2026-01-31`, midnight UTC), or a date and a time to
#: the minute, second or microsecond, with `Z` or an offset such as `+05:00` (none: UTC).
SINCE_PATTERN = rf"^{_DATE}(?:{_TIME}{_OFFSET}?)?$"
_SINCE = re.compile(SINCE_PATTERN)


def utc(at: datetime) -> datetime:
    """`at` in UTC; a time without an offset is taken to be UTC already. An instant before the
    first or after the last that Python can hold in UTC (`0001-01-01T00:00+01:00`) becomes
    that first or last one."""
    if at.tzinfo is None:
        return at.replace(tzinfo=UTC)
    try:
        return at.astimezone(UTC)
    except OverflowError:
        offset = at.utcoffset() or timedelta(0)
        return (datetime.min if offset > timedelta(0) else datetime.max).replace(tzinfo=UTC)


def parse_since(value: Any) -> datetime:
    """A `since` value in UTC; anything but SINCE_PATTERN (a number such as `-1.28e-59` or
    `1700000000` included) is refused."""
    if isinstance(value, datetime):
        return utc(value)
    if not isinstance(value, str) or not _SINCE.fullmatch(value):
        raise ValueError(
            "expected an ISO 8601 date (2026-01-31) or date-time (2026-01-31T09:00:00Z, "
            "2026-01-31T09:00:00+05:00)"
        )
    return utc(datetime.fromisoformat(value))


#: A point in time given as ISO 8601 (see SINCE_PATTERN), held in UTC.
Since = Annotated[
    datetime,
    BeforeValidator(parse_since),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": SINCE_PATTERN,
            "description": (
                "Only decisions made at or after this time: an ISO 8601 date (midnight UTC) or "
                "date-time; without an offset it is UTC."
            ),
            "examples": ["2026-01-31", "2026-01-31T09:00:00Z", "2026-01-31T14:00:00+05:00"],
        }
    ),
]


# ---- page cursors

#: A page cursor: where the previous page ended, as microseconds since 1970 (UTC; 17 digits
#: reach the year 5138, and every decision is made at the server's present) and the last
#: decision's id; empty, the first page. Every string of this form is a position: none that
#: matches is refused.
CURSOR_PATTERN = r"^(?:[0-9]{1,17}-[0-9a-f]{1,32})?$"
_CURSOR = re.compile(CURSOR_PATTERN)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Cursor = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": CURSOR_PATTERN,
            "description": "The `next_cursor` of the previous page, unchanged.",
        }
    ),
]


def encode_cursor(at: datetime, last_id: str) -> str:
    since_epoch = utc(at) - _EPOCH
    return f"{since_epoch // timedelta(microseconds=1)}-{last_id}"


def decode_cursor(cursor: str) -> tuple[datetime, str] | None:
    """The position a cursor names; None for an empty one or one not of CURSOR_PATTERN."""
    if not cursor or not _CURSOR.fullmatch(cursor):
        return None
    micros, _, last_id = cursor.partition("-")
    return _EPOCH + timedelta(microseconds=int(micros)), last_id


# ---- free text


#: Python's whitespace (`str.isspace`, what `str.strip` removes), written out so that every
#: dialect reads it alike; a test keeps it equal to `str.isspace`.
BLANK = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"

#: Free text a database can store: anything but NUL (PostgreSQL's text cannot hold it).
TEXT_PATTERN = r"^[^\x00]*$"
#: The same, and saying something: at least one character that is not whitespace.
STATED_PATTERN = rf"^[^\x00]*[^\x00{BLANK}][^\x00]*$"
_STATED = re.compile(STATED_PATTERN)


def no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("contains a NUL character (\\u0000); send plain text")
    return text


def stated(text: str) -> str:
    no_nul(text)
    if not _STATED.fullmatch(text):
        raise ValueError(
            "a reason is required, and this one is blank; say why, e.g. 'wrong queue: this is "
            "a chargeback'"
        )
    return text


#: Optional free text (a `reason`): no NUL; its length is set where it is used.
Text = Annotated[str, AfterValidator(no_nul), Field(json_schema_extra={"pattern": TEXT_PATTERN})]
#: Free text that must say something: not only whitespace, no NUL.
Stated = Annotated[
    str, AfterValidator(stated), Field(json_schema_extra={"pattern": STATED_PATTERN})
]


# ---- media type

JSON_NEEDED = (
    "the body must be JSON sent with `Content-Type: application/json` "
    "(curl -d sends a form: add -H 'Content-Type: application/json')"
)


async def json_body(request: Request) -> None:
    """Refuse a body sent with a media type other than JSON (415); a body without any
    Content-Type is read as JSON."""
    content_type = request.headers.get("content-type")
    if content_type is None or not await request.body():
        return
    if not json_media(content_type):
        raise HTTPException(415, JSON_NEEDED)


def json_media(content_type: str) -> bool:
    """Whether a Content-Type names JSON (`application/json` or `application/...+json`)."""
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )
