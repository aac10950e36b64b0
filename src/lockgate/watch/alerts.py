"""Alerts: rules over a task's history and live signals that notify channels once per episode.

Conditions (the registry)
-------------------------
A rule names a *condition*: `CONDITIONS` below maps each name to a
`lockgate.watch.conditions.Condition`, a function ``measure(ctx, task, window) -> float | None``
with a default threshold, window, comparison (`above` or `below`) and, where Lockgate's
Prometheus metrics measure the same thing, a PromQL expression. `ctx` is the
`AlertContext` the edge builds for each round: the time (`ctx.now`), the task files
(`ctx.tasks`), the roll-up history (`ctx.history.cells`, or `ctx.window_cells(task, window)`
merged) and live signals from the store (`ctx.signals`: review backlog, dead letters, audit
counts, the last decision). Conditions run in a reader thread, so they call the store's
blocking methods directly. To add one (live accuracy, drift, a budget):

1. write its measure in your module and a `Condition("live_accuracy", measure, "...",
   comparison="below", threshold=0.9)` constant;
2. if it needs a source the context lacks, add a field to `AlertContext` with a default of
   None (or read `ctx.extra[...]`) and fill it where the context is built
   (`server/alerts.py`, `cli/watch.py`); return None while the source is missing;
3. append it to `CONDITIONS` here; add a default rule to `DEFAULT_RULES` if every task
   should have it.

Rules
-----
`DEFAULT_RULES` apply to every task (and `budget_soft`, `budget_hard` to every task with a
`budget:`, see `watch.budget_conditions`); `lockgate.yaml`'s `alerts:` list (every task) and a
task file's `alerts:` list replace a rule of the same name (`enabled: false` turns it off) or
add one (a replacing rule of the same condition that names no threshold keeps the replaced
one's). Each rule: condition, threshold, window, severity, channels, repeat.

Episodes
--------
A rule fires once when its condition starts to hold (a `firing` notice), repeats every
`repeat` while it holds, and sends one `resolved` notice when it clears. The state is kept in
the database and a notice is sent only after its state change is committed (and audited), so
a restart of `lockgate serve` sends no duplicate; one replica evaluates at a time (lease
`alerts`). A silenced rule changes state as usual, but sends nothing until the silence ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from lockgate.decide.alert_rules import AlertRuleSpec
from lockgate.decide.key_paths import key_path
from lockgate.decide.sources import duration_seconds
from lockgate.errors import ConfigError, LockgateError
from lockgate.watch.budget_conditions import BUDGET, budget_rules
from lockgate.watch.conditions import BUILT_IN, AlertContext, Condition, registry
from lockgate.watch.intake_conditions import INTAKE
from lockgate.watch.live_conditions import LIVE_QUALITY
from lockgate.watch.types import AlertState, Silence

if TYPE_CHECKING:
    from lockgate.decide.task import TaskSpec

log = logging.getLogger("lockgate.alerts")

CONDITIONS: Mapping[str, Condition] = registry(*BUILT_IN, *LIVE_QUALITY, *BUDGET, *INTAKE)
ALERTS_LEASE = "alerts"

DEFAULT_RULES: tuple[AlertRuleSpec, ...] = tuple(
    AlertRuleSpec(condition=name, repeat=repeat, severity=severity)  # type: ignore[arg-type]
    for name, severity, repeat in (
        ("failure_rate", "critical", "1h"),
        ("latency_p95_ms", "warning", "1h"),
        ("review_backlog", "warning", "4h"),
        ("review_oldest_sla", "warning", "4h"),
        ("breaker_open", "critical", "1h"),
        ("dead_letters", "warning", "4h"),
        ("canary_rolled_back", "warning", "24h"),
        ("stalled_intake", "critical", "1h"),
        ("live_accuracy", "warning", "24h"),
        ("drift", "warning", "24h"),
        ("source_failing", "critical", "1h"),
        ("schema_drift", "warning", "4h"),
    )
)


@dataclass(frozen=True)
class Rule:
    """One rule as it applies to one task."""

    name: str
    task: str
    condition: Condition
    threshold: float
    window: timedelta
    severity: str
    channels: tuple[str, ...]
    repeat: timedelta
    origin: str
    """Where it was declared: `default`, `lockgate.yaml` or the task file."""

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "condition": self.condition.name,
            "comparison": self.condition.comparison,
            "threshold": self.threshold,
            "window": _duration_text(self.window),
            "severity": self.severity,
            "channels": list(self.channels),
            "repeat": _duration_text(self.repeat),
            "origin": self.origin,
        }


def _duration_text(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_rules(entries: Any, where: str) -> list[AlertRuleSpec]:
    """The `alerts:` list of `lockgate.yaml` (or another file), checked; a mistake is one
    line naming the key as written (`lockgate.yaml: alerts.0.window: ...`)."""
    if entries is None:
        return []
    if not isinstance(entries, list | tuple):
        raise ConfigError(
            f"{where}: alerts: expected a list of rules",
            hint="e.g. alerts: [{condition: failure_rate, threshold: 0.1, window: 15m}]",
        )
    specs = []
    for index, entry in enumerate(entries):
        try:
            specs.append(AlertRuleSpec.model_validate(entry))
        except ValidationError as exc:
            error = exc.errors()[0]
            path, _ = key_path(AlertRuleSpec, error["loc"])
            at = f"alerts.{index}" + (f".{path}" if path else "")
            raise ConfigError(
                f"{where}: {at}: {error['msg']}",
                hint="see `lockgate alerts list` and docs/operations.md#alerts",
            ) from None
    return specs


def rules_for(
    tasks: Mapping[str, TaskSpec],
    global_rules: Sequence[AlertRuleSpec],
    channels: Sequence[str],
    conditions: Mapping[str, Condition] = CONDITIONS,
) -> list[Rule]:
    """Every task's rules: the defaults, replaced or added to by `lockgate.yaml` and then by
    the task file. An unknown condition or channel is a `ConfigError` naming where it is."""
    known_channels = set(channels) | {"log"}
    rules: list[Rule] = []
    for task, spec in sorted(tasks.items()):
        chosen: dict[str, tuple[AlertRuleSpec, str, str]] = {}
        layers = (
            ("default", DEFAULT_RULES + budget_rules(spec.budget), "default"),
            ("lockgate.yaml", tuple(global_rules), "lockgate.yaml"),
            (f"tasks/{task}.yaml", tuple(spec.alerts), f"tasks/{task}.yaml"),
        )
        for origin, specs, where in layers:
            for index, rule in enumerate(specs):
                at = f"{where}: alerts.{index}"
                if rule.condition not in conditions:
                    raise ConfigError(
                        f"{at}.condition: unknown condition {rule.condition!r}",
                        hint="known conditions: " + ", ".join(sorted(conditions)),
                    )
                for channel in rule.channels:
                    if channel not in known_channels:
                        raise ConfigError(
                            f"{at}.channels: unknown channel {channel!r}",
                            hint="declare it under alert_channels in lockgate.yaml; known: "
                            + ", ".join(sorted(known_channels)),
                        )
                earlier = chosen.get(rule.rule_name())
                if (
                    rule.threshold is None
                    and earlier is not None
                    and earlier[0].condition == rule.condition
                ):
                    # A rule replaced without a threshold keeps the one it replaces (a
                    # budget's soft_at, say): only what it names changes.
                    rule = rule.model_copy(update={"threshold": earlier[0].threshold})
                chosen[rule.rule_name()] = (rule, origin, at)
        for name, (rule, origin, _) in chosen.items():
            if not rule.enabled:
                continue
            condition = conditions[rule.condition]
            rules.append(
                Rule(
                    name=name,
                    task=task,
                    condition=condition,
                    threshold=condition.threshold if rule.threshold is None else rule.threshold,
                    window=(
                        condition.window
                        if rule.window is None
                        else timedelta(seconds=duration_seconds(rule.window))
                    ),
                    severity=rule.severity,
                    channels=rule.channels,
                    repeat=timedelta(seconds=duration_seconds(rule.repeat)),
                    origin=origin,
                )
            )
    return rules


# ---- evaluation


@dataclass(frozen=True)
class Notice:
    """What a channel sends: counts and rates, never an input or an output."""

    kind: str
    """`firing` (a new episode), `repeat` (still holding) or `resolved`; `test` from
    `lockgate alerts test`."""
    rule: str
    task: str
    condition: str
    comparison: str
    severity: str
    value: float | None
    threshold: float
    window: str
    episode: int
    started_at: datetime | None
    at: datetime
    channels: tuple[str, ...] = ("log",)
    silenced: bool = False

    @property
    def key(self) -> str:
        """The same for every send of this notice (a channel's idempotency key)."""
        return f"{self.task}:{self.rule}:{self.episode}:{self.kind}:{self.at.isoformat()}"

    def title(self) -> str:
        state = {"firing": "FIRING", "repeat": "STILL FIRING", "resolved": "RESOLVED"}
        value = "no value" if self.value is None else f"{self.value:.4g}"
        return (
            f"[{state.get(self.kind, self.kind.upper())}] {self.task}: {self.rule} "
            f"({self.condition} {value}, {self.comparison} {self.threshold:g} over {self.window})"
        )

    def payload(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rule": self.rule,
            "task": self.task,
            "condition": self.condition,
            "comparison": self.comparison,
            "severity": self.severity,
            "value": self.value,
            "threshold": self.threshold,
            "window": self.window,
            "episode": self.episode,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "at": self.at.isoformat(),
            "title": self.title(),
        }


def silenced(silences: Sequence[Silence], rule: Rule, now: datetime) -> bool:
    return any(
        s.rule == rule.name and s.task in (None, rule.task) and s.until > now for s in silences
    )


def step(
    rule: Rule, value: float | None, state: AlertState | None, now: datetime, quiet: bool
) -> tuple[AlertState, Notice | None]:
    """The rule's next state and the notice it sends now, if any. Pure: the caller commits the
    state, then sends the notice."""
    state = state or AlertState(rule.task, rule.name, False, 0, None, None, None)
    holds = value is not None and rule.condition.holds(value, rule.threshold)
    kind: str | None = None
    if holds and not state.firing:
        state = AlertState(
            rule.task, rule.name, True, state.episode + 1, value, now, now, state.resolved_at
        )
        kind = "firing"
    elif holds and state.last_sent_at is not None and now - state.last_sent_at >= rule.repeat:
        state = replace(state, value=value, last_sent_at=now)
        kind = "repeat"
    elif state.firing and not holds and value is not None:
        state = replace(state, firing=False, value=value, resolved_at=now, last_sent_at=now)
        kind = "resolved"
    if kind is None:
        return state, None
    notice = Notice(
        kind=kind,
        rule=rule.name,
        task=rule.task,
        condition=rule.condition.name,
        comparison=rule.condition.comparison,
        severity=rule.severity,
        value=value,
        threshold=rule.threshold,
        window=_duration_text(rule.window),
        episode=state.episode,
        started_at=state.started_at,
        at=now,
        channels=rule.channels,
        silenced=quiet,
    )
    return state, notice


def measure_all(rules: Sequence[Rule], ctx: AlertContext) -> list[float | None]:
    """Each rule's value now (blocking: run in a reader thread)."""
    values: list[float | None] = []
    for rule in rules:
        try:
            values.append(rule.condition.measure(ctx, rule.task, rule.window))
        except LockgateError as exc:
            log.warning(
                "alerts.measure_failed",
                extra={"task": rule.task, "rule": rule.name, "error": exc.message},
            )
            values.append(None)
    return values


class AlertStore(Protocol):
    """Alert state, silences and audit (async, through the store's executor):
    `lockgate.store.alerts.AsyncAlertRepository`."""

    async def states(self) -> dict[tuple[str, str], AlertState]: ...

    async def silences(self, now: datetime) -> list[Silence]: ...

    async def transition(
        self, state: AlertState, previous: AlertState | None, notice: Mapping[str, Any] | None
    ) -> bool: ...


class LeaseStore(Protocol):
    async def take(self, name: str, owner: str, seconds: float) -> bool: ...

    async def give_up(self, name: str, owner: str) -> None: ...


class Channel(Protocol):
    async def send(self, notice: Notice) -> None: ...


RETRY_FOR = timedelta(hours=1)


@dataclass(frozen=True)
class Unsent:
    """A notice one channel refused, and since when."""

    channel: str
    notice: Notice
    since: datetime


@dataclass
class Evaluator:
    """Evaluates every rule each `interval_s` while it holds the `alerts` lease."""

    store: AlertStore
    leases: LeaseStore
    owner: str
    setup: Callable[[datetime], Awaitable[tuple[list[Rule], list[float | None]]]]
    """Reads the rules and measures them now (the edge runs the measures in a thread)."""
    channels: Mapping[str, Channel]
    interval_s: float = 30.0
    clock: Callable[[], datetime] | None = None
    retry_for: timedelta = RETRY_FOR
    """How long a notice a channel refused is sent again, each round, before it is dropped."""
    unsent: list[Unsent] = field(default_factory=list, init=False)
    """Notices a channel refused, sent again at the start of each round (in memory only)."""

    def now(self) -> datetime:
        from lockgate.decide.decision import utcnow

        return self.clock() if self.clock is not None else utcnow()

    async def round(self) -> list[Notice]:
        """One evaluation; the notices sent (a silenced one is recorded, not sent)."""
        if not await self.leases.take(ALERTS_LEASE, self.owner, max(60.0, 3 * self.interval_s)):
            return []
        now = self.now()
        await self.resend(now)
        rules, values = await self.setup(now)
        states = await self.store.states()
        silences = await self.store.silences(now)
        sent: list[Notice] = []
        for rule, value in zip(rules, values, strict=True):
            previous = states.get((rule.task, rule.name))
            state, notice = step(rule, value, previous, now, silenced(silences, rule, now))
            if state == previous or (previous is None and notice is None and not state.firing):
                continue
            payload = None
            if notice is not None:
                payload = {**notice.payload(), "silenced": notice.silenced}
            if not await self.store.transition(state, previous, payload):
                continue  # another evaluator moved it first: it sends
            if notice is not None and not notice.silenced:
                await self.send(notice)
                sent.append(notice)
        return sent

    async def send(self, notice: Notice) -> None:
        for name in notice.channels:
            if not await self._send_to(name, notice):
                self.unsent.append(Unsent(name, notice, self.now()))

    async def resend(self, now: datetime) -> None:
        """Send again what a channel refused; drop what was refused for `retry_for`."""
        waiting, self.unsent = self.unsent, []
        for unsent in waiting:
            if await self._send_to(unsent.channel, unsent.notice):
                log.info(
                    "alerts.notice_resent",
                    extra={"channel": unsent.channel, "rule": unsent.notice.rule},
                )
            elif now - unsent.since >= self.retry_for:
                log.error(
                    "alerts.notice_dropped",
                    extra={
                        "channel": unsent.channel,
                        "rule": unsent.notice.rule,
                        "task": unsent.notice.task,
                        "kind": unsent.notice.kind,
                        "refused_for_s": int((now - unsent.since).total_seconds()),
                    },
                )
            else:
                self.unsent.append(unsent)

    async def _send_to(self, name: str, notice: Notice) -> bool:
        """Whether the channel took the notice (an unknown channel name counts as taken)."""
        channel = self.channels.get(name)
        if channel is None:
            return True
        try:
            await channel.send(notice)
        except LockgateError as exc:
            log.warning(
                "alerts.channel_failed",
                extra={"channel": name, "rule": notice.rule, "error": exc.message},
            )
            return False
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Evaluate every `interval_s`, the first time one interval after the start (so a
        replica starting up judges history the roll-up has caught up with)."""
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
                if stop.is_set():
                    break
                try:
                    await self.round()
                except LockgateError as exc:
                    log.warning("alerts.round_failed", extra={"error": exc.message})
        finally:
            with contextlib.suppress(LockgateError):
                await self.leases.give_up(ALERTS_LEASE, self.owner)
