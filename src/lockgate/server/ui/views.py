"""What the review pages show, computed without HTTP: masked input, the correction form's
fields, the alternatives a model considered, and reading a submitted correction back.

Who may do what is not decided here: that is the review core's job (`lockgate.review.service`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from lockgate.decide.decision import Decision
from lockgate.decide.task import TaskSpec
from lockgate.monitor.redaction import redact_text
from lockgate.review.item import ReviewItem
from lockgate.security import Principal

OUTPUT_PREFIX = "output."
"""Form fields of a correction are named `output.FIELD`."""


@dataclass(frozen=True)
class InputRow:
    name: str
    value: str
    masked: bool
    """True when personal data in this field was hidden from this reviewer."""


@dataclass(frozen=True)
class FormField:
    """One output field of the correction form."""

    name: str
    kind: str
    """`select` (enums and booleans), `number` or `text`."""
    current: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    @property
    def form_name(self) -> str:
        return OUTPUT_PREFIX + self.name


PREVIEW_CHARACTERS = 80


@dataclass(frozen=True)
class QueueRow:
    """One queue line's extras: what a lead needs to triage without opening the item."""

    preview: str
    """The start of the input, personal fields masked unless the role may see them."""
    age: str
    sla: str | None
    """Time left to the task's review SLA ("12 min left", "overdue by 1 h 5 min"); None
    without an SLA or for a final item."""
    overdue: bool
    acted: str | None
    """For a final item: who made it final, when and why; or that the policy did."""


def queue_row(item: ReviewItem, spec: TaskSpec, clear: bool, now: datetime) -> QueueRow:
    decision = item.decision
    text = " · ".join(r.value for r in shown_input(decision, spec, clear) if r.value)
    text = " ".join(text.split())
    if len(text) > PREVIEW_CHARACTERS:
        text = text[: PREVIEW_CHARACTERS - 1] + "…"
    pending = decision.status == "pending_review"
    sla_minutes = spec.policy.review_sla_minutes
    sla, overdue = None, False
    if pending and sla_minutes is not None:
        left = decision.created_at + timedelta(minutes=sla_minutes) - now
        overdue = left.total_seconds() < 0
        sla = f"overdue by {_span(-left)}" if overdue else f"{_span(left)} left"
    acted = None
    if not pending:
        last = item.verdicts[-1] if item.verdicts else None
        if last is None:
            acted = f"by the policy: {decision.reason}"
        else:
            why = f": {last.reason}" if last.reason else ""
            acted = f"{last.reviewer}, {last.at:%Y-%m-%d %H:%M} UTC{why}"
    return QueueRow(text, _span(now - decision.created_at), sla, overdue, acted)


def _span(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"


def may_see_personal_data(principal: Principal, roles: Iterable[str]) -> bool:
    return principal.role in tuple(roles)


def shown_input(decision: Decision, spec: TaskSpec, clear: bool) -> list[InputRow]:
    """The decision's input for display. Without `clear`, every `pii: true` field shows the
    redacted copy (e-mail addresses, phone, card and account numbers replaced by placeholders);
    a personal field that is not text is hidden whole."""
    personal = set(spec.pii_fields)
    rows = []
    for name, value in decision.input.items():
        if clear or name not in personal or value is None:
            rows.append(InputRow(name, _text(value), False))
            continue
        redacted = decision.redacted_input.get(name, value)
        if isinstance(redacted, str):
            # Redact again: the stored copy may come from an older, narrower redactor.
            rows.append(InputRow(name, redact_text(redacted), True))
        else:
            rows.append(InputRow(name, "[hidden: personal data]", True))
    return rows


def output_form(spec: TaskSpec, output: Mapping[str, Any] | None) -> list[FormField]:
    """The correction form, prefilled with the model's output."""
    current = output or {}
    fields = []
    for name, field in spec.output.items():
        value = current.get(name)
        if field.type == "enum":
            fields.append(FormField(name, "select", _text(value), tuple(field.values or ())))
        elif field.type == "boolean":
            shown = "" if value is None else ("true" if value else "false")
            fields.append(FormField(name, "select", shown, ("true", "false")))
        elif field.type == "number":
            fields.append(FormField(name, "number", _text(value), (), field.minimum, field.maximum))
        else:
            fields.append(FormField(name, "text", _text(value)))
    return fields


def submitted_output(spec: TaskSpec, form: Mapping[str, str]) -> dict[str, Any]:
    """The correction as typed values. A value that does not parse is passed on as text, so the
    review core's validation names the field that is wrong."""
    output: dict[str, Any] = {}
    for name, field in spec.output.items():
        raw = form.get(OUTPUT_PREFIX + name)
        if raw is None:
            continue
        if field.type == "boolean" and raw in ("true", "false"):
            output[name] = raw == "true"
        elif field.type == "number":
            output[name] = _number(raw)
        else:
            output[name] = raw
    return output


def alternatives(decision: Decision) -> list[tuple[str, list[tuple[str, float | None]]]]:
    """Per output field, the values the model considered with their scores, best first."""
    rows = []
    for name, considered in (decision.alternatives or {}).items():
        pairs: list[tuple[str, float | None]] = []
        for entry in considered if isinstance(considered, Sequence) else ():
            if isinstance(entry, Sequence) and not isinstance(entry, str) and len(entry) == 2:
                score = entry[1]
                pairs.append((_text(entry[0]), float(score) if _is_number(score) else None))
            else:
                pairs.append((_text(entry), None))
        rows.append((str(name), pairs))
    return rows


def _number(raw: str) -> Any:
    try:
        number = float(raw)
    except ValueError:
        return raw
    if not math.isfinite(number):
        return raw
    return int(number) if number.is_integer() and "." not in raw else number


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
