"""A real pipeline with the service's observer: metrics, spans in memory, logs in a StringIO.

The task has a `pii: true` text field (up to 400 characters) and a chain of models given as
dicts, like `tests.pipeline_kit`; the openai provider talks to a `FaultServer` on loopback.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from lockgate.decide.task import TaskSpec, parse_task
from lockgate.monitor.logging import LockgateLogHandler, configure_logging
from lockgate.monitor.telemetry import MetricsObserver, build_observer
from tests.pipeline_kit import Kit, build_kit, kit_settings

TASK = "tickets"


def deterministic_model(**options: Any) -> dict[str, Any]:
    return {"provider": "deterministic", "confidence": 0.9, **options}


def pii_task(models: Sequence[Mapping[str, Any]]) -> TaskSpec:
    return parse_task(
        {
            "name": TASK,
            "instructions": "Route the support ticket to a queue.",
            "input": {
                "text": {"type": "string", "max_length": 400, "pii": True},
                "channel": {"type": "string", "required": False},
            },
            "output": {"queue": {"type": "enum", "values": ["cards", "loans", "other"]}},
            "models": [dict(m) for m in models],
            "policy": {"auto_min_confidence": 0.8},
        },
        "tasks/tickets.yaml",
    )


@dataclass
class Observed:
    kit: Kit
    observer: MetricsObserver
    spans: InMemorySpanExporter
    logs: io.StringIO
    handler: LockgateLogHandler

    def finished_spans(self) -> Sequence[ReadableSpan]:
        return self.spans.get_finished_spans()

    def sample(self, name: str, **labels: str) -> float:
        """The value of one sample of the rendered metrics (0 when absent)."""
        body, _ = self.observer.metrics.render()
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return float(s.value)
        return 0.0

    def total(self, name: str, **labels: str) -> float:
        """The sum over every sample called `name` whose labels include `labels`."""
        body, _ = self.observer.metrics.render()
        return sum(
            float(s.value)
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )


@contextlib.contextmanager
def observed_kit(
    database_url: str,
    tmp_path: Path,
    models: Sequence[Mapping[str, Any]],
    *,
    server_url: str = "http://127.0.0.1:9/v1",
) -> Iterator[Observed]:
    """A kit whose pipeline reports to a fresh observer; undo the log set-up after."""
    kit = build_kit(database_url, tmp_path, models, server_url=server_url, spec=pii_task(models))
    settings = kit_settings(database_url, tmp_path, server_url)
    exporter = InMemorySpanExporter()
    observer = build_observer(settings, exporter=exporter)
    kit.pipeline.observer = observer
    logs = io.StringIO()
    handler = configure_logging(settings, logs, redactor=observer.redactor)
    try:
        yield Observed(kit, observer, exporter, logs, handler)
    finally:
        logging.getLogger().removeHandler(handler)
        observer.shutdown()
        kit.store.close()
