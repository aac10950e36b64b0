"""The budget alert condition `budget_used` (registered in `watch.alerts.CONDITIONS`), and the
two rules every task with a `budget:` gets by default.

`budget_used` is the highest share of the task's own limits in use now: spent and held over
the limit, whichever period (day, month) and unit (USD, calls) is highest. It reads the ledger
through `ctx.extra["costs"]` (`Store.costs`) and the budget the live release enforces through
`ctx.extra["releases"]` (the task file's before any release is live); the edge fills both in
(`server/history.py`). Without them, or without a budget, it returns None.

Default rules, for a task with `budget:`:

- `budget_soft` (warning): the share reaches the budget's `soft_at`;
- `budget_hard` (critical): the share reaches 1, a limit is reached and its `on_hard_limit`
  applies.

Both resolve when the share falls below again: the period resets, or a release with a higher
limit goes live.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from lockgate.costs.usage import highest_share
from lockgate.decide.alert_rules import AlertRuleSpec
from lockgate.watch.conditions import AlertContext, Condition

if TYPE_CHECKING:
    from lockgate.decide.limits import BudgetSpec


def enforced_budget(ctx: AlertContext, task: str) -> BudgetSpec | None:
    """The budget the task's live release enforces; the task file's before one is live."""
    releases: Any = ctx.extra.get("releases")
    live = releases.live(task) if releases is not None else None
    if live is not None:
        return live.task_spec().budget
    spec = ctx.tasks.get(task)
    return spec.budget if spec is not None else None


def budget_used(ctx: AlertContext, task: str, window: timedelta) -> float | None:
    costs: Any = ctx.extra.get("costs")
    if costs is None:
        return None
    return highest_share(costs, task, enforced_budget(ctx, task), ctx.now)


def _promql_budget(task: str, threshold: float, window: timedelta) -> str:
    return f'max(lockgate_budget_used_ratio{{scope="{task}"}}) >= {threshold:g}'


BUDGET: tuple[Condition, ...] = (
    Condition(
        "budget_used",
        budget_used,
        "the highest share of the task's budget limits spent and held now (any period, USD "
        "or calls; 1 = a limit reached)",
        comparison="at least",
        threshold=0.8,
        window=timedelta(minutes=1),
        unit="share of limit",
        prometheus=_promql_budget,
    ),
)


def budget_rules(budget: BudgetSpec | None) -> tuple[AlertRuleSpec, ...]:
    """The default rules of a task with this budget (none without one)."""
    if budget is None:
        return ()
    return (
        AlertRuleSpec(
            condition="budget_used",
            name="budget_soft",
            threshold=budget.soft_at,
            severity="warning",
            repeat="24h",
        ),
        AlertRuleSpec(
            condition="budget_used",
            name="budget_hard",
            threshold=1.0,
            severity="critical",
            repeat="4h",
        ),
    )
