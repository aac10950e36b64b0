"""Sinks: where a final decision goes (a webhook, a JSONL file, a Python callable).

Each adapter implements the small `Sink` protocol; `SinkRegistry` maps the `sink:` kind of a
task file's `deliver:` entry to a factory, so the worker never branches on the kind. A sink
either returns (delivered) or raises `DeliveryFailed`, permanent or worth retrying. Error
messages name the sink and the failure class, never payload values or secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from lockgate.delivery.sinks.base import (
    DeliveryFailed,
    HttpPool,
    Sink,
    SinkContext,
    SinkFactory,
    Undeliverable,
)
from lockgate.delivery.sinks.file import FileSink
from lockgate.delivery.sinks.python import PythonSink
from lockgate.delivery.sinks.signature import sign, verify_signature
from lockgate.delivery.sinks.webhook import WebhookSink
from lockgate.delivery.types import DeliveryResult, OutboxRow, OutboxStatus
from lockgate.errors import ConfigError

if TYPE_CHECKING:
    # The task-file spec types pull pydantic and YAML; here they are only annotations.
    from lockgate.decide.task import SinkSpecBase

__all__ = [
    "DeliveryFailed",
    "DeliveryResult",
    "HttpPool",
    "OutboxRow",
    "OutboxStatus",
    "Sink",
    "SinkContext",
    "SinkFactory",
    "SinkRegistry",
    "Undeliverable",
    "sign",
    "verify_signature",
]


class SinkRegistry:
    """Sink factories by `sink:` kind, built once at the worker's start."""

    def __init__(self, factories: Mapping[str, SinkFactory]) -> None:
        self._factories = dict(factories)

    @classmethod
    def builtin(cls) -> SinkRegistry:
        return cls(
            {
                "webhook": WebhookSink.from_spec,
                "file": FileSink.from_spec,
                "python": PythonSink.from_spec,
            }
        )

    def names(self) -> list[str]:
        return sorted(self._factories)

    def build(self, spec: SinkSpecBase, context: SinkContext) -> Sink:
        try:
            factory = self._factories[spec.sink]
        except KeyError:
            raise ConfigError(
                f"unknown sink {spec.sink!r}", hint=f"known sinks: {', '.join(self.names())}"
            ) from None
        return factory(spec, context)
