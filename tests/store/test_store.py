"""The store, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import update

from lockgate.decide.decision import Attempt, Decision, input_hash, new_id, utcnow
from lockgate.errors import Conflict, NotFound
from lockgate.rollout.release import Release, content_hash
from lockgate.store import Store
from lockgate.store.tables import audit_log


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    yield store
    store.close()


def draft(spec: dict) -> Release:
    return Release("routing", 0, content_hash(spec, {}), spec, {}, "draft", utcnow())


def decision(key: str, text: str = "hello", **changes: object) -> Decision:
    base = Decision(
        id=new_id(),
        task="routing",
        release=1,
        idempotency_key=key,
        input_hash=input_hash({"text": text}),
        input={"text": text},
        redacted_input={"text": text},
        output={"queue": "cards"},
        confidence=0.9,
        route="auto",
        status="decided",
        reason="confident",
        cost=0.001,
        latency_ms=3.0,
        created_at=utcnow(),
        attempts=(Attempt("deterministic", None, "deterministic:routing", 1.0, "valid"),),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_migrations_are_current_after_opening(empty_database_url: str) -> None:
    store = Store(empty_database_url)
    try:
        current, head = store.migration_state()
    finally:
        store.close()
    assert current == head is not None


def test_opening_a_database_behind_the_newest_revision_migrates_it(
    empty_database_url: str,
) -> None:
    from alembic import command

    from lockgate.store import database

    engine = database.make_engine(empty_database_url)
    try:
        with engine.begin() as conn:
            command.upgrade(database.alembic_config(conn), "0001")
        assert database.migration_state(engine)[0] == "0001"
    finally:
        engine.dispose()
    store = Store(empty_database_url)
    try:
        current, head = store.migration_state()
    finally:
        store.close()
    assert current == head != "0001"


def test_the_revisions_read_without_alembic_are_alembics(empty_database_url: str) -> None:
    """Opening a store reads the newest revision from the scripts' text and the current one
    with a query, without importing Alembic: both must be what Alembic itself says."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from lockgate.store import database

    engine = database.make_engine(empty_database_url)
    try:
        with engine.connect() as conn:
            assert database._current(conn) is None
        database.upgrade(engine)
        with engine.connect() as conn:
            assert (
                database._current(conn) == MigrationContext.configure(conn).get_current_revision()
            )
    finally:
        engine.dispose()
    assert database._head() == ScriptDirectory(str(database.MIGRATIONS)).get_current_head()


def test_a_command_that_finds_its_database_current_never_imports_alembic(
    tmp_path: Path,
) -> None:
    """Alembic costs most of a second per process; only a pending migration pays it."""
    url = f"sqlite:///{tmp_path / 'lockgate.db'}"
    Store(url).close()
    probe = (
        "import sys; from lockgate.store import Store; Store(sys.argv[1]).close(); "
        "print('alembic' in sys.modules)"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe, url], capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "False"


def test_releases_are_numbered_per_task_and_never_duplicated(store: Store) -> None:
    first, created = store.releases.create(draft({"v": 1}), "alice")
    assert (first.ref, created) == ("routing@1", True)
    again, created = store.releases.create(draft({"v": 1}), "alice")
    assert (again.ref, created) == ("routing@1", False)
    second, _ = store.releases.create(draft({"v": 2}), "alice")
    assert second.ref == "routing@2"
    assert [r.number for r in store.releases.list_for("routing")] == [1, 2]


def test_promote_and_rollback_flip_the_live_pointer(store: Store) -> None:
    store.releases.create(draft({"v": 1}), "a")
    store.releases.create(draft({"v": 2}), "a")
    store.releases.promote("routing", 1, "a")
    store.releases.promote("routing", 2, "a")
    assert store.releases.live("routing").number == 2  # type: ignore[union-attr]
    back = store.releases.rollback("routing", "a", "bad numbers")
    assert back.number == 1
    assert store.releases.live("routing").number == 1  # type: ignore[union-attr]
    assert [r.stage for r in store.releases.list_for("routing")] == ["live", "retired"]


def test_rollback_without_a_previous_release_is_refused(store: Store) -> None:
    store.releases.create(draft({"v": 1}), "a")
    with pytest.raises(NotFound):
        store.releases.rollback("routing", "a")
    store.releases.promote("routing", 1, "a")
    with pytest.raises(Conflict, match="nothing to roll back to"):
        store.releases.rollback("routing", "a")


def test_release_changes_are_audited_in_an_intact_chain(store: Store) -> None:
    store.releases.create(draft({"v": 1}), "alice")
    store.releases.promote("routing", 1, "alice", "first")
    actions = [e.action for e in store.audit.entries("routing")]
    assert actions == ["release.created", "release.promote"]
    assert store.audit.verify() is None


def test_a_changed_audit_entry_is_detected(store: Store) -> None:
    store.releases.create(draft({"v": 1}), "alice")
    store.releases.promote("routing", 1, "alice")
    with store.engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == 1).values(actor="mallory"))
    assert store.audit.verify() == 1


def test_a_decision_is_stored_with_its_attempts(store: Store) -> None:
    (saved,) = store.decisions.save([decision("k1")])
    loaded = store.decisions.get(saved.id)
    assert loaded is not None
    assert loaded.output == {"queue": "cards"}
    assert [a.provider for a in loaded.attempts] == ["deterministic"]
    assert loaded.created_at.tzinfo is not None


def test_the_first_writer_of_an_idempotency_key_wins(store: Store) -> None:
    (first,) = store.decisions.save([decision("k1")])
    late = decision("k1", output={"queue": "fraud"})
    (returned,) = store.decisions.save([late])
    assert returned.id == first.id
    assert returned.output == {"queue": "cards"}
    assert store.decisions.get(late.id) is None


def test_find_decisions_by_key(store: Store) -> None:
    store.decisions.save([decision("k1"), decision("k2", "other")])
    found = store.decisions.find("routing", ["k1", "k2", "k3"])
    assert sorted(found) == ["k1", "k2"]


def test_automated_decisions_get_one_outbox_row_per_sink(store: Store) -> None:
    from sqlalchemy import select

    from lockgate.store.tables import outbox

    store.decisions.save(
        [decision("k1"), decision("k2", "x", status="pending_review", route="review")],
        sinks=["0:webhook", "1:file"],
    )
    with store.engine.connect() as conn:
        rows = conn.execute(select(outbox.c.sink)).all()
    assert sorted(r.sink for r in rows) == ["0:webhook", "1:file"]


def test_the_migrated_schema_matches_the_table_definitions(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from lockgate.store.tables import metadata

    with store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []
