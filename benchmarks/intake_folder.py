"""The folder source against `lockgate run` on the same CSV, in the same run (issue 15).

Usage (from the repository root, with the venv active):

    python benchmarks/intake_folder.py --records 200000 [--postgres URL]

For each backend it makes a fresh project (demo tickets, trained local classifier, live
release) whose task declares a folder source (`inbox/`, key `{id}`, de-duplication by content
within 7 days), writes one CSV of synthetic tickets, then, each in a child process as a user
runs it:

- `lockgate run ticket-routing batch.csv --json` (the batch path), and
- `lockgate intake run --once --json` with the same file dropped into `inbox/` (mapping,
  schema profile, de-duplication by content, one commit per 500 records with the cursor).

It reports records per second over each command's wall time and the child's peak resident
memory (`wait4` rusage), plus the batch phase `lockgate run` measures itself.

Third, on a second fresh database (content hashes are remembered per task, so after the
folder run every record would be a duplicate), the same `lockgate run` with a `run` source
declared in the task file (the same `map:` and `dedupe:`): `lockgate run` through the intake's
one code path for mapping, de-duplication and quarantine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import fresh_database, machine

from lockgate.demo.generator import QUEUES, generate_tickets, write_csv
from lockgate.demo.tour import DEMO_TASK, TASK
from lockgate.providers.classifier_training import train_classifier
from lockgate.runtime import Runtime
from lockgate.settings import load_settings

SOURCE = """
sources:
  - name: inbox
    kind: folder
    path: inbox/
    stable_s: 0
    key: "{id}"
    map:
      text: {from: [text], aliases: [body, message]}
    dedupe: {by: content, window: 7d}
"""


RUN_SOURCE = """\
  - name: batch
    kind: run
    map:
      text: {from: [text], aliases: [body, message]}
    dedupe: {by: content, window: 7d}
"""


def make_project(root: Path, records: int, database: str, sources: str = SOURCE) -> Path:
    (root / "tasks").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "inbox").mkdir()
    (root / "data" / "queues.txt").write_text("\n".join(QUEUES) + "\n")
    (root / "tasks" / f"{TASK}.yaml").write_text(DEMO_TASK + sources)
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


def child(root: Path, args: list[str], database: str) -> tuple[float, float, str]:
    """Run `python -m lockgate ARGS`: (wall seconds, peak RSS MiB, stdout)."""
    command = [sys.executable, "-m", "lockgate", *args, "--database", database]
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(command, cwd=root, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        assert os.waitstatus_to_exitcode(status) == 0, args
        out.seek(0)
        return elapsed, usage.ru_maxrss / 1024, out.read()


def measure(root: Path, records: int, database: str) -> dict[str, object]:
    seconds, rss, text = child(root, ["run", TASK, "data/batch.csv", "--json"], database)
    batch = json.loads(text)
    assert batch["total"] == records, batch
    shutil.copy(root / "data" / "batch.csv", root / "inbox" / "batch.csv")
    intake_seconds, intake_rss, text = child(root, ["intake", "run", "--once", "--json"], database)
    (report,) = json.loads(text)
    assert report["records"] == records, report
    return {
        "lockgate_run": {
            "records_per_s_whole_command": round(records / seconds),
            "records_per_s_batch_phase": batch["decisions_per_s"],
            "seconds": round(seconds, 1),
            "peak_rss_mib": round(rss, 1),
        },
        "intake_folder": {
            "records_per_s_whole_command": round(records / intake_seconds),
            "seconds": round(intake_seconds, 1),
            "peak_rss_mib": round(intake_rss, 1),
            "decided": report["decided"],
            "duplicates": report["duplicates"],
            "quarantined": report["quarantined"],
        },
        "ratio_intake_to_run": round(seconds / intake_seconds, 3),
    }


def measure_run_source(root: Path, records: int, database: str) -> dict[str, object]:
    """`lockgate run` on the same file, its task declaring a `run` source."""
    seconds, rss, text = child(root, ["run", TASK, "data/batch.csv", "--json"], database)
    batch = json.loads(text)
    assert batch["total"] == records, batch
    return {
        "records_per_s_whole_command": round(records / seconds),
        "records_per_s_batch_phase": batch["decisions_per_s"],
        "seconds": round(seconds, 1),
        "peak_rss_mib": round(rss, 1),
        "decided": batch["new"],
        "duplicates": batch["duplicates"],
        "quarantined": batch["quarantined"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--postgres", help="a PostgreSQL server URL to benchmark as well")
    options = parser.parse_args()
    report: dict[str, object] = {
        "command": " ".join(["python", *sys.argv]),
        "machine": machine(),
        "records": options.records,
    }
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    if options.postgres:
        backends.append(("postgresql", options.postgres))
    for name, postgres in backends:
        with tempfile.TemporaryDirectory() as tmp, fresh_database(postgres, Path(tmp)) as url:
            root = make_project(Path(tmp) / "p", options.records, url)
            report[name] = measure(root, options.records, url)
            print(name, json.dumps(report[name]), file=sys.stderr)
        with tempfile.TemporaryDirectory() as tmp, fresh_database(postgres, Path(tmp)) as url:
            root = make_project(Path(tmp) / "p", options.records, url, SOURCE + RUN_SOURCE)
            result = report[name]
            assert isinstance(result, dict)
            result["lockgate_run_with_run_source"] = via = measure_run_source(
                root, options.records, url
            )
            plain = result["lockgate_run"]["seconds"]
            result["ratio_run_source_to_run"] = round(plain / via["seconds"], 3)
            print(name, "run source", json.dumps(via), file=sys.stderr)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
