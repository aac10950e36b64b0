"""The report pages' data: the suggest-mode report from the review core, and the shadow
report (`lockgate.rollout.shadow`) with the same role rule the API applies to it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lockgate.review.report import SuggestReport
from lockgate.rollout.shadow import ShadowReport, build_shadow_report
from lockgate.runtime import Runtime
from lockgate.security import Principal


def suggest(runtime: Runtime, principal: Principal, task: str) -> SuggestReport:
    return runtime.reviews.suggest_report(principal, task)


def shadow(runtime: Runtime, principal: Principal, task: str) -> ShadowReport:
    principal.require("read_tasks", task)  # as GET /v1/tasks/{task}/shadow-report
    return build_shadow_report(runtime.store.rollout, runtime.store.releases, task)


def shadowed_tasks(runtime: Runtime) -> set[str]:
    """Tasks with a release in the shadow stage now (for the links in the page bar)."""
    return {release.task for release in runtime.store.rollout.in_stage("shadow")}


@dataclass(frozen=True)
class Confusion:
    """The confusion matrix as table rows: live labels down, shadow labels across."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[int, ...]], ...]

    @classmethod
    def of(cls, confusion: Mapping[str, Mapping[str, int]]) -> Confusion:
        columns = tuple(sorted({shadow for row in confusion.values() for shadow in row}))
        rows = tuple(
            (live, tuple(counts.get(c, 0) for c in columns)) for live, counts in confusion.items()
        )
        return cls(columns, rows)


def side_by_side(report: ShadowReport) -> list[tuple[str, Any, Any]]:
    """Cost and latency of live and shadow on the same inputs."""
    names = {
        "cost": "total cost (USD)",
        "cost_per_decision": "cost per decision (USD)",
        "latency_p50_ms": "latency p50 (ms)",
        "latency_p95_ms": "latency p95 (ms)",
    }
    return [(label, report.live.get(key), report.shadow.get(key)) for key, label in names.items()]
