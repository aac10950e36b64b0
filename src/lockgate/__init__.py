"""Lockgate: run an AI decision in production, validated, gated, reviewed and reversible.

The public API is what `__all__` lists; every other module is internal and may change.

Names are imported on first use (PEP 562), so `import lockgate` or
`from lockgate import verify_signature` loads neither SQLAlchemy nor numpy: a webhook
receiver needs none of the store or the pipeline.
"""

import importlib
import typing

if typing.TYPE_CHECKING:
    from lockgate.decide.decision import Attempt, Decision
    from lockgate.decide.pipeline import DecisionRequest, Pipeline, ReleaseRuntime, Result
    from lockgate.decide.task import TaskSpec, load_task
    from lockgate.delivery.sinks.base import Undeliverable
    from lockgate.delivery.sinks.signature import verify_signature
    from lockgate.errors import (
        ConfigError,
        Conflict,
        InputError,
        LockgateError,
        NotFound,
        TaskFileError,
    )
    from lockgate.providers.base import (
        Candidate,
        PreparedRequest,
        ProviderContext,
        ProviderError,
        Usage,
    )
    from lockgate.rollout.release import Release
    from lockgate.runtime import Runtime
    from lockgate.settings import Settings, load_settings
    from lockgate.store import Store

__all__ = [
    "Attempt",
    "Candidate",
    "ConfigError",
    "Conflict",
    "Decision",
    "DecisionRequest",
    "InputError",
    "LockgateError",
    "NotFound",
    "Pipeline",
    "PreparedRequest",
    "ProviderContext",
    "ProviderError",
    "Release",
    "ReleaseRuntime",
    "Result",
    "Runtime",
    "Settings",
    "Store",
    "TaskFileError",
    "TaskSpec",
    "Undeliverable",
    "Usage",
    "load_settings",
    "load_task",
    "verify_signature",
]
__version__ = "0.1.0"

# Where each public name is defined; keep in step with the TYPE_CHECKING imports above.
_MODULES = {
    "Attempt": "lockgate.decide.decision",
    "Candidate": "lockgate.providers.base",
    "ConfigError": "lockgate.errors",
    "Conflict": "lockgate.errors",
    "Decision": "lockgate.decide.decision",
    "DecisionRequest": "lockgate.decide.pipeline",
    "InputError": "lockgate.errors",
    "LockgateError": "lockgate.errors",
    "NotFound": "lockgate.errors",
    "Pipeline": "lockgate.decide.pipeline",
    "PreparedRequest": "lockgate.providers.base",
    "ProviderContext": "lockgate.providers.base",
    "ProviderError": "lockgate.providers.base",
    "Release": "lockgate.rollout.release",
    "ReleaseRuntime": "lockgate.decide.pipeline",
    "Result": "lockgate.decide.pipeline",
    "Runtime": "lockgate.runtime",
    "Settings": "lockgate.settings",
    "Store": "lockgate.store",
    "TaskFileError": "lockgate.errors",
    "TaskSpec": "lockgate.decide.task",
    "Undeliverable": "lockgate.delivery.sinks.base",
    "Usage": "lockgate.providers.base",
    "load_settings": "lockgate.settings",
    "load_task": "lockgate.decide.task",
    "verify_signature": "lockgate.delivery.sinks.signature",
}


def __getattr__(name: str) -> object:
    try:
        module = _MODULES[name]
    except KeyError:
        raise AttributeError(f"module 'lockgate' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
