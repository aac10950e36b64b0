"""Review queue calls with a large store: first page, claim, approve, correct, on SQLite and
PostgreSQL.

Usage (from the repository root, with the venv active):

    python benchmarks/review_queue.py --decisions 100000 --calls 200 --repeats 3 [--postgres URL]

For each backend it makes a fresh database (a new SQLite file; with --postgres, a new database
on that server, dropped afterwards), stores one release of a two-label task that delivers to a
file sink, and `--decisions` decisions, every fifth one pending review with a priority of 0, 5
or 10. Then, `--repeats` times, it calls `ReviewService` as the API and the CLI do, one call at
a time, with a reviewer key:

- baseline: `store.decisions.get(id)` of a random stored decision (one indexed read);
- the first page of the queue (50 items, highest priority first, then oldest);
- claim of a pending decision, then approve of `--calls` of them and correct of `--calls`
  others (each verdict is final and writes its audit entry and outbox row).

Per call: median and p95 in ms, each reported as the median over the repeats, and as a ratio to
the baseline's median measured in the same run. Nothing asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench_common import backend_version, fresh_database, machine

from lockgate.decide.decision import Decision, new_id, utcnow
from lockgate.decide.task import parse_task, task_to_dict
from lockgate.review.service import ReviewService
from lockgate.rollout.release import Release, content_hash
from lockgate.security import Principal
from lockgate.store import Store

TASK = "routing"
TASK_SPEC = {
    "name": TASK,
    "input": {"text": {"type": "string", "max_length": 4000}},
    "output": {"queue": {"type": "enum", "values": ["cards", "payments"]}},
    "models": [{"provider": "deterministic"}],
    "deliver": [{"sink": "file", "path": "out/decisions.jsonl"}],
}
SEED_CHUNK = 5000
OPERATIONS = ("baseline_decision_read", "queue_first_page", "claim", "approve", "correct")


def seed(store: Store, count: int, rng: random.Random) -> tuple[int, list[str], list[str]]:
    """One release and `count` decisions, every fifth pending review; returns the release
    number, the pending ids and every id."""
    body = task_to_dict(parse_task(TASK_SPEC, "benchmark"))
    draft = Release(
        task=TASK,
        number=0,
        content_hash=content_hash(body, {}),
        spec=body,
        artifacts={},
        stage="draft",
        created_at=utcnow(),
    )
    release, _ = store.releases.create(draft, "bench")
    store.releases.promote(TASK, release.number, "bench")
    now = utcnow()
    pending: list[str] = []
    every: list[str] = []
    for start in range(0, count, SEED_CHUNK):
        batch = []
        for i in range(start, min(start + SEED_CHUNK, count)):
            waiting = i % 5 == 0
            decision = Decision(
                id=new_id(),
                task=TASK,
                release=release.number,
                idempotency_key=f"seed-{i}",
                input_hash=f"{i:064x}",
                input={"text": f"ticket {i}: my card payment failed"},
                redacted_input={"text": f"ticket {i}: my card payment failed"},
                output={"queue": "cards"},
                confidence=0.55 if waiting else 0.95,
                route="review" if waiting else "auto",
                status="pending_review" if waiting else "decided",
                reason="below auto_min_confidence" if waiting else "auto",
                cost=0.0,
                latency_ms=1.0,
                created_at=now - timedelta(seconds=count - i),
                priority=rng.choice((0, 0, 0, 5, 10)) if waiting else 0,
            )
            batch.append(decision)
            every.append(decision.id)
            if waiting:
                pending.append(decision.id)
        store.decisions.save(batch)
    return release.number, pending, every


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 3),
        "p95_ms": round(p95 * 1000, 3),
    }


def one_repeat(
    service: ReviewService,
    reviewer: Principal,
    store: Store,
    pending: list[str],
    every: list[str],
    calls: int,
    rng: random.Random,
) -> dict[str, Any]:
    """Each operation `calls` times (claims twice that: one per verdict), in this order."""
    reads = [timed(lambda: store.decisions.get(rng.choice(every))) for _ in range(calls)]
    pages = []
    for _ in range(calls):
        pages.append(timed(lambda: service.queue(reviewer, TASK, limit=50)))
    to_approve = [pending.pop() for _ in range(calls)]
    to_correct = [pending.pop() for _ in range(calls)]
    claims = [timed(lambda d=d: service.claim(reviewer, d)) for d in to_approve + to_correct]
    approvals = [timed(lambda d=d: service.approve(reviewer, d)) for d in to_approve]
    corrections = [
        timed(lambda d=d: service.correct(reviewer, d, {"queue": "payments"}, "wrong queue"))
        for d in to_correct
    ]
    for decision_id, status in ((to_approve[0], "approved"), (to_correct[0], "corrected")):
        found = store.decisions.get(decision_id)
        assert found is not None and found.status == status, (decision_id, found)
    return {
        "baseline_decision_read": summary(reads),
        "queue_first_page": summary(pages),
        "claim": summary(claims),
        "approve": summary(approvals),
        "correct": summary(corrections),
        "load_1m": round(os.getloadavg()[0], 2),
    }


def bench_backend(database: str, options: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(options.seed)
    store = Store(database)
    try:
        started = time.perf_counter()
        _, pending, every = seed(store, options.decisions, rng)
        seeded_s = time.perf_counter() - started
        pending_at_start = len(pending)
        needed = 2 * options.calls * (options.repeats + 1)
        if len(pending) < needed:
            raise SystemExit(
                f"{len(pending)} pending decisions, {needed} needed: raise --decisions"
            )
        rng.shuffle(pending)
        key, _ = store.keys.create("bench-reviewer", "reviewer", (), "bench")
        reviewer = Principal.of(key)
        service = ReviewService(store.reviews, store.releases)
        first_page = service.queue(reviewer, TASK, limit=50)
        assert len(first_page) == 50 and first_page[0].priority == 10, first_page[:1]
        one_repeat(service, reviewer, store, pending, every, max(10, options.calls // 10), rng)
        runs = []
        for index in range(options.repeats):
            runs.append(one_repeat(service, reviewer, store, pending, every, options.calls, rng))
            print(store.backend, index, json.dumps(runs[-1]), file=sys.stderr)
        medians = {
            op: {
                q: round(statistics.median(run[op][q] for run in runs), 3)
                for q in ("median_ms", "p95_ms")
            }
            for op in OPERATIONS
        }
        base = medians["baseline_decision_read"]["median_ms"]
        for figures in medians.values():
            figures["ratio_to_baseline"] = round(figures["median_ms"] / base, 1)
        return {
            "versions": backend_version(store),
            "decisions": options.decisions,
            "pending_at_start": pending_at_start,
            "seed_seconds": round(seeded_s, 1),
            "runs": runs,
            "median_of_repeats": medians,
        }
    finally:
        store.close()


def print_table(results: dict[str, Any]) -> None:
    print(f"{'backend':<11} {'call':<24} {'median ms':>10} {'p95 ms':>8} {'x baseline':>11}")
    for backend, result in results.items():
        for op, figures in result["median_of_repeats"].items():
            print(
                f"{backend:<11} {op:<24} {figures['median_ms']:>10.3f} "
                f"{figures['p95_ms']:>8.3f} {figures['ratio_to_baseline']:>11.1f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=200, help="calls of each kind per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--postgres", help="a PostgreSQL server URL to benchmark as well")
    options = parser.parse_args()
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    if options.postgres:
        backends.append(("postgresql", options.postgres))
    report: dict[str, Any] = {
        "benchmark": "review_queue",
        "command": " ".join(["python", *sys.argv]),
        "machine": machine(),
        "results": {},
    }
    for name, server in backends:
        with (
            tempfile.TemporaryDirectory() as tmp,
            fresh_database(server, Path(tmp)) as database,
        ):
            report["results"][name] = bench_backend(database, options)
    print_table(report["results"])
    print(json.dumps(report))


if __name__ == "__main__":
    main()
