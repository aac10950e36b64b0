"""Outbox queries: a final outcome becomes one row per sink, in the transaction that made it
final; the delivery worker sends the rows later."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection

from lockgate.decision import Decision, utcnow
from lockgate.store.tables import outbox


def enqueue(conn: Connection, finals: Iterable[Decision], sinks: Sequence[str]) -> int:
    """Add one pending outbox row per (decision, sink) for decisions that just became final.

    Call it inside the transaction that stores the final outcome, so a crash either keeps both
    or neither. The unique (decision_id, sink) constraint refuses a second row for the same
    pair. Returns the number of rows added."""
    now = utcnow()
    rows = [
        {
            "decision_id": d.id,
            "sink": sink,
            "payload": d.public(),
            "status": "pending",
            "tries": 0,
            "created_at": now,
        }
        for d in finals
        for sink in sinks
    ]
    if rows:
        conn.execute(outbox.insert(), rows)
    return len(rows)
