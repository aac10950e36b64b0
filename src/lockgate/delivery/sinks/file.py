"""The `file` sink: one JSON line per decision, fsynced, never the same decision twice."""

from __future__ import annotations

import fcntl
import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from lockgate.delivery.sinks.base import DeliveryFailed, SinkContext
from lockgate.delivery.sinks.signature import payload_body
from lockgate.delivery.types import OutboxRow

if TYPE_CHECKING:
    # The task-file spec types pull pydantic and YAML; here they are only annotations.
    from lockgate.decide.task import FileSinkSpec


class JsonlFile:
    """An append-only JSONL file that holds each decision id at most once.

    Under an exclusive `flock` (so several processes may share the file) it reads what others
    appended since it last looked, drops a torn last line left by a crash mid-write, skips a
    decision already in the file and otherwise appends its line, then fsyncs. A re-delivery
    after a crash between the write and the outbox update therefore writes nothing twice."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._ids: set[str] = set()
        self._offset = 0

    def append(self, decision_id: str, line: bytes) -> bool:
        """Append `line` unless `decision_id` is in the file already; True when written."""
        with self._lock:
            created = not self.path.exists()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._catch_up(fd)
                if decision_id in self._ids:
                    return False
                os.write(fd, line)
                os.fsync(fd)
                self._ids.add(decision_id)
                self._offset += len(line)
            finally:
                os.close(fd)  # also releases the flock
            if created:
                _fsync_dir(self.path.parent)
            return True

    def _catch_up(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        if size < self._offset:  # truncated or replaced: read it all again
            self._ids.clear()
            self._offset = 0
        if size == self._offset:
            return
        chunk = os.pread(fd, size - self._offset, self._offset)
        complete = chunk.rfind(b"\n") + 1
        if complete < len(chunk):  # a line torn by a crash mid-write was never acknowledged
            os.ftruncate(fd, self._offset + complete)
        for raw in chunk[:complete].splitlines():
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("id"), str):
                self._ids.add(record["id"])
        self._offset += complete


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileSink:
    """Append one JSON line per decision to a file in the project folder."""

    def __init__(self, spec: FileSinkSpec, context: SinkContext) -> None:
        self.spec = spec
        self.file = JsonlFile(context.project_dir / spec.path)

    @classmethod
    def from_spec(cls, spec: FileSinkSpec, context: SinkContext) -> FileSink:
        return cls(spec, context)

    async def send(self, row: OutboxRow) -> None:
        import asyncio  # here, not at the top: a webhook receiver's verify_signature needs none

        line = payload_body(row.payload) + b"\n"
        try:
            await asyncio.to_thread(self.file.append, row.decision_id, line)
        except OSError as exc:
            raise DeliveryFailed(f"cannot append to {self.spec.path}: {exc.strerror}") from None

    async def aclose(self) -> None:
        """Nothing is held open between deliveries."""
