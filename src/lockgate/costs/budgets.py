"""Budgets that hold under concurrency: the `SpendGuard` the pipeline calls around every paid
model call.

Before a paid call, its worst-case cost is held in the ledger (`reserve`, one transaction for
a whole group of calls, atomic across processes and replicas); after it, the real cost is
booked and the hold let go (`settle`); a call never made lets its hold go at no cost. A hold
has a lifetime (`budget_hold_seconds`): one left behind by a crash lapses after it and is
booked at its worst case, so no spend stays unaccounted for longer than that.

Limits are checked against spent plus held, so two replicas can never both make the call that
passes a limit. A soft threshold (`soft_at`) raises one warning per period and limit (a log
line, and every hook subscribed with `on_soft_limit`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from lockgate.costs.metrics import CostMetrics
from lockgate.costs.periods import day_of, month_of, period_end
from lockgate.costs.prices import WorstCase, is_free
from lockgate.costs.types import (
    ALL_TASKS,
    NANO,
    Booking,
    Ledger,
    LimitCheck,
    Reserved,
    Settled,
    SoftCrossing,
    to_nano,
)
from lockgate.costs.usage import Share, reached, shares
from lockgate.costs.usage import keys as ledger_keys
from lockgate.decide.decision import utcnow
from lockgate.decide.guards import Grant, Hold, Refusal, Spent
from lockgate.decide.key_paths import key_path
from lockgate.decide.limits import PERIODS, BudgetSpec, Period
from lockgate.decide.task import ModelSpec, TaskSpec
from lockgate.errors import ConfigError
from lockgate.providers.base import PreparedRequest
from lockgate.settings import SETTINGS_FILE, Price

log = logging.getLogger("lockgate.costs.budgets")


class BudgetLedger(Protocol):
    """What budgets need from storage (`Store.async_costs`)."""

    async def reserve(
        self,
        task: str,
        day: str,
        month: str,
        amounts: Sequence[int],
        checks: Sequence[LimitCheck],
        now: datetime,
        lifetime_seconds: float,
    ) -> Reserved: ...

    async def settle(self, bookings: Sequence[Booking], now: datetime) -> Settled: ...

    async def ledgers(self, keys: Iterable[tuple[str, str]]) -> list[Ledger]:
        """The ledger rows `keys` (read-only; a row never written reads as zero)."""
        ...


@dataclass(frozen=True)
class SoftAlert:
    """A soft threshold crossed, once per period and limit: what the alerts subscribe to."""

    scope: str
    """The task's name, or `*` for the overall limits of lockgate.yaml."""
    period: str
    """`2026-11-29` or `2026-11`."""
    unit: str
    """`usd` or `calls`."""
    used: float
    """Spent and held, in the unit."""
    limit: float
    soft_at: float


class SoftLimitHook(Protocol):
    def __call__(self, alert: SoftAlert) -> None: ...


def overall_budget(raw: Mapping[str, Any] | None) -> BudgetSpec | None:
    """lockgate.yaml's `budget:` (limits over all tasks together); errors name its keys."""
    if raw is None:
        return None
    try:
        return BudgetSpec.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        path, _ = key_path(BudgetSpec, err["loc"])
        where = f"budget.{path}" if path else "budget"
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "is not a known key (per_day, per_month, soft_at, on_hard_limit)"
        raise ConfigError(
            f"{SETTINGS_FILE}: {where}: {message}",
            hint="e.g. budget: {per_day: {usd: 20.00, calls: 5000}, on_hard_limit: refuse}",
        ) from None


class BudgetGuard:
    """The pipeline's `SpendGuard` over a `BudgetLedger`."""

    def __init__(
        self,
        ledger: BudgetLedger,
        *,
        price: Callable[[str], Price],
        overall: BudgetSpec | None = None,
        hold_seconds: float = 600.0,
        default_max_tokens: int = 4096,
        metrics: CostMetrics | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.ledger = ledger
        self.price = price
        self.overall = overall
        self.hold_seconds = hold_seconds
        self.metrics = metrics
        self.clock = clock
        self._worst = WorstCase(default_max_tokens)
        self._hooks: list[SoftLimitHook] = []

    def on_soft_limit(self, hook: SoftLimitHook) -> None:
        """Call `hook` with every soft threshold crossed (once per period and limit, across
        replicas); a hook that raises is logged and skipped."""
        self._hooks.append(hook)

    # ---- SpendGuard

    def watches(self, task: TaskSpec) -> bool:
        return task.budget is not None or self.overall is not None

    def paid(self, model: ModelSpec) -> bool:
        return not is_free(self.price(model.model or ""))

    def worst_case(self, model: ModelSpec, request: PreparedRequest) -> float:
        return self._worst.cost(self.price(model.model or ""), model, request)

    async def reserve(self, task: TaskSpec, amounts: Sequence[float]) -> Grant:
        now = self.clock()
        checks = self.checks(task, now)
        reserved = await self.ledger.reserve(
            task.name,
            day_of(now),
            month_of(now),
            [to_nano(a) for a in amounts],
            checks,
            now,
            self.hold_seconds,
        )
        self._observe(task, reserved.ledgers, checks, reserved.crossed)
        holds = tuple(Hold(i, a) for i, a in zip(reserved.hold_ids, amounts, strict=False))
        refused = reserved.refused_by
        return Grant(holds, self._refusal(task, refused, now) if refused is not None else None)

    async def settle(self, task: TaskSpec, spent: Sequence[Spent]) -> None:
        now = self.clock()
        bookings = [Booking(s.hold.id, to_nano(s.usd), s.called) for s in spent]
        settled = await self.ledger.settle(bookings, now)
        self._observe(task, settled.ledgers, self.checks(task, now), ())

    async def reached(self, task: TaskSpec) -> Refusal | None:
        """A limit with `on_hard_limit: refuse` that no further call fits now (the task's own,
        or all tasks'), and when it resets; None when a call may still be made. Read-only: a
        source asks before it reads on (`intake.runner.BudgetGate`)."""
        now = self.clock()
        found: list[Share] = []
        for scope, spec in ((task.name, task.budget), (ALL_TASKS, self.overall)):
            if spec is None or spec.on_hard_limit != "refuse":
                continue
            ledgers = await self.ledger.ledgers(ledger_keys(scope, now))
            found.extend(shares(ledgers, scope, spec, now))
        full = reached(found)
        if full is None:
            return None
        whose = f"task {task.name}" if full.scope == task.name else "all tasks"
        limit = _calls(int(full.limit)) if full.unit == "calls" else f"${full.limit:,.2f}"
        reason = f"budget: the per_{full.period} limit of {whose} ({limit}) is reached"
        return Refusal("refuse", reason, full.resets_at)

    # ---- limits

    def spec_of(self, scope: str, task: TaskSpec | None) -> BudgetSpec | None:
        return self.overall if scope == ALL_TASKS else (task.budget if task else None)

    def checks(self, task: TaskSpec, now: datetime) -> list[LimitCheck]:
        """The four ledger rows a call of `task` counts against, with their limits: the
        task's and all tasks' day and month (a row without a limit is only counted)."""
        checks: list[LimitCheck] = []
        for scope, spec in ((task.name, task.budget), (ALL_TASKS, self.overall)):
            for period in PERIODS:
                name = day_of(now) if period == "day" else month_of(now)
                limit = spec.limit(period) if spec is not None else None
                if limit is None or spec is None:
                    checks.append(LimitCheck(scope, name))
                    continue
                max_nano = to_nano(limit.usd) if limit.usd is not None else None
                checks.append(
                    LimitCheck(
                        scope,
                        name,
                        max_nano=max_nano,
                        max_calls=limit.calls,
                        soft_nano=round(max_nano * spec.soft_at) if max_nano is not None else None,
                        soft_calls=_soft_calls(limit.calls, spec.soft_at),
                    )
                )
        return checks

    def _refusal(self, task: TaskSpec, check: LimitCheck, now: datetime) -> Refusal:
        spec = self.spec_of(check.scope, task)
        outcome = spec.on_hard_limit if spec is not None else "refuse"
        period: Period = "day" if len(check.period) == 10 else "month"
        whose = f"task {task.name}" if check.scope == task.name else "all tasks"
        limits = [_calls(check.max_calls)] if check.max_calls is not None else []
        if check.max_nano is not None:
            limits.insert(0, f"${check.max_nano / NANO:,.2f}")
        reason = f"budget: the per_{period} limit of {whose} ({', '.join(limits)}) is reached"
        return Refusal(outcome, reason, period_end(period, now))

    def _observe(
        self,
        task: TaskSpec,
        ledgers: Sequence[Ledger],
        checks: Sequence[LimitCheck],
        crossed: Sequence[SoftCrossing],
    ) -> None:
        by_key = {(ledger.scope, ledger.period): ledger for ledger in ledgers}
        if self.metrics is not None:
            for check in checks:
                ledger = by_key.get((check.scope, check.period))
                if ledger is not None:
                    self.metrics.record_budget(check, ledger)
        for crossing in crossed:
            ledger = by_key.get((crossing.scope, crossing.period))
            check = next(
                c for c in checks if (c.scope, c.period) == (crossing.scope, crossing.period)
            )
            spec = self.spec_of(crossing.scope, task)
            if ledger is None or spec is None:
                continue
            if crossing.unit == "usd":
                used = (ledger.spent_nano + ledger.reserved_nano) / NANO
                limit = (check.max_nano or 0) / NANO
            else:
                used = ledger.spent_calls + ledger.reserved_calls
                limit = check.max_calls or 0
            self._soft(
                SoftAlert(crossing.scope, crossing.period, crossing.unit, used, limit, spec.soft_at)
            )

    def _soft(self, alert: SoftAlert) -> None:
        log.warning(
            "budget soft limit reached: %s of %s in %s (%.0f%% of the limit)",
            alert.unit,
            "all tasks" if alert.scope == ALL_TASKS else f"task {alert.scope}",
            alert.period,
            100 * alert.used / alert.limit if alert.limit else 100,
            extra={
                "event": "budget_soft_limit",
                "budget_scope": alert.scope,
                "budget_period": alert.period,
                "budget_unit": alert.unit,
                "budget_used": alert.used,
                "budget_limit": alert.limit,
            },
        )
        for hook in self._hooks:
            try:
                hook(alert)
            except Exception as exc:  # one broken subscriber must not stop a decision
                log.warning("a soft-limit hook failed (%s)", type(exc).__name__)


def _calls(count: int) -> str:
    return f"{count} call" if count == 1 else f"{count} calls"


def _soft_calls(calls: int | None, soft_at: float) -> int | None:
    if calls is None:
        return None
    return max(1, round(calls * soft_at))
