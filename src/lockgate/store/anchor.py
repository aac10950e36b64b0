"""The audit anchor: the head of the audit log (id, hash, time) kept outside the database.

The hash chain shows a changed, moved or deleted entry in the middle of the log, but deleting
the newest entries leaves no trace in the chain itself. An anchor file written elsewhere (by
`lockgate audit anchor --out FILE`, or after every audited change with the setting
`audit_anchor_file`) remembers how far the log went: `lockgate audit verify --anchor FILE`
fails when the anchored entry is missing or changed.

The file is replaced atomically and never moved back: a writer that finds a newer head in the
file leaves it, so two processes writing at once never make the anchor older than the log.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from lockgate.errors import ConfigError
from lockgate.files import replaced
from lockgate.store import audit, database
from lockgate.store.audit import Head

log = logging.getLogger("lockgate.audit")


def write(path: Path, head: Head) -> bool:
    """Write `head` to the anchor file unless the file already holds a newer one; whether it
    was written."""
    try:
        current = read(path)
    except ConfigError:
        current = None
    if current is not None and current.id > head.id:
        return False
    body = json.dumps(
        {"audit_head": {"id": head.id, "hash": head.hash, "at": head.at.isoformat()}}, indent=2
    )
    with replaced(path) as out:
        out.write(body + "\n")
    return True


def read(path: Path) -> Head | None:
    """The head an anchor file holds; None when the file does not exist."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))["audit_head"]
        return Head(int(data["id"]), str(data["hash"]), datetime.fromisoformat(data["at"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path} is not an audit anchor ({type(exc).__name__})",
            hint="write one with `lockgate audit anchor --out FILE`",
        ) from None


def problem(anchored: Head, found_hash: str | None, newest: Head | None) -> str | None:
    """Why the log does not reach the anchored head, or None when it does."""
    if found_hash is None:
        now = f"the newest entry is {newest.id}" if newest else "the log is empty"
        return (
            f"the anchored entry {anchored.id} ({anchored.at.isoformat()}) is missing and "
            f"{now}: the newest entries were deleted"
        )
    if found_hash != anchored.hash:
        return f"entry {anchored.id} is not the entry that was anchored: its hash changed"
    return None


def follow(engine: Engine, path: Path) -> None:
    """Write the anchor after every transaction that appended an audit entry on `engine`
    (when its connection goes back to the pool, committed or not: the head written is always
    read from the database, so it is never ahead of what was committed)."""

    @event.listens_for(engine.pool, "checkin")
    def _after(_dbapi_connection: Any, record: Any) -> None:
        if record is None or not record.info.pop(audit.APPENDED, False):
            return
        try:
            with database.read(engine) as conn:
                head = audit.head(conn)
            if head is not None:
                write(path, head)
        except Exception as exc:  # the change is committed; a missed anchor is only logged
            log.warning(
                "audit.anchor_not_written",
                extra={"path": str(path), "error": type(exc).__name__},
            )
