"""Lockgate: run an AI decision in production, validated, gated, reviewed and reversible.

The public API is what `__all__` lists; every other module is internal and may change.
"""

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
