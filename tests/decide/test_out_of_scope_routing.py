"""A model's out-of-scope verdict reaches the stored decision: it goes to review (or is
rejected with `policy.out_of_scope: reject`), never automated, and its reason says why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.pipeline_kit import build_kit

MODEL: dict[str, Any] = {
    "provider": "deterministic",
    "answers": [
        {
            "if_contains": "weather",
            "output": {"queue": "other"},
            "confidence": 0.99,
            "out_of_scope": "similarity 0.10 below 0.40",
        },
        {"if_contains": "card", "output": {"queue": "cards"}, "confidence": 0.99, "note": "b"},
    ],
}


def test_an_out_of_scope_input_goes_to_review_with_the_models_reason(
    database_url: str, tmp_path: Path
) -> None:
    kit = build_kit(database_url, tmp_path, [MODEL])
    decision = kit.decide("what is the weather tomorrow")
    assert (decision.route, decision.status) == ("review", "pending_review")
    assert decision.reason == "out of scope (similarity 0.10 below 0.40)"
    in_scope = kit.decide("my card was charged twice")
    assert in_scope.route == "auto"
    assert in_scope.reason.endswith("(b)"), "a model's note is kept in the reason"


def test_the_policy_may_reject_out_of_scope_inputs(database_url: str, tmp_path: Path) -> None:
    kit = build_kit(database_url, tmp_path, [MODEL], out_of_scope="reject")
    decision = kit.decide("what is the weather tomorrow")
    assert (decision.route, decision.status) == ("reject", "rejected")
    assert decision.reason == "out of scope (similarity 0.10 below 0.40)"
