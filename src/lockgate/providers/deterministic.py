"""The `deterministic` provider: a fake model for tests, demos and dry runs, shipped as a real
adapter. For the same input it always gives the same answer.

    - provider: deterministic
      answers:                      # optional: exact answers for chosen inputs (matched on text)
        - {if_contains: "refund", output: {queue: payments}, confidence: 0.95}
        - {if_contains: "weather", output: {queue: other}, out_of_scope: "off-topic"}
      confidence: 0.9               # for every other input: an output derived from its hash

Without a matching answer, each enum field gets a value picked by the hash of the input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from lockgate.decide.decision import canonical_json
from lockgate.decide.task import ModelSpec, TaskSpec
from lockgate.providers.base import Candidate, PreparedRequest, ProviderContext, ProviderError


class DeterministicProvider:
    name = "deterministic"
    can_repair = False

    def __init__(self, task: TaskSpec, answers: Sequence[dict[str, Any]], confidence: float):
        self.endpoint = f"deterministic:{task.name}"
        self._task = task
        self._answers = answers
        self._confidence = confidence

    @classmethod
    def from_spec(cls, spec: ModelSpec, context: ProviderContext) -> DeterministicProvider:
        return cls(
            context.task,
            list(spec.option("answers", []) or []),
            float(spec.option("confidence", 0.9)),
        )

    @classmethod
    def pinned_artifacts(cls, spec: ModelSpec, context: ProviderContext) -> dict[str, str]:
        return {}

    def complete_batch(
        self, requests: Sequence[PreparedRequest]
    ) -> Sequence[Candidate | ProviderError]:
        return [self._answer(r) for r in requests]

    async def complete(self, request: PreparedRequest) -> Candidate:
        return self._answer(request)

    async def aclose(self) -> None:
        return None

    def _answer(self, request: PreparedRequest) -> Candidate:
        text = "\n".join(str(v) for v in request.input.values())
        for answer in self._answers:
            if str(answer.get("if_contains", "")) in text:
                return Candidate(
                    output=dict(answer["output"]),
                    confidence=float(answer.get("confidence", self._confidence)),
                    out_of_scope=answer.get("out_of_scope"),
                    note=answer.get("note"),
                )
        digest = hashlib.sha256(canonical_json(dict(request.input)).encode()).digest()
        output: dict[str, Any] = {}
        for i, (name, field) in enumerate(self._task.output.items()):
            byte = digest[i % len(digest)]
            if field.type == "enum":
                values = field.values or ("",)
                output[name] = values[byte % len(values)]
            elif field.type == "number":
                output[name] = float(byte)
            elif field.type == "boolean":
                output[name] = byte % 2 == 0
            else:
                output[name] = f"answer-{byte}"
        return Candidate(output=output, confidence=self._confidence)
