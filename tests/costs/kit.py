"""Budgets for tests: a guard over a real store, with a clock the test moves."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from lockgate.costs.budgets import BudgetGuard, SoftAlert
from lockgate.decide.task import TaskSpec, parse_task
from lockgate.settings import Price
from lockgate.store import Store

MODEL = "gpt-test"
PRICE = Price(per_call=0.01)
"""One cent a call, whatever the tokens: worst case and real cost are the same."""


class Clock:
    """UTC wall-clock time that moves only when told to."""

    def __init__(self, start: datetime = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def budget_task(budget: Mapping[str, Any] | None, name: str = "tickets") -> TaskSpec:
    data: dict[str, Any] = {
        "name": name,
        "input": {"text": {"type": "string"}},
        "output": {"queue": {"type": "enum", "values": ["cards", "other"]}},
        "models": [{"provider": "openai", "model": MODEL}],
    }
    if budget is not None:
        data["budget"] = dict(budget)
    return parse_task(data, f"tasks/{name}.yaml")


def guard(
    store: Store, clock: Clock, alerts: list[SoftAlert] | None = None, **options: Any
) -> BudgetGuard:
    prices = {MODEL: PRICE}
    built = BudgetGuard(
        store.async_costs,
        price=lambda model: prices.get(model, Price()),
        clock=clock,
        **options,
    )
    if alerts is not None:
        built.on_soft_limit(alerts.append)
    return built


def chain_task(
    models: list[dict[str, Any]],
    *,
    budget: Mapping[str, Any] | None = None,
    cache: Mapping[str, Any] | None = None,
) -> TaskSpec:
    """The pipeline kit's ticket task, with a budget and a cache."""
    data: dict[str, Any] = {
        "name": "tickets",
        "instructions": "Route the support ticket to a queue.",
        "input": {"text": {"type": "string"}},
        "output": {"queue": {"type": "enum", "values": ["cards", "loans", "other"]}},
        "models": models,
        "policy": {"auto_min_confidence": 0.8},
    }
    if budget is not None:
        data["budget"] = dict(budget)
    if cache is not None:
        data["cache"] = dict(cache)
    return parse_task(data, "tasks/tickets.yaml")
