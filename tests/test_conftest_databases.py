"""Checks that the shared fixtures in conftest.py give working databases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.pool import NullPool


def test_database_roundtrip(empty_database_url: str, request: pytest.FixtureRequest) -> None:
    backend = request.node.callspec.params["empty_database_url"]
    engine = sa.create_engine(empty_database_url, poolclass=NullPool)
    try:
        assert engine.dialect.name == backend
        metadata = sa.MetaData()
        items = sa.Table(
            "roundtrip_items",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(50), nullable=False),
        )
        with engine.begin() as conn:
            # Each test of migrating gets a fresh, empty database.
            assert sa.inspect(conn).get_table_names() == []
            metadata.create_all(conn)
            conn.execute(sa.insert(items), [{"name": "alpha"}, {"name": "beta"}])
        with engine.connect() as conn:
            names = conn.execute(sa.select(items.c.name).order_by(items.c.id)).scalars().all()
            assert names == ["alpha", "beta"]
            if backend == "postgresql":
                version = conn.execute(sa.text("select version()")).scalar_one()
                assert "PostgreSQL" in version
                database = conn.execute(sa.text("select current_database()")).scalar_one()
                assert database.startswith("lg_test_")
    finally:
        engine.dispose()


def test_database_url_is_migrated_to_the_newest_revision_and_holds_no_rows(
    database_url: str, request: pytest.FixtureRequest
) -> None:
    from lockgate.store import database
    from lockgate.store.tables import metadata

    backend = request.node.callspec.params["database_url"]
    engine = sa.create_engine(database_url, poolclass=NullPool)
    try:
        assert engine.dialect.name == backend
        current, head = database.migration_state(engine)
        assert current == head is not None
        with engine.connect() as conn:
            for table in metadata.sorted_tables:
                count = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                assert count == 0, table.name
            if backend == "postgresql":
                name = conn.execute(sa.text("select current_database()")).scalar_one()
                assert name.startswith("lg_test_")
    finally:
        engine.dispose()


def test_project_dir_and_write_task(
    project_dir: Path, write_task: Callable[[Path, str], Path]
) -> None:
    assert (project_dir / "tasks").is_dir()
    path = write_task(
        project_dir,
        """
        name: triage
        description: route support tickets
        """,
    )
    assert path == project_dir / "tasks" / "triage.yaml"
    assert yaml.safe_load(path.read_text()) == {
        "name": "triage",
        "description": "route support tickets",
    }
    with pytest.raises(ValueError):
        write_task(project_dir, "description: no name\n")


def test_a_postgresql_database_comes_back_empty_and_unchanged_or_not_at_all(
    postgres_template: str,
) -> None:
    """What the next test relies on when it gets a database another test used: no rows, no
    table the other test made, sequences from the start, no session of the other test; and a
    database whose schema the other test changed is dropped rather than handed on."""
    from lockgate.store.tables import metadata
    from tests.conftest import PostgresPool, _require_postgres

    pool = PostgresPool(_require_postgres(), postgres_template)
    try:
        name = pool.take()
        engine = sa.create_engine(pool.url(name), poolclass=NullPool)
        leaked = engine.connect()  # a session the test never closed, inside a transaction
        leaked.execute(sa.text("create table crm_tickets (id integer primary key)"))
        leaked.execute(sa.text("insert into crm_tickets values (1)"))
        leaked.execute(
            sa.text(
                "insert into api_keys (id, name, key_hash, role, tasks, created_at)"
                " values ('k1', 'ops', 'x', 'admin', '[]', now())"
            )
        )
        sequence = leaked.execute(
            sa.text("select sequencename from pg_sequences where schemaname = 'public' limit 1")
        ).scalar_one()
        first = leaked.execute(sa.text(f"select nextval('{sequence}')")).scalar_one()
        leaked.execute(sa.text(f"select nextval('{sequence}')"))
        leaked.commit()
        leaked.execute(sa.text("select 1 from api_keys for update"))  # holds a row lock

        pool.give_back(name)
        leaked.invalidate()  # its session was ended by give_back

        assert pool.free == [name]
        again = pool.take()
        assert again == name
        with engine.connect() as conn:
            tables = set(conn.execute(sa.text("select tablename from pg_tables")).scalars())
            assert "crm_tickets" not in tables
            for table in metadata.sorted_tables:
                count = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                assert count == 0, table.name
            assert conn.execute(sa.text(f"select nextval('{sequence}')")).scalar_one() == first
            others = conn.execute(
                sa.text(
                    "select count(*) from pg_stat_activity"
                    " where datname = current_database() and pid <> pg_backend_pid()"
                )
            ).scalar_one()
            assert others == 0
            conn.execute(sa.text("alter table decisions add column note text"))
            conn.commit()
        pool.give_back(name)
        assert pool.free == [] and pool.made == []
        engine.dispose()
        admin = sa.create_engine(pool.admin_url, poolclass=NullPool)
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("select count(*) from pg_database where datname = :n"), {"n": name}
            ).scalar_one()
        admin.dispose()
        assert exists == 0
    finally:
        pool.close()
