"""Batch jobs: decide every record of a CSV/JSONL file, resumably, in committed chunks.

Each record's idempotency key is `run:<run id>:<record id>`, where the run id defaults to the
hash of the file's content. Run the same file again after an interruption and only records not
yet decided are sent to the models; the output file is always rewritten whole, in input order,
and appears only when complete (written to a temporary file, then renamed).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from lockgate.decide.decision import Decision
from lockgate.decide.pipeline import DecisionRequest, Pipeline, ReleaseRuntime, Result
from lockgate.decide.records import Record, file_sha256, iter_records
from lockgate.errors import ConfigError
from lockgate.stats import percentile


@dataclass
class BatchSummary:
    total: int = 0
    new: int = 0
    already_decided: int = 0
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
    batch_size: int = 500,
    on_progress: Callable[[int], None] | None = None,
) -> BatchSummary:
    """Decide every record of `path`; each chunk is committed before the next one starts."""
    started = time.perf_counter()
    run = run_id or file_sha256(path)[:16]
    summary = BatchSummary()
    handle: IO[str] | None = None
    tmp = out.with_name(out.name + ".partial") if out else None
    if tmp is not None:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        handle = tmp.open("w", encoding="utf-8")
    try:
        for chunk in _chunks(iter_records(path), batch_size):
            requests = [
                DecisionRequest(
                    input=record.values,
                    idempotency_key=f"run:{run}:{record.id}",
                    metadata={"run": run, "record": record.id},
                )
                for record in chunk
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
        if handle is not None:
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            handle = None
            assert tmp is not None and out is not None
            os.replace(tmp, out)
    finally:
        if handle is not None:
            handle.close()
    summary.seconds = time.perf_counter() - started
    return summary
