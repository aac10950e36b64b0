"""Review-page sessions are kept server-side: a copied cookie stops working at sign-out, at its
key's revocation and at its expiry, on every replica sharing the database (real HTTP through
the app, on SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import update

from lockgate.settings import Secret
from lockgate.store.tables import ui_sessions
from tests.server.kit import Api, running_api

SHARED_SECRET = Secret("a session secret both replicas share")


@pytest.fixture
def replicas(tmp_path: Path, database_url: str) -> Iterator[tuple[Api, Api]]:
    """Two app instances ("replicas") on one database, with the same cookie-signing secret."""
    with ExitStack() as stack:
        first = stack.enter_context(
            running_api(tmp_path / "a", database_url, session_secret=SHARED_SECRET)
        )
        second = stack.enter_context(
            running_api(tmp_path / "b", database_url, live=False, session_secret=SHARED_SECRET)
        )
        yield first, second


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


def sign_in(api: Api, secret: str) -> str:
    """Sign in through the form; the session cookie the browser now holds."""
    api.client.cookies.clear()
    form = api.client.get("/ui/sign-in")
    answer = api.client.post(
        "/ui/sign-in",
        data={"csrf_token": csrf_token(form.text), "api_key": secret},
        follow_redirects=False,
    )
    assert (answer.status_code, answer.headers["location"]) == (303, "/ui/queue")
    cookie = api.client.cookies.get("lockgate_session")
    assert cookie is not None
    return cookie


def queue_with(api: Api, cookie: str) -> int:
    """The status of /ui/queue for a request carrying only this cookie (200: signed in; 303:
    sent to sign in)."""
    api.client.cookies.clear()
    api.client.cookies.set("lockgate_session", cookie)
    answer = api.client.get("/ui/queue", follow_redirects=False)
    assert answer.status_code == 200 or answer.headers["location"] == "/ui/sign-in"
    return answer.status_code


def sign_out(api: Api, cookie: str) -> None:
    api.client.cookies.clear()
    api.client.cookies.set("lockgate_session", cookie)
    page = api.client.get("/ui/queue")
    answer = api.client.post(
        "/ui/sign-out", data={"csrf_token": csrf_token(page.text)}, follow_redirects=False
    )
    assert (answer.status_code, answer.headers["location"]) == (303, "/ui/sign-in?out=1")


def test_a_cookie_copied_before_sign_out_is_refused_after_it(
    replicas: tuple[Api, Api],
) -> None:
    api, _ = replicas
    copied = sign_in(api, api.key("reviewer", name="alice"))
    assert queue_with(api, copied) == 200
    sign_out(api, copied)
    assert queue_with(api, copied) == 303


def test_revoking_the_key_ends_its_sessions(replicas: tuple[Api, Api]) -> None:
    api, _ = replicas
    secret = api.key("reviewer", name="alice")
    first, second = sign_in(api, secret), sign_in(api, secret)
    other = sign_in(api, api.key("reviewer", name="bob"))
    api.runtime.store.keys.revoke("alice", actor="test")
    with api.runtime.store.engine.connect() as conn:
        rows = conn.execute(ui_sessions.select()).mappings().all()
    assert sum(r["revoked_at"] is not None for r in rows) == 2
    assert [queue_with(api, c) for c in (first, second, other)] == [303, 303, 200]


def test_an_expired_session_is_refused_though_its_cookie_says_otherwise(
    replicas: tuple[Api, Api],
) -> None:
    """The server's expiry decides: the cookie's own expiry is hours away."""
    api, _ = replicas
    cookie = sign_in(api, api.key("reviewer", name="alice"))
    with api.runtime.store.engine.begin() as conn:
        conn.execute(update(ui_sessions).values(expires_at=ui_sessions.c.created_at))
    assert queue_with(api, cookie) == 303


def test_the_database_holds_only_a_hash_of_the_session_id(replicas: tuple[Api, Api]) -> None:
    api, _ = replicas
    cookie = sign_in(api, api.key("reviewer", name="alice"))
    with api.runtime.store.engine.connect() as conn:
        (row,) = conn.execute(ui_sessions.select()).mappings().all()
    assert len(row["id_hash"]) == 64 and row["id_hash"] not in cookie


def test_a_sign_out_on_one_replica_ends_the_session_on_the_other(
    replicas: tuple[Api, Api],
) -> None:
    first, second = replicas
    cookie = sign_in(first, first.key("reviewer", name="alice"))
    assert queue_with(second, cookie) == 200
    sign_out(first, cookie)
    assert queue_with(second, cookie) == 303
    assert queue_with(first, cookie) == 303
