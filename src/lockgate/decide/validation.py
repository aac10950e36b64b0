"""Checking inputs against a task's input schema and outputs against its output schema.

Every problem is described without echoing the offending value: values may be personal data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from lockgate.decide.task import InputField, OutputField, TaskSpec


class OutputInvalid(Exception):
    """A model's output does not satisfy the output schema; `problems` say what to fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def parse_output(raw: Mapping[str, Any] | str) -> dict[str, Any]:
    """Turn a provider's raw output into a mapping (JSON text is parsed; fences are tolerated)."""
    if isinstance(raw, Mapping):
        return dict(raw)
    text = raw.strip()
    if text.startswith("```"):
        text = text.strip("`")
        text = text.split("\n", 1)[1] if "\n" in text else text
        text = text.rsplit("```", 1)[0]
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        raise OutputInvalid(["the answer is not valid JSON; answer with one JSON object"]) from None
    if not isinstance(value, dict):
        raise OutputInvalid(
            ["the answer must be a JSON object, not a JSON " + type(value).__name__]
        )
    return value


def validate_output(task: TaskSpec, raw: Mapping[str, Any] | str) -> dict[str, Any]:
    """Return the output normalised to the schema's fields, or raise `OutputInvalid`."""
    data = parse_output(raw)
    problems: list[str] = []
    result: dict[str, Any] = {}
    for name, spec in task.output.items():
        if name not in data:
            problems.append(f"{name}: is missing")
            continue
        problem = _output_problem(spec, data[name])
        if problem:
            problems.append(f"{name}: {problem}")
        else:
            result[name] = _normalise(spec, data[name])
    extra = sorted(set(data) - set(task.output))
    if extra:
        # Never name them: a model that echoes its input could put personal data in a key.
        problems.append(
            f"{len(extra)} unexpected field{'s' if len(extra) > 1 else ''}; "
            f"allowed: {', '.join(task.output)}"
        )
    if problems:
        raise OutputInvalid(problems)
    return result


def _output_problem(spec: OutputField, value: Any) -> str | None:
    if spec.type == "enum":
        if value not in (spec.values or ()):
            return f"must be one of {', '.join(spec.values or ())}"
        return None
    if spec.type == "string":
        return None if isinstance(value, str) else "must be a string"
    if spec.type == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if not _is_finite_number(value):
        return "must be a number"
    if spec.minimum is not None and value < spec.minimum:
        return f"must be at least {spec.minimum:g}"
    if spec.maximum is not None and value > spec.maximum:
        return f"must be at most {spec.maximum:g}"
    return None


def _normalise(spec: OutputField, value: Any) -> Any:
    return float(value) if spec.type == "number" else value


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate_input(task: TaskSpec, data: Any) -> tuple[dict[str, Any], list[str]]:
    """Normalise an input record to the task's input fields; return it with any problems.

    Extra keys (such as a batch file's `id` column) are dropped; strings are stripped of
    surrounding white space; CSV text for numbers and booleans is converted.
    """
    if not isinstance(data, Mapping):
        return {}, ["input: must be a JSON object with the task's input fields"]
    result: dict[str, Any] = {}
    problems: list[str] = []
    for name, spec in task.input.items():
        value = data.get(name)
        if value is None or (
            isinstance(value, str) and value.strip() == "" and spec.type != "string"
        ):
            if spec.required:
                problems.append(f"input.{name}: is required ({spec.type})")
            continue
        converted, problem = _convert_input(spec, value)
        if problem:
            problems.append(f"input.{name}: {problem}")
        else:
            result[name] = converted
    return result, problems


def _convert_input(spec: InputField, value: Any) -> tuple[Any, str | None]:
    if spec.type == "string":
        if not isinstance(value, str):
            return None, "must be a string"
        value = value.strip()
        if spec.max_length is not None and len(value) > spec.max_length:
            return None, f"is {len(value)} characters long; at most {spec.max_length} allowed"
        return value, None
    if spec.type == "boolean":
        if isinstance(value, bool):
            return value, None
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes"), None
        return None, "must be true or false"
    if isinstance(value, str):
        try:
            value = int(value) if spec.type == "integer" else float(value)
        except ValueError:
            return None, f"must be {'a whole number' if spec.type == 'integer' else 'a number'}"
    if spec.type == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return None, "must be a whole number"
        return value, None
    if not _is_finite_number(value):
        return None, "must be a number"
    return value, None
