"""How long a task keeps what it stored: the `retention:` key of a task file.

```yaml
retention: {inputs: 30d, outputs: 365d, attempts: 30d}
```

Each kind is kept for its duration (`30d`, `12h`), counted from when the decision was made; a
kind left out is kept for ever. Roll-ups (counts, costs, latencies) and the audit chain are
always kept: retention blanks the personal content of a row, not the row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

Kind = Literal["inputs", "outputs", "attempts"]
KINDS: tuple[Kind, ...] = ("inputs", "outputs", "attempts")

_DURATION = re.compile(r"^\s*(\d+)\s*([dh])\s*$")


def keep_for(value: str | int) -> timedelta:
    """`30d`, `12h`, or a whole number of days, as a duration (at least one hour)."""
    if isinstance(value, int) and not isinstance(value, bool):
        kept = timedelta(days=value)
    else:
        found = _DURATION.match(str(value))
        if found is None:
            raise ValueError("must be a duration like 30d or 12h (days or hours)")
        amount = int(found[1])
        kept = timedelta(days=amount) if found[2] == "d" else timedelta(hours=amount)
    if kept < timedelta(hours=1):
        raise ValueError("must be at least 1h, e.g. 30d")
    return kept


class RetentionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: str | int | None = None
    """Inputs (and their redacted copy and metadata), quarantined raw records, intake content
    hashes and duplicate records."""
    outputs: str | int | None = None
    """Outputs and alternatives, review outputs and notes, shadow outputs, delivered or dead
    outbox payloads."""
    attempts: str | int | None = None
    """The text of each model attempt (raw responses and error messages)."""

    @field_validator("inputs", "outputs", "attempts")
    @classmethod
    def _a_duration(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            keep_for(value)
        return value

    def cutoffs(self, now: datetime) -> dict[str, datetime]:
        """Per kind with a duration: content stored before this time is due."""
        found: dict[str, datetime] = {}
        for kind in KINDS:
            value = getattr(self, kind)
            if value is not None:
                found[kind] = now - keep_for(value)
        return found


def due(specs: Mapping[str, RetentionSpec | None], now: datetime) -> dict[str, dict[str, datetime]]:
    """Per task with a retention spec, the cutoff of each kind it limits."""
    return {task: spec.cutoffs(now) for task, spec in specs.items() if spec is not None}
