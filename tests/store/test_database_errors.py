"""A database error names the statement, never the values bound to it: they hold input, and
input holds personal data."""

from __future__ import annotations

import traceback

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from lockgate.store import Store
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
