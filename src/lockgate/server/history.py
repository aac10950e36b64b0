"""`GET /v1/tasks/{task}/history`, and the two loops `lockgate serve` runs for the watch
domain: the roll-up (lease `rollup`) and the alert evaluator (lease `alerts`).

The alert assembly (`alert_rules`, `alert_context`, `evaluator`) lives here and is shared with
`lockgate alerts` (`cli/watch.py`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import secrets
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from lockgate.decide.decision import utcnow
from lockgate.decide.sources import duration_seconds
from lockgate.decide.task import TaskSpec
from lockgate.errors import ConfigError, InputError
from lockgate.runtime import Runtime
from lockgate.security import Principal
from lockgate.server.auth import Authorize, get_runtime
from lockgate.server.params import TaskName
from lockgate.watch import alerts, history
from lockgate.watch.alerts import Evaluator, Rule
from lockgate.watch.channels import build_channels
from lockgate.watch.conditions import AlertContext
from lockgate.watch.history import ROLLUP_LEASE, Rollup, counts_of

router = APIRouter(tags=["history"])
log = logging.getLogger("lockgate.alerts")

MAX_BUCKETS = 10_000
TIME_PATTERN = (
    r"^(now|[0-9]{1,5}[smhd]|20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
    r"(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?)?)$"
)
"""What `from` and `to` accept over HTTP: now, a duration ago, or an ISO 8601 date or time."""


def _roll_over(text: str) -> str:
    """A day past its month's end counted on into the next (2026-02-30 is 2026-03-02), as a
    calendar does; any other text as it is."""
    found = re.match(r"^(\d{4})-(\d{2})-(\d{2})(.*)$", text)
    if found is None:
        return text
    year, month, day = (int(found[i]) for i in (1, 2, 3))
    if not (1 <= month <= 12 and 28 < day <= 31):
        return text
    moved = date(year, month, 1) + timedelta(days=day - 1)
    return moved.isoformat() + found[4]


def parse_time(text: str | None, now: datetime, name: str) -> datetime | None:
    """An ISO 8601 time (UTC when it names no zone), or a duration meaning that long ago."""
    if text is None or text == "":
        return None
    if text == "now":
        return now
    try:
        return now - timedelta(seconds=duration_seconds(text))
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(_roll_over(text))
    except ValueError:
        raise InputError(
            f"{name}: {text[:40]!r} is neither a time nor a duration",
            hint="write e.g. 2026-11-29T10:00:00Z, or 24h for 24 hours ago",
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def history_view(
    runtime: Runtime, task: str, start: str | None, end: str | None, step: str | None
) -> dict[str, Any]:
    """The task's history as `GET /v1/tasks/{task}/history` and `lockgate history` give it
    (blocking: call it in a thread). An empty range (`from` not before `to`) has no buckets; a
    step that would make more than 10,000 buckets is widened to hours, days or weeks."""
    runtime.task(task)  # a 404 for a task that is not in the project
    now = utcnow()
    until = parse_time(end, now, "to") or now
    since = parse_time(start, now, "from") or until - timedelta(hours=24)
    try:
        seconds = history.parse_step(step) if step else history.default_step(since, until)
    except ValueError as exc:
        raise InputError(f"step: {exc}", hint="write minute, hour, day or e.g. 5m") from None
    # A step that would make more than MAX_BUCKETS buckets is widened (the answer says which).
    span = max(0.0, (until - since).total_seconds())
    while span / seconds > MAX_BUCKETS:
        seconds = next((s for s in (3600, 86400) if s > seconds), seconds * 7)
    first = history.bucket_start(since, seconds)
    # Asked for by the hour or the day, the hour or day cells are read: a fraction of the rows.
    cells = runtime.store.history.cells(task, first, until, seconds) if since < until else []
    return {
        "task": task,
        "step": history.step_name(seconds),
        "from": first.isoformat(),
        "to": until.isoformat(),
        "buckets": history.buckets(task, cells, seconds),
    }


@router.get("/tasks/{task}/history")
async def task_history(
    task: TaskName,
    principal: Annotated[Principal, Depends(Authorize("read_tasks"))],
    runtime: Annotated[Runtime, Depends(get_runtime)],
    from_: Annotated[
        str | None,
        Query(
            alias="from",
            max_length=40,
            pattern=TIME_PATTERN,
            description="Start: an ISO 8601 time (UTC unless it names a zone), or a duration "
            "ago (24h). Default: 24h before `to`.",
        ),
    ] = None,
    to: Annotated[
        str | None,
        Query(
            max_length=40,
            pattern=TIME_PATTERN,
            description="End: an ISO 8601 time, a duration ago, or now (the default).",
        ),
    ] = None,
    step: Annotated[
        str | None,
        Query(
            max_length=16,
            pattern=r"^(minute|hour|day|[1-9][0-9]{0,5}[mhd])$",
            description="Bucket size: minute, hour, day or e.g. 5m, 1h, 1d. Default: by range.",
        ),
    ] = None,
) -> dict[str, Any]:
    """Decisions per time bucket and release, rolled up from the stored decisions: counts by
    route, failures by reason, latency p50/p95/p99, tokens and cost, confidence and label
    counts, review verdicts and backlog."""
    principal.require("read_tasks", task)
    return await runtime.store.executor.read(history_view, runtime, task, from_, to, step)


# ---- alerts: the assembly shared by serve and `lockgate alerts`


def label_fields(tasks: Mapping[str, TaskSpec]) -> dict[str, tuple[str, ...]]:
    """Per task, the output fields whose values are labels (enums)."""
    return {
        name: tuple(f for f, spec in task.output.items() if spec.type == "enum")
        for name, task in tasks.items()
    }


def alert_rules(runtime: Runtime, tasks: Mapping[str, TaskSpec] | None = None) -> list[Rule]:
    settings = runtime.settings
    channels = build_channels(settings.alert_channels, os.environ)
    global_rules = alerts.parse_rules(list(settings.alerts), "lockgate.yaml")
    return alerts.rules_for(
        tasks if tasks is not None else runtime.tasks(), global_rules, sorted(channels)
    )


def alert_context(runtime: Runtime, tasks: Mapping[str, TaskSpec], now: datetime) -> AlertContext:
    return AlertContext(
        now=now,
        tasks=tasks,
        history=runtime.store.history,
        signals=runtime.store.alerts,
        # Live quality's conditions (`watch.live_conditions`): judgments, profiles, releases;
        # the budget's (`watch.budget_conditions`): the ledger; the intake's
        # (`watch.intake_conditions`): sources' states and schema events.
        extra={
            "quality": runtime.store.quality,
            "releases": runtime.store.releases,
            "costs": runtime.store.costs,
            "intake": runtime.store.intake,
        },
    )


def measure(runtime: Runtime, now: datetime) -> tuple[list[Rule], list[float | None]]:
    """Every rule of every task, and its value now (blocking: call it in a thread). A task
    whose alert rules are wrong (an unknown condition or channel) is logged as an error each
    round and left out; the other tasks' rules still run."""
    tasks = runtime.tasks()
    rules: list[Rule] = []
    for name, spec in sorted(tasks.items()):
        try:
            rules += alert_rules(runtime, {name: spec})
        except ConfigError as exc:
            log.error("alerts.rules_invalid", extra={"task": name, "error": exc.message})
    return rules, alerts.measure_all(rules, alert_context(runtime, tasks, now))


def owner() -> str:
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"


def evaluator(runtime: Runtime, name: str | None = None) -> Evaluator:
    async def setup(now: datetime) -> tuple[list[Rule], list[float | None]]:
        return await runtime.store.executor.read(measure, runtime, now)

    return Evaluator(
        store=runtime.store.async_alerts,
        leases=runtime.store.async_leases,
        owner=name or owner(),
        setup=setup,
        channels=build_channels(runtime.settings.alert_channels, os.environ),
        interval_s=runtime.settings.alert_interval_seconds,
    )


def catch_up(runtime: Runtime, limit: int = 2000) -> None:
    """Roll up what is not yet rolled up, unless a `lockgate serve` holds the lease (it does it
    then): for `lockgate history` without a server (blocking)."""
    name = owner()
    leases = runtime.store.leases
    if not leases.take(ROLLUP_LEASE, name, 60.0):
        return
    try:
        summarize = functools.partial(counts_of, label_fields=label_fields(runtime.tasks()))
        while runtime.store.history.roll_up(summarize, limit) >= limit:
            pass
        runtime.store.history.sample_backlog()
    finally:
        leases.give_up(ROLLUP_LEASE, name)


def rollup(runtime: Runtime, name: str | None = None) -> Rollup:
    async def fields() -> Mapping[str, Sequence[str]]:
        tasks = await runtime.store.executor.read(runtime.tasks)
        return label_fields(tasks)

    settings = runtime.settings
    return Rollup(
        store=runtime.store.async_history,
        leases=runtime.store.async_leases,
        owner=name or owner(),
        label_fields=fields,
        interval_s=settings.history_rollup_seconds,
        hours_after=timedelta(days=settings.history_hours_after_days),
        days_after=timedelta(days=settings.history_days_after_days),
    )


@asynccontextmanager
async def watching(runtime: Runtime) -> AsyncIterator[None]:
    """Roll up history and evaluate alerts while the server runs; one replica does each at a
    time (leases `rollup` and `alerts`)."""
    name = owner()
    stop = asyncio.Event()
    loops = [asyncio.create_task(rollup(runtime, name).run(stop), name="lockgate-rollup")]
    try:
        checker = evaluator(runtime, name)
    except ConfigError as exc:  # the server still serves; `lockgate alerts list` says why
        log.error("alerts.config_error", extra={"error": exc.message, "hint": exc.hint})
    else:
        loops.append(asyncio.create_task(checker.run(stop), name="lockgate-alerts"))
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*loops, return_exceptions=True)
