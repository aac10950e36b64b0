"""The policy: from a validated output, its confidence and the input to a route.

Order: a `reject_when` rule rejects; a `review_when` rule, a confidence below the threshold, an
unknown confidence or suggest mode sends to review; otherwise the decision is automated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lockgate.decide.decision import Route
from lockgate.decide.task import Condition, PolicySpec


@dataclass(frozen=True)
class Routing:
    route: Route
    reason: str


def _subject(cond: Condition, output: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
    return output.get(cond.field) if cond.field is not None else inputs.get(cond.input or "")


def _describe(group: str, index: int, cond: Condition) -> str:
    """The machine form of a matched rule: where it is in the policy, and its test (values
    from the task file only, never from the input)."""
    subject = f"output {cond.field}" if cond.field is not None else f"input {cond.input}"
    return f"policy.{group}.{index} matched ({subject} {_test(cond)})"


def _test(cond: Condition) -> str:
    if cond.equals is not None:
        return f"equals {cond.equals}"
    if cond.in_ is not None:
        return "in " + ", ".join(str(v) for v in cond.in_)
    if cond.matches is not None:
        return f"matches {cond.matches}"
    if cond.empty is not None:
        return "empty" if cond.empty else "not empty"
    if cond.above is not None:
        return f"above {cond.above:g}"
    return f"below {cond.below:g}"


def check_rules(
    policy: PolicySpec,
    group: str,
    output: Mapping[str, Any],
    inputs: Mapping[str, Any],
    *,
    inputs_only: bool = False,
) -> str | None:
    """The reason of the first rule of `group` that holds, or None."""
    for index, cond in enumerate(getattr(policy, group)):
        if cond.field is not None and (inputs_only or cond.field not in output):
            continue
        if cond.holds(_subject(cond, output, inputs)):
            return _describe(group, index, cond)
    return None


OUT_OF_SCOPE_REASON = "out of scope"
"""How the reason of a decision the model judged out of scope begins."""


def judged_out_of_scope(reason: str) -> bool:
    """Was the decision with this reason sent to review (or rejected) because the model judged
    its input out of scope? Then no confidence threshold would have automated it."""
    return reason.startswith(f"{OUT_OF_SCOPE_REASON} (")


def route(
    policy: PolicySpec,
    output: Mapping[str, Any],
    confidence: float | None,
    inputs: Mapping[str, Any],
    *,
    out_of_scope: str | None = None,
    note: str | None = None,
) -> Routing:
    """`out_of_scope` is the model's reason for judging the input out of scope (then it goes
    to review, or is rejected with `policy.out_of_scope: reject`); `note` is added to the
    reason (for example that one model of a combined chain failed)."""
    routing = _route(policy, output, confidence, inputs, out_of_scope)
    if note:
        return Routing(routing.route, f"{routing.reason} ({note})")
    return routing


def _route(
    policy: PolicySpec,
    output: Mapping[str, Any],
    confidence: float | None,
    inputs: Mapping[str, Any],
    out_of_scope: str | None,
) -> Routing:
    rejected = check_rules(policy, "reject_when", output, inputs)
    if rejected:
        return Routing("reject", rejected)
    if out_of_scope is not None:
        why = f"{OUT_OF_SCOPE_REASON} ({out_of_scope})"
        return Routing("reject" if policy.out_of_scope == "reject" else "review", why)
    reviewed = check_rules(policy, "review_when", output, inputs)
    if reviewed:
        return Routing("review", reviewed)
    if policy.mode == "suggest":
        return Routing("review", "suggest mode: every decision is reviewed")
    if confidence is None:
        return Routing("review", "the model gave no confidence")
    if confidence < policy.auto_min_confidence:
        return Routing(
            "review",
            f"confidence {confidence:.2f} is below auto_min_confidence "
            f"{policy.auto_min_confidence:.2f}",
        )
    return Routing("auto", f"confidence {confidence:.2f} >= {policy.auto_min_confidence:.2f}")


def gated_route(
    policy: PolicySpec,
    output: Mapping[str, Any],
    confidence: float | None,
    inputs: Mapping[str, Any],
    *,
    out_of_scope: str | None = None,
) -> Routing:
    """The route this decision would take under gated automation (what suggest mode reports)."""
    gated = policy.model_copy(update={"mode": "gated"})
    return route(gated, output, confidence, inputs, out_of_scope=out_of_scope)


def priority(policy: PolicySpec, output: Mapping[str, Any], inputs: Mapping[str, Any]) -> int:
    """A pending decision's review priority: the highest `priority_when` rule that holds, or 0."""
    found = [
        rule.priority
        for rule in policy.priority_when
        if (rule.field is None or rule.field in output)
        and rule.holds(_subject(rule, output, inputs))
    ]
    return max(found, default=0)


def needs_two_persons(
    policy: PolicySpec, output: Mapping[str, Any], inputs: Mapping[str, Any]
) -> bool:
    """True when a `two_person_when` rule holds for this output and input."""
    return check_rules(policy, "two_person_when", output, inputs) is not None


def route_input_only(policy: PolicySpec, inputs: Mapping[str, Any]) -> Routing | None:
    """Rules on input alone (e.g. reject an empty message) decide before any model is called."""
    rejected = check_rules(policy, "reject_when", {}, inputs, inputs_only=True)
    return Routing("reject", rejected) if rejected else None
