"""The shadow worker: decides queued shadow runs with a shadow release, off the live path.

When a live decision is stored, a pending `shadow_runs` row is queued in the same transaction
for each release of the task in stage `shadow` (see `store.rollout.queue_shadow_runs`); the
live request never calls the shadow model. This worker later takes pending rows, decides their
inputs with the shadow release through the same pipeline code (model chain, validation,
policy) but with a store that keeps nothing, and writes the result into the shadow row. No
decision is stored, no outbox row is written, no decision metric counts it: a shadow result is
never delivered and never is the decision.

It runs in `lockgate serve` (a background task of the app's lifespan, `background_loop`, which
also runs the canary check) and on demand with `lockgate release shadow-run TASK`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from anyio.to_thread import run_sync

from lockgate.decide.decision import Decision
from lockgate.decide.guards import SpendGuard
from lockgate.decide.pipeline import DecisionRequest, Pipeline, ReleaseRuntime, Result
from lockgate.errors import NotFound
from lockgate.rollout.canary import CanaryStore, check_canaries
from lockgate.rollout.release import Release
from lockgate.rollout.types import ShadowJob, ShadowOutcome, ShadowPair
from lockgate.stats import percentile

log = logging.getLogger(__name__)

ReleaseLoader = Callable[[str, int | None], ReleaseRuntime]
"""Builds release `task@number` (None: the live one) ready to decide."""


class ShadowStore(Protocol):
    """What shadow runs and their report need from storage (`Store.rollout`)."""

    def in_stage(self, stage: str, task: str | None = None) -> list[Release]: ...

    def pending_shadow(self, task: str, number: int, limit: int) -> list[ShadowJob]: ...

    def finish_shadow(self, outcomes: Sequence[ShadowOutcome]) -> int: ...

    def shadow_counts(self, task: str, number: int) -> dict[str, int]: ...

    def shadowed_releases(self, task: str) -> list[int]: ...

    def shadow_pairs(self, task: str, number: int) -> list[ShadowPair]: ...

    def recall_for_review(self, decision_ids: Sequence[str], actor: str, why: str) -> list[str]:
        """The ids actually put into the review queue."""
        ...


class RolloutStore(ShadowStore, CanaryStore, Protocol):
    """What the background rollout work needs: shadow runs and canary checks."""


class ReleaseStore(Protocol):
    def get(self, task: str, number: int) -> Release: ...


class _KeepNothing:
    """A `DecisionStore` that stores nothing: every key is new, every save is a no-op."""

    async def find(self, task: str, keys: Sequence[str]) -> Mapping[str, Decision]:
        return {}

    async def save(self, batch: Sequence[Decision], sinks: Sequence[str] = ()) -> list[Decision]:
        return list(batch)


def _outcome(job: ShadowJob, result: Result) -> ShadowOutcome:
    decision = result.decision
    if decision is None:
        error = result.error.message if result.error else "no decision"
        return ShadowOutcome(job.id, "failed", error=error)
    status = "failed" if decision.status == "failed" else "done"
    return ShadowOutcome(
        job.id,
        status,
        output=decision.output,
        confidence=decision.confidence,
        route=decision.route,
        decision_status=decision.status,
        cost=decision.cost,
        latency_ms=decision.latency_ms,
        error=decision.reason if status == "failed" else None,
    )


class ShadowWorker:
    """Drains pending shadow runs in chunks of `chunk_size`.

    Its pipeline has its own circuit breakers (a failing shadow model never opens the live
    model's breaker) and a low concurrency; store calls run in threads so the event loop
    serving live requests is only held while a chunk's model calls run. With `spend` (the
    process's budgets), a shadow release's paid calls are reserved and counted against its
    task's budget like live ones: at a hard limit a shadow run falls back to a free model, or
    is stored as failed with the budget's reason."""

    def __init__(
        self,
        rollout: ShadowStore,
        release_runtime: ReleaseLoader,
        *,
        chunk_size: int = 64,
        concurrency: int = 4,
        spend: SpendGuard | None = None,
    ) -> None:
        self.rollout = rollout
        self.release_runtime = release_runtime
        self.chunk_size = chunk_size
        self.pipeline = Pipeline(_KeepNothing(), concurrency=concurrency, spend=spend)

    async def run_once(self, task: str | None = None, *, limit: int | None = None) -> int:
        """Decide pending shadow runs (of `task`, or of every task) until none are left, or
        `limit` are done; returns how many were done."""
        rollout = self.rollout
        shadows = await run_sync(rollout.in_stage, "shadow", task)
        done = 0
        for release in shadows:
            while limit is None or done < limit:
                size = self.chunk_size if limit is None else min(self.chunk_size, limit - done)
                jobs = await run_sync(rollout.pending_shadow, release.task, release.number, size)
                if not jobs:
                    break
                outcomes = await self._decide(release, jobs)
                await run_sync(rollout.finish_shadow, outcomes)
                done += len(jobs)
                await asyncio.sleep(0)  # let live requests in between chunks
        return done

    async def _decide(self, release: Release, jobs: Sequence[ShadowJob]) -> list[ShadowOutcome]:
        loaded = await run_sync(self.release_runtime, release.task, release.number)
        requests = [
            DecisionRequest(input=job.input, idempotency_key=f"shadow:{job.decision_id}")
            for job in jobs
        ]
        results = await self.pipeline.decide_many(loaded, requests, invalid_input="fail")
        return [_outcome(job, result) for job, result in zip(jobs, results, strict=True)]


async def background_loop(
    rollout: RolloutStore,
    release_runtime: ReleaseLoader,
    stop: asyncio.Event,
    *,
    poll_seconds: float = 1.0,
    canary_every_seconds: float = 15.0,
    spend: SpendGuard | None = None,
) -> None:
    """`lockgate serve`'s rollout work until `stop` is set: drain shadow runs every
    `poll_seconds`, check canaries every `canary_every_seconds`. An error is logged (ids only)
    and the loop goes on: shadow work must never take the service down."""
    worker = ShadowWorker(rollout, release_runtime, spend=spend)
    loop = asyncio.get_running_loop()
    next_check = loop.time()
    while not stop.is_set():
        try:
            await worker.run_once()
            if loop.time() >= next_check:
                await run_sync(check_canaries, rollout)
                next_check = loop.time() + canary_every_seconds
        except Exception as exc:  # kept alive on purpose, see the docstring
            log.warning("rollout background work failed: %s", type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=poll_seconds)


# ---- the shadow report

NONE = "(none)"
"""The label of a side that produced no output (its decision failed)."""


def _label(output: Mapping[str, Any] | None, field: str) -> str:
    if output is None or field not in output:
        return NONE
    return str(output[field])


def _quantile(values: Sequence[float], q: float) -> float | None:
    value = percentile(values, q)
    return None if value is None else round(value, 3)


def _side(costs: Sequence[float], latencies: Sequence[float]) -> dict[str, Any]:
    return {
        "cost": round(sum(costs), 8),
        "cost_per_decision": round(sum(costs) / len(costs), 8) if costs else None,
        "latency_p50_ms": _quantile(latencies, 0.5),
        "latency_p95_ms": _quantile(latencies, 0.95),
    }


@dataclass(frozen=True)
class ShadowReport:
    """Live decisions beside the shadow release's answers, on the task's evaluation field."""

    release: str
    field: str
    runs: Mapping[str, int]
    """Shadow runs by status: pending, done, failed."""
    compared: int
    """Pairs where both the live decision and the shadow run produced an output."""
    agreement: float | None
    per_label: Mapping[str, Mapping[str, Any]]
    """Per live label: n, agree, agreement."""
    confusion: Mapping[str, Mapping[str, int]]
    """live label -> shadow label -> count, over every finished run ("(none)": no output)."""
    labeled: int
    """Pairs with a human label (an approve or correct verdict on the live decision)."""
    live_accuracy: float | None
    shadow_accuracy: float | None
    live: Mapping[str, Any]
    shadow: Mapping[str, Any]
    """Cost and latency of the same inputs, side by side."""
    disagreements: tuple[str, ...]
    """Ids of live decisions the shadow disagreed with (both answered)."""

    def as_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["disagreements"] = len(self.disagreements)
        return body


def shadow_report(
    release: Release, pairs: Sequence[ShadowPair], runs: Mapping[str, int]
) -> ShadowReport:
    spec = release.task_spec()
    field = spec.evaluation.field or next(iter(spec.output))
    confusion: dict[str, dict[str, int]] = {}
    per_label: dict[str, dict[str, Any]] = {}
    agree = compared = labeled = live_right = shadow_right = 0
    disagreements: list[str] = []
    live_cost: list[float] = []
    live_latency: list[float] = []
    shadow_cost: list[float] = []
    shadow_latency: list[float] = []
    live_batched = 0
    for pair in pairs:
        live, shadow = _label(pair.live_output, field), _label(pair.shadow_output, field)
        row = confusion.setdefault(live, {})
        row[shadow] = row.get(shadow, 0) + 1
        live_cost.append(pair.live_cost)
        if pair.live_in_batch:
            live_batched += 1  # a chunk's latency: not set beside one online decision's
        else:
            live_latency.append(pair.live_latency_ms)
        if pair.shadow_cost is not None:
            shadow_cost.append(pair.shadow_cost)
        if pair.shadow_latency_ms is not None:
            shadow_latency.append(pair.shadow_latency_ms)
        if live != NONE and shadow != NONE:
            compared += 1
            same = live == shadow
            agree += same
            entry = per_label.setdefault(live, {"n": 0, "agree": 0})
            entry["n"] += 1
            entry["agree"] += same
            if not same:
                disagreements.append(pair.decision_id)
        if pair.truth is not None and field in pair.truth:
            labeled += 1
            truth = str(pair.truth[field])
            live_right += live == truth
            shadow_right += shadow == truth
    for entry in per_label.values():
        entry["agreement"] = round(entry["agree"] / entry["n"], 6)
    return ShadowReport(
        release=release.ref,
        field=field,
        runs=dict(runs),
        compared=compared,
        agreement=round(agree / compared, 6) if compared else None,
        per_label=dict(sorted(per_label.items())),
        confusion={k: dict(sorted(v.items())) for k, v in sorted(confusion.items())},
        labeled=labeled,
        live_accuracy=round(live_right / labeled, 6) if labeled else None,
        shadow_accuracy=round(shadow_right / labeled, 6) if labeled else None,
        live={**_side(live_cost, live_latency), "latency_left_out_batch": live_batched},
        shadow=_side(shadow_cost, shadow_latency),
        disagreements=tuple(disagreements),
    )


def build_shadow_report(
    rollout: ShadowStore, releases: ReleaseStore, task: str, number: int | None = None
) -> ShadowReport:
    """The report for shadow release `number`, by default the task's current shadow release,
    else the latest release that has shadow runs."""
    if number is None:
        current = rollout.in_stage("shadow", task)
        if current:
            number = current[-1].number
        else:
            shadowed = rollout.shadowed_releases(task)
            if not shadowed:
                raise NotFound(
                    f"task {task!r} has no shadow runs",
                    hint=f"start one: lockgate release shadow {task}@N",
                )
            number = shadowed[-1]
    release = releases.get(task, number)
    return shadow_report(
        release, rollout.shadow_pairs(task, number), rollout.shadow_counts(task, number)
    )


def sample_disagreements(
    rollout: ShadowStore, report: ShadowReport, count: int, actor: str, *, seed: int | None = None
) -> list[str]:
    """Put up to `count` randomly chosen live decisions the shadow disagreed with into the
    review queue. Only decisions nothing has acted on are moved (still `decided`, delivery not
    started: see `store.rollout.recall_for_review`); returns the ids moved."""
    candidates = list(report.disagreements)
    random.Random(seed).shuffle(candidates)
    moved: list[str] = []
    why = f"shadow {report.release} disagreed"
    position = 0
    while len(moved) < count and position < len(candidates):
        wanted = candidates[position : position + count - len(moved)]
        position += len(wanted)
        moved.extend(rollout.recall_for_review(wanted, actor, why))
    return moved
