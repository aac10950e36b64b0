"""Reserve, settle, release and lapse: the budget ledger on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from lockgate.costs.budgets import SoftAlert, overall_budget
from lockgate.costs.metrics import CostMetrics
from lockgate.costs.types import ALL_TASKS, NANO, Ledger
from lockgate.decide.guards import Spent
from lockgate.errors import ConfigError, TaskFileError
from lockgate.store import Store
from tests.costs.kit import Clock, budget_task, guard


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store(database_url)
    yield opened
    opened.close()


def day(store: Store, scope: str = "tickets", name: str = "2026-11-29") -> Ledger:
    (ledger,) = store.costs.ledgers([(scope, name)])
    return ledger


def test_a_reservation_holds_calls_up_to_the_limit_and_refuses_the_rest(store: Store) -> None:
    task = budget_task({"per_day": {"calls": 3}, "on_hard_limit": "review"})
    budgets = guard(store, Clock())

    grant = asyncio.run(budgets.reserve(task, [0.01] * 5))

    assert len(grant.holds) == 3
    assert grant.refusal is not None
    assert grant.refusal.outcome == "review"
    assert grant.refusal.reason == "budget: the per_day limit of task tickets (3 calls) is reached"
    assert grant.refusal.resets_at == datetime(2026, 11, 30, tzinfo=UTC)
    assert day(store).reserved_calls == 3 and day(store).spent_calls == 0
    # The overall row counts the same calls, though no overall limit is set.
    assert day(store, ALL_TASKS).reserved_calls == 3


def test_settling_books_the_real_cost_and_lets_the_hold_go(store: Store) -> None:
    task = budget_task({"per_day": {"usd": 1.00}})
    budgets = guard(store, Clock())

    async def work() -> None:
        grant = await budgets.reserve(task, [0.30, 0.30])
        first, second = grant.holds
        await budgets.settle(task, [Spent(first, 0.012), Spent(second, 0.0, called=False)])

    asyncio.run(work())

    ledger = day(store)
    assert ledger.spent_nano == 12_000_000 and ledger.spent_calls == 1
    assert ledger.reserved_nano == 0 and ledger.reserved_calls == 0
    assert store.costs.holds("tickets").count == 0


def test_a_usd_limit_counts_what_is_held_so_a_worst_case_that_does_not_fit_is_refused(
    store: Store,
) -> None:
    task = budget_task({"per_day": {"usd": 1.00}, "on_hard_limit": "fallback"})
    budgets = guard(store, Clock())

    async def work() -> tuple[int, int]:
        first = await budgets.reserve(task, [0.40, 0.40, 0.40])
        second = await budgets.reserve(task, [0.20, 0.21])
        return len(first.holds), len(second.holds)

    assert asyncio.run(work()) == (2, 1)  # 0.80 held; 0.20 fits exactly, 0.21 more does not
    assert day(store).reserved_nano == NANO


def test_settling_twice_books_once(store: Store) -> None:
    task = budget_task({"per_day": {"calls": 5}})
    budgets = guard(store, Clock())

    async def work() -> None:
        (hold,) = (await budgets.reserve(task, [0.01])).holds
        await budgets.settle(task, [Spent(hold, 0.01)])
        await budgets.settle(task, [Spent(hold, 0.01)])

    asyncio.run(work())
    assert day(store).spent_calls == 1


def test_a_hold_left_by_a_crash_lapses_after_its_lifetime_at_its_worst_case(
    store: Store,
) -> None:
    task = budget_task({"per_day": {"calls": 2}})
    clock = Clock()
    budgets = guard(store, clock, hold_seconds=60)

    async def work() -> tuple[int, int]:
        await budgets.reserve(task, [0.05])  # never settled: its process stopped
        clock.advance(seconds=59)
        before = len((await budgets.reserve(task, [0.05, 0.05])).holds)
        clock.advance(seconds=2)  # the first hold has lapsed, the second not yet
        after = len((await budgets.reserve(task, [0.05])).holds)
        return before, after

    assert asyncio.run(work()) == (1, 0)
    ledger = day(store)
    assert ledger.lapsed_calls == 1
    assert ledger.spent_calls == 1 and ledger.spent_nano == 50_000_000  # booked at worst case
    assert ledger.reserved_calls == 1


def test_the_soft_alert_is_raised_once_per_period_and_limit(store: Store) -> None:
    task = budget_task({"per_day": {"calls": 10, "usd": 1.00}, "soft_at": 0.5})
    clock = Clock()
    alerts: list[SoftAlert] = []
    budgets = guard(store, clock, alerts)

    async def work() -> None:
        await budgets.reserve(task, [0.01] * 4)  # 40 % of calls: no alert yet
        assert alerts == []
        await budgets.reserve(task, [0.01])  # 50 % of calls
        await budgets.reserve(task, [0.01, 0.01])  # past it again: no second alert
        clock.advance(days=1)
        await budgets.reserve(task, [0.01] * 5)  # a new day: the alert again

    asyncio.run(work())
    assert [(a.scope, a.period, a.unit, a.used, a.limit) for a in alerts] == [
        ("tickets", "2026-11-29", "calls", 5, 10),
        ("tickets", "2026-11-30", "calls", 5, 10),
    ]


def test_the_overall_budget_of_lockgate_yaml_limits_every_task_together(store: Store) -> None:
    overall = overall_budget({"per_month": {"calls": 3}, "on_hard_limit": "refuse"})
    budgets = guard(store, Clock(), overall=overall)
    first, second = budget_task(None, "first"), budget_task(None, "second")

    async def work() -> tuple[int, int, str | None]:
        a = await budgets.reserve(first, [0.01, 0.01])
        b = await budgets.reserve(second, [0.01, 0.01])
        return len(a.holds), len(b.holds), b.refusal.reason if b.refusal else None

    assert budgets.watches(first)
    assert asyncio.run(work()) == (
        2,
        1,
        "budget: the per_month limit of all tasks (3 calls) is reached",
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(
            {"per_day": {"dollars": 5}},
            "lockgate.yaml: budget.per_day.dollars: is not a known key",
            id="unknown-key",
        ),
        pytest.param(
            {"per_day": {"usd": -1}},
            "lockgate.yaml: budget.per_day.usd: Input should be greater than 0",
            id="negative",
        ),
        pytest.param({"soft_at": 0.5}, "lockgate.yaml: budget: set `per_day`", id="no-period"),
    ],
)
def test_a_wrong_overall_budget_names_the_key_as_written(
    raw: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        overall_budget(raw)
    assert raised.value.message.startswith(message), raised.value.message


def test_the_share_of_each_limit_in_use_is_a_prometheus_gauge(store: Store) -> None:
    registry = CollectorRegistry()
    task = budget_task({"per_day": {"calls": 4}, "per_month": {"usd": 1.00}})
    budgets = guard(store, Clock(), metrics=CostMetrics(registry))

    async def work() -> None:
        grant = await budgets.reserve(task, [0.10, 0.10, 0.10])
        await budgets.settle(task, [Spent(h, 0.05) for h in grant.holds])

    asyncio.run(work())

    def share(period: str, unit: str) -> float | None:
        labels = {"scope": "tickets", "period": period, "unit": unit}
        return registry.get_sample_value("lockgate_budget_used_ratio", labels)

    assert share("day", "calls") == 0.75
    assert share("month", "usd") == pytest.approx(0.15)
    assert share("day", "usd") is None  # no such limit


def test_a_wrong_budget_in_a_task_file_names_the_key_as_written() -> None:
    with pytest.raises(TaskFileError) as raised:
        budget_task({"per_day": {"usd": 5, "cals": 10}, "on_hard_limit": "stop"})
    assert raised.value.problems == [
        "tasks/tickets.yaml: budget.per_day.cals: is not a known key; did you mean calls?",
        "tasks/tickets.yaml: budget.on_hard_limit: must be one of 'fallback', 'review' or 'refuse'",
    ]
