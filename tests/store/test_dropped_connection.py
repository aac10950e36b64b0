"""Without a pre-ping on every checkout, a pooled connection the server dropped is found dead
on first use; reads and the decisions' idempotent save retry once on a fresh connection."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from lockgate.store import Store
from tests.store.test_store import decision


def drop_other_connections(url: str) -> int:
    """What a database restart or an idle-connection killer does to the pool."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return len(
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE pid <> pg_backend_pid() AND datname = current_database()"
                    )
                ).all()
            )
    finally:
        engine.dispose()


def test_reads_and_saves_survive_connections_the_server_dropped(
    postgres_database_url: str,
) -> None:
    store = Store(postgres_database_url)

    async def scenario() -> None:
        decisions = store.async_decisions
        await decisions.save([decision("before")])
        assert set(await decisions.find("routing", ["before"])) == {"before"}
        assert drop_other_connections(postgres_database_url) >= 1
        assert set(await decisions.find("routing", ["before"])) == {"before"}
        assert drop_other_connections(postgres_database_url) >= 1
        (saved,) = await decisions.save([decision("after")])
        assert saved.idempotency_key == "after"
        assert set(await decisions.find("routing", ["before", "after"])) == {"before", "after"}

    try:
        asyncio.run(scenario())
    finally:
        store.close()
