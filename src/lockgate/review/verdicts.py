"""What a verdict does to a review item, and the checks on what a reviewer sends.

`rule` is called inside the verdict's transaction with the item as it is under the lock;
see `lockgate.review.service` for the rules it applies (two-person approvals, final statuses,
the outbox).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lockgate.decide.decision import unencodable
from lockgate.decide.policy import needs_two_persons
from lockgate.decide.task import TaskSpec, sink_names
from lockgate.decide.validation import OutputInvalid, validate_output
from lockgate.errors import Conflict, InputError, MalformedInput
from lockgate.review.item import ReviewItem
from lockgate.review.types import PENDING, Ruling, VerdictKind


def rule(
    spec: TaskSpec,
    item: ReviewItem,
    kind: VerdictKind,
    corrected: Mapping[str, Any] | None,
    reason: str | None,
) -> Ruling:
    """What this verdict does to the item (see the module docstring)."""
    decision = item.decision
    model_output = decision.output
    if kind == "reject":
        return Ruling(
            kind,
            None,
            reason,
            audit_details(kind, "rejected", (), reason, item, len(item.approvals)),
            final_status="rejected",
            final_output=model_output,
        )
    if kind == "approve":
        accepted = item.proposed_output if item.proposed_output is not None else model_output
        if accepted is None:
            raise Conflict(
                f"decision {decision.id} has no output to approve (every model failed)",
                hint="correct it with an output, or reject it",
            )
    else:
        assert corrected is not None
        accepted = corrected
        current = item.proposed_output if item.proposed_output is not None else model_output
        if not changed_fields(current, accepted):
            raise InputError(
                "the correction changes nothing: it is the output the item already has",
                hint="approve it if it is right, or change at least one field",
            )
    needed = item.approvals_needed
    if kind == "correct" and needs_two_persons(spec.policy, accepted, decision.input):
        needed = 2
    approvals = len(item.approvals) + 1
    changed = changed_fields(model_output, accepted)
    if approvals < needed:
        details = audit_details(kind, PENDING, changed, reason, item, approvals, needed)
        return Ruling(kind, accepted, reason, details)
    status = "corrected" if changed else "approved"
    sinks = sink_names(spec)
    details = audit_details(kind, status, changed, reason, item, approvals, needed)
    return Ruling(
        kind, accepted, reason, details, final_status=status, final_output=accepted, sinks=sinks
    )


def audit_details(
    kind: str,
    status: str,
    changed: tuple[str, ...],
    reason: str | None,
    item: ReviewItem,
    approvals: int,
    needed: int | None = None,
) -> dict[str, Any]:
    """An audit entry's details: field names and counts, never input values."""
    return {
        "verdict": kind,
        "status": status,
        "changed_fields": list(changed),
        "reason": reason,
        "approvals": approvals,
        "approvals_needed": needed if needed is not None else item.approvals_needed,
        "release": item.decision.release,
    }


def changed_fields(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> tuple[str, ...]:
    before, after = before or {}, after or {}
    return tuple(sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)))


def validated_correction(spec: TaskSpec, output: Mapping[str, Any] | None) -> dict[str, Any]:
    if not isinstance(output, Mapping):
        raise InputError(
            "the corrected output must be a JSON object of the task's output fields",
            hint=f"output fields: {', '.join(spec.output)}",
        )
    malformed = unencodable(output, "output")
    if malformed is not None:
        raise MalformedInput(malformed, hint="send valid Unicode text and finite numbers")
    try:
        return validate_output(spec, output)
    except OutputInvalid as exc:
        # The problems name fields and the schema's allowed values, never the value sent.
        raise InputError(
            "the corrected output does not match the task's output schema: "
            + "; ".join(exc.problems),
            hint="send every output field with an allowed value",
        ) from None


def clean_reason(reason: str | None) -> str | None:
    if reason is None or not reason.strip():
        return None
    if "\x00" in reason:
        # PostgreSQL's text cannot hold it; refused on every database alike.
        raise InputError(
            "reason: contains a NUL character (\\u0000)", hint="send the reason as plain text"
        )
    return reason.strip()


def required_reason(reason: str | None) -> str:
    cleaned = clean_reason(reason)
    if cleaned is None:
        raise InputError(
            "a reason is required", hint="say why, e.g. 'wrong queue: this is a chargeback'"
        )
    return cleaned
