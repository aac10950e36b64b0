"""OpenTelemetry tracing, built from settings: exported by OTLP/HTTP when `otlp_endpoint` is set.

The tracer provider belongs to the process's `Tracing` object and is never installed as the
global one. Without an endpoint (and no exporter given) `build_tracing` returns None and
callers skip span work entirely.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Tracer

from lockgate.settings import Settings

SERVICE_NAME = "lockgate"


@dataclass(frozen=True)
class Tracing:
    provider: TracerProvider
    tracer: Tracer

    def shutdown(self) -> None:
        """Flush pending spans and stop exporting."""
        self.provider.shutdown()


def build_tracing(settings: Settings, exporter: SpanExporter | None = None) -> Tracing | None:
    """Tracing to `exporter` (spans sent as they end, for tests), else to the configured OTLP
    endpoint (batched, in the background), else None: tracing is off."""
    if exporter is not None:
        processor: SimpleSpanProcessor | BatchSpanProcessor = SimpleSpanProcessor(exporter)
    elif settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        url = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
        processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=url))
    else:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(processor)
    return Tracing(provider, provider.get_tracer("lockgate"))
