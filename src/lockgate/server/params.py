"""Path, query and header parameters shared by the routers, checked before any query runs."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path, Request
from pydantic import AfterValidator, BeforeValidator
from starlette.exceptions import HTTPException

from lockgate.decide.task import NAME_PATTERN

#: An idempotency key: 1-255 characters, no control characters.
KEY_PATTERN = r"^[^\x00-\x1f\x7f]{1,255}$"

TaskName = Annotated[
    str, Path(pattern=NAME_PATTERN, description="Task name, e.g. routing.", examples=["routing"])
]
DecisionId = Annotated[
    str, Path(pattern=r"^[0-9a-f]{1,32}$", description="Decision id, as returned on creation.")
]
ReleaseNumber = Annotated[int, Path(ge=1, le=2**31 - 1, description="Release number.")]

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def utc(at: datetime) -> datetime:
    """`at` in UTC; a time without an offset is taken to be UTC already."""
    return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)


def _iso_only(value: Any) -> Any:
    # Pydantic would also read a number (`-1.28e-59`, `1700000000`) as seconds since 1970.
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("expected an ISO 8601 date-time such as 2026-01-31T09:00:00Z")
    return value


#: A point in time given as ISO 8601 (`2026-01-31`, `2026-01-31T09:00:00+05:00`), held in UTC;
#: without an offset it is UTC.
Since = Annotated[datetime, BeforeValidator(_iso_only), AfterValidator(utc)]

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
    media = content_type.partition(";")[0].strip().lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        raise HTTPException(415, JSON_NEEDED)
