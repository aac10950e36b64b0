"""What the pipeline tells the outside world about its work, through one small interface.

The pipeline knows only the `Observer` protocol; Prometheus, OpenTelemetry and logging live in
`MetricsObserver` (monitor/telemetry.py), built at an entry point. `NullObserver` does nothing.
Everything passed here is an id, a count or a duration, except the values given to `protect`,
which exist only to be scrubbed from whatever is logged or traced while the context is open.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

from lockgate.decide.decision import Attempt, Decision

Id = str | int | None
"""A span attribute or log field value: ids and counts only, never input text."""


class Observer(Protocol):
    def span(self, name: str, **ids: Id) -> AbstractContextManager[None]:
        """A traced stage; nested spans become its children."""
        ...

    def protect(self, values: Iterable[str]) -> AbstractContextManager[None]:
        """While open, these values (an input's `pii: true` fields) are scrubbed from logs and
        traces on this task and the tasks it starts."""
        ...

    def attempt_recorded(self, attempt: Attempt, **ids: Id) -> None:
        """One model attempt has ended (`attempt.latency_ms` ago it started)."""
        ...

    def decision_finished(
        self, decision: Decision, *, elapsed_s: float, request_id: str | None
    ) -> None:
        """A new decision is committed; `elapsed_s` runs from intake to commit."""
        ...

    def input_rejected(self, task: str, reason: str, *, request_id: str | None) -> None:
        """A request was refused for bad input; nothing was stored."""
        ...

    def stages_timed(self, task: str, stages: Mapping[str, float], *, size: int = 0) -> None:
        """Seconds spent in each stage for one batch of `size` requests."""
        ...

    def breaker_states(self, states: Mapping[str, str]) -> None:
        """Breaker state ("closed", "half_open", "open") per endpoint."""
        ...


class NullObserver:
    """Observes nothing, at no cost."""

    def span(self, name: str, **ids: Id) -> AbstractContextManager[None]:
        return nullcontext()

    def protect(self, values: Iterable[str]) -> AbstractContextManager[None]:
        return nullcontext()

    def attempt_recorded(self, attempt: Attempt, **ids: Id) -> None:
        pass

    def decision_finished(
        self, decision: Decision, *, elapsed_s: float, request_id: str | None
    ) -> None:
        pass

    def input_rejected(self, task: str, reason: str, *, request_id: str | None) -> None:
        pass

    def stages_timed(self, task: str, stages: Mapping[str, float], *, size: int = 0) -> None:
        pass

    def breaker_states(self, states: Mapping[str, str]) -> None:
        pass
