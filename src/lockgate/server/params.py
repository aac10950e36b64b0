"""Path and header parameters shared by the routers, checked before any query runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

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
