"""The `python` sink: call a function given by import path with the decision."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lockgate.delivery.sinks.base import DeliveryFailed, SinkContext, Undeliverable
from lockgate.delivery.types import OutboxRow
from lockgate.errors import ConfigError

if TYPE_CHECKING:
    # The task-file spec types pull pydantic and YAML; here they are only annotations.
    from lockgate.decide.task import PythonSinkSpec


class PythonSink:
    """Call a function given by import path with the payload dict; sync or async."""

    def __init__(self, spec: PythonSinkSpec, context: SinkContext) -> None:
        self.spec = spec
        self._function: Callable[[dict[str, Any]], Any] | None = None

    @classmethod
    def from_spec(cls, spec: PythonSinkSpec, context: SinkContext) -> PythonSink:
        return cls(spec, context)

    def function(self) -> Callable[[dict[str, Any]], Any]:
        if self._function is None:
            self._function = import_callable(self.spec.callable)
        return self._function

    async def send(self, row: OutboxRow) -> None:
        import asyncio  # here, not at the top: a webhook receiver's verify_signature needs none

        try:
            function = self.function()
        except ConfigError as exc:
            raise DeliveryFailed(exc.message) from None
        try:
            if inspect.iscoroutinefunction(function):
                await function(dict(row.payload))
            else:
                result = await asyncio.to_thread(function, dict(row.payload))
                if inspect.isawaitable(result):
                    await result
        except Undeliverable:
            raise DeliveryFailed(
                f"{self.spec.callable} refused the decision (Undeliverable)", permanent=True
            ) from None
        except Exception as exc:
            # The exception's text may quote the payload: only its class is kept.
            raise DeliveryFailed(f"{self.spec.callable} raised {type(exc).__name__}") from None

    async def aclose(self) -> None:
        """Nothing to close."""


def import_callable(path: str) -> Callable[[dict[str, Any]], Any]:
    """The object at "package.module:attribute.path"; a clear ConfigError when missing."""
    module_name, _, attributes = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(
            f"cannot import {module_name} for the python sink {path}: {type(exc).__name__}"
        ) from None
    for name in attributes.split("."):
        target = getattr(target, name, None)
        if target is None:
            raise ConfigError(f"{module_name} has no attribute {attributes} (python sink {path})")
    if not callable(target):
        raise ConfigError(f"{path} is not callable (python sink)")
    return target
