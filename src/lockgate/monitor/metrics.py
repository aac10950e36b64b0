"""Prometheus metrics of one process, in a registry of its own (never the global default one).

Label values are ids only (task, release, route, status, provider, model, outcome, error class,
stage, endpoint): never input text or outputs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from lockgate.decide.decision import Attempt, Decision

LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
BREAKER_VALUES: Mapping[str, int] = {"closed": 0, "half_open": 1, "open": 2}
_USERINFO = re.compile(r"//[^/@\s]*@")


def endpoint_label(endpoint: str) -> str:
    """An endpoint id safe for a label: any `user:password@` in its address is dropped."""
    return _USERINFO.sub("//", endpoint)


class Metrics:
    """Counters, histograms and gauges of the decision flow; `render()` serves `/metrics`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        self.decisions = Counter(
            "lockgate_decisions",
            "Decisions made, by task, release, route and status.",
            ["task", "release", "route", "status"],
            registry=r,
        )
        self.input_rejections = Counter(
            "lockgate_input_rejections",
            "Requests refused for input that breaks the task's input schema (nothing stored).",
            ["task"],
            registry=r,
        )
        self.decision_latency = Histogram(
            "lockgate_decision_latency_seconds",
            "End-to-end time from intake to commit, per decision.",
            ["task"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.stage_latency = Histogram(
            "lockgate_stage_latency_seconds",
            "Time spent in each pipeline stage, per batch of decisions.",
            ["task", "stage"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.batch_size = Histogram(
            "lockgate_batch_size",
            "Requests decided and committed together: a group of concurrent requests in "
            "`lockgate serve` (group commit), a chunk in `lockgate run`.",
            ["task"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.attempts = Counter(
            "lockgate_model_attempts",
            "Model attempts by provider, model, outcome (valid, invalid, error) and error class.",
            ["task", "provider", "model", "outcome", "error_class"],
            registry=r,
        )
        self.attempt_latency = Histogram(
            "lockgate_model_attempt_latency_seconds",
            "Latency of model attempts.",
            ["provider", "model"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.retries = Counter(
            "lockgate_model_retries",
            "Attempts that repeated a failed call to the same model.",
            ["task", "provider", "model"],
            registry=r,
        )
        self.fallbacks = Counter(
            "lockgate_fallbacks",
            "Decisions answered by a model other than the first of the chain.",
            ["task", "release", "provider", "model"],
            registry=r,
        )
        self.validation_failures = Counter(
            "lockgate_validation_failures",
            "Model outputs that failed the task's output schema.",
            ["task", "provider", "model"],
            registry=r,
        )
        self.tokens = Counter(
            "lockgate_tokens",
            "Tokens used, by direction (input, output).",
            ["task", "provider", "model", "direction"],
            registry=r,
        )
        self.cost = Counter(
            "lockgate_cost_usd",
            "Cost of model calls in US dollars.",
            ["task", "provider", "model"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "lockgate_breaker_state",
            "Circuit breaker state per endpoint: 0 closed, 1 half-open, 2 open.",
            ["endpoint"],
            registry=r,
        )
        self.deliveries = Counter(
            "lockgate_deliveries",
            "Delivery tries from the outbox, by task, sink and outcome (delivered, retry, dead).",
            ["task", "sink", "outcome"],
            registry=r,
        )
        self.outbox_depth = Gauge(
            "lockgate_outbox_depth",
            "Outbox rows waiting to be delivered (pending) or dead-lettered (dead).",
            ["status"],
            registry=r,
        )

        self.reviews_escalated = Counter(
            "lockgate_reviews_escalated",
            "Review items escalated for waiting longer than their task's review SLA.",
            ["task"],
            registry=r,
        )
        self.intake_records = Counter(
            "lockgate_intake_records",
            "Records read by intake sources, by outcome (decided, duplicates, quarantined).",
            ["task", "source", "outcome"],
            registry=r,
        )
        self.intake_schema_events = Counter(
            "lockgate_intake_schema_events",
            "Schema drift seen by intake sources (new_field, missing_field, type_changed, "
            "missing_jump).",
            ["task", "source", "kind"],
            registry=r,
        )
        self.intake_read_failures = Counter(
            "lockgate_intake_read_failures",
            "Failed reads of intake sources (folder gone, mailbox or database down).",
            ["task", "source"],
            registry=r,
        )

    # ---- recording

    def record_review_escalated(self, task: str) -> None:
        self.reviews_escalated.labels(task).inc()

    def _of(self, metric: Any, *values: str) -> Any:
        """`metric.labels(*values)`, kept: every decision records the same few label sets,
        and prometheus_client checks and locks on each `labels` call."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def record_decision(self, decision: Decision, elapsed_s: float) -> None:
        task = decision.task
        self._of(
            self.decisions, task, str(decision.release), decision.route or "none", decision.status
        ).inc()
        self._of(self.decision_latency, task).observe(elapsed_s)
        previous: Attempt | None = None
        for attempt in decision.attempts:
            self.record_attempt(task, attempt, retry=_is_retry(previous, attempt))
            previous = attempt
        answered = next((a for a in decision.attempts if a.outcome == "valid"), None)
        if answered is not None and answered.endpoint != decision.attempts[0].endpoint:
            self._of(
                self.fallbacks, task, str(decision.release), answered.provider, answered.model or ""
            ).inc()

    def record_attempt(self, task: str, attempt: Attempt, *, retry: bool = False) -> None:
        provider, model = attempt.provider, attempt.model or ""
        self._of(
            self.attempts, task, provider, model, attempt.outcome, attempt.error_class or ""
        ).inc()
        if attempt.error_class != "breaker_open":  # a refusal is not a call
            self._of(self.attempt_latency, provider, model).observe(attempt.latency_ms / 1000)
        if retry:
            self._of(self.retries, task, provider, model).inc()
        if attempt.outcome == "invalid":
            self._of(self.validation_failures, task, provider, model).inc()
        if attempt.input_tokens:
            self._of(self.tokens, task, provider, model, "input").inc(attempt.input_tokens)
        if attempt.output_tokens:
            self._of(self.tokens, task, provider, model, "output").inc(attempt.output_tokens)
        if attempt.cost:
            self._of(self.cost, task, provider, model).inc(attempt.cost)

    def record_stages(self, task: str, stages: Mapping[str, float], size: int = 0) -> None:
        for stage, seconds in stages.items():
            self._of(self.stage_latency, task, stage).observe(seconds)
        if size:
            self._of(self.batch_size, task).observe(size)

    def record_input_rejected(self, task: str) -> None:
        self.input_rejections.labels(task).inc()

    def record_breakers(self, states: Mapping[str, str]) -> None:
        for endpoint, state in states.items():
            self._of(self.breaker_state, endpoint_label(endpoint)).set(BREAKER_VALUES[state])

    def record_delivery(self, task: str, sink: str, outcome: str) -> None:
        self.deliveries.labels(task, sink, outcome).inc()

    def record_intake(self, task: str, source: str, counts: Mapping[str, int]) -> None:
        for outcome in ("decided", "duplicates", "quarantined"):
            if counts.get(outcome):
                self.intake_records.labels(task, source, outcome).inc(counts[outcome])

    def record_schema_event(self, task: str, source: str, kind: str) -> None:
        self.intake_schema_events.labels(task, source, kind).inc()

    def record_read_failure(self, task: str, source: str) -> None:
        self.intake_read_failures.labels(task, source).inc()

    def record_outbox_depth(self, counts: Mapping[str, int]) -> None:
        for status, count in counts.items():
            self.outbox_depth.labels(status).set(count)

    # ---- exposition

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of every metric, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _is_retry(previous: Attempt | None, attempt: Attempt) -> bool:
    """Another try of the same model after an error, within one call (not a repair)."""
    return (
        previous is not None
        and previous.outcome == "error"
        and previous.endpoint == attempt.endpoint
        and previous.repair == attempt.repair
    )
