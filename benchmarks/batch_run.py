"""Batch throughput of `lockgate run` with the local classifier, on SQLite and PostgreSQL.

Usage (from the repository root, with the venv active):

    python benchmarks/batch_run.py --records 20000 --repeats 3 [--postgres URL]

For each backend it makes a fresh project (demo tickets, trained classifier, live release),
then times `lockgate run` as a user runs it (a subprocess, progress bar off, every decision
committed) and reads the child's peak resident memory. The classifier's own prediction speed
on the same texts is measured in the same run as the baseline. Medians are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lockgate.demo.generator import QUEUES, generate_tickets, write_csv
from lockgate.demo.tour import DEMO_TASK, TASK
from lockgate.providers.classifier_training import train_classifier
from lockgate.runtime import Runtime
from lockgate.settings import load_settings


def make_project(root: Path, records: int, database: str | None) -> Path:
    (root / "tasks").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "data" / "queues.txt").write_text("\n".join(QUEUES) + "\n")
    (root / "tasks" / f"{TASK}.yaml").write_text(DEMO_TASK)
    write_csv(generate_tickets(3000, seed=1), root / "data" / "train.csv")
    write_csv(
        generate_tickets(records, seed=2, id_prefix="B"),
        root / "data" / "batch.csv",
        with_labels=False,
    )
    settings = load_settings(root, database_url=database)
    runtime = Runtime.open(settings)
    try:
        train_classifier(runtime.task(TASK), root / "data" / "train.csv", settings)
        release, _ = runtime.create_release(TASK, "bench")
        runtime.store.releases.promote(TASK, release.number, "bench")
    finally:
        runtime.close()
    return root


def classifier_rows_per_s(root: Path, database: str | None) -> float:
    import asyncio
    import csv

    from lockgate.providers.base import PreparedRequest

    settings = load_settings(root, database_url=database)
    runtime = Runtime.open(settings)
    try:
        loaded = runtime.release_runtime(TASK)
        provider = loaded.models[0].provider
        with (root / "data" / "batch.csv").open() as handle:
            texts = [row["text"] for row in csv.DictReader(handle)]
        requests = [PreparedRequest(loaded.task, {"text": t}) for t in texts]
        started = time.perf_counter()
        for start in range(0, len(requests), 500):
            provider.complete_batch(requests[start : start + 500])  # type: ignore[attr-defined]
        elapsed = time.perf_counter() - started
        asyncio.run(runtime.aclose())
    finally:
        runtime.close()
    return len(requests) / elapsed


def timed_run(root: Path, database: str | None, run_id: str) -> dict[str, float]:
    """One `lockgate run` in a child process: its rates and its own peak memory."""
    args = [
        sys.executable,
        "-m",
        "lockgate",
        "run",
        TASK,
        "data/batch.csv",
        "--json",
        "--run-id",
        run_id,
        "--out",
        f"out-{run_id}.jsonl",
    ]
    if database:
        args += ["--database", database]
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        child = subprocess.Popen(args, cwd=root, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - started
        out.seek(0)
        summary = json.loads(out.read())
    assert child.returncode == 0 and summary["new"] == summary["total"], summary
    return {
        "whole_command": summary["total"] / elapsed,
        "batch_phase": summary["decisions_per_s"],
        "peak_rss_mib": usage.ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--postgres", help="a PostgreSQL URL to benchmark as well")
    options = parser.parse_args()
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    if options.postgres:
        backends.append(("postgresql", options.postgres))
    report = {
        "command": " ".join(["python", *sys.argv]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "records": options.records,
        "results": {},
    }
    for name, database in backends:
        with tempfile.TemporaryDirectory() as tmp:
            root = make_project(Path(tmp) / "p", options.records, database)
            baseline = classifier_rows_per_s(root, database)
            runs = [timed_run(root, database, f"bench-{i}") for i in range(options.repeats)]
            batch = statistics.median(r["batch_phase"] for r in runs)
            report["results"][name] = {
                "batch_phase_decisions_per_s_runs": [round(r["batch_phase"]) for r in runs],
                "batch_phase_decisions_per_s_median": round(batch),
                "whole_command_decisions_per_s_median": round(
                    statistics.median(r["whole_command"] for r in runs)
                ),
                "classifier_only_rows_per_s": round(baseline),
                "ratio_batch_to_classifier": round(batch / baseline, 3),
                "peak_rss_mib_max": round(max(r["peak_rss_mib"] for r in runs), 1),
            }
            print(name, json.dumps(report["results"][name]), file=sys.stderr)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
