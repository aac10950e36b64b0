"""Batch jobs: decide every record of a CSV/JSONL file, resumably, in committed chunks.

Each record's idempotency key is `run:<run id>:<record id>`, where the run id defaults to the
hash of the file's content. Run the same file again after an interruption and only records not
yet decided are sent to the models; the output file is always rewritten whole, in input order,
and appears only when complete (written to a temporary file, then renamed).
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from lockgate.decide.decision import Decision
from lockgate.decide.pipeline import DecisionRequest, Pipeline, ReleaseRuntime, Result
from lockgate.decide.records import Record, file_sha256, iter_records, record_format
from lockgate.decide.task import TaskSpec
from lockgate.errors import ConfigError
from lockgate.stats import percentile


@dataclass
class BatchSummary:
    total: int = 0
    new: int = 0
    already_decided: int = 0
    retried: int = 0
    """Records whose earlier decision had failed, decided again in this run."""
    duplicates: int = 0
    """Records answered with an earlier decision of the same content (a `run` source's
    `dedupe: {by: content}`); also counted in `already_decided`."""
    quarantined: int = 0
    """Records a `run` source could not map: held in quarantine, not decided."""
    by_route: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    failure_examples: dict[str, list[str]] = field(default_factory=dict)
    cost: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    releases: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    """Wall time of the batch itself (reading, deciding, committing, writing)."""

    def add(self, record: Record, result: Result) -> None:
        self.total += 1
        if result.error is not None:
            self._fail(record, f"not decided: {result.error.message}")
            self.by_status["error"] += 1
            return
        decision = result.decision
        assert decision is not None
        if result.replayed:
            self.already_decided += 1
        else:
            self.new += 1
        self.by_route[decision.route or "none"] += 1
        self.by_status[decision.status] += 1
        self.releases[decision.release_ref] += 1
        self.cost += decision.cost
        self.latencies_ms.append(decision.latency_ms)
        if decision.status == "failed":
            self._fail(record, decision.reason)

    def hold(self, record: Record, reason: str) -> None:
        """A record held in quarantine with `reason` (a `run` source)."""
        self.total += 1
        self.quarantined += 1
        self.by_status["quarantined"] += 1
        self._fail(record, f"quarantined: {reason}")

    def _fail(self, record: Record, reason: str) -> None:
        self.failures[reason] += 1
        examples = self.failure_examples.setdefault(reason, [])
        if len(examples) < 5:
            examples.append(record.id)

    def latency(self, quantile: float) -> float:
        """The latency quantile in milliseconds; 0.0 before any decision was timed."""
        return percentile(self.latencies_ms, quantile) or 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "new": self.new,
            "already_decided": self.already_decided,
            "retried": self.retried,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            "by_route": dict(self.by_route),
            "by_status": dict(self.by_status),
            "failures": [
                {"reason": r, "count": n, "examples": self.failure_examples[r]}
                for r, n in self.failures.most_common()
            ],
            "cost": round(self.cost, 6),
            "latency_p50_ms": round(self.latency(0.5), 3),
            "latency_p95_ms": round(self.latency(0.95), 3),
            "releases": dict(self.releases),
            "seconds": round(self.seconds, 3),
            "decisions_per_s": round(self.total / self.seconds, 1) if self.seconds else 0.0,
        }


COLUMN_SAMPLE = 50
"""JSON Lines records read to find the fields a file has (CSV files have a header row)."""


def check_columns(task: TaskSpec, path: Path) -> None:
    """Refuse a file that lacks a required input field of the task altogether (every record
    would fail), naming the missing and the found columns, before anything is decided."""
    found: set[str] = set()
    if record_format(path) == "csv":
        with path.open(encoding="utf-8", newline="") as handle:
            found = {name.strip() for name in next(csv.reader(handle), [])}
    else:
        for number, record in enumerate(iter_records(path)):
            found.update(record.values)
            if number + 1 >= COLUMN_SAMPLE:
                break
    required = [name for name, spec in task.input.items() if spec.required]
    missing = [name for name in required if name not in found]
    if missing:
        where = "its header row" if record_format(path) == "csv" else "its first records"
        raise ConfigError(
            f"{path}: no column for the task's input field{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (required); {where} has: {', '.join(sorted(found)) or 'none'}",
            hint=f"name the columns after task {task.name!r}'s input fields "
            f"({', '.join(task.input)}); nothing was decided",
        )


def scan(path: Path) -> int:
    """Count records and refuse a file whose ids repeat (they would share one decision)."""
    seen: dict[str, int] = {}
    count = 0
    for record in iter_records(path):
        count += 1
        first = seen.setdefault(record.id, record.line)
        if first != record.line:
            raise ConfigError(
                f"{path}: line {record.line} repeats id {record.id!r} first seen on line {first}",
                hint="give every record a unique `id`, or drop the id column to use line numbers",
            )
    return count


def output_line(record: Record, decision: Decision | None, error: str | None) -> str:
    line: dict[str, Any] = {"id": record.id}
    if decision is None:
        line.update(output=None, confidence=None, route=None, status="error", error=error)
    else:
        line.update(
            output=decision.output,
            confidence=decision.confidence,
            route=decision.route,
            status=decision.status,
            release=decision.release_ref,
        )
        if decision.status == "failed":
            line["reason"] = decision.reason
    return json.dumps(line, ensure_ascii=False)


async def _past_failures(pipeline: Pipeline, task: str, keys: list[str]) -> tuple[list[str], int]:
    return await past_failures(pipeline.decisions.find, task, keys)


async def past_failures(
    find: Callable[[str, list[str]], Awaitable[Mapping[str, Decision]]],
    task: str,
    keys: list[str],
) -> tuple[list[str], int]:
    """The keys to decide under: a key whose stored decision failed is followed by its next
    retry key (`KEY:retry1`, `KEY:retry2`, ...) until one is unused or did not fail. Returns
    the keys and how many records are decided again."""
    current = list(keys)
    waiting = list(range(len(keys)))
    retried = 0
    attempt = 0
    while waiting:
        found = await find(task, [current[i] for i in waiting])
        failed = []
        for i in waiting:
            stored = found.get(current[i])
            if stored is not None and stored.status == "failed":
                failed.append(i)
            elif stored is None and attempt > 0:
                retried += 1  # a retry key not used yet: this run decides the record again
        attempt += 1
        for i in failed:
            current[i] = f"{keys[i]}:retry{attempt}"
        waiting = failed
    return current, retried


def _chunks(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    chunk: list[Record] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def run_batch(
    pipeline: Pipeline,
    runtime: ReleaseRuntime,
    path: Path,
    *,
    out: Path | None = None,
    run_id: str | None = None,
    batch_size: int,
    retry_failed: bool = True,
    on_progress: Callable[[int], None] | None = None,
) -> BatchSummary:
    """Decide every record of `path` in chunks of `batch_size` (the `batch_size` setting);
    each chunk is committed before the next one starts.
    A record whose decision failed in an earlier run is decided again (under a new
    idempotency key, `KEY:retryN`), unless `retry_failed` is False."""
    started = time.perf_counter()
    run = run_id or file_sha256(path)[:16]
    summary = BatchSummary()
    with output_file(out) as handle:
        for chunk in _chunks(iter_records(path), batch_size):
            keys = [f"run:{run}:{record.id}" for record in chunk]
            if retry_failed:
                keys, retried = await _past_failures(pipeline, runtime.task.name, keys)
                summary.retried += retried
            requests = [
                DecisionRequest(
                    input=record.values,
                    idempotency_key=key,
                    metadata={"run": run, "record": record.id},
                )
                for record, key in zip(chunk, keys, strict=True)
            ]
            results = await pipeline.decide_many(runtime, requests, invalid_input="fail")
            for record, result in zip(chunk, results, strict=True):
                summary.add(record, result)
                if handle is not None:
                    error = result.error.message if result.error else None
                    handle.write(output_line(record, result.decision, error) + "\n")
            if on_progress is not None:
                on_progress(len(chunk))
            # A chunk decided by a local model never suspends; yielding here lets Ctrl-C
            # (delivered by asyncio as a cancellation) stop the job between commits.
            await asyncio.sleep(0)
    summary.seconds = time.perf_counter() - started
    return summary


@contextmanager
def output_file(out: Path | None) -> Iterator[IO[str] | None]:
    """The `--out` file of a run, written as `OUT.partial` and renamed to `out` (after an
    fsync) only when the run finishes; a run stopped part-way leaves `OUT.partial`, never a
    complete-looking `out`. Yields None when there is no `out`."""
    if out is None:
        yield None
        return
    tmp = out.with_name(out.name + ".partial")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with tmp.open("w", encoding="utf-8") as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, out)
