"""The per-request cost the decision API pays for intake's `api` sources when a task has none
(issue 15): `ApiIntake.configured(task)`, awaited once per `POST /v1/tasks/TASK/decisions`,
against an empty coroutine awaited the same way (the baseline), in one process, same run.

Usage (from the repository root, with the venv active):

    python benchmarks/api_source_check.py --calls 200000 --repeats 5

A fresh SQLite project with one task file (no `sources:`) and the default refresh (1 s): the
task files are stat-ed again at most once a second in a reader thread and parsed only when one
changed, so nearly every call is a clock read and a dictionary lookup. Reports the median
nanoseconds per call of each over the repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_common import machine

from lockgate.runtime import Runtime
from lockgate.settings import load_settings

TASK = """\
name: bench
input:
  text: {type: string}
output:
  queue: {type: enum, values: [cards, other]}
models:
  - {provider: deterministic, answers: [{if_contains: card, output: {queue: cards}}]}
"""


async def _nothing(task: str) -> bool:
    return False


async def _time(check: object, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await check("bench")  # type: ignore[operator]
    return (time.perf_counter() - started) / calls * 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "tasks").mkdir()
        (root / "tasks" / "bench.yaml").write_text(TASK)
        settings = load_settings(root, database_url=f"sqlite:///{root / 'bench.db'}")
        runtime = Runtime.open(settings)
        try:

            async def measure() -> dict[str, list[float]]:
                assert not await runtime.api_intake.configured("bench")
                out: dict[str, list[float]] = {"baseline_ns": [], "configured_ns": []}
                for _ in range(options.repeats):
                    out["baseline_ns"].append(await _time(_nothing, options.calls))
                    out["configured_ns"].append(
                        await _time(runtime.api_intake.configured, options.calls)
                    )
                await runtime.aclose()
                return out

            runs = asyncio.run(measure())
        finally:
            runtime.close()
    baseline = statistics.median(runs["baseline_ns"])
    configured = statistics.median(runs["configured_ns"])
    print(
        json.dumps(
            {
                "command": " ".join(["python", *sys.argv]),
                "machine": machine(),
                "calls": options.calls,
                "repeats": options.repeats,
                "median_baseline_ns_per_call": round(baseline, 1),
                "median_configured_ns_per_call": round(configured, 1),
                "added_ns_per_request": round(configured - baseline, 1),
                "runs": {k: [round(v, 1) for v in vs] for k, vs in runs.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
