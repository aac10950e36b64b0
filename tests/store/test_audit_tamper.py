"""Tampering with the audit log by direct SQL is found by `verify`, which names the first
broken entry and why: a changed entry, a deleted one, two entries swapped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select, update

from lockgate.store import Store
from lockgate.store.tables import audit_log

COLUMNS = ("at", "actor", "action", "task", "subject", "details", "prev_hash", "hash")


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    for name in ("ann", "bob", "cy", "dee", "eve"):
        store.keys.create(name, "viewer", (), actor="admin")
    store.keys.revoke("bob", actor="admin")
    try:
        yield store
    finally:
        store.close()


def _row(store: Store, entry_id: int) -> dict[str, object]:
    with store.engine.connect() as conn:
        row = conn.execute(select(audit_log).where(audit_log.c.id == entry_id)).mappings().one()
    return {c: row[c] for c in COLUMNS}


def test_an_untouched_log_verifies(store: Store) -> None:
    assert len(store.audit.entries()) == 6
    assert store.audit.first_break() is None
    assert store.audit.verify() is None


def test_a_changed_entry_is_named_as_changed(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == 3).values(actor="someone-else"))
    broken = store.audit.first_break()
    assert broken is not None
    assert (broken.entry.id, broken.entry.action) == (3, "key.created")
    assert "changed" in broken.why
    assert store.audit.verify() == 3


def test_a_changed_entry_with_a_recomputed_hash_breaks_the_next_link(store: Store) -> None:
    """Someone who also rewrites the entry's hash still breaks the link from the entry after."""
    from lockgate.store.audit import entry_hash

    row = _row(store, 3)
    details = {**dict(row["details"]), "role": "admin"}  # type: ignore[call-overload]
    forged = entry_hash(
        str(row["prev_hash"]),
        row["at"],
        str(row["actor"]),
        str(row["action"]),  # type: ignore[arg-type]
        row["task"],
        row["subject"],
        details,  # type: ignore[arg-type]
    )
    with store.engine.begin() as conn:
        conn.execute(
            update(audit_log).where(audit_log.c.id == 3).values(details=details, hash=forged)
        )
    broken = store.audit.first_break()
    assert broken is not None and broken.entry.id == 4


def test_a_deleted_entry_is_named_as_a_gap(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(audit_log.delete().where(audit_log.c.id == 3))
    broken = store.audit.first_break()
    assert broken is not None and broken.entry.id == 4
    assert "deleted" in broken.why and "3-3 missing" in broken.why


def test_two_swapped_entries_are_named_as_reordered(store: Store) -> None:
    second, fourth = _row(store, 2), _row(store, 4)
    with store.engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == 2).values(**fourth))
        conn.execute(update(audit_log).where(audit_log.c.id == 4).values(**second))
    broken = store.audit.first_break()
    assert broken is not None and broken.entry.id == 2
    assert "reordered" in broken.why
    assert broken.entry.hash == fourth["hash"]  # what was entry 4 now sits at id 2
