"""Canary releases: when a canary must roll back. Which keys it decides is the router's sticky
split (`lockgate.decide.router`). Pure functions only: the store counts, `CanaryHealth.verdict`
judges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from lockgate.decide.task import RolloutSpec
from lockgate.errors import NotFound
from lockgate.rollout.release import Release
from lockgate.rollout.types import CanaryHealth

MAX_PERCENT = 50.0


class CanaryStore(Protocol):
    """What the canary check needs from storage (`Store.rollout`)."""

    def in_stage(self, stage: str, task: str | None = None) -> list[Release]: ...

    def canary_health(self, task: str, number: int) -> CanaryHealth: ...

    def stop_canary(self, task: str, actor: str, **kwargs: Any) -> Release: ...


@dataclass(frozen=True)
class CanaryCheck:
    health: CanaryHealth
    limits: RolloutSpec
    breaches: tuple[str, ...]
    rolled_back: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.health.as_dict(),
            "limits": self.limits.model_dump(),
            "breaches": list(self.breaches),
            "rolled_back": self.rolled_back,
        }


def check_canaries(
    store: CanaryStore, task: str | None = None, *, actor: str = "lockgate"
) -> list[CanaryCheck]:
    """Judge every canary (of `task`, or of all tasks) against the limits in its own release's
    `rollout` section; one past a limit goes back to `retired`, with its share cleared and a
    `release.canary_rollback` audit entry holding the figures."""
    checks: list[CanaryCheck] = []
    for release in store.in_stage("canary", task):
        limits = release.task_spec().rollout or RolloutSpec()
        health = store.canary_health(release.task, release.number)
        breaches = tuple(health.breaches(limits))
        rolled_back = False
        if breaches:
            try:
                store.stop_canary(
                    release.task,
                    actor,
                    stage="retired",
                    action="release.canary_rollback",
                    details={
                        **health.as_dict(),
                        "limits": limits.model_dump(),
                        "breaches": list(breaches),
                    },
                    expected=release.number,
                )
                rolled_back = True
            except NotFound:
                pass  # stopped meanwhile (by a person or another replica)
        checks.append(CanaryCheck(health, limits, breaches, rolled_back))
    return checks
