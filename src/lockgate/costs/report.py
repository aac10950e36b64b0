"""What a task has spent, holds and has left, per period; and what its cache saved.

The same report serves `lockgate budget show TASK` and `GET /v1/tasks/{task}/budget`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from lockgate.costs.periods import period_end, period_name, period_start
from lockgate.costs.types import ALL_TASKS, NANO, HoldInfo, Ledger, Saving
from lockgate.decide.limits import PERIODS, BudgetSpec, Period
from lockgate.decide.task import TaskSpec


class ReportStore(Protocol):
    """What the report reads (`Store.costs`)."""

    def ledgers(self, keys: Iterable[tuple[str, str]]) -> list[Ledger]: ...

    def holds(self, task: str) -> HoldInfo: ...

    def saving(self, task: str, since: datetime, until: datetime) -> Saving: ...


def _usd(nano: int) -> float:
    return round(nano / NANO, 9)


def _period(
    ledger: Ledger, period: Period, spec: BudgetSpec | None, now: datetime
) -> dict[str, Any]:
    limit = spec.limit(period) if spec is not None else None
    spent, held = ledger.spent_nano, ledger.reserved_nano
    calls, held_calls = ledger.spent_calls, ledger.reserved_calls
    entry: dict[str, Any] = {
        "period": period,
        "name": ledger.period,
        "resets_at": period_end(period, now).isoformat(),
        "spent_usd": _usd(spent),
        "spent_calls": calls,
        "reserved_usd": _usd(held),
        "reserved_calls": held_calls,
        "lapsed_calls": ledger.lapsed_calls,
        "limit_usd": limit.usd if limit is not None else None,
        "limit_calls": limit.calls if limit is not None else None,
        "left_usd": None,
        "left_calls": None,
    }
    if limit is not None and limit.usd is not None:
        entry["left_usd"] = _usd(max(0, round(limit.usd * NANO) - spent - held))
    if limit is not None and limit.calls is not None:
        entry["left_calls"] = max(0, limit.calls - calls - held_calls)
    return entry


def _scope(
    store: ReportStore, scope: str, spec: BudgetSpec | None, now: datetime
) -> list[dict[str, Any]]:
    keys = [(scope, period_name(p, now)) for p in PERIODS]
    return [
        _period(ledger, period, spec, now)
        for ledger, period in zip(store.ledgers(keys), PERIODS, strict=True)
    ]


def budget_report(
    store: ReportStore,
    task: TaskSpec,
    *,
    release: str | None,
    overall: BudgetSpec | None,
    now: datetime,
) -> dict[str, Any]:
    """The report of `task` as the given release (the live one) enforces it."""
    holds = store.holds(task.name)
    savings: Sequence[tuple[Period, Saving]] = [
        (p, store.saving(task.name, period_start(p, now), period_end(p, now))) for p in PERIODS
    ]
    budget = task.budget
    return {
        "task": task.name,
        "release": release,
        "budget": budget.model_dump(mode="json", exclude_none=True) if budget else None,
        "on_hard_limit": budget.on_hard_limit if budget else None,
        "periods": _scope(store, task.name, budget, now),
        "overall": {
            "budget": overall.model_dump(mode="json", exclude_none=True) if overall else None,
            "periods": _scope(store, ALL_TASKS, overall, now),
        },
        "holds": {
            "count": holds.count,
            "first_lapses_at": holds.oldest_expires_at.isoformat()
            if holds.oldest_expires_at
            else None,
        },
        "cache": {
            "ttl": task.cache.ttl if task.cache else None,
            "periods": [
                {"period": p, "hits": s.hits, "saved_usd": _usd(s.saved_nano)} for p, s in savings
            ],
        },
    }
