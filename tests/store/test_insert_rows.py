"""`driver.insert_rows`, the driver-level insert of decisions and attempts on SQLite, stores
every value exactly as SQLAlchemy's own insert stores it: other queries compare and parse
these columns (datetimes as text, JSON), so one differing format would split them."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from lockgate.decide.decision import Attempt
from lockgate.store import Store, database, driver
from lockgate.store.decisions import _row
from lockgate.store.tables import attempts, decisions
from tests.store.test_store import decision


def stored(path: Path, table: str, where: str, value: str) -> tuple[object, ...]:
    with sqlite3.connect(path) as raw:
        row = raw.execute(f"SELECT * FROM {table} WHERE {where} = ?", (value,)).fetchone()
    assert row is not None
    return tuple(row)


def test_rows_are_stored_as_sqlalchemys_insert_stores_them(tmp_path: Path) -> None:
    path = tmp_path / "lockgate.db"
    store = Store(f"sqlite:///{path}")
    # Values that exercise each conversion: microseconds, unicode, floats,
    # None in nullable JSON and text columns, nested JSON.
    made = datetime(2026, 11, 29, 23, 59, 58, 123456, tzinfo=UTC)  # decisions are made in UTC
    shape = dict(
        text="Zoë, 🧾 ticket",
        output=None,
        alternatives={"queue": ["cards", "loans"], "scores": [0.5, 0.25]},
        metadata={"source": {"path": "a/b.csv", "line": 7}},
        created_at=made,
        confidence=None,
        route=None,
        submitted_by=None,
        attempts=(Attempt("openai", "gpt", "https://x/v1", 12.5, "error", "Timeout", "slow"),),
    )
    ours, theirs = decision("ours", **shape), decision("theirs", **shape)  # type: ignore[arg-type]
    try:
        with store.engine.begin() as conn:
            inserted = driver.insert_rows(
                conn, decisions, [_row(ours)], or_ignore=True, returning="id"
            )
            again = driver.insert_rows(
                conn, decisions, [_row(ours)], or_ignore=True, returning="id"
            )
            conn.execute(decisions.insert(), [_row(theirs)])
            trail = {"seq": 1, **{k: getattr(ours.attempts[0], k) for k in _ATTEMPT}}
            driver.insert_rows(conn, attempts, [{"decision_id": ours.id, **trail}])
            conn.execute(attempts.insert(), [{"decision_id": theirs.id, **trail}])
        read_back = store.decisions.get(ours.id)
    finally:
        store.close()
    assert inserted == [ours.id] and again == []  # a stored key is skipped, not returned
    a = stored(path, "decisions", "id", ours.id)
    b = stored(path, "decisions", "id", theirs.id)
    differ = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    assert differ == [0, 3]  # only the id and the idempotency key
    assert (
        stored(path, "attempts", "decision_id", ours.id)[2:]
        == stored(path, "attempts", "decision_id", theirs.id)[2:]
    )
    assert read_back is not None
    assert read_back.created_at == made
    assert read_back.input == {"text": "Zoë, 🧾 ticket"}
    assert read_back.alternatives == shape["alternatives"]
    assert read_back.attempts[0].error_class == "Timeout"


_ATTEMPT = (
    "provider", "model", "endpoint", "latency_ms", "outcome", "error_class", "message",
    "input_tokens", "output_tokens", "cost", "repair",
)  # fmt: skip


def test_a_refused_row_raises_sqlalchemys_error_without_the_values(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'lockgate.db'}")
    orphan = {"decision_id": "no-such-decision", "seq": 1, **dict.fromkeys(_ATTEMPT, 0)}
    orphan.update(provider="p", endpoint="Alice Example, 221B Baker Street", outcome="valid")
    try:
        with pytest.raises(IntegrityError) as raised, store.engine.begin() as conn:
            driver.insert_rows(conn, attempts, [orphan])  # the foreign key refuses it
    finally:
        store.close()
    assert "FOREIGN KEY" in str(raised.value)
    assert "Alice" not in str(raised.value) and "hidden" in str(raised.value)


def test_many_rows_are_split_below_the_drivers_limit_of_parameters(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'lockgate.db'}")
    batch = [decision(f"k-{i}") for i in range(1_234)]
    try:
        with store.engine.begin() as conn:
            ids = driver.insert_rows(conn, decisions, [_row(d) for d in batch], returning="id")
        with database.read(store.engine) as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(decisions)).scalar()
    finally:
        store.close()
    assert sorted(ids) == sorted(d.id for d in batch) and count == 1_234


def test_it_refuses_another_database(postgres_database_url: str) -> None:
    store = Store(postgres_database_url)
    try:
        with pytest.raises(ValueError, match="runs on SQLite"), store.engine.begin() as conn:
            driver.insert_rows(conn, decisions, [_row(decision("k"))])
    finally:
        store.close()


def test_batches_of_every_size_share_a_few_prepared_statements(tmp_path: Path) -> None:
    # A connection keeps its statements prepared; one per batch size held up to 64 of them,
    # each with up to a thousand parameters: megabytes a server never gave back.
    store = Store(f"sqlite:///{tmp_path / 'lockgate.db'}")
    statements: set[str] = set()
    try:
        with driver.write(store.engine) as conn:
            assert isinstance(conn, driver.Driver)
            conn.connection.set_trace_callback(statements.add)
            for size in range(1, 65):
                batch = [_row(decision(f"k-{size}-{i}")) for i in range(size)]
                ids = driver.insert_rows(conn, decisions, batch, returning="id")
                assert sorted(ids) == sorted(row["id"] for row in batch)
            conn.connection.set_trace_callback(None)
    finally:
        store.close()
    # The trace shows each statement with its values in place: its shape is its row count.
    shapes = {s.count("), (") + 1 for s in statements if s.startswith("INSERT")}
    assert shapes == {1, 2, 4, 8, 16, 32, 64}
