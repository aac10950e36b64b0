"""A database error names the statement, never the values bound to it: they hold input, and
input holds personal data."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from lockgate.store import Store
from tests.cli.kit import lockgate, make_project
from tests.store.test_store import decision

PLAIN_PII = "Alice Example of 221B Baker Street"


def refuse_new_decisions(database_url: str) -> None:
    """A trigger that makes every insert into `decisions` fail inside the database."""
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                conn.execute(
                    sa.text(
                        "CREATE TRIGGER refuse BEFORE INSERT ON decisions "
                        "BEGIN SELECT RAISE(ABORT, 'refused by test'); END"
                    )
                )
            else:
                conn.execute(
                    sa.text(
                        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                        "$$ BEGIN RAISE EXCEPTION 'refused by test'; END $$"
                    )
                )
                conn.execute(
                    sa.text(
                        "CREATE TRIGGER refuse BEFORE INSERT ON decisions "
                        "FOR EACH ROW EXECUTE FUNCTION refuse()"
                    )
                )
    finally:
        engine.dispose()


def test_a_failed_write_shows_no_bound_values(database_url: str) -> None:
    refuse_new_decisions(database_url)
    store = Store(database_url)
    try:
        with pytest.raises(DBAPIError) as raised:
            store.decisions.save([decision("k-1", text=PLAIN_PII)])
    finally:
        store.close()
    shown = "".join(traceback.format_exception(raised.value))
    assert "refused by test" in shown
    assert "hidden due to hide_parameters" in shown
    assert PLAIN_PII not in shown
    assert PLAIN_PII not in repr(raised.value)


def test_postgres_urls_are_accepted_as_postgresql(
    postgres_database_url: str, tmp_path: Path
) -> None:
    url = postgres_database_url.replace("postgresql+psycopg://", "postgres://", 1)
    url = url.replace("postgresql://", "postgres://", 1)
    assert url.startswith("postgres://")
    upgraded = lockgate("db", "upgrade", "--database", url, cwd=tmp_path)
    assert "schema at" in upgraded.stdout


def test_an_unreachable_server_is_named_with_host_port_and_reason(tmp_path: Path) -> None:
    refused = lockgate("db", "upgrade", "--database", "postgresql://nobody:secret@127.0.0.1:1/x",
                       cwd=tmp_path, check=False)  # fmt: skip
    assert refused.returncode == 2
    assert "cannot reach the database at host 127.0.0.1, port 1, database x: " in refused.stderr
    assert "Connection refused" in refused.stderr
    assert "secret" not in refused.stderr


def test_a_sqlite_path_in_a_folder_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    refused = lockgate("db", "upgrade", "--database", f"sqlite:///{tmp_path}/nowhere/x.db",
                       cwd=tmp_path, check=False)  # fmt: skip
    assert refused.returncode == 2
    assert f"there is no folder {tmp_path}/nowhere for the SQLite database" in refused.stderr
    assert not (tmp_path / "nowhere").exists()
    # A project's own .lockgate folder is made when missing, as on its first command.
    own = f"sqlite:///{tmp_path}/.lockgate/lockgate.db"
    assert "schema at" in lockgate("db", "upgrade", "--database", own, cwd=tmp_path).stdout


def test_a_new_sqlite_file_outside_the_project_is_refused_until_db_upgrade(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path / "project")
    elsewhere = tmp_path / "shared"
    elsewhere.mkdir()
    typo = f"sqlite:///{elsewhere}/lockgat.db"  # the folder exists; the name is mistyped
    refused = lockgate("release", "list", "routing", cwd=project, database=typo, check=False)
    assert refused.returncode == 2
    assert (
        f"there is no SQLite database at {elsewhere}/lockgat.db, outside the project folder "
        f"{project}"
    ) in refused.stderr
    assert f"lockgate db upgrade --database sqlite:///{elsewhere}/lockgat.db" in refused.stderr
    assert not (elsewhere / "lockgat.db").exists()
    # A file that is not a Lockgate database is not migrated into one either.
    (elsewhere / "other.db").write_bytes(b"")
    other = f"sqlite:///{elsewhere}/other.db"
    listed = lockgate("release", "list", "routing", cwd=project, database=other, check=False)
    assert listed.returncode == 2
    assert "no Lockgate database is at" in listed.stderr
    # Made on purpose, it serves every command.
    made = f"sqlite:///{elsewhere}/lockgate.db"
    assert "schema at" in lockgate("db", "upgrade", "--database", made, cwd=project).stdout
    lockgate("release", "list", "routing", cwd=project, database=made)
    # Inside the project folder a new database is expected, as on a project's first command.
    inside = f"sqlite:///{project}/data/lockgate.db"
    (project / "data").mkdir()
    lockgate("release", "list", "routing", cwd=project, database=inside)
    assert (project / "data" / "lockgate.db").exists()
