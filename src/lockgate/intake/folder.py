"""The folder source: files dropped into a directory are decided record by record, then moved
to `processed/` (or `failed/` when unreadable) with a `.report.json` beside them.

A file is taken once complete: unchanged for `stable_s` seconds, or with a `NAME.done` marker.
The cursor (file, content hash, rows done, counts so far) is committed with each batch's
decisions, so after a crash the file resumes at the first row not yet committed.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import Any

from lockgate.decide.sources import FolderSource
from lockgate.intake.files import FORMATS, Unreadable, read_file, scan
from lockgate.intake.runner import Incoming, Intake
from lockgate.intake.sources import SourceRun, SourceUnavailable

MARKER = ".done"


class FolderReader:
    def __init__(
        self, spec: FolderSource, project: Path, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.spec = spec
        self.folder = project / spec.path
        self.clock = clock

    def ready(self) -> list[Path]:
        """Complete files, oldest first; raises `SourceUnavailable` when the folder is gone."""
        try:
            entries = [p for p in self.folder.iterdir() if p.is_file()]
        except OSError as exc:
            raise SourceUnavailable(
                f"cannot list {self.spec.path}: {exc.strerror or type(exc).__name__}"
            ) from None
        names = {p.name for p in entries}
        chosen = []
        for path in entries:
            if path.suffix.lower() not in FORMATS or not any(
                path.match(pattern) for pattern in self.spec.patterns
            ):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if self.spec.ready == "marker":
                if path.name + MARKER not in names:
                    continue
            elif self.clock() - stat.st_mtime < self.spec.stable_s:
                continue  # still being written
            chosen.append((stat.st_mtime, path.name, path))
        return [p for _, _, p in sorted(chosen)]

    async def run(self, intake: Intake, cursor: Mapping[str, Any]) -> SourceRun:
        """Decide every ready file. `cursor` is the source's stored cursor."""
        run = SourceRun()
        # The file the cursor is in comes first: it was being read when the last run stopped
        # (a file moved in later may carry an older mtime).
        ready = sorted(self.ready(), key=lambda p: p.name != cursor.get("file"))
        for path in ready:
            done = await self._file(intake, path, cursor, run)
            if not done:
                break
            run.items.append(path.name)
        return run

    async def _file(
        self, intake: Intake, path: Path, cursor: Mapping[str, Any], run: SourceRun
    ) -> bool:
        try:
            scanned = await asyncio.to_thread(scan, path, self.spec.encoding)
        except OSError as exc:
            raise SourceUnavailable(
                f"cannot read {path.name}: {exc.strerror or type(exc).__name__}"
            ) from None
        digest = scanned.sha256
        label = f"{path.name}@{digest[:8]}"
        same = cursor.get("file") == path.name and cursor.get("sha256") == digest
        skip = int(cursor.get("row", 0)) if same else 0
        counts: Counter[str] = Counter(cursor.get("counts", {}) if same else {})
        base = {"file": path.name, "sha256": digest}
        report: dict[str, Any] = {"file": path.name, "sha256": digest}
        try:
            loaded = read_file(path, scanned, label=label)
            records: Iterator[Incoming] = loaded.records
            report.update(encoding=loaded.encoding, note=loaded.note)
            failed = False
        except Unreadable as exc:
            records = iter(
                [Incoming(label, None, f"{path.name}: {exc.reason}", {"file": path.name})]
            )
            report.update(error=exc.reason)
            failed = True
        row = sum(1 for _ in islice(records, skip))
        while chunk := list(islice(records, self.spec.batch_size)):

            def position(settled: Counter[str], n: int, row: int = row) -> dict[str, Any]:
                # The file's counts travel with its cursor: a resumed file reports them all.
                return {**base, "row": row + n, "counts": dict(counts + settled)}

            row += len(chunk)

            outcome = await intake.process(chunk, position)
            if outcome.stopped:
                run.stopped = outcome.stopped
                return False
            counts.update(outcome.counts)
            run.counts.update(outcome.counts)
        report.update(
            records=row, **{k: counts.get(k, 0) for k in ("decided", "duplicates", "quarantined")}
        )
        await asyncio.to_thread(self._finish, path, "failed" if failed else "processed", report)
        return True

    def _finish(self, path: Path, where: str, report: dict[str, Any]) -> None:
        target = self.folder / where
        target.mkdir(exist_ok=True)
        destination = target / path.name
        if destination.exists():
            destination = target / f"{path.stem}.{int(self.clock())}{path.suffix}"
        os.replace(path, destination)
        marker = path.with_name(path.name + MARKER)
        if marker.exists():
            os.replace(marker, destination.with_name(destination.name + MARKER))
        report_path = destination.with_name(destination.name + ".report.json")
        report_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
