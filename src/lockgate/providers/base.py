"""The provider interface: a prepared request in, a candidate output (or a classified error) out.

A provider never validates against the task's output schema and never decides a route; the
pipeline does both. A provider must not put input text, secrets or response bodies into the
messages of the errors it raises: those messages reach logs and API responses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from lockgate.decide.task import ModelSpec, TaskSpec
    from lockgate.settings import Settings


@dataclass(frozen=True)
class PreparedRequest:
    """What every provider receives for one input."""

    task: TaskSpec
    input: Mapping[str, Any]
    repair_hint: str | None = None
    """Set on a repair attempt: what was wrong with the previous output, to be fixed."""


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0


@dataclass(frozen=True)
class Candidate:
    """A provider's answer before validation.

    `output` is either a mapping of output fields or the raw text a model produced (JSON expected);
    `alternatives` maps an output field to the values considered, best first, with their scores.
    """

    output: Mapping[str, Any] | str
    usage: Usage = field(default_factory=Usage)
    confidence: float | None = None
    alternatives: Mapping[str, Sequence[tuple[str, float]]] | None = None
    out_of_scope: str | None = None
    """Set when the model judges the input outside what it was trained on, saying why
    ("similarity 0.31 below 0.42"); the policy then routes it by `policy.out_of_scope`."""
    note: str | None = None
    """Something the decision's reason should say about how the answer was reached (for
    example that one model of a combined chain failed)."""


ENDPOINT_FAULTS = frozenset({"auth", "provider_crash"})


class ProviderError(Exception):
    """A classified provider failure. `error_class` is a short stable name used in metrics."""

    def __init__(
        self,
        error_class: str,
        message: str,
        *,
        retryable: bool,
        usage: Usage | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.error_class = error_class
        self.retryable = retryable
        self.usage = usage or Usage()
        self.retry_after = retry_after
        """Seconds the server asked us to wait before the next try (HTTP Retry-After)."""
        super().__init__(message)

    @property
    def endpoint_fault(self) -> bool:
        """Does this failure say the endpoint is unhealthy (and so count for its breaker)?

        Timeouts, connection errors, 429s, 5xx, bad responses, rejected credentials and crashes
        do; an error about one input (a 400, no matching rule) says the endpoint answered.
        """
        return self.retryable or self.error_class in ENDPOINT_FAULTS


def retryable(error_class: str, message: str) -> ProviderError:
    return ProviderError(error_class, message, retryable=True)


def fatal(error_class: str, message: str) -> ProviderError:
    return ProviderError(error_class, message, retryable=False)


@dataclass(frozen=True)
class ProviderContext:
    """What a provider may use to build itself: the task, its project and settings."""

    task: TaskSpec
    settings: Settings
    artifacts: Mapping[str, str] = field(default_factory=dict)
    """Artifact hashes pinned by the release, keyed by `provider:output_field`."""
    fetch_artifact: Callable[[str], bytes | None] | None = None
    """The bytes of a pinned artifact by its sha256, from the database: a replica without the
    project's files loads the release with it (and keeps a copy on local disk)."""

    @property
    def artifact_dir(self) -> Path:
        return self.settings.artifact_dir


@runtime_checkable
class Provider(Protocol):
    """One configured model in a task's chain."""

    name: str
    endpoint: str
    """Identity of what is called (for the circuit breaker): provider, address and model."""
    can_repair: bool
    """True when sending the validation error back may fix an invalid output (LLMs)."""

    async def complete(self, request: PreparedRequest) -> Candidate: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class BatchProvider(Provider, Protocol):
    """A provider that answers many inputs in one call (a local classifier).

    An input it cannot answer gets a `ProviderError` in its place; raising fails the batch.
    """

    def complete_batch(
        self, requests: Sequence[PreparedRequest]
    ) -> Sequence[Candidate | ProviderError]: ...


@runtime_checkable
class TrainedProvider(Provider, Protocol):
    """A provider whose model was fitted on labeled rows (the local classifier): it knows the
    fingerprints of the inputs it was trained on, so that an eval on them can be refused."""

    def training_inputs(self) -> frozenset[str] | None:
        """`evals.types.input_fingerprint` of each training input; None when not recorded."""
        ...


class ProviderFactory(Protocol):
    """The object an entry point in the `lockgate.providers` group names (usually the class)."""

    @classmethod
    def from_spec(cls, spec: ModelSpec, context: ProviderContext) -> Provider: ...

    @classmethod
    def pinned_artifacts(cls, spec: ModelSpec, context: ProviderContext) -> dict[str, str]:
        """Artifact hashes a release must pin for this model (empty when it uses none)."""
        ...


def artifact_files(
    factory: ProviderFactory, spec: ModelSpec, context: ProviderContext
) -> dict[str, Path]:
    """The local file of each artifact `pinned_artifacts` names, by the same key, for a
    factory that keeps its artifacts in files (an optional classmethod `artifact_files`);
    the release stores their bytes in the database."""
    files = getattr(factory, "artifact_files", None)
    return dict(files(spec, context)) if files is not None else {}
