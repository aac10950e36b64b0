"""API keys: stored only as a hash, checked in constant time, revocable, audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lockgate.errors import Conflict, Forbidden, NotFound
from lockgate.security import PERMISSIONS, ROLES, Principal, hash_key, parse_bearer
from lockgate.store import Store
from lockgate.store.tables import api_keys


def test_a_new_key_is_shown_once_and_stored_only_as_its_hash(database_url: str) -> None:
    store = Store(database_url)
    key, secret = store.keys.create("ci", "submitter", ["routing"], actor="alice")
    assert secret.startswith("lg_") and len(secret) > 40
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(api_keys)).mappings()]
    assert rows[0]["key_hash"] == hash_key(secret)
    assert all(secret not in str(value) for value in rows[0].values())
    assert store.keys.authenticate(secret) == key
    assert key.tasks == ("routing",)
    store.close()


def test_unknown_and_revoked_keys_do_not_authenticate(database_url: str) -> None:
    store = Store(database_url)
    _, secret = store.keys.create("ci", "viewer", [], actor="alice")
    assert store.keys.authenticate(secret + "x") is None
    store.keys.revoke("ci", actor="alice")
    assert store.keys.authenticate(secret) is None
    store.close()


def test_creating_and_revoking_keys_is_audited_in_the_chain(database_url: str) -> None:
    store = Store(database_url)
    key, _ = store.keys.create("ci", "viewer", [], actor="alice")
    store.keys.revoke(key.id, actor="bob")
    entries = store.audit.entries()
    assert [(e.action, e.actor) for e in entries] == [
        ("key.created", "alice"),
        ("key.revoked", "bob"),
    ]
    assert store.audit.verify() is None
    store.close()


def test_key_names_are_unique_and_revoking_an_unknown_key_is_not_found(
    database_url: str,
) -> None:
    store = Store(database_url)
    store.keys.create("ci", "viewer", [], actor="alice")
    with pytest.raises(Conflict):
        store.keys.create("ci", "admin", [], actor="alice")
    with pytest.raises(NotFound):
        store.keys.revoke("nobody", actor="alice")
    store.close()


def test_every_role_has_a_permission_row() -> None:
    assert set(PERMISSIONS) == set(ROLES)
    assert PERMISSIONS["admin"] >= PERMISSIONS["operator"] | PERMISSIONS["submitter"]


def test_a_task_limited_principal_is_refused_other_tasks() -> None:
    principal = Principal("id", "ci", "submitter", ("routing",))
    principal.require("decide", "routing")
    with pytest.raises(Forbidden):
        principal.require("decide", "billing")
    with pytest.raises(Forbidden):
        principal.require("manage_releases", "routing")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("Bearer lg_abc", "lg_abc", id="bearer"),
        pytest.param("bearer  lg_abc ", "lg_abc", id="case-and-spaces"),
        pytest.param("Basic xyz", None, id="other-scheme"),
        pytest.param("Bearer ", None, id="empty"),
        pytest.param(None, None, id="missing"),
    ],
)
def test_bearer_header_parsing(header: str | None, expected: str | None) -> None:
    assert parse_bearer(header) == expected
