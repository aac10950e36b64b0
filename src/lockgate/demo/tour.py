"""`lockgate demo`: the whole loop on synthetic support tickets, in well under a minute.

Generate tickets, train the local classifier, create and promote a release, decide a batch of
new tickets, and report what a team lead wants to know: automation rate, accuracy of what was
automated, what waits for review, cost and latency.
"""

from __future__ import annotations

import asyncio
import csv
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lockgate.decide.batch import BatchSummary, run_batch
from lockgate.demo.generator import QUEUES, generate_tickets, write_csv
from lockgate.errors import ConfigError
from lockgate.providers.classifier_training import TrainReport, train_classifier
from lockgate.runtime import Runtime
from lockgate.settings import load_settings

MARKER = ".lockgate-demo"
TASK = "ticket-routing"

DEMO_TASK = """\
name: ticket-routing
description: Route a bank customer's support ticket to the team that can resolve it
owner: support-platform
input:
  text: {type: string, max_length: 4000, pii: true}
output:
  queue: {type: enum, values_file: data/queues.txt}
instructions: |
  Route the customer's ticket to the queue that can resolve it; `other` when none fits.
models:
  - provider: local-classifier
  - provider: rules
    rules:
      - {if_matches: "(?i)stolen|fraud|scam|didn.t make", then: {queue: fraud}}
policy:
  auto_min_confidence: 0.6
  review_when:
    - {field: queue, equals: fraud}
  reject_when:
    - {input: text, empty: true}
"""


@dataclass(frozen=True)
class DemoResult:
    train: TrainReport
    summary: BatchSummary
    automated_accuracy: float | None
    overall_accuracy: float
    seconds: float
    out: Path


def prepare(directory: Path, *, train_n: int, incoming_n: int) -> None:
    """Write a fresh demo project (only a folder this command made before is ever cleared)."""
    if directory.exists() and any(directory.iterdir()):
        if not (directory / MARKER).exists():
            raise ConfigError(
                f"{directory} exists and is not a Lockgate demo folder",
                hint="pass --dir with a new or empty folder",
            )
        shutil.rmtree(directory)
    (directory / "tasks").mkdir(parents=True)
    (directory / "data").mkdir()
    (directory / MARKER).write_text("created by `lockgate demo`; safe to delete\n")
    (directory / ".gitignore").write_text(".lockgate/\nout/\n")
    (directory / "data" / "queues.txt").write_text("\n".join(QUEUES) + "\n")
    (directory / "tasks" / f"{TASK}.yaml").write_text(DEMO_TASK)
    write_csv(generate_tickets(train_n, seed=1, id_prefix="TR"), directory / "data" / "train.csv")
    incoming = generate_tickets(incoming_n, seed=2, id_prefix="IN")
    write_csv(incoming, directory / "data" / "incoming.csv", with_labels=False)
    write_csv(incoming, directory / "data" / "incoming-truth.csv")


def run_demo(
    directory: Path,
    *,
    train_n: int = 3000,
    incoming_n: int = 2000,
    echo: Callable[[str], None] = print,
    on_progress: Callable[[int], None] | None = None,
) -> DemoResult:
    started = time.perf_counter()
    echo(f"1/4 generating {train_n} labeled and {incoming_n} new support tickets in {directory}")
    prepare(directory, train_n=train_n, incoming_n=incoming_n)
    settings = load_settings(directory)
    runtime = Runtime.open(settings)
    try:
        spec = runtime.task(TASK)
        echo(f"2/4 training the local classifier on {train_n} tickets ({len(QUEUES)} queues)")
        report = train_classifier(spec, directory / "data" / "train.csv", settings, seed=0)
        echo(
            f"    held-out accuracy {report.holdout['queue'].accuracy:.1%}, "
            f"macro-F1 {report.holdout['queue'].macro_f1:.3f}"
        )
        release, _ = runtime.create_release(TASK, "demo")
        runtime.store.releases.promote(TASK, release.number, "demo", "first release of the demo")
        echo(f"3/4 created and promoted {release.ref}")
        echo(f"4/4 deciding {incoming_n} new tickets (batch job, resumable)")
        out = directory / "out" / "decisions.jsonl"
        loaded = runtime.release_runtime(TASK)

        async def work() -> BatchSummary:
            try:
                return await run_batch(
                    runtime.pipeline,
                    loaded,
                    directory / "data" / "incoming.csv",
                    out=out,
                    batch_size=runtime.settings.batch_size,
                    on_progress=on_progress,
                )
            finally:
                await runtime.aclose()

        summary = asyncio.run(work())
    finally:
        runtime.close()
    automated, overall = _accuracy(out, directory / "data" / "incoming-truth.csv")
    return DemoResult(
        train=report,
        summary=summary,
        automated_accuracy=automated,
        overall_accuracy=overall,
        seconds=time.perf_counter() - started,
        out=out,
    )


def _accuracy(out: Path, truth_file: Path) -> tuple[float | None, float]:
    with truth_file.open(encoding="utf-8", newline="") as handle:
        truth = {row["id"]: row["queue"] for row in csv.DictReader(handle)}
    auto_hits = auto_total = hits = total = 0
    with out.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row["output"] is None:
                continue
            correct = row["output"]["queue"] == truth[row["id"]]
            total += 1
            hits += correct
            if row["route"] == "auto":
                auto_total += 1
                auto_hits += correct
    return (auto_hits / auto_total if auto_total else None), (hits / total if total else 0.0)


def describe(result: DemoResult, directory: Path) -> str:
    s = result.summary
    total = s.total or 1
    auto = s.by_route.get("auto", 0)
    review = s.by_status.get("pending_review", 0)
    rejected = s.by_status.get("rejected", 0)
    failed = s.by_status.get("failed", 0)
    auto_acc = (
        f"{result.automated_accuracy:.1%}" if result.automated_accuracy is not None else "n/a"
    )
    rate = s.total / s.seconds if s.seconds else 0.0
    lines = [
        "",
        f"Lockgate demo: {s.total} new tickets decided by {', '.join(s.releases)}",
        f"  automated        {auto:>6}  ({auto / total:.1%})   accuracy on these: {auto_acc}",
        f"  waiting review   {review:>6}  ({review / total:.1%})   "
        "(low confidence, or a fraud case: a person decides)",
        f"  rejected         {rejected:>6}  ({rejected / total:.1%})   (empty tickets)",
        f"  failed           {failed:>6}",
        f"  model accuracy over all tickets: {result.overall_accuracy:.1%} "
        "(what automating everything would give)",
        f"  cost ${s.cost:.4f} (local model)   {rate:,.0f} decisions/s; in a batch a chunk "
        "of records is decided at once, so a record's latency is its chunk's: "
        f"p50 {s.latency(0.5):.1f} ms, p95 {s.latency(0.95):.1f} ms per chunk "
        "(one decision over HTTP takes a few ms)",
        f"  every decision is committed in {directory / '.lockgate' / 'lockgate.db'}; "
        f"results in {result.out}",
        f"  finished in {result.seconds:.1f} s",
        "",
        "Next (after `source .venv/bin/activate` in the Lockgate folder):",
        f"  cd {directory}",
        f'  lockgate decide {TASK} --input \'{{"text": "I was charged twice for one coffee"}}\'',
        f"  lockgate run {TASK} data/incoming.csv --out out/again.jsonl   "
        "# nothing is decided twice",
        f"  lockgate release list {TASK}",
        "  lockgate keys create --name alice --role reviewer   # prints a reviewer's key",
        f"  lockgate serve   # then open http://127.0.0.1:8000/ui/, sign in with that key and "
        f"review the {review} waiting tickets",
        "  lockgate init my-project   # start your own task",
    ]
    return "\n".join(lines)
