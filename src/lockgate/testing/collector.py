"""An OTLP/HTTP trace receiver on loopback: what a collector would get from `lockgate serve`.

Point `otlp_endpoint` at `collector.url`; every `POST /v1/traces` is decoded and kept::

    with SpanCollector() as collector:
        ...                       # run a server with LOCKGATE_OTLP_ENDPOINT=collector.url
        names = [span.name for span in collector.spans()]
"""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class SpanCollector:
    """A threading HTTP server; `bodies` and `spans()` may be read from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bodies: list[bytes] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the collector is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def bodies(self) -> list[bytes]:
        """Every export request's body (protobuf `ExportTraceServiceRequest`), uncompressed."""
        with self._lock:
            return list(self._bodies)

    def spans(self) -> list[Any]:
        """Every span received, decoded (`opentelemetry.proto` `Span` messages)."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        found = []
        for body in self.bodies:
            request = ExportTraceServiceRequest.FromString(body)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    found.extend(scope.spans)
        return found

    def start(self) -> SpanCollector:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                with collector._lock:
                    collector._bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: a test reads what was received, not a log of it."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> SpanCollector:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
