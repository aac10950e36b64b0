"""Building the `Attempt` record of one try of one model in a decision's chain."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from lockgate.decision import Attempt
from lockgate.providers.base import Candidate, ProviderError
from lockgate.resilience import Try

if TYPE_CHECKING:
    from lockgate.pipeline import ChainModel


def build_attempt(
    model: ChainModel,
    t: Try,
    outcome: Literal["valid", "invalid", "error"],
    *,
    repair: bool,
    candidate: Candidate | None = None,
    error: ProviderError | None = None,
    message: str | None = None,
) -> Attempt:
    usage = candidate.usage if candidate else (error.usage if error else None)
    return Attempt(
        provider=model.provider.name,
        model=model.spec.model,
        endpoint=model.provider.endpoint,
        latency_ms=t.latency_ms,
        outcome=outcome,
        error_class=error.error_class if error else None,
        message=str(error) if error else message,
        input_tokens=usage.input_tokens if usage else 0,
        output_tokens=usage.output_tokens if usage else 0,
        cost=usage.cost if usage else 0.0,
        repair=repair,
    )
