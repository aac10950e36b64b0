"""The policy keys of the review queue: priority_when, two_person_when, review_sla_minutes, and
the route suggest mode records."""

from __future__ import annotations

from typing import Any

import pytest

from lockgate.decide.policy import gated_route, needs_two_persons, priority
from lockgate.decide.task import PolicySpec, parse_task
from lockgate.errors import TaskFileError


def task(**policy: Any) -> dict[str, Any]:
    return {
        "name": "routing",
        "input": {"text": {"type": "string"}, "amount": {"type": "number", "required": False}},
        "output": {"queue": {"type": "enum", "values": ["cards", "fraud", "other"]}},
        "models": [{"provider": "deterministic"}],
        "policy": policy,
    }


def test_the_priority_is_the_highest_rule_that_holds_else_zero() -> None:
    policy = parse_task(
        task(
            priority_when=[
                {"field": "queue", "equals": "fraud", "priority": 10},
                {"input": "amount", "above": 5000, "priority": 20},
            ]
        ),
        "tasks/routing.yaml",
    ).policy
    assert priority(policy, {"queue": "fraud"}, {"amount": 1}) == 10
    assert priority(policy, {"queue": "fraud"}, {"amount": 9000}) == 20
    assert priority(policy, {"queue": "cards"}, {}) == 0
    assert priority(policy, {}, {"amount": 9000}) == 20  # no output: input rules still count


def test_two_person_rules_hold_on_outputs_or_inputs() -> None:
    policy = PolicySpec.model_validate(
        {
            "two_person_when": [
                {"field": "queue", "equals": "fraud"},
                {"input": "amount", "above": 10},
            ]
        }
    )
    assert needs_two_persons(policy, {"queue": "fraud"}, {})
    assert needs_two_persons(policy, {"queue": "cards"}, {"amount": 11})
    assert not needs_two_persons(policy, {"queue": "cards"}, {"amount": 10})


def test_suggest_mode_records_the_route_gated_automation_would_take() -> None:
    policy = PolicySpec.model_validate(
        {"mode": "suggest", "auto_min_confidence": 0.8,
         "review_when": [{"field": "queue", "equals": "fraud"}]}
    )  # fmt: skip
    assert gated_route(policy, {"queue": "cards"}, 0.9, {}).route == "auto"
    assert gated_route(policy, {"queue": "cards"}, 0.5, {}).route == "review"
    assert gated_route(policy, {"queue": "fraud"}, 0.99, {}).route == "review"


@pytest.mark.parametrize(
    ("policy", "problem"),
    [
        pytest.param(
            {"two_person_when": [{"field": "amount", "above": 1}]},
            "policy.two_person_when.0.field: 'amount' is not an output field",
            id="two-person-unknown-output-field",
        ),
        pytest.param(
            {"priority_when": [{"field": "queue", "equals": "fraud"}]},
            "policy.priority_when.0.priority: is required",
            id="priority-missing",
        ),
        pytest.param(
            {"priority_when": [{"field": "queue", "equals": "loans", "priority": 1}]},
            "policy.priority_when.0: loans is not a value of output.queue",
            id="priority-unknown-enum-value",
        ),
        pytest.param(
            {"review_sla_minutes": 0}, "policy.review_sla_minutes: must be greater than 0", id="sla"
        ),
    ],
)
def test_bad_review_policy_keys_are_clear_task_file_errors(
    policy: dict[str, Any], problem: str
) -> None:
    with pytest.raises(TaskFileError) as refused:
        parse_task(task(**policy), "tasks/routing.yaml")
    assert any(problem in p for p in refused.value.problems), refused.value.problems
