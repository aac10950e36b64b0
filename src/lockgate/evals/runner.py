"""Running a release over a dataset and scoring it, without storing a single decision.

The release decides every row through the real pipeline (the same intake, model chain,
validation and policy as live traffic) with a store that keeps nothing, so an eval never
touches the decisions table or the outbox. Each row is decided on its own, as a caller's
request would be, so latency figures are those of one decision; rows run concurrently up to
a bound.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lockgate.decide.decision import Decision, new_id
from lockgate.decide.pipeline import DecisionRequest, Pipeline, ReleaseRuntime
from lockgate.decide.policy import judged_out_of_scope, route
from lockgate.decide.task import TaskSpec
from lockgate.errors import ConfigError
from lockgate.evals.scorers import Score, Scored, ScorerRegistry, ScoringContext
from lockgate.evals.types import DatasetRow


class DiscardingStore:
    """A `DecisionStore` that remembers nothing: every key is new and nothing is saved."""

    async def find(self, task: str, keys: Sequence[str]) -> Mapping[str, Decision]:
        return {}

    async def save(self, batch: Sequence[Decision], sinks: Sequence[str] = ()) -> list[Decision]:
        return list(batch)


@dataclass(frozen=True)
class EvalResult:
    metrics: dict[str, Any]
    """The worst run's headline figures (worst value of each figure across repeats)."""
    report: dict[str, Any]
    runs: list[list[Scored]]
    """The scored rows of each repeat, in dataset order."""


def scoring_context(task: TaskSpec) -> ScoringContext:
    """The scored field and tolerances from the task's `evaluation` section, checked."""
    evaluation = task.evaluation
    source = f"tasks/{task.name}.yaml"
    scored = evaluation.field or next(iter(task.output))
    if scored not in task.output:
        raise ConfigError(
            f"{source}: evaluation.field: {scored!r} is not an output field "
            f"(output fields: {', '.join(task.output)})"
        )
    tolerance = dict(evaluation.tolerance or {})
    for name, value in tolerance.items():
        if name not in task.output or task.output[name].type != "number":
            numbers = [n for n, f in task.output.items() if f.type == "number"] or ["none"]
            raise ConfigError(
                f"{source}: evaluation.tolerance.{name}: tolerances apply to number output "
                f"fields only (number fields: {', '.join(numbers)})"
            )
        if value < 0:
            raise ConfigError(f"{source}: evaluation.tolerance.{name}: must be 0 or more")
    return ScoringContext(task, scored, tolerance)


async def decide_rows(
    runtime: ReleaseRuntime,
    rows: Sequence[DatasetRow],
    *,
    concurrency: int = 16,
    on_progress: Callable[[int], None] | None = None,
) -> list[Scored]:
    """Decide every row once with the release; nothing is stored."""
    pipeline = Pipeline(DiscardingStore(), concurrency=concurrency)
    limit = asyncio.Semaphore(max(1, concurrency))
    run = new_id()
    advance = on_progress or (lambda _n: None)
    scored: list[Scored | None] = [None] * len(rows)

    async def one(index: int, row: DatasetRow) -> None:
        request = DecisionRequest(input=dict(row.input), idempotency_key=f"eval:{run}:{index}")
        async with limit:
            (result,) = await pipeline.decide_many(runtime, [request])
        assert result.decision is not None
        scored[index] = _scored(runtime.task, row, result.decision)
        advance(1)

    await asyncio.gather(*(one(i, row) for i, row in enumerate(rows)))
    return [s for s in scored if s is not None]


def _scored(task: TaskSpec, row: DatasetRow, decision: Decision) -> Scored:
    eligible = False
    out_of_scope = judged_out_of_scope(decision.reason)
    if decision.output is not None and not out_of_scope:
        # Would any threshold automate it? Only if no rule (or suggest mode) sends it elsewhere.
        anything_goes = task.policy.model_copy(update={"auto_min_confidence": 0.0})
        routing = route(anything_goes, decision.output, decision.confidence, decision.input)
        eligible = routing.route == "auto"
    return Scored(
        expected=row.expected,
        output=decision.output,
        confidence=decision.confidence,
        route=decision.route,
        status=decision.status,
        eligible=eligible,
        out_of_scope=out_of_scope,
        cost=decision.cost,
        latency_ms=decision.latency_ms,
        valid_answers=sum(a.outcome == "valid" for a in decision.attempts),
        invalid_answers=sum(a.outcome == "invalid" for a in decision.attempts),
        row=row.seq,
    )


async def run_eval(
    runtime: ReleaseRuntime,
    rows: Sequence[DatasetRow],
    *,
    repeat: int = 1,
    concurrency: int = 16,
    registry: ScorerRegistry | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> EvalResult:
    """Decide the rows `repeat` times and score each run; keep the worst figures."""
    if repeat < 1:
        raise ConfigError("--repeat must be at least 1")
    if not rows:
        raise ConfigError("the dataset has no rows")
    context = scoring_context(runtime.task)
    missing = sum(context.field not in row.expected for row in rows)
    if missing:
        raise ConfigError(
            f"{missing} dataset rows have no expected {context.field!r}: the dataset was added "
            "for another version of the task's output",
            hint="add the dataset again under a new name",
        )
    registry = registry or ScorerRegistry.discover()
    runs: list[list[Scored]] = []
    scores: list[Score] = []
    for _ in range(repeat):
        items = await decide_rows(runtime, rows, concurrency=concurrency, on_progress=on_progress)
        runs.append(items)
        scores.append(registry.score(items, context))
    worst_index = worst_run(scores)
    report = {
        "runs": [dict(s.metrics) for s in scores],
        "spread": spread(scores),
        "worst_run": worst_index,
        **scores[worst_index].report,
        "field": context.field,
    }
    return EvalResult(worst_of(scores), report, runs)


def worst_run(scores: Sequence[Score]) -> int:
    """The index of the run with the lowest accuracy (the first one on a tie)."""
    return min(
        range(len(scores)),
        key=lambda k: _number(scores[k].metrics.get("accuracy"), default=float("inf")),
    )


def worst_of(scores: Sequence[Score]) -> dict[str, Any]:
    """The worst run's figures, each figure with a direction replaced by its worst value
    across runs: the lowest accuracy, the highest cost, latency and failure count."""
    headline = dict(scores[worst_run(scores)].metrics)
    for key, better in scores[0].better.items():
        values = [v for s in scores if isinstance(v := s.metrics.get(key), int | float)]
        if values:
            headline[key] = min(values) if better == "max" else max(values)
    return headline


def spread(scores: Sequence[Score]) -> dict[str, dict[str, float]]:
    """min, max, mean and standard deviation of every numeric figure across runs."""
    out: dict[str, dict[str, float]] = {}
    for key in scores[0].metrics:
        values = [float(v) for s in scores if isinstance(v := s.metrics.get(key), int | float)]
        if not values or isinstance(scores[0].metrics.get(key), bool):
            continue
        out[key] = {
            "min": min(values),
            "max": max(values),
            "mean": statistics.fmean(values),
            "stdev": statistics.pstdev(values),
        }
    return out


def _number(value: Any, *, default: float) -> float:
    return float(value) if isinstance(value, int | float) else default
