"""`lockgate serve` polls the folder, imap and sql sources itself, one replica per source (by
lease): two servers on one database decide a dropped file once."""

from __future__ import annotations

import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from lockgate.runtime import Runtime
from lockgate.server import create_app
from lockgate.settings import load_settings
from lockgate.store import Store
from tests.intake.kit import decision_keys, drop, folder_source, prepare, query, show


def test_a_lease_is_held_by_one_owner_until_it_expires_or_is_released(database_url: str) -> None:
    store = Store(database_url)
    try:
        leases = store.intake
        at = datetime(2026, 1, 1, tzinfo=UTC)
        later = at + timedelta(seconds=30)
        assert leases.lease("routing", "inbox", "a", later, at)
        assert not leases.lease("routing", "inbox", "b", later, at + timedelta(seconds=10))
        assert leases.lease("routing", "inbox", "a", later, at + timedelta(seconds=10)), "renewal"
        assert leases.lease("routing", "inbox", "b", later + timedelta(seconds=30), later)
        leases.release_lease("routing", "inbox", "b")
        assert leases.lease("routing", "inbox", "a", later, at)
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
        owners = {r[0] for r in query(database_url, "select lease_owner from intake_sources")}
        assert len(owners) == 1 and None not in owners, "one replica holds the source"
    assert (project / "inbox" / "processed" / "a.csv").exists()
    keys = decision_keys(database_url)
    assert len(keys) == len(set(keys)) == 300
    counts = show(project, database_url, "inbox")
    assert (counts["records"], counts["decided"]) == (300, 300)
    released = query(database_url, "select lease_owner from intake_sources")
    assert [r[0] for r in released] == [None], "a stopping server hands its leases back"
