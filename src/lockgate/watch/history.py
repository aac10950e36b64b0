"""History that survives restarts: decisions rolled up per task, release and minute, hour and
day.

A roll-up turns stored decisions and review verdicts into *cells*: one number per task,
release, time bucket, metric and key (`route`/`auto`, `latency`/`le_250`, `label`/`billing`).
Cells only ever add up, so two cells of the same bucket merge by addition, minutes sum to
their hour and hours to their day, and percentiles come from merged histogram buckets with
fixed edges. Each decision is added to its minute, hour and day at once (the store keeps the
three levels, and drops old minutes and hours: `lockgate.store.history`). The review backlog is
a gauge: sampled each round, the latest sample of a minute kept, an hour or a day keeps the
largest.

The roll-up reads decisions and verdicts not yet rolled up (the store marks each one in the
transaction that adds it, so each is counted exactly once, however late its commit and however
many replicas roll up at once) and needs nothing from the decision path. One replica rolls up
at a time (lease `rollup`); `Rollup.run` is the loop inside `lockgate serve`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from lockgate.errors import LockgateError
from lockgate.watch.types import (
    GAUGE_METRICS,
    STEP_SECONDS,
    Cell,
    Count,
    DecisionFacts,
    VerdictFacts,
)

log = logging.getLogger("lockgate.watch")

LATENCY_EDGES_MS: tuple[float, ...] = (
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
)  # fmt: skip
"""Upper edges of the latency histogram's buckets (ms); a last bucket holds the rest."""
CONFIDENCE_BUCKETS = 10
"""The confidence histogram: ten buckets of 0.1 (`0.0` holds 0 to 0.1, `0.9` 0.9 to 1)."""
GAUGES = GAUGE_METRICS
VERDICTS = {"approve": "approved", "correct": "corrected", "reject": "rejected"}
KEY_LENGTH = 128
ROLLUP_LEASE = "rollup"


LATENCY_KEYS = (*(f"le_{edge:g}" for edge in LATENCY_EDGES_MS), "le_inf")
"""The latency histogram's keys, fastest bucket first."""


def latency_key(ms: float) -> str:
    """The key of the latency histogram's bucket holding `ms` (at most its edge)."""
    return LATENCY_KEYS[bisect.bisect_left(LATENCY_EDGES_MS, ms)]


def confidence_key(confidence: float) -> str:
    index = min(CONFIDENCE_BUCKETS - 1, max(0, math.floor(confidence * CONFIDENCE_BUCKETS)))
    return f"{index / CONFIDENCE_BUCKETS:.1f}"


def failure_reason(reason: str) -> str:
    """The kind of a failure, without its details: `every model failed`, `invalid input`."""
    return reason.split(":", 1)[0].strip()[:KEY_LENGTH] or "unknown"


def minute(at: datetime) -> datetime:
    if at.tzinfo is not UTC:  # what the store hands back is UTC already
        at = at.astimezone(UTC)
    return at.replace(second=0, microsecond=0)


def bucket_start(at: datetime, step_seconds: int) -> datetime:
    seconds = int(at.timestamp())
    return datetime.fromtimestamp(seconds - seconds % step_seconds, UTC)


def counts_of(
    decisions: Iterable[DecisionFacts],
    verdicts: Iterable[VerdictFacts],
    label_fields: Mapping[str, Sequence[str]],
) -> list[Count]:
    """The cells' additions for these decisions and verdicts, summed per cell.

    `label_fields` names, per task, the output fields whose values are labels (enums); their
    counts are kept as `field=value`, or `value` when the task has one such field.
    """
    # Keyed by (cell, metric, key), the cell being (task, release, minute): a roll-up counts
    # thousands of decisions a second on a busy server, each into a dozen sums.
    sums: dict[tuple[tuple[str, int, datetime], str, str], float] = defaultdict(float)
    for d in decisions:
        cell = (d.task, d.release, minute(d.created_at))
        sums[cell, "decisions", ""] += 1.0
        if d.cached:
            sums[cell, "cached", ""] += 1.0
        if d.status == "failed":
            sums[cell, "failed", ""] += 1.0
            sums[cell, "failure", failure_reason(d.reason)] += 1.0
        elif d.route is not None:
            sums[cell, "route", d.route[:KEY_LENGTH]] += 1.0
        sums[cell, "cost", ""] += d.cost
        sums[cell, "tokens", "input"] += d.input_tokens
        sums[cell, "tokens", "output"] += d.output_tokens
        sums[cell, "latency", latency_key(d.latency_ms)] += 1.0
        sums[cell, "latency_sum", ""] += d.latency_ms
        if d.confidence is not None:
            sums[cell, "confidence", confidence_key(d.confidence)] += 1.0
        fields = label_fields.get(d.task, ())
        for name in fields:
            value = (d.output or {}).get(name)
            if isinstance(value, str):
                label = value if len(fields) == 1 else f"{name}={value}"
                sums[cell, "label", label[:KEY_LENGTH]] += 1.0
        for error in d.attempt_errors:
            sums[cell, "attempt_error", error[:KEY_LENGTH]] += 1.0
    for v in verdicts:
        cell = (v.task, v.release, minute(v.at))
        if v.spot_check:  # `approve`, `correct`, `reject`: agrees with the model, or not
            sums[cell, "spot_check", v.verdict] += 1
        else:
            sums[cell, "verdict", VERDICTS.get(v.verdict, v.verdict)] += 1
    return [
        Count(*cell, metric, key, value=value)
        for (cell, metric, key), value in sums.items()
        if value
    ]


# ---- reading: cells merged into buckets of any step


def parse_step(text: str) -> int:
    """`minute`, `hour`, `day` or a duration in whole minutes (`5m`, `1h`, `1d`), in seconds."""
    from lockgate.decide.sources import duration_seconds

    if text in STEP_SECONDS:
        return STEP_SECONDS[text]
    seconds = int(duration_seconds(text))
    if seconds < 60 or seconds % 60:
        raise ValueError(f"{text!r} is not a step; write minute, hour, day or e.g. 5m, 1h, 1d")
    return seconds


def default_step(start: datetime, end: datetime) -> int:
    span = (end - start).total_seconds()
    return 60 if span <= 6 * 3600 else 3600 if span <= 8 * 86400 else 86400


def step_name(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds // 60}m"


def merge(cells: Iterable[Cell]) -> dict[str, dict[str, float]]:
    """Cells of one bucket as metric -> key -> value (gauges keep their largest sample)."""
    merged: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for cell in cells:
        values = merged[cell.metric]
        if cell.metric in GAUGES:
            values[cell.key] = max(values.get(cell.key, 0.0), cell.value)
        else:
            values[cell.key] += cell.value
    return merged


def quantile(histogram: Mapping[str, float], q: float) -> float | None:
    """The `q` quantile (0-1) of a latency histogram, interpolated inside its bucket as
    Prometheus's `histogram_quantile` does; None when it is empty."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank, seen, lower = q * total, 0.0, 0.0
    for edge in LATENCY_EDGES_MS:
        count = histogram.get(f"le_{edge:g}", 0.0)
        if count and seen + count >= rank:
            return lower + (edge - lower) * (rank - seen) / count
        seen += count
        lower = edge
    return LATENCY_EDGES_MS[-1]


def bucket_json(task: str, release: int, start: datetime, m: Mapping[str, Any]) -> dict[str, Any]:
    def one(metric: str, key: str = "") -> float:
        return float(m.get(metric, {}).get(key, 0.0))

    routes = m.get("route", {})
    latency = dict(m.get("latency", {}))
    decisions = int(one("decisions"))
    verdicts = m.get("verdict", {})
    spot = m.get("spot_check", {})
    backlog = m.get("backlog", {})

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {
        "start": start.isoformat(),
        "release": f"{task}@{release}",
        "decisions": decisions,
        "auto": int(routes.get("auto", 0)),
        "review": int(routes.get("review", 0)),
        "reject": int(routes.get("reject", 0)),
        "failed": int(one("failed")),
        "cached": int(one("cached")),
        "cost": round(one("cost"), 8),
        "input_tokens": int(one("tokens", "input")),
        "output_tokens": int(one("tokens", "output")),
        "latency_mean_ms": ms(one("latency_sum") / decisions if decisions else None),
        "latency_p50_ms": ms(quantile(latency, 0.50)),
        "latency_p95_ms": ms(quantile(latency, 0.95)),
        "latency_p99_ms": ms(quantile(latency, 0.99)),
        "latency_histogram_ms": {k: int(latency[k]) for k in LATENCY_KEYS if latency.get(k)},
        "confidence_histogram": {k: int(v) for k, v in sorted(m.get("confidence", {}).items())},
        "failures": {k: int(v) for k, v in sorted(m.get("failure", {}).items())},
        "attempt_errors": {k: int(v) for k, v in sorted(m.get("attempt_error", {}).items())},
        "labels": {k: int(v) for k, v in sorted(m.get("label", {}).items())},
        "verdicts": {k: int(verdicts.get(k, 0)) for k in VERDICTS.values()},
        "spot_checks": {k: int(spot.get(k, 0)) for k in VERDICTS},
        "review_backlog": int(backlog["count"]) if "count" in backlog else None,
        "review_oldest_s": backlog.get("oldest_s") if "count" in backlog else None,
    }


def buckets(task: str, cells: Iterable[Cell], step_seconds: int) -> list[dict[str, Any]]:
    """The JSON buckets of `GET /v1/tasks/{task}/history`: one per step and release, oldest
    first. A stored cell coarser than the step (an hour, where the minutes are no longer kept,
    asked for by minutes) counts in the bucket holding its start."""
    grouped: dict[tuple[datetime, int], list[Cell]] = defaultdict(list)
    for cell in cells:
        grouped[(bucket_start(cell.start, step_seconds), cell.release)].append(cell)
    return [
        bucket_json(task, release, start, merge(group))
        for (start, release), group in sorted(grouped.items())
    ]


# ---- the loop inside `lockgate serve`


Summarize = Callable[[Sequence[DecisionFacts], Sequence[VerdictFacts]], Sequence[Count]]


class RollupStore(Protocol):
    """The roll-up's storage, async (through the store's executor): satisfied by
    `lockgate.store.history.AsyncHistoryRepository`."""

    async def roll_up(self, summarize: Summarize, limit: int) -> int: ...

    async def sample_backlog(self, now: datetime) -> None: ...

    async def expire(self, now: datetime, hours_after: timedelta, days_after: timedelta) -> int: ...


class LeaseStore(Protocol):
    async def take(self, name: str, owner: str, seconds: float) -> bool: ...

    async def give_up(self, name: str, owner: str) -> None: ...


@dataclass
class Rollup:
    """Rolls up every `interval_s` while it holds the `rollup` lease."""

    store: RollupStore
    leases: LeaseStore
    owner: str
    label_fields: Any  # async () -> Mapping[str, Sequence[str]]
    interval_s: float = 10.0
    hours_after: timedelta = timedelta(days=7)
    days_after: timedelta = timedelta(days=90)
    limit: int = 500
    """Decisions (and verdicts) per transaction. Each transaction holds the database's one
    writer, so decisions waiting to commit wait for it: 500 keep that wait near 20 ms (about
    40 us a decision on the project's 2-core machine); the round goes on until all are in."""

    async def round(self) -> int:
        """One round: every decision and verdict not yet rolled up, a backlog sample, and old
        minutes and hours dropped; the number of decisions and verdicts added (0 without the
        lease)."""
        if not await self.leases.take(ROLLUP_LEASE, self.owner, max(60.0, 3 * self.interval_s)):
            return 0
        fields = await self.label_fields()
        added = 0
        while True:
            summarize = functools.partial(counts_of, label_fields=fields)
            done = await self.store.roll_up(summarize, self.limit)
            added += done
            if done < self.limit:
                break
        now = datetime.now(UTC)
        await self.store.sample_backlog(now)
        await self.store.expire(now, self.hours_after, self.days_after)
        return added

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self.round()
                except LockgateError as exc:
                    log.warning("history.rollup_failed", extra={"error": exc.message})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
        finally:
            with contextlib.suppress(LockgateError):
                await self.leases.give_up(ROLLUP_LEASE, self.owner)
