"""What a rollout costs the live path: batch decisions/s with no rollout, with one shadow
release, and with a 20% canary; and the shadow worker's own runs/s. SQLite and PostgreSQL.

Usage (from the repository root, with the venv active):

    python benchmarks/rollout.py --decisions 20000 --repeats 3 [--postgres URL]

Each run has its own fresh project folder and database (a new SQLite file; with --postgres, a
new database on that server, dropped afterwards). The task has the shipped `deterministic`
model and a file sink; release 1 is live. Then, per mode:

- no rollout (the baseline): nothing else;
- one shadow release: release 2 (another confidence) in stage shadow, so each stored live
  decision also queues a shadow run in the same transaction;
- canary 20%: release 2 as a canary deciding 20% of the keys.

500 decisions warm up; then `--decisions` inputs are decided through the pipeline in chunks of
500 (each chunk one committed transaction, as `lockgate run` does): decisions/s. In the shadow
mode the script checks that one run per decision was queued, then times
`ShadowWorker.run_once()` draining them all: runs/s. In the canary mode it counts the share the
canary decided. The modes are interleaved in every repeat; medians of `--repeats`, and ratios
to the no-rollout baseline: the median of each repeat's own ratio (mode / the no-rollout run of
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

from bench_common import backend_version, fresh_database, machine

from lockgate.decide.pipeline import DecisionRequest
from lockgate.rollout.shadow import ShadowWorker
from lockgate.runtime import Runtime
from lockgate.settings import load_settings
from lockgate.store import Store

TASK = "routing"
WORDS = ("card", "payment", "stolen", "refund", "login", "hello", "address", "fee")
CHUNK = 500
WARM_UP = 500
MODES = ("no_rollout", "one_shadow_release", "canary_20_percent")


def task_yaml(confidence: float) -> str:
    return f"""\
name: {TASK}
input:
  text: {{type: string, max_length: 4000}}
output:
  queue: {{type: enum, values: [cards, payments, fraud, other]}}
models:
  - provider: deterministic
    confidence: {confidence}
    answers:
      - {{if_contains: "stolen", output: {{queue: fraud}}}}
policy:
  auto_min_confidence: 0.8
deliver:
  - {{sink: file, path: out/decisions.jsonl}}
"""


def texts(count: int, start: int = 0) -> list[str]:
    return [
        f"ticket {i}: {WORDS[i % len(WORDS)]} issue number {i * 7}"
        for i in range(start, start + count)
    ]


def make_runtime(root: Path, database: str, mode: str) -> tuple[Runtime, int | None]:
    """Release 1 live and, unless `mode` is no_rollout, release 2 in shadow or as a canary."""
    (root / "tasks").mkdir(parents=True)
    task_file = root / "tasks" / f"{TASK}.yaml"
    task_file.write_text(task_yaml(0.9))
    runtime = Runtime.open(load_settings(root, database_url=database, environ={}))
    live, _ = runtime.create_release(TASK, "bench")
    runtime.store.releases.promote(TASK, live.number, "bench")
    if mode == "no_rollout":
        return runtime, None
    task_file.write_text(task_yaml(0.85))
    candidate, _ = runtime.create_release(TASK, "bench")
    if mode == "one_shadow_release":
        runtime.store.rollout.start_shadow(TASK, candidate.number, "bench")
    else:
        runtime.store.rollout.start_canary(TASK, candidate.number, 20, "bench")
    return runtime, candidate.number


async def decide(runtime: Runtime, items: list[str], prefix: str) -> list[int]:
    """Decide `items` in committed chunks; returns the release that decided each."""
    loaded = runtime.release_runtime(TASK)
    releases: list[int] = []
    for start in range(0, len(items), CHUNK):
        requests = [
            DecisionRequest(input={"text": t}, idempotency_key=f"{prefix}-{start + i}")
            for i, t in enumerate(items[start : start + CHUNK])
        ]
        for result in await runtime.pipeline.decide_many(loaded, requests):
            assert result.decision is not None, result.error
            releases.append(result.decision.release)
    return releases


async def measure(runtime: Runtime, mode: str, candidate: int | None, count: int) -> dict:
    try:
        await decide(runtime, texts(WARM_UP, start=10**6), "warm")
        started = time.perf_counter()
        releases = await decide(runtime, texts(count), "k")
        elapsed = time.perf_counter() - started
        result: dict[str, Any] = {
            "decisions": len(releases),
            "seconds": round(elapsed, 3),
            "decisions_per_s": round(len(releases) / elapsed, 1),
            "load_1m": round(os.getloadavg()[0], 2),
        }
        if mode == "canary_20_percent":
            result["canary_share"] = round(releases.count(candidate) / len(releases), 4)
        if mode == "one_shadow_release":
            assert candidate is not None
            rollout = runtime.store.rollout
            queued = rollout.shadow_counts(TASK, candidate).get("pending", 0)
            assert queued == count + WARM_UP, (queued, count + WARM_UP)
            started = time.perf_counter()
            done = await ShadowWorker(runtime.store.rollout, runtime.release_runtime).run_once(TASK)
            elapsed = time.perf_counter() - started
            counts = rollout.shadow_counts(TASK, candidate)
            assert done == queued and counts.get("done", 0) == queued, (done, counts)
            result["shadow_runs_queued"] = queued
            result["shadow_runs_done"] = done
            result["shadow_worker_seconds"] = round(elapsed, 3)
            result["shadow_runs_per_s"] = round(done / elapsed, 1)
        return result
    finally:
        await runtime.aclose()


def one_run(mode: str, server: str | None, count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, fresh_database(server, Path(tmp)) as database:
        runtime, candidate = make_runtime(Path(tmp) / "project", database, mode)
        try:
            return asyncio.run(measure(runtime, mode, candidate, count))
        finally:
            runtime.close()


def versions(server: str | None) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp, fresh_database(server, Path(tmp)) as database:
        store = Store(database, migrate=False)
        try:
            return backend_version(store)
        finally:
            store.close()


def print_table(results: dict[str, Any]) -> None:
    print(f"{'backend':<11} {'mode':<20} {'decisions/s':>12} {'x no rollout':>13}")
    for backend, modes in results.items():
        for mode, figures in modes.items():
            print(
                f"{backend:<11} {mode:<20} {figures['median_decisions_per_s']:>12.0f} "
                f"{figures['ratio_to_no_rollout']:>13.2f}"
            )
        shadow = modes["one_shadow_release"]
        print(
            f"{backend:<11} {'shadow worker':<20} {shadow['median_shadow_runs_per_s']:>12.0f} "
            f"{shadow['shadow_worker_ratio_to_no_rollout']:>13.2f}  (runs/s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=20000, help="timed decisions per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--postgres", help="a PostgreSQL server URL to benchmark as well")
    options = parser.parse_args()
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    if options.postgres:
        backends.append(("postgresql", options.postgres))
    report: dict[str, Any] = {
        "benchmark": "rollout",
        "command": " ".join(["python", *sys.argv]),
        "machine": machine(),
        "versions": {name: versions(server) for name, server in backends},
        "results": {},
    }
    for name, server in backends:
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
        for index in range(options.repeats):
            for mode in MODES:  # interleaved: a noisy minute hits every mode
                runs[mode].append(one_run(mode, server, options.decisions))
                print(name, mode, index, json.dumps(runs[mode][-1]), file=sys.stderr)
        bases = [r["decisions_per_s"] for r in runs["no_rollout"]]
        base = statistics.median(bases)
        modes: dict[str, Any] = {}
        for mode, found in runs.items():
            median = statistics.median(r["decisions_per_s"] for r in found)
            # Each run against the no-rollout run of its own repeat (just before it).
            paired = [r["decisions_per_s"] / b for r, b in zip(found, bases, strict=True)]
            modes[mode] = {
                "runs": found,
                "median_decisions_per_s": round(median, 1),
                "ratio_to_no_rollout": round(statistics.median(paired), 3),
                "ratios_per_repeat": [round(x, 3) for x in paired],
                "ratio_of_medians": round(median / base, 3),
            }
        shadow = modes["one_shadow_release"]
        worker = [r["shadow_runs_per_s"] for r in shadow["runs"]]
        shadow["median_shadow_runs_per_s"] = round(statistics.median(worker), 1)
        shadow["shadow_worker_ratio_to_no_rollout"] = round(
            statistics.median(w / b for w, b in zip(worker, bases, strict=True)), 3
        )
        canary = modes["canary_20_percent"]
        canary["median_canary_share"] = statistics.median(r["canary_share"] for r in canary["runs"])
        report["results"][name] = modes
    print_table(report["results"])
    print(json.dumps(report))


if __name__ == "__main__":
    main()
