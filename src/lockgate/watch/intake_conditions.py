"""Alert conditions on intake (registered in `watch.alerts.CONDITIONS`, with default rules for
every task): `source_failing` and `schema_drift`.

Both read the sources' stored state through `ctx.extra["intake"]` (`Store.intake`), which the
edge fills in (`server/history.py`), and the task files for each source's `report_after`.
Without it, or for a task without `sources:`, they return None.

- `source_failing`: how many of the task's sources cannot be read: status `failing`, or as many
  failed reads in a row as the source's `report_after`. It clears once a read succeeds.
- `schema_drift`: the schema events the task's sources recorded in the window, plus one for
  each source held (`on_drift: quarantine`) or stopped (`on_drift: stop`) by schema drift. It
  clears once the window has no event and a person resumed the source
  (`lockgate sources resume S`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Protocol

from lockgate.intake.types import SchemaEvent, SourceState
from lockgate.watch.conditions import AlertContext, Condition

EVENTS_READ = 1000
"""Schema events read per source per evaluation (the newest first)."""


class SourceReader(Protocol):
    """What the intake conditions read (`Store.intake`)."""

    def states(self, task: str | None = None) -> list[SourceState]: ...

    def events(self, task: str, source: str, limit: int = 100) -> list[SchemaEvent]: ...


def _reader(ctx: AlertContext, task: str) -> tuple[SourceReader, dict[str, int]] | None:
    intake: Any = ctx.extra.get("intake")
    spec = ctx.tasks.get(task)
    if intake is None or spec is None or not spec.sources:
        return None
    return intake, {s.name: s.report_after for s in spec.sources}


def _declared(states: Sequence[SourceState], sources: dict[str, int]) -> list[SourceState]:
    return [s for s in states if s.source in sources]


def source_failing(ctx: AlertContext, task: str, window: timedelta) -> float | None:
    found = _reader(ctx, task)
    if found is None:
        return None
    intake, sources = found
    failing = [
        s
        for s in _declared(intake.states(task), sources)
        if s.status == "failing" or s.failures >= sources[s.source]
    ]
    return float(len(failing))


def schema_drift(ctx: AlertContext, task: str, window: timedelta) -> float | None:
    found = _reader(ctx, task)
    if found is None:
        return None
    intake, sources = found
    since = ctx.now - window
    count = 0
    for state in _declared(intake.states(task), sources):
        count += sum(
            1
            for e in intake.events(task, state.source, EVENTS_READ)
            if e.at is not None and e.at >= since
        )
        if state.status in ("held", "stopped") and state.status_reason.startswith("schema drift"):
            count += 1
    return float(count)


INTAKE: tuple[Condition, ...] = (
    Condition(
        "source_failing",
        source_failing,
        "the task's sources that cannot be read (status failing, or report_after failed reads "
        "in a row)",
        threshold=0.0,
        window=timedelta(minutes=1),
        unit="sources",
    ),
    Condition(
        "schema_drift",
        schema_drift,
        "schema events of the task's sources in the window, plus the sources held or stopped "
        "by schema drift",
        threshold=0.0,
        window=timedelta(hours=1),
        unit="events",
    ),
)
