"""The costs domain's Prometheus series, in the process's registry beside the decision flow's:
the share of each budget limit spent and held, and answers served from the cache."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from lockgate.costs.types import ALL_TASKS, Ledger, LimitCheck


class CostMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.budget_used = Gauge(
            "lockgate_budget_used_ratio",
            "Share of a budget limit spent and held in the current period (1 = reached); "
            "scope is a task or * for all tasks.",
            ["scope", "period", "unit"],
            registry=registry,
        )
        self.cache_hits = Counter(
            "lockgate_cache_hits",
            "Decisions answered from the decision cache (no model call, no cost).",
            ["task"],
            registry=registry,
        )

    def record_budget(self, check: LimitCheck, ledger: Ledger) -> None:
        period = "day" if len(check.period) == 10 else "month"
        scope = check.scope if check.scope != ALL_TASKS else "*"
        if check.max_nano:
            used = (ledger.spent_nano + ledger.reserved_nano) / check.max_nano
            self.budget_used.labels(scope, period, "usd").set(used)
        if check.max_calls:
            calls = (ledger.spent_calls + ledger.reserved_calls) / check.max_calls
            self.budget_used.labels(scope, period, "calls").set(calls)

    def record_hits(self, task: str, count: int) -> None:
        if count:
            self.cache_hits.labels(task).inc(count)
