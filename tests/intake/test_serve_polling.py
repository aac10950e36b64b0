"""`lockgate serve` polls the folder, imap and sql sources itself, one replica per source (by
lease): two servers on one database decide a dropped file once."""

from __future__ import annotations

import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from lockgate.intake.poller import lease_name
from lockgate.runtime import Runtime
from lockgate.server import create_app
from lockgate.settings import load_settings
from lockgate.store import Store
from tests.intake.kit import decision_keys, drop, folder_source, prepare, query, show

SOURCE_LEASES = "select owner from leases where name = 'intake:routing:inbox'"


def test_a_source_lease_is_held_by_one_owner_until_it_lapses_or_is_given_up(
    database_url: str,
) -> None:
    store = Store(database_url)
    try:
        leases = store.leases
        name = lease_name("routing", "inbox")
        at = datetime(2026, 1, 1, tzinfo=UTC)
        assert leases.take(name, "a", 30, at)
        assert not leases.take(name, "b", 30, at + timedelta(seconds=10))
        assert leases.take(name, "a", 30, at + timedelta(seconds=10)), "renewal"
        assert leases.take(name, "b", 30, at + timedelta(seconds=41)), "lapsed"
        leases.give_up(name, "b")
        assert leases.take(name, "a", 30, at + timedelta(seconds=42))
        # Another source's lease is another name.
        assert leases.take(lease_name("routing", "crm"), "b", 30, at + timedelta(seconds=42))
    finally:
        store.close()


def test_two_servers_decide_a_dropped_file_once(tmp_path: Path, database_url: str) -> None:
    project = prepare(tmp_path / "p", database_url, folder_source(poll_s="0.1", key="'{id}'"))
    settings = load_settings(project, database_url=database_url, environ={})
    rows = "".join(f"{i},ticket number {i}\n" for i in range(300))
    with ExitStack() as stack:
        for _ in range(2):
            runtime = Runtime.open(settings)
            stack.callback(runtime.close)
            stack.enter_context(TestClient(create_app(settings, runtime=runtime)))
        drop(project, "a.csv", "id,text\n" + rows)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (project / "inbox" / "processed").exists():
            time.sleep(0.05)
        owners = query(database_url, SOURCE_LEASES)
        assert len(owners) == 1, "one replica holds the source"
    assert (project / "inbox" / "processed" / "a.csv").exists()
    keys = decision_keys(database_url)
    assert len(keys) == len(set(keys)) == 300
    counts = show(project, database_url, "inbox")
    assert (counts["records"], counts["decided"]) == (300, 300)
    assert query(database_url, SOURCE_LEASES) == [], "a stopping server hands its leases back"
