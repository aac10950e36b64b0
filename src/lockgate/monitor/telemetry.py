"""The observer a service runs with: Prometheus metrics, OpenTelemetry spans and JSON logs.

Built at an entry point with `build_observer(settings)` and handed to the `Pipeline` (through
`Runtime`); serve `observer.metrics.render()` at `/metrics`, pass `observer.redactor` to
`configure_logging`, and call `observer.shutdown()` on exit to flush spans.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext

from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import Status, StatusCode

from lockgate.decide.decision import Attempt, Decision
from lockgate.monitor.logging import Generated, Redactor
from lockgate.monitor.metrics import Metrics, endpoint_label
from lockgate.monitor.observer import Id
from lockgate.monitor.tracing import Tracing, build_tracing
from lockgate.settings import Settings

LOGGER_NAME = "lockgate.decisions"


class MetricsObserver:
    def __init__(
        self,
        metrics: Metrics,
        tracing: Tracing | None,
        logger: logging.Logger,
        redactor: Redactor,
    ) -> None:
        self.metrics = metrics
        self.tracing = tracing
        self.logger = logger
        self.redactor = redactor

    # ---- traces

    def span(self, name: str, **ids: Id) -> AbstractContextManager[None]:
        if self.tracing is None:
            return nullcontext()
        return self._span(self.tracing, name, ids)

    @contextlib.contextmanager
    def _span(self, tracing: Tracing, name: str, ids: Mapping[str, Id]) -> Iterator[None]:
        # Exceptions are not recorded on spans: their text may carry input data.
        with tracing.tracer.start_as_current_span(
            name,
            attributes=self._attributes(ids),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield
            except BaseException as exc:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise

    def _attributes(self, ids: Mapping[str, Id]) -> dict[str, str | int]:
        return {
            f"lockgate.{key}": self.redactor(value) if isinstance(value, str) else value
            for key, value in ids.items()
            if value is not None
        }

    def protect(self, values: Iterable[str]) -> AbstractContextManager[None]:
        return self.redactor.protect(values)

    # ---- events

    def attempt_recorded(self, attempt: Attempt, **ids: Id) -> None:
        fields: dict[str, Id] = {
            **ids,
            "provider": attempt.provider,
            "model": attempt.model,
            "endpoint": endpoint_label(attempt.endpoint),
            "outcome": attempt.outcome,
            "error_class": attempt.error_class,
            "repair": int(attempt.repair),
        }
        if self.tracing is not None:
            end = time.time_ns()
            span = self.tracing.tracer.start_span(
                "model_attempt",
                attributes={
                    **self._attributes(fields),
                    "lockgate.input_tokens": attempt.input_tokens,
                    "lockgate.output_tokens": attempt.output_tokens,
                },
                start_time=end - int(attempt.latency_ms * 1_000_000),
            )
            if attempt.outcome != "valid":
                span.set_status(Status(StatusCode.ERROR, attempt.error_class or attempt.outcome))
            span.end(end_time=end)
        if attempt.outcome != "valid" and attempt.error_class != "breaker_open":
            self.logger.warning(
                "model attempt failed",
                extra={**fields, "latency_ms": round(attempt.latency_ms, 3),
                       "error": attempt.message},
            )  # fmt: skip

    def decision_finished(
        self, decision: Decision, *, elapsed_s: float, request_id: str | None
    ) -> None:
        self.metrics.record_decision(decision, elapsed_s)
        self.logger.info(
            "decision",
            extra={
                "request_id": request_id,
                "decision_id": Generated(decision.id),
                "task": decision.task,
                "release": decision.release,
                "route": decision.route,
                "status": decision.status,
                "reason": decision.reason,
                "attempts": len(decision.attempts),
                "latency_ms": round(elapsed_s * 1000, 3),
            },
        )

    def input_rejected(self, task: str, reason: str, *, request_id: str | None) -> None:
        self.metrics.record_input_rejected(task)
        self.logger.info(
            "input rejected", extra={"request_id": request_id, "task": task, "reason": reason}
        )

    def stages_timed(self, task: str, stages: Mapping[str, float], *, size: int = 0) -> None:
        self.metrics.record_stages(task, stages, size)

    def breaker_states(self, states: Mapping[str, str]) -> None:
        self.metrics.record_breakers(states)

    def shutdown(self) -> None:
        if self.tracing is not None:
            self.tracing.shutdown()


def build_observer(
    settings: Settings,
    *,
    redactor: Redactor | None = None,
    exporter: SpanExporter | None = None,
) -> MetricsObserver:
    """The service's observer: a fresh metrics registry, tracing if an OTLP endpoint is set
    (or `exporter` is given), and decision logs on the `lockgate.decisions` logger."""
    return MetricsObserver(
        Metrics(),
        build_tracing(settings, exporter),
        logging.getLogger(LOGGER_NAME),
        redactor or Redactor(),
    )
