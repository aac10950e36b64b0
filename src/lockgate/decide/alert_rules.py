"""Alert rules as written in a task file's `alerts:` list or in `lockgate.yaml`'s `alerts:`.

Only their shape is checked here; `lockgate.watch.alerts` knows the conditions and channels a
rule may name, and evaluates the rules.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lockgate.decide.sources import duration_seconds

RULE_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
Severity = Literal["info", "warning", "critical"]


class AlertRuleSpec(BaseModel):
    """One alert rule: when `condition`, measured over `window`, passes `threshold`, notify
    `channels`; again every `repeat` while it holds; once more when it clears."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    condition: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    """A condition's name (`lockgate alerts list` shows them): failure_rate, latency_p95_ms..."""
    name: str | None = Field(default=None, pattern=RULE_NAME_PATTERN)
    """The rule's name; default: the condition's. A rule of the same name replaces a default."""
    threshold: float | None = None
    """Past this value the rule fires; default: the condition's own."""
    window: str | None = None
    """How far back the condition looks: `15m`, `1h`, `1d`; default: the condition's own."""
    severity: Severity = "warning"
    channels: tuple[str, ...] = ("log",)
    """Names of channels under `alert_channels` in `lockgate.yaml`, or `log`."""
    repeat: str = "1h"
    """How often a notice repeats while the rule holds."""
    enabled: bool = True
    """False switches a rule (a shipped default, too) off."""

    @field_validator("window", "repeat")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            duration_seconds(str(value))
        return value

    def rule_name(self) -> str:
        return self.name or self.condition
