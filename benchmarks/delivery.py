"""Deliveries/s of the outbox worker to a webhook and to a file, on SQLite and PostgreSQL.

Usage (from the repository root, with the venv active):

    python benchmarks/delivery.py --deliveries 5000 --repeats 3 [--postgres URL]

Each run has its own fresh project folder and database (a new SQLite file; with --postgres, a
new database on that server, dropped afterwards), so no run can see another's decisions or
outbox rows. A run decides `--deliveries` inputs through the real pipeline (the shipped
`deterministic` model; every decision is automated), which enqueues one outbox row each, checks
that the outbox holds exactly that many pending rows, then times one `DeliveryWorker.drain()`
(`lockgate.delivery.worker`) until nothing is due. Every run must deliver exactly what it enqueued,
with no retry and no dead row, and the target must hold every decision once:

- webhook: signed POSTs to `lockgate.testing.receiver.Receiver` on loopback (in a thread of
  this process), which checks every signature and de-duplicates by `Idempotency-Key`;
- file: the `file` sink, one fsynced JSON line per decision in the project folder.

Baseline, measured in each repeat: the same receiver alone, hit by a plain aiohttp client loop
(signed POSTs of the same kind of payload, the worker's concurrency in flight): requests/s.
Medians of `--repeats`; the ratio is the median of each repeat's own ratio (run / baseline of
the same repeat). Nothing asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from bench_common import backend_version, fresh_database, machine

from lockgate.decide.decision import new_id, utcnow
from lockgate.decide.pipeline import DecisionRequest
from lockgate.delivery.sinks.signature import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    payload_body,
    sign,
)
from lockgate.delivery.worker import DeliveryWorker
from lockgate.runtime import Runtime
from lockgate.settings import load_settings
from lockgate.store import Store
from lockgate.testing.receiver import Receiver

TASK = "routing"
SECRET_ENV = "BENCH_HOOK_SECRET"
SECRET = "bench-hook-secret"
TASK_TEXT = """\
name: routing
input:
  text: {type: string, max_length: 4000}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
models:
  - provider: deterministic
    confidence: 0.9
    answers:
      - {if_contains: "transfer", output: {queue: payments}}
policy:
  auto_min_confidence: 0.8
"""
CHUNK = 500


def make_runtime(root: Path, database: str, sink: dict[str, Any], options) -> Runtime:
    """A project whose task delivers to `sink`, release 1 live."""
    (root / "tasks").mkdir(parents=True)
    task = yaml.safe_load(TASK_TEXT)
    task["deliver"] = [sink]
    (root / "tasks" / f"{TASK}.yaml").write_text(yaml.safe_dump(task, sort_keys=False))
    (root / "lockgate.yaml").write_text(
        yaml.safe_dump(
            {
                "delivery_batch_size": options.batch_size,
                "delivery_concurrency": options.concurrency,
            }
        )
    )
    runtime = Runtime.open(load_settings(root, database_url=database, environ={}))
    release, _ = runtime.create_release(TASK, "bench")
    runtime.store.releases.promote(TASK, release.number, "bench")
    return runtime


async def enqueue(runtime: Runtime, count: int) -> int:
    """Decide `count` inputs (committed in chunks); returns the outbox's pending rows."""
    loaded = runtime.release_runtime(TASK)
    for start in range(0, count, CHUNK):
        requests = [
            DecisionRequest(input={"text": f"transfer {i} failed"}, idempotency_key=f"d-{i}")
            for i in range(start, min(start + CHUNK, count))
        ]
        results = await runtime.pipeline.decide_many(loaded, requests)
        assert all(r.decision is not None and r.decision.status == "decided" for r in results)
    await runtime.aclose()
    return runtime.store.outbox.depth().get("pending", 0)


async def drain(runtime: Runtime, count: int) -> dict[str, Any]:
    enqueued = await enqueue(runtime, count)
    worker = DeliveryWorker(
        runtime.store.outbox,
        runtime.store.releases,
        runtime.settings,
        environ={SECRET_ENV: SECRET},
    )
    try:
        started = time.perf_counter()
        report = await worker.drain()
        elapsed = time.perf_counter() - started
    finally:
        await worker.aclose()
    depth = runtime.store.outbox.depth()
    return {
        "enqueued": enqueued,
        "delivered": report.delivered,
        "retried": report.retried,
        "dead": report.dead,
        "left_pending": depth.get("pending", 0),
        "seconds": round(elapsed, 3),
        "per_s": round(report.delivered / elapsed, 1),
        "load_1m": round(os.getloadavg()[0], 2),
    }


def sink_run(kind: str, server: str | None, options) -> dict[str, Any]:
    """One run on a fresh project and database; checks the target holds every decision once."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        fresh_database(server, Path(tmp)) as database,
        Receiver(SECRET) as receiver,
    ):
        if kind == "webhook":
            sink = {"sink": "webhook", "url": receiver.url, "secret_env": SECRET_ENV}
        else:
            sink = {"sink": "file", "path": "out/decisions.jsonl"}
        root = Path(tmp) / "project"
        runtime = make_runtime(root, database, sink, options)
        try:
            result = asyncio.run(drain(runtime, options.deliveries))
        finally:
            runtime.close()
        if kind == "webhook":
            result["at_target"] = len(receiver.applied)
            result["duplicates_at_target"] = receiver.duplicates
            assert receiver.bad_signatures == 0 and receiver.failed == 0
        else:
            lines = (root / "out" / "decisions.jsonl").read_text().splitlines()
            result["at_target"] = len({json.loads(line)["id"] for line in lines})
            result["duplicates_at_target"] = len(lines) - result["at_target"]
    expected = options.deliveries
    assert result["enqueued"] == expected, result
    assert result["delivered"] == expected == result["at_target"], result
    assert result["retried"] == result["dead"] == result["left_pending"] == 0, result
    return result


def sample_body(i: int) -> bytes:
    """A payload shaped like `Decision.public()`, as the worker sends it."""
    return payload_body(
        {
            "id": new_id(),
            "task": TASK,
            "release": f"{TASK}@1",
            "idempotency_key": f"d-{i}",
            "output": {"queue": "payments"},
            "confidence": 0.9,
            "route": "auto",
            "status": "decided",
            "reason": "confidence 0.9 >= auto_min_confidence 0.8",
            "cost": 0.0,
            "latency_ms": 0.05,
            "created_at": utcnow().isoformat(),
        }
    )


async def hammer(url: str, count: int, concurrency: int) -> float:
    """`count` signed POSTs with `concurrency` in flight; requests/s. Non-2xx fails."""
    bodies = [sample_body(i) for i in range(count)]
    remaining = list(range(count))
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            while remaining:
                body = bodies[remaining.pop()]
                stamp = str(int(time.time()))
                headers = {
                    "Content-Type": "application/json",
                    IDEMPOTENCY_HEADER: json.loads(body)["id"],
                    TIMESTAMP_HEADER: stamp,
                    SIGNATURE_HEADER: sign(SECRET, stamp, body),
                }
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    assert response.status == 200, response.status

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - started)


def receiver_alone(options) -> dict[str, Any]:
    with Receiver(SECRET) as receiver:
        per_s = asyncio.run(hammer(receiver.url, options.deliveries, options.concurrency))
        applied = len(receiver.applied)
    assert applied == options.deliveries, applied
    return {
        "requests": options.deliveries,
        "per_s": round(per_s, 1),
        "load_1m": round(os.getloadavg()[0], 2),
    }


def versions(server: str | None) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp, fresh_database(server, Path(tmp)) as database:
        store = Store(database, migrate=False)
        try:
            return backend_version(store)
        finally:
            store.close()


def print_table(report: dict[str, Any]) -> None:
    base = report["baseline_receiver_alone"]["median_per_s"]
    print(f"receiver alone (plain aiohttp client): {base:.0f} requests/s (median)")
    print(f"{'backend':<11} {'sink':<8} {'deliveries/s':>13} {'x base':>7}  delivered/enqueued")
    for backend, sinks in report["results"].items():
        for kind, figures in sinks.items():
            print(
                f"{backend:<11} {kind:<8} {figures['median_per_s']:>13.0f} "
                f"{figures['ratio_to_receiver_alone']:>7.2f}  "
                f"{', '.join(figures['delivered_of_enqueued'])}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=5000, help="outbox rows per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=100, help="delivery_batch_size")
    parser.add_argument("--concurrency", type=int, default=16, help="delivery_concurrency")
    parser.add_argument("--postgres", help="a PostgreSQL server URL to benchmark as well")
    options = parser.parse_args()
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    if options.postgres:
        backends.append(("postgresql", options.postgres))
    report: dict[str, Any] = {
        "benchmark": "delivery",
        "command": " ".join(["python", *sys.argv]),
        "machine": machine(),
        "settings": {"delivery_batch_size": options.batch_size, "concurrency": options.concurrency},
        "versions": {name: versions(server) for name, server in backends},
    }
    baseline: list[dict[str, Any]] = []
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for index in range(options.repeats):
        # Interleaved, so that a noisy minute on the shared machine hits every variant.
        baseline.append(receiver_alone(options))
        print("receiver alone", index, json.dumps(baseline[-1]), file=sys.stderr)
        for name, server in backends:
            for kind in ("webhook", "file"):
                runs.setdefault((name, kind), []).append(sink_run(kind, server, options))
                print(name, kind, index, json.dumps(runs[(name, kind)][-1]), file=sys.stderr)
    base = statistics.median(b["per_s"] for b in baseline)
    report["baseline_receiver_alone"] = {"runs": baseline, "median_per_s": round(base, 1)}
    report["results"] = {}
    for (name, kind), found in runs.items():
        median = statistics.median(r["per_s"] for r in found)
        # Each run against the baseline of its own repeat (measured a few seconds before).
        paired = [r["per_s"] / b["per_s"] for r, b in zip(found, baseline, strict=True)]
        report["results"].setdefault(name, {})[kind] = {
            "runs": found,
            "delivered_of_enqueued": [f"{r['delivered']}/{r['enqueued']}" for r in found],
            "median_per_s": round(median, 1),
            "ratio_to_receiver_alone": round(statistics.median(paired), 3),
            "ratios_per_repeat": [round(x, 3) for x in paired],
            "ratio_of_medians": round(median / base, 3),
        }
    print_table(report)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
