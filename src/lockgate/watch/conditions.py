"""Alert conditions: a name, and a function that measures one number for a task and window.

See the top of `lockgate.watch.alerts` for how to add one. A condition reads what it needs
from the `AlertContext` the edge builds (the roll-up history, live signals from the store,
task files); it returns None when there is nothing to judge (too few decisions, no SLA set),
and a rule with no value neither fires nor resolves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from lockgate.watch import history
from lockgate.watch.types import Backlog, Cell

if TYPE_CHECKING:
    from lockgate.decide.task import TaskSpec

MIN_DECISIONS = 10
"""Rates over fewer decisions than this are not judged (one failure of one is no trend)."""


class HistoryReader(Protocol):
    def cells(self, task: str, start: datetime, end: datetime) -> Sequence[Cell]: ...


class SignalReader(Protocol):
    """Live signals read from the store at evaluation time (`store.alerts` satisfies it)."""

    def backlog(self, task: str) -> Sequence[Backlog]: ...

    def dead_letters(self, task: str) -> int: ...

    def audit_count(self, task: str, action: str, since: datetime) -> int: ...

    def last_decision_at(self, task: str) -> datetime | None: ...


@dataclass(frozen=True)
class AlertContext:
    """What conditions may read, built by the edge for one evaluation round.

    A condition that needs another source (live accuracy, drift, budgets) adds a field here
    with a default of None, the edge (`server/alerts.py`, `cli/watch.py`) fills it in, and the
    condition returns None while it is missing.
    """

    now: datetime
    tasks: Mapping[str, TaskSpec]
    history: HistoryReader
    signals: SignalReader
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Sources by name for conditions added later, when a field of their own is overkill."""

    def window_cells(self, task: str, window: timedelta) -> dict[str, dict[str, float]]:
        """The task's roll-up over the last `window`, every release merged."""
        return history.merge(self.history.cells(task, self.now - window, self.now))


Measure = Callable[[AlertContext, str, timedelta], float | None]
PromQL = Callable[[str, float, timedelta], str]


@dataclass(frozen=True)
class Condition:
    """A named measurement; a rule on it fires when the value is `comparison` its threshold."""

    name: str
    measure: Measure
    description: str
    comparison: Literal["above", "below", "at least"] = "above"
    threshold: float = 0.0
    """The default threshold of a rule that names no threshold."""
    window: timedelta = timedelta(minutes=15)
    """The default window of a rule that names no window."""
    unit: str = ""
    prometheus: PromQL | None = None
    """The same condition as a PromQL expression on Lockgate's metrics (task, threshold,
    window), for `lockgate alerts export --format prometheus`; None: no metric measures it."""

    def holds(self, value: float, threshold: float) -> bool:
        if self.comparison == "at least":
            return value >= threshold
        return value > threshold if self.comparison == "above" else value < threshold


def registry(*conditions: Condition) -> Mapping[str, Condition]:
    """Conditions by name; a name given twice is a programming error."""
    found: dict[str, Condition] = {}
    for condition in conditions:
        if condition.name in found:
            raise ValueError(f"alert condition {condition.name!r} is registered twice")
        found[condition.name] = condition
    return found


# ---- the built-in conditions


def _rate(seconds: timedelta) -> str:
    return f"{max(60, int(seconds.total_seconds()))}s"


def failure_rate(ctx: AlertContext, task: str, window: timedelta) -> float | None:
    cells = ctx.window_cells(task, window)
    decisions = cells.get("decisions", {}).get("", 0.0)
    if decisions < MIN_DECISIONS:
        return None
    return cells.get("failed", {}).get("", 0.0) / decisions


def latency_p95_ms(ctx: AlertContext, task: str, window: timedelta) -> float | None:
    cells = ctx.window_cells(task, window)
    if cells.get("decisions", {}).get("", 0.0) < MIN_DECISIONS:
        return None
    return history.quantile(cells.get("latency", {}), 0.95)


def review_backlog(ctx: AlertContext, task: str, window: timedelta) -> float | None:
    return float(sum(b.count for b in ctx.signals.backlog(task)))


def review_oldest_sla(ctx: AlertContext, task: str, window: timedelta) -> float | None:
    spec = ctx.tasks.get(task)
    sla = spec.policy.review_sla_minutes if spec is not None else None
    oldest = [b.oldest_at for b in ctx.signals.backlog(task) if b.oldest_at is not None]
    if not sla or not oldest:
        return None
    return (ctx.now - min(oldest)).total_seconds() / 60 / sla


def breaker_open(ctx: AlertContext, task: str, window: timedelta) -> float | None:
    return ctx.window_cells(task, window).get("attempt_error", {}).get("breaker_open", 0.0)


def dead_letters(ctx: AlertContext, task: str, window: timedelta) -> float | None:
    return float(ctx.signals.dead_letters(task))


def canary_rolled_back(ctx: AlertContext, task: str, window: timedelta) -> float | None:
    return float(ctx.signals.audit_count(task, "release.canary_rollback", ctx.now - window))


def stalled_intake(ctx: AlertContext, task: str, window: timedelta) -> float | None:
    """Minutes since the task's last decision, when traffic is expected: the same window one
    day or one week earlier had decisions. None when none was expected."""
    expected = False
    for back in (timedelta(days=1), timedelta(days=7)):
        end = ctx.now - back
        if any(c.metric == "decisions" for c in ctx.history.cells(task, end - window, end)):
            expected = True
            break
    if not expected:
        return None
    last = ctx.signals.last_decision_at(task)
    if last is None:
        return window.total_seconds() / 60
    return (ctx.now - last).total_seconds() / 60


def _promql_failure_rate(task: str, threshold: float, window: timedelta) -> str:
    w = _rate(window)
    return (
        f'sum(rate(lockgate_decisions_total{{task="{task}",status="failed"}}[{w}])) / '
        f'sum(rate(lockgate_decisions_total{{task="{task}"}}[{w}])) > {threshold:g}'
    )


def _promql_latency(task: str, threshold: float, window: timedelta) -> str:
    return (
        "histogram_quantile(0.95, sum by (le) (rate("
        f'lockgate_decision_latency_seconds_bucket{{task="{task}"}}[{_rate(window)}]))) '
        f"* 1000 > {threshold:g}"
    )


def _promql_breaker(task: str, threshold: float, window: timedelta) -> str:
    return "max(lockgate_breaker_state) >= 2"


def _promql_dead(task: str, threshold: float, window: timedelta) -> str:
    return f'max(lockgate_outbox_depth{{status="dead"}}) > {threshold:g}'


def _promql_stalled(task: str, threshold: float, window: timedelta) -> str:
    w = _rate(window)
    return (
        f'sum(increase(lockgate_decisions_total{{task="{task}"}}[{w}])) == 0 and '
        f'sum(increase(lockgate_decisions_total{{task="{task}"}}[{w}] offset 1d)) > 0'
    )


BUILT_IN: tuple[Condition, ...] = (
    Condition(
        "failure_rate",
        failure_rate,
        "share of decisions that failed (at least 10 decisions in the window)",
        threshold=0.05,
        unit="share",
        prometheus=_promql_failure_rate,
    ),
    Condition(
        "latency_p95_ms",
        latency_p95_ms,
        "95th percentile of decision latency, in ms (at least 10 decisions in the window)",
        threshold=5000.0,
        unit="ms",
        prometheus=_promql_latency,
    ),
    Condition(
        "review_backlog",
        review_backlog,
        "review items waiting now",
        threshold=500.0,
        window=timedelta(minutes=1),
        unit="items",
    ),
    Condition(
        "review_oldest_sla",
        review_oldest_sla,
        "age of the oldest waiting review item as a share of the task's review_sla_minutes",
        threshold=1.0,
        window=timedelta(minutes=1),
        unit="share of SLA",
    ),
    Condition(
        "breaker_open",
        breaker_open,
        "model calls refused by an open circuit breaker in the window",
        threshold=0.0,
        unit="calls",
        prometheus=_promql_breaker,
    ),
    Condition(
        "dead_letters",
        dead_letters,
        "deliveries dead-lettered now (see `lockgate deliveries`)",
        threshold=0.0,
        window=timedelta(minutes=1),
        unit="deliveries",
        prometheus=_promql_dead,
    ),
    Condition(
        "canary_rolled_back",
        canary_rolled_back,
        "canaries rolled back automatically in the window",
        threshold=0.0,
        window=timedelta(hours=1),
        unit="rollbacks",
    ),
    Condition(
        "stalled_intake",
        stalled_intake,
        "minutes since the last decision, while the same window a day or a week earlier had "
        "decisions",
        threshold=30.0,
        window=timedelta(minutes=30),
        unit="minutes",
        prometheus=_promql_stalled,
    ),
)
