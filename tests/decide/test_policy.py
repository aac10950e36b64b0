"""The policy routes each validated output to auto, review or reject."""

from __future__ import annotations

import pytest

from lockgate.decide.policy import route, route_input_only
from lockgate.decide.reasons import reason_text
from lockgate.decide.task import PolicySpec

POLICY = PolicySpec.model_validate(
    {
        "auto_min_confidence": 0.8,
        "review_when": [{"field": "queue", "equals": "fraud"}],
        "reject_when": [{"input": "text", "empty": True}],
    }
)


@pytest.mark.parametrize(
    ("output", "confidence", "inputs", "expected"),
    [
        pytest.param({"queue": "cards"}, 0.95, {"text": "hi"}, "auto", id="confident"),
        pytest.param({"queue": "cards"}, 0.8, {"text": "hi"}, "auto", id="at-threshold"),
        pytest.param({"queue": "cards"}, 0.79, {"text": "hi"}, "review", id="below-threshold"),
        pytest.param({"queue": "cards"}, None, {"text": "hi"}, "review", id="no-confidence"),
        pytest.param({"queue": "fraud"}, 0.99, {"text": "hi"}, "review", id="review-rule"),
        pytest.param({"queue": "cards"}, 0.99, {"text": "  "}, "reject", id="empty-input"),
    ],
)
def test_route(output: dict, confidence: float | None, inputs: dict, expected: str) -> None:
    assert route(POLICY, output, confidence, inputs).route == expected


def test_the_reason_names_the_rule_that_matched() -> None:
    routing = route(POLICY, {"queue": "fraud"}, 0.99, {"text": "x"})
    assert routing.reason == "policy.review_when.0 matched (output queue equals fraud)"


def test_suggest_mode_sends_everything_to_review() -> None:
    policy = PolicySpec(mode="suggest")
    assert route(policy, {"queue": "cards"}, 1.0, {"text": "x"}).route == "review"


def test_input_rules_reject_before_any_model_runs() -> None:
    assert route_input_only(POLICY, {"text": ""}) is not None
    assert route_input_only(POLICY, {"text": "hello"}) is None


@pytest.mark.parametrize(
    ("condition", "value", "holds"),
    [
        ({"field": "q", "in": ["a", "b"]}, "b", True),
        ({"field": "q", "in": ["a", "b"]}, "c", False),
        ({"field": "q", "matches": "^fr"}, "fraud", True),
        ({"field": "amount", "above": 1000}, 1500.0, True),
        ({"field": "amount", "above": 1000}, "1500", False),
        ({"field": "amount", "below": 10}, 3, True),
    ],
)
def test_conditions(condition: dict, value: object, holds: bool) -> None:
    policy = PolicySpec.model_validate({"review_when": [condition]})
    assert policy.review_when[0].holds(value) is holds


@pytest.mark.parametrize(
    ("reason", "sentence"),
    [
        pytest.param(
            "policy.review_when.0 matched (output queue equals fraud)",
            "queue is fraud: the policy sends fraud to review",
            id="review-rule",
        ),
        pytest.param(
            "policy.reject_when.1 matched (input text empty)",
            "text is empty: the policy rejects it",
            id="reject-rule-on-input",
        ),
        pytest.param(
            "confidence 0.62 is below auto_min_confidence 0.80",
            "the model is 62% sure, below the 80% needed to automate: a person reviews it",
            id="low-confidence",
        ),
        pytest.param(
            "confidence 0.95 >= 0.80",
            "the model is 95% sure, at least the 80% needed to automate it",
            id="automated",
        ),
        pytest.param("all models failed: timeout", "all models failed: timeout", id="other"),
    ],
)
def test_a_reason_reads_as_a_sentence(reason: str, sentence: str) -> None:
    assert reason_text(reason) == sentence


def test_every_policy_reason_has_a_sentence() -> None:
    for output, confidence, inputs in [
        ({"queue": "fraud"}, 0.99, {"text": "x"}),
        ({"queue": "cards"}, 0.99, {"text": "  "}),
        ({"queue": "cards"}, 0.5, {"text": "x"}),
        ({"queue": "cards"}, 0.99, {"text": "x"}),
    ]:
        reason = route(POLICY, output, confidence, inputs).reason
        assert reason_text(reason) != reason, reason
