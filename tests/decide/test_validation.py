"""Outputs are validated against the output schema; inputs against the input schema."""

from __future__ import annotations

import pytest

from lockgate.decide.task import parse_task
from lockgate.decide.validation import OutputInvalid, validate_input, validate_output

TASK = parse_task(
    {
        "name": "invoice",
        "input": {
            "text": {"type": "string", "max_length": 20},
            "amount": {"type": "number", "required": False},
            "urgent": {"type": "boolean", "required": False},
        },
        "output": {
            "queue": {"type": "enum", "values": ["a", "b"]},
            "total": {"type": "number", "minimum": 0},
            "paid": {"type": "boolean"},
            "note": {"type": "string"},
        },
        "models": [{"provider": "rules"}],
    },
    "tasks/invoice.yaml",
)
GOOD = {"queue": "a", "total": 12, "paid": False, "note": ""}


def test_a_valid_output_is_normalised() -> None:
    assert validate_output(TASK, GOOD) == {**GOOD, "total": 12.0}


def test_json_text_and_code_fences_are_parsed() -> None:
    text = '```json\n{"queue": "b", "total": 1.5, "paid": true, "note": "x"}\n```'
    assert validate_output(TASK, text)["queue"] == "b"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        pytest.param("not json {", "not valid JSON", id="malformed"),
        pytest.param("[1, 2]", "must be a JSON object", id="array"),
        pytest.param({**GOOD, "queue": "c"}, "queue: must be one of a, b", id="enum"),
        pytest.param({**GOOD, "total": -1}, "total: must be at least 0", id="minimum"),
        pytest.param({**GOOD, "total": float("nan")}, "total: must be a number", id="nan"),
        pytest.param({**GOOD, "paid": "yes"}, "paid: must be true or false", id="boolean"),
        pytest.param({**GOOD, "total": True}, "total: must be a number", id="bool-not-number"),
        pytest.param({k: v for k, v in GOOD.items() if k != "note"}, "note: is missing", id="gap"),
        pytest.param(
            {**GOOD, "extra": 1},
            "1 unexpected field; allowed: queue, total, paid, note",
            id="extra",
        ),
    ],
)
def test_invalid_outputs_are_refused_with_the_reason(raw: object, problem: str) -> None:
    with pytest.raises(OutputInvalid) as caught:
        validate_output(TASK, raw)  # type: ignore[arg-type]
    assert any(problem in p for p in caught.value.problems)


def test_problems_never_echo_the_value() -> None:
    with pytest.raises(OutputInvalid) as caught:
        validate_output(TASK, {**GOOD, "queue": "secret@example.com"})
    assert "secret@example.com" not in str(caught.value)


def test_problems_never_echo_unexpected_keys() -> None:
    with pytest.raises(OutputInvalid) as caught:
        validate_output(TASK, {**GOOD, "jane@example.com": 1})
    assert "jane@example.com" not in str(caught.value)


def test_inputs_are_converted_from_csv_text() -> None:
    clean, problems = validate_input(TASK, {"text": " hi ", "amount": "12.5", "urgent": "yes"})
    assert problems == []
    assert clean == {"text": "hi", "amount": 12.5, "urgent": True}


def test_input_problems_are_all_listed() -> None:
    _, problems = validate_input(TASK, {"text": "x" * 21, "amount": "lots"})
    assert problems == [
        "input.text: is 21 characters long; at most 20 allowed",
        "input.amount: must be a number",
    ]


def test_a_required_input_is_required() -> None:
    _, problems = validate_input(TASK, {"id": "7"})
    assert problems == ["input.text: is required (string)"]
