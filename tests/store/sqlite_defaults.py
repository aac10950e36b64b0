"""SQLite as built by its authors: `secure_delete` off unless a connection turns it on.

Debian builds SQLite with `secure_delete` on by default, which would hide whether Lockgate
turns it on itself where it must (retention and erasure): inside this context, every SQLite
connection opened starts with it off."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event


@contextmanager
def secure_delete_off_by_default() -> Iterator[None]:
    def off(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.execute("PRAGMA secure_delete=OFF")

    event.listen(Engine, "connect", off)
    try:
        yield
    finally:
        event.remove(Engine, "connect", off)
