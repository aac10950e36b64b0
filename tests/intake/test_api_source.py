"""The decision API as an intake source: a task file that declares a source of kind `api`
gets its requests mapped (aliases, coercion), de-duplicated by content within the window
(answered with the first decision, linked) and, when they cannot be mapped, held in
quarantine with a 422 that gives the quarantine id, which `lockgate quarantine replay`
decides once the mapping is fixed. Idempotency keys work as without the source: a resend is
200 `replayed`, another input under the same key 409 with nothing stored. Both backends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lockgate.runtime import Runtime
from lockgate.server import create_app
from lockgate.settings import load_settings
from tests.cli.kit import lockgate
from tests.intake.kit import assert_accounted, decision_keys, prepare, query, set_sources, show

API = """\
  - name: api
    kind: api
    map:
      text: {from: [text, body]}
      amount: {type: number, decimal: ","}
    dedupe: {by: content, window: 7d}
"""


class Client:
    def __init__(self, client: TestClient, secrets: list[str], project: Path) -> None:
        self.client = client
        self.secret, self.other_secret = secrets
        self.project = project

    def decide(
        self, key: str, values: dict[str, Any], *, secret: str | None = None, **extra: Any
    ) -> Any:
        bearer = secret or self.secret
        return self.client.post(
            "/v1/tasks/routing/decisions",
            json={"input": values, **extra},
            headers={"Authorization": f"Bearer {bearer}", "Idempotency-Key": key},
        )


@pytest.fixture
def api(tmp_path: Path, database_url: str) -> Iterator[Client]:
    project = prepare(tmp_path / "p", database_url, API)
    # Task files are read again on every request, so a fixed mapping applies at once.
    settings = load_settings(project, database_url=database_url, environ={}).with_changes(
        release_refresh_seconds=0.0
    )
    runtime = Runtime.open(settings)
    secrets = [
        runtime.store.keys.create(name, "submitter", (), actor="test")[1]
        for name in ("client", "other-client")
    ]
    try:
        with TestClient(create_app(settings, runtime=runtime)) as client:
            yield Client(client, secrets, project)
    finally:
        runtime.close()


def test_a_renamed_field_is_mapped_and_coerced_and_a_resend_replays(
    api: Client, database_url: str
) -> None:
    first = api.decide("T-1", {"body": "my card was stolen", "amount": "12,50"}, metadata={"a": 1})
    assert first.status_code == 201, first.text
    assert first.json()["output"] == {"queue": "fraud"}
    again = api.decide("T-1", {"body": "my card was stolen", "amount": "12,50"})
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert again.json()["id"] == first.json()["id"]
    other = api.decide("T-1", {"body": "something else"})
    assert other.status_code == 409, other.text
    assert other.headers["content-type"] == "application/problem+json"
    assert decision_keys(database_url) == ["T-1"]  # the caller's key, unchanged
    [(stored_input, metadata)] = query(database_url, "select input, metadata from decisions")
    stored_input = json.loads(stored_input) if isinstance(stored_input, str) else stored_input
    metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
    assert stored_input == {"text": "my card was stolen", "amount": 12.5}
    assert metadata["a"] == 1 and metadata["intake"]["source"] == "api"
    counts = show(api.project, database_url, "api")
    # The resend is a duplicate by key; the 409 is no record at all (nothing stored).
    assert (counts["records"], counts["decided"], counts["duplicates"]) == (2, 1, 1)
    assert_accounted(counts)


def test_the_same_content_under_a_new_key_gets_the_first_decision_linked(
    api: Client, database_url: str
) -> None:
    first = api.decide("A-1", {"text": "card stolen yesterday"})
    second = api.decide("A-2", {"body": "  card stolen yesterday "})  # trimmed: same content
    assert first.status_code == 201 and second.status_code == 200, second.text
    assert second.json()["replayed"] is True
    assert second.json()["id"] == first.json()["id"]
    assert decision_keys(database_url) == ["A-1"]
    links = query(database_url, "select position, first_key, by from intake_duplicates")
    assert links == [("request A-2", "A-1", "content")]
    counts = show(api.project, database_url, "api")
    assert (counts["decided"], counts["duplicates"], counts["quarantined"]) == (1, 1, 0)


def test_content_is_de_duplicated_per_client(api: Client, database_url: str) -> None:
    # Two clients sending the same text are two events: each gets its own decision (a
    # submitter may not read another client's decision, so linking it would only refuse).
    mine = api.decide("M-1", {"text": "card stolen yesterday"})
    theirs = api.decide("O-1", {"text": "card stolen yesterday"}, secret=api.other_secret)
    assert mine.status_code == 201 and theirs.status_code == 201, theirs.text
    assert theirs.json()["id"] != mine.json()["id"]
    assert theirs.json()["replayed"] is False
    # Each client's own resend under a new key is still the duplicate, linked to its first.
    again = api.decide("O-2", {"body": "card stolen yesterday"}, secret=api.other_secret)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == theirs.json()["id"]
    assert sorted(decision_keys(database_url)) == ["M-1", "O-1"]
    links = query(database_url, "select position, first_key, by from intake_duplicates")
    assert links == [("request O-2", "O-1", "content")]


def test_an_input_that_cannot_be_mapped_is_quarantined_with_its_id_and_replayed(
    api: Client, database_url: str
) -> None:
    held = api.decide("Q-1", {"Subject": "lost my card"})  # no field the mapping knows
    assert held.status_code == 422, held.text
    problem = held.json()
    assert held.headers["content-type"] == "application/problem+json"
    assert problem["source"] == "api" and isinstance(problem["quarantine_id"], int)
    assert "held in quarantine id" in problem["detail"]
    assert "missing required field text" in problem["detail"]
    assert "lost my card" not in held.text  # the value is never echoed
    assert decision_keys(database_url) == []
    batch = api.client.post(
        "/v1/tasks/routing/decisions:batch",
        json={
            "items": [
                {"idempotency_key": "Q-2", "input": {"Subject": "x"}},
                {"idempotency_key": "Q-3", "input": {"text": "card stolen"}},
            ]
        },
        headers={"Authorization": f"Bearer {api.secret}"},
    )
    assert batch.status_code == 200, batch.text
    items = batch.json()["items"]
    assert items[0]["error"]["status"] == 422 and items[0]["error"]["quarantine_id"]
    assert items[1]["decision"]["output"] == {"queue": "fraud"}

    listed = json.loads(
        lockgate("quarantine", "list", "--json", cwd=api.project, database=database_url).stdout
    )
    assert sorted(q["position"] for q in listed) == ["request Q-1", "request Q-2"]
    assert problem["quarantine_id"] in {q["id"] for q in listed}

    set_sources(api.project, API.replace("[text, body]", "[text, body, subject]"))
    lockgate(
        "quarantine",
        "replay",
        str(problem["quarantine_id"]),
        cwd=api.project,
        database=database_url,
    )
    assert sorted(decision_keys(database_url)) == ["Q-1", "Q-3"]  # under the request's key
    again = api.decide("Q-1", {"Subject": "lost my card"})  # the client's retry finds it
    assert again.status_code == 200 and again.json()["replayed"] is True
    counts = show(api.project, database_url, "api")
    assert (counts["decided"], counts["duplicates"], counts["quarantined"]) == (2, 1, 1)
    assert_accounted(counts)


def test_schema_drift_with_on_drift_stop_answers_503_and_stores_nothing(
    tmp_path: Path, database_url: str
) -> None:
    project = prepare(tmp_path / "p", database_url, API + "    on_drift: stop\n")
    settings = load_settings(project, database_url=database_url, environ={})
    runtime = Runtime.open(settings)
    _, secret = runtime.store.keys.create("client", "submitter", (), actor="test")
    try:
        with TestClient(create_app(settings, runtime=runtime)) as client:
            api = Client(client, [secret, secret], project)
            assert api.decide("D-1", {"text": "card stolen"}).status_code == 201
            drifted = api.decide("D-2", {"text": "card stolen again", "channel": "phone"})
            after = api.decide("D-3", {"text": "card stolen once more"})
    finally:
        runtime.close()
    assert drifted.status_code == 503, drifted.text
    assert "source api is stopped: schema drift: new_field channel" in drifted.json()["detail"]
    assert int(drifted.headers["retry-after"]) >= 1
    assert after.status_code == 503  # stopped until an operator resumes it
    assert decision_keys(database_url) == ["D-1"]
    assert show(project, database_url, "api")["status"] == "stopped"
