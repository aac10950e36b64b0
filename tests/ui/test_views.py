"""What the item page shows and how a correction form is read, without a browser."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from lockgate.decide.decision import Decision
from lockgate.decide.task import parse_task
from lockgate.monitor.redaction import redact_record
from lockgate.security import Principal
from lockgate.server.ui import views

SPEC = parse_task(
    {
        "name": "billing",
        "input": {
            "text": {"type": "string", "pii": True},
            "account": {"type": "integer", "pii": True},
            "channel": {"type": "string"},
        },
        "output": {
            "queue": {"type": "enum", "values": ["cards", "fraud"]},
            "amount": {"type": "number", "minimum": 0},
            "urgent": {"type": "boolean"},
            "note": {"type": "string"},
        },
        "models": [{"provider": "deterministic"}],
    },
    "billing.yaml",
)


def decision(values: dict[str, Any], **changes: Any) -> Decision:
    fields: dict[str, Any] = {
        "id": "01a2",
        "task": "billing",
        "release": 1,
        "idempotency_key": "k",
        "input_hash": "h",
        "input": values,
        "redacted_input": redact_record(values),
        "output": {"queue": "fraud", "amount": 12.5, "urgent": True, "note": "x"},
        "confidence": 0.9,
        "route": "review",
        "status": "pending_review",
        "reason": "",
        "cost": 0.0,
        "latency_ms": 1.0,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    return Decision(**{**fields, **changes})


PERSONAL = {"text": "mail jane@example.com", "account": 12345678, "channel": "mail"}


def test_personal_fields_are_redacted_or_hidden_without_the_right_and_clear_with_it() -> None:
    masked = {r.name: r for r in views.shown_input(decision(PERSONAL), SPEC, clear=False)}
    assert masked["text"].value == "mail [email]" and masked["text"].masked
    assert "12345678" not in masked["account"].value and masked["account"].masked
    assert masked["channel"].value == "mail" and not masked["channel"].masked

    clear = {r.name: r.value for r in views.shown_input(decision(PERSONAL), SPEC, clear=True)}
    assert clear == {"text": "mail jane@example.com", "account": "12345678", "channel": "mail"}


def test_only_the_configured_roles_see_personal_data() -> None:
    admin = Principal("1", "root", "admin")
    reviewer = Principal("2", "alice", "reviewer")
    assert views.may_see_personal_data(admin, ("admin",))
    assert not views.may_see_personal_data(reviewer, ("admin",))
    assert views.may_see_personal_data(reviewer, ("admin", "reviewer"))


def test_the_correction_form_has_a_select_for_enums_and_booleans_prefilled_with_the_output() -> (
    None
):
    fields = {f.name: f for f in views.output_form(SPEC, decision(PERSONAL).output)}
    assert (fields["queue"].kind, fields["queue"].choices, fields["queue"].current) == (
        "select",
        ("cards", "fraud"),
        "fraud",
    )
    assert (fields["urgent"].kind, fields["urgent"].current) == ("select", "true")
    assert (fields["amount"].kind, fields["amount"].minimum) == ("number", 0)
    assert fields["note"].kind == "text"


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        pytest.param(
            {"output.queue": "cards", "output.amount": "3", "output.urgent": "false"},
            {"queue": "cards", "amount": 3, "urgent": False},
            id="typed",
        ),
        pytest.param({"output.amount": "2.50"}, {"amount": 2.5}, id="decimal"),
        pytest.param({"output.amount": "lots"}, {"amount": "lots"}, id="not-a-number-kept"),
        pytest.param({"output.amount": "nan"}, {"amount": "nan"}, id="nan-kept-as-text"),
        pytest.param({"queue": "cards", "csrf_token": "t"}, {}, id="other-fields-ignored"),
    ],
)
def test_a_submitted_correction_is_read_as_typed_values(
    form: dict[str, str], expected: dict[str, Any]
) -> None:
    assert views.submitted_output(SPEC, form) == expected


def test_alternatives_are_listed_per_field_with_scores() -> None:
    d = decision(PERSONAL, alternatives={"queue": [["fraud", 0.7], ["cards", 0.2]]})
    assert views.alternatives(d) == [("queue", [("fraud", 0.7), ("cards", 0.2)])]
    assert views.alternatives(decision(PERSONAL)) == []
