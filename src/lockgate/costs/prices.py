"""What one model call can cost at most, before it is made.

A call's price is `Price.cost(input tokens, output tokens)` from lockgate.yaml's `prices:`.
Its worst case counts every byte of the prompt as a token (a byte-level tokeniser never makes
fewer bytes than tokens) and the most output the model may write: its `max_tokens`, or the
`budget_max_tokens` setting for a model that sets none.
"""

from __future__ import annotations

import json

from lockgate.decide.decision import canonical_json
from lockgate.decide.task import ModelSpec, TaskSpec
from lockgate.providers.base import PreparedRequest
from lockgate.settings import Price

PROMPT_OVERHEAD_TOKENS = 64
"""Role markers, the answer-format sentence and message framing, generously."""


def is_free(price: Price) -> bool:
    return price.per_call == 0 and price.input_per_1k == 0 and price.output_per_1k == 0


def output_ceiling(model: ModelSpec, default: int) -> int:
    """The most tokens a call of `model` may write."""
    value = model.option("max_tokens")
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


class WorstCase:
    """Worst-case costs of calls; the task's fixed part of the prompt is measured once per
    task spec."""

    def __init__(self, default_max_tokens: int) -> None:
        self.default_max_tokens = default_max_tokens
        self._fixed: dict[int, tuple[TaskSpec, int]] = {}

    def cost(self, price: Price, model: ModelSpec, request: PreparedRequest) -> float:
        prompt = self._fixed_bytes(request.task) + len(canonical_json(dict(request.input)).encode())
        if request.repair_hint:
            prompt += len(request.repair_hint.encode()) + 128
        return price.cost(
            prompt + PROMPT_OVERHEAD_TOKENS, output_ceiling(model, self.default_max_tokens)
        )

    def _fixed_bytes(self, task: TaskSpec) -> int:
        known = self._fixed.get(id(task))
        if known is not None and known[0] is task:
            return known[1]
        size = len(task.instructions.encode()) + len(
            json.dumps(task.output_json_schema(), ensure_ascii=False).encode()
        )
        if len(self._fixed) > 256:  # tasks are few; releases change seldom
            self._fixed.clear()
        self._fixed[id(task)] = (task, size)
        return size
