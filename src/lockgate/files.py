"""Replacing a file at once: a reader sees the old content or the new, never half of either,
and a crash part-way leaves the old file as it was."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def replaced(path: Path, binary: bool = False, *, keep_mode: bool = False) -> Iterator[IO[Any]]:
    """A new file beside `path`, open for writing (UTF-8 text, newlines as written, unless
    `binary`). When the block ends it is flushed to disk and renamed over `path`; when the
    block raises it is removed and `path` is untouched. The new file is readable by its owner
    only, unless `keep_mode`: then it takes `path`'s permissions (0644 for a new file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with (
            os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")
        ) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if keep_mode:
            os.chmod(temp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
