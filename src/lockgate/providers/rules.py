"""The `rules` provider: deterministic keyword and regular-expression rules from the task file.

    - provider: rules
      rules:
        - {if_matches: "(?i)stolen|fraud", then: {queue: fraud}}
        - {if_matches: "(?i)refund", field: text, then: {queue: payments}, confidence: 0.9}
      default: {queue: other}        # optional: the answer when no rule matches

A rule without `confidence` answers with no confidence, so the policy sends it to review.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lockgate.decide.task import ModelSpec
from lockgate.decide.validation import OutputInvalid, validate_output
from lockgate.errors import ConfigError
from lockgate.providers.base import (
    Candidate,
    PreparedRequest,
    ProviderContext,
    ProviderError,
    fatal,
)


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    then: Mapping[str, Any]
    field: str | None
    confidence: float | None


def _parse_rules(spec: ModelSpec, context: ProviderContext) -> tuple[list[Rule], Any]:
    where = f"task {context.task.name}: models (rules)"
    raw = spec.option("rules", [])
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: `rules` must list at least one rule")
    rules: list[Rule] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or "if_matches" not in item or "then" not in item:
            raise ConfigError(f"{where}: rules.{i}: needs `if_matches: REGEX` and `then: {{...}}`")
        unknown = set(item) - {"if_matches", "then", "field", "confidence"}
        if unknown:
            raise ConfigError(f"{where}: rules.{i}: unknown keys {', '.join(sorted(unknown))}")
        try:
            pattern = re.compile(str(item["if_matches"]))
        except re.error as exc:
            raise ConfigError(f"{where}: rules.{i}.if_matches: invalid regex ({exc})") from None
        field = item.get("field")
        if field is not None and field not in context.task.input:
            raise ConfigError(f"{where}: rules.{i}.field: {field!r} is not an input field")
        confidence = item.get("confidence")
        if confidence is not None and not (
            isinstance(confidence, int | float) and 0 <= confidence <= 1
        ):
            raise ConfigError(f"{where}: rules.{i}.confidence: must be a number from 0 to 1")
        if not isinstance(item["then"], dict):
            raise ConfigError(f"{where}: rules.{i}.then: must map output fields to values")
        _check_answer(context, f"rules.{i}.then", item["then"])
        rules.append(Rule(pattern, item["then"], field, confidence))
    default = spec.option("default")
    if default is not None:
        _check_answer(context, "default", default)
    return rules, default


def _check_answer(context: ProviderContext, where: str, answer: Any) -> None:
    """A rule's answer must be a valid output: otherwise every decision it answers fails."""
    try:
        validate_output(context.task, answer)
    except OutputInvalid as exc:
        raise ConfigError(
            f"task {context.task.name}: models (rules): {where}: {'; '.join(exc.problems)}",
            hint="every decision this answer is given to would fail; write a valid output "
            "(see output in the task file)",
        ) from None


class RulesProvider:
    name = "rules"
    can_repair = False

    def __init__(self, task_name: str, rules: Sequence[Rule], default: Any) -> None:
        self.endpoint = f"rules:{task_name}"
        self._rules = rules
        self._default = default

    @classmethod
    def from_spec(cls, spec: ModelSpec, context: ProviderContext) -> RulesProvider:
        rules, default = _parse_rules(spec, context)
        return cls(context.task.name, rules, default)

    @classmethod
    def pinned_artifacts(cls, spec: ModelSpec, context: ProviderContext) -> dict[str, str]:
        return {}

    def complete_batch(
        self, requests: Sequence[PreparedRequest]
    ) -> list[Candidate | ProviderError]:
        answers: list[Candidate | ProviderError] = []
        for request in requests:
            try:
                answers.append(self._answer(request))
            except ProviderError as exc:
                answers.append(exc)
        return answers

    async def complete(self, request: PreparedRequest) -> Candidate:
        return self._answer(request)

    async def aclose(self) -> None:
        return None

    def _answer(self, request: PreparedRequest) -> Candidate:
        for rule in self._rules:
            if rule.field is not None:
                text = str(request.input.get(rule.field) or "")
            else:
                text = "\n".join(str(v) for v in request.input.values() if isinstance(v, str))
            if rule.pattern.search(text):
                return Candidate(output=dict(rule.then), confidence=rule.confidence)
        if self._default is not None:
            return Candidate(output=dict(self._default), confidence=None)
        raise fatal("no_rule_matched", "no rule matched the input")
