"""`lockgate run TASK FILE` as an intake source: when the task file declares a source of kind
`run`, the file is read as the folder source reads files (CSV, JSON Lines, JSON, Excel; the
encoding detected) and each batch goes through the intake's mapping, content de-duplication
and quarantine (`runner.Intake`), committed as one transaction.

The promises of `lockgate run` hold as without the source: each record's key is
`run:RUN:ID` (the run id, by default the file's hash, and the record's `id` field or its
number), so the same command after an interruption decides only what is not stored yet; a
record whose decision failed is decided again under `KEY:retryN`; a file without a column for
a required input field (by any of its mapped names) is refused before anything is decided;
the summary and the output file have a line per record. A record that cannot be mapped is
held in quarantine (`lockgate quarantine list`) instead of being stored as a failed decision.
"""

from __future__ import annotations

import asyncio
import json
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import replace
from itertools import islice
from pathlib import Path

from lockgate.decide.batch import BatchSummary, output_file, output_line, past_failures
from lockgate.decide.pipeline import Result
from lockgate.decide.records import Record
from lockgate.decide.sources import RunSource
from lockgate.decide.task import TaskSpec
from lockgate.errors import ConfigError
from lockgate.intake.coerce import is_missing
from lockgate.intake.files import Unreadable, read_file, scan
from lockgate.intake.runner import Incoming, Intake, SourcePaused

COLUMN_SAMPLE = 50


def _records(path: Path, run: str) -> Iterator[Incoming]:
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    scanned = scan(path)
    try:
        return read_file(path, scanned, label=f"{path.name}@{run}").records
    except Unreadable as exc:
        raise ConfigError(f"{path}: {exc.reason}", hint="nothing was decided") from None


def count(path: Path, run: str) -> int:
    """The records of the file (readable or not): the progress bar's total."""
    return sum(1 for _ in _records(path, run))


def _norm(name: str) -> str:
    return unicodedata.normalize("NFC", str(name)).strip().casefold()


def check_columns(task: TaskSpec, source: RunSource, path: Path, run: str) -> None:
    """Refuse a file in which no record has any mapped name of a required input field that
    has no default, before anything is decided."""
    found: set[str] = set()
    for record in islice(_records(path, run), COLUMN_SAMPLE):
        if record.values is not None:
            found.update(_norm(k) for k in record.values)
    missing = []
    for name, spec in task.input.items():
        rule = source.map.get(name)
        if not spec.required or (rule is not None and not is_missing(rule.default)):
            continue
        names = rule.names(name) if rule is not None else (name,)
        if not any(_norm(n) in found for n in names):
            missing.append(f"{name} (looked for: {', '.join(names)})")
    if missing:
        raise ConfigError(
            f"{path}: no column for the task's required input field"
            f"{'s' if len(missing) > 1 else ''} {'; '.join(missing)}; its first records have: "
            f"{', '.join(sorted(found)) or 'none'}",
            hint=f"name the columns as the `{source.name}` source's `map:` expects, or add "
            "the names there; nothing was decided",
        )


def _record_id(record: Incoming) -> str:
    values = record.values or {}
    given = values.get("id")
    return str(given).strip() if not is_missing(given) else str(record.context.get("row", ""))


async def run_file(
    intake: Intake,
    path: Path,
    *,
    run: str,
    out: Path | None = None,
    batch_size: int = 500,
    retry_failed: bool = True,
    on_progress: Callable[[int], None] | None = None,
) -> BatchSummary:
    """Decide every record of `path` through `intake` (its source is the task's `run`
    source), a committed batch at a time. Raises the budget's `BudgetExceeded` when a
    refusing limit stops the run (the records before it are committed)."""
    started = time.perf_counter()
    summary = BatchSummary()
    task = intake.task.name
    records = _records(path, run)
    with output_file(out) as handle:
        while chunk := list(islice(records, batch_size)):
            ids = [_record_id(r) for r in chunk]
            keys = [f"run:{run}:{i}" for i in ids]
            if retry_failed:
                keys, retried = await past_failures(intake.store.find, task, keys)
                summary.retried += retried
            prefix = f"run:{run}:"
            incoming = [
                replace(r, context={**r.context, "run": run, "id": key[len(prefix) :]})
                for r, key in zip(chunk, keys, strict=True)
            ]
            try:
                outcome = await intake.process(incoming, None)
            except SourcePaused as paused:
                done = summary.total + paused.settled
                raise paused.exceeded(
                    f"{done} records of {path.name} are settled; run the same command again "
                    "then to decide the rest"
                ) from None
            for record_id, record, fate in zip(ids, incoming, outcome.fates, strict=True):
                # The record's own id (its key may carry `:retryN`).
                shown = Record(record_id, int(record.context.get("row", 0)), {})
                if fate.kind == "quarantined":
                    assert fate.quarantined is not None
                    summary.hold(shown, fate.quarantined.reason)
                    line: str = json.dumps(
                        {
                            "id": shown.id,
                            "output": None,
                            "status": "quarantined",
                            "reason": fate.quarantined.reason,
                        },
                        ensure_ascii=False,
                    )
                else:
                    own = fate.item.key if fate.item is not None else fate.key
                    result = outcome.results.get(own) or outcome.results.get(fate.key)
                    if result is None:
                        result = Result(None)
                    elif fate.kind == "duplicate":
                        result = Result(result.decision, replayed=True, error=result.error)
                    if fate.by == "content" and fate.kind == "duplicate":
                        summary.duplicates += 1
                    summary.add(shown, result)
                    error = result.error.message if result.error else None
                    line = output_line(shown, result.decision, error)
                if handle is not None:
                    handle.write(line + "\n")
            if on_progress is not None:
                on_progress(len(chunk))
            await asyncio.sleep(0)  # Ctrl-C stops the job between commits
    summary.seconds = time.perf_counter() - started
    return summary


def run_source(task: TaskSpec | None) -> RunSource | None:
    """The task file's `run` source, if it declares one."""
    if task is None:
        return None
    return next((s for s in task.sources if isinstance(s, RunSource)), None)
