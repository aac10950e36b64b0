"""What a task may spend and how long its answers may be reused: the `budget:` and `cache:`
keys of a task file (and `budget:` in lockgate.yaml, for all tasks together).

```yaml
budget:
  per_day: {usd: 20.00, calls: 5000}
  per_month: {usd: 400.00}
  soft_at: 0.8            # share of a limit that raises the soft alert
  on_hard_limit: fallback # or review, refuse
cache: {ttl: 24h}
```
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

HardLimit = Literal["fallback", "review", "refuse"]
Period = Literal["day", "month"]
PERIODS: tuple[Period, ...] = ("day", "month")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LimitSpec(_Strict):
    """One period's limit: US dollars, model calls, or both."""

    usd: float | None = Field(default=None, gt=0)
    calls: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _something_limited(self) -> LimitSpec:
        if self.usd is None and self.calls is None:
            raise ValueError("set `usd`, `calls` or both, e.g. {usd: 20.00, calls: 5000}")
        return self


class BudgetSpec(_Strict):
    per_day: LimitSpec | None = None
    """Limits for one UTC calendar day."""
    per_month: LimitSpec | None = None
    """Limits for one UTC calendar month."""
    soft_at: float = Field(default=0.8, gt=0.0, le=1.0)
    """Share of a limit (spent and reserved) past which the soft alert is raised, once per
    period and limit."""
    on_hard_limit: HardLimit = "refuse"
    """What a decision gets when a paid model call would pass a limit: `fallback` (skip paid
    models, use the next free one), `review` (to the queue without a model call) or `refuse`
    (HTTP 429 until the period ends; a failed record in batch jobs)."""

    @model_validator(mode="after")
    def _some_period(self) -> BudgetSpec:
        if self.per_day is None and self.per_month is None:
            raise ValueError("set `per_day`, `per_month` or both, e.g. per_day: {usd: 20.00}")
        return self

    def limit(self, period: Period) -> LimitSpec | None:
        return self.per_day if period == "day" else self.per_month


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(value: str | float) -> float:
    """`90s`, `30m`, `24h`, `7d` or a number of seconds, as seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        found = _DURATION.match(str(value))
        if found is None:
            raise ValueError("must be a duration like 90s, 30m, 24h or 7d")
        seconds = float(found[1]) * _UNIT_SECONDS[found[2]]
    if seconds <= 0:
        raise ValueError("must be longer than zero, e.g. 24h")
    return seconds


class CacheSpec(_Strict):
    ttl: str | float
    """How long an automated answer is reused for the same input and release: `90s`, `30m`,
    `24h`, `7d` or seconds."""

    @field_validator("ttl")
    @classmethod
    def _a_duration(cls, value: str | float) -> str | float:
        duration_seconds(value)
        return value

    @property
    def ttl_seconds(self) -> float:
        return duration_seconds(self.ttl)
