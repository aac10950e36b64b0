"""`GET /v1/decisions/{id}` shows metadata by the same rules as input: personal data in any
string is redacted for everyone, and a field the task marks `pii: true` is hidden whole from a
reader whose role is not in `review_pii_roles`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.cli.kit import DETERMINISTIC_TASK
from tests.server.kit import Api, running_api

PLAIN_PII = "Alice Example of 221B Baker Street"
EMAIL = "jane.doe@example.com"
CARD = "4012.8888.8888.1881"
METADATA = {
    "customer": PLAIN_PII,
    "note": f"mail {EMAIL}",
    "nested": {"cards": [CARD]},
    "ref": "A-17",
}
TASK_WITH_METADATA = DETERMINISTIC_TASK + "metadata:\n  customer: {pii: true}\n  ref: {}\n"


def decided(api: Api, task_text: str) -> str:
    (api.runtime.settings.tasks_dir / "routing.yaml").write_text(task_text)
    api.release()
    created = api.client.post(
        "/v1/tasks/routing/decisions",
        json={"input": {"text": "where is my card"}, "metadata": METADATA},
        headers={**api.auth("submitter"), "Idempotency-Key": "k-1"},
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def metadata_seen(api: Api, decision_id: str, role: Any) -> dict[str, Any]:
    response = api.client.get(f"/v1/decisions/{decision_id}", headers=api.auth(role))
    assert response.status_code == 200, response.text
    for needle in (EMAIL, CARD, "40128888"):
        assert needle not in response.text
    shown: dict[str, Any] = response.json()["metadata"]
    return shown


def test_a_viewer_sees_metadata_redacted_and_pii_fields_hidden(
    tmp_path: Path, database_url: str
) -> None:
    with running_api(tmp_path, database_url, live=False) as api:
        decision_id = decided(api, TASK_WITH_METADATA)
        shown = metadata_seen(api, decision_id, "viewer")
    assert shown == {
        "customer": "[hidden: personal data]",
        "note": "mail [email]",
        "nested": {"cards": ["[card]"]},
        "ref": "A-17",
    }


def test_a_role_allowed_personal_data_sees_pii_fields_redacted_not_hidden(
    tmp_path: Path, database_url: str
) -> None:
    with running_api(tmp_path, database_url, live=False) as api:
        decision_id = decided(api, TASK_WITH_METADATA)
        shown = metadata_seen(api, decision_id, "admin")
    assert shown["customer"] == PLAIN_PII
    assert shown["note"] == "mail [email]"


def test_metadata_of_a_task_that_declares_none_is_still_redacted(
    tmp_path: Path, database_url: str
) -> None:
    with running_api(tmp_path, database_url, live=False) as api:
        decision_id = decided(api, DETERMINISTIC_TASK)
        shown = metadata_seen(api, decision_id, "viewer")
    assert shown["customer"] == PLAIN_PII  # nothing marks it, no pattern finds it
    assert shown["nested"] == {"cards": ["[card]"]}
