"""A decision's model chain: timeouts, retries with backoff and jitter, circuit breakers for
any provider call, and the `Attempt` record of each try."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

from lockgate.decide.decision import Attempt
from lockgate.decide.guards import Withheld
from lockgate.decide.task import ModelSpec
from lockgate.providers.base import Candidate, ProviderError

if TYPE_CHECKING:
    from lockgate.decide.pipeline import ChainModel

T = TypeVar("T")
BreakerState = Literal["closed", "open", "half_open"]
MAX_BACKOFF_S = 30.0


class CircuitBreaker:
    """Opens after `failures_to_open` consecutive failures; after `cooldown_s` lets one probe
    through (half-open); the probe's success closes it, its failure opens it again."""

    def __init__(
        self,
        failures_to_open: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures_to_open = failures_to_open
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._state == "open" and self._clock() - self._opened_at >= self.cooldown_s:
            return "half_open"
        return self._state

    def allow(self) -> bool:
        """May a call go through now? In half-open state only one probe is allowed at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probe_in_flight:
            self._state = "half_open"
            self._probe_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self._state = "closed"
        self._failures = 0
        self._probe_in_flight = False

    def release_probe(self) -> None:
        """The probe ended without a verdict (it was cancelled): let another one through."""
        self._probe_in_flight = False

    def record_failure(self) -> None:
        self._probe_in_flight = False
        if self._state == "half_open":
            self._open()
            return
        self._failures += 1
        if self._failures >= self.failures_to_open:
            self._open()

    def _open(self) -> None:
        self._state = "open"
        self._opened_at = self._clock()
        self._failures = 0


@dataclass
class Breakers:
    """One circuit breaker per provider endpoint, kept for the life of a process."""

    clock: Callable[[], float] = time.monotonic
    _by_endpoint: dict[str, CircuitBreaker] = field(default_factory=dict)

    def for_endpoint(self, endpoint: str, spec: ModelSpec) -> CircuitBreaker:
        breaker = self._by_endpoint.get(endpoint)
        if breaker is None:
            breaker = CircuitBreaker(spec.breaker_failures, spec.breaker_cooldown_s, self.clock)
            self._by_endpoint[endpoint] = breaker
        return breaker

    def states(self) -> dict[str, BreakerState]:
        return {endpoint: b.state for endpoint, b in self._by_endpoint.items()}


@dataclass(frozen=True)
class Try:
    """One call (or one refusal by an open breaker) and how it ended."""

    latency_ms: float
    error: ProviderError | None = None


@dataclass(frozen=True)
class Outcome(Generic[T]):
    value: T | None
    tries: list[Try]

    @property
    def error(self) -> ProviderError | None:
        return self.tries[-1].error if self.tries else None


@dataclass(frozen=True)
class Retrier:
    """Runs calls with a timeout, retries retryable errors with full-jitter backoff, and keeps
    the endpoint's breaker informed."""

    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.perf_counter

    async def call(
        self, make_call: Callable[[], Awaitable[T]], spec: ModelSpec, breaker: CircuitBreaker
    ) -> Outcome[T]:
        tries: list[Try] = []
        for attempt in range(spec.retries + 1):
            if not breaker.allow():
                tries.append(
                    Try(
                        0.0,
                        ProviderError("breaker_open", "circuit breaker is open", retryable=False),
                    )
                )
                return Outcome(None, tries)
            probing = breaker.state == "half_open"
            started = self.clock()
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
                # (Ctrl-C, shutdown) that arrives just as the call completes.
                async with asyncio.timeout(spec.timeout_s):
                    value = await make_call()
            except asyncio.CancelledError:
                if probing:  # a cancelled probe says nothing about the endpoint
                    breaker.release_probe()
                raise
            except Withheld as withheld:  # a budget refused the call: it was never made
                if probing:
                    breaker.release_probe()
                tries.append(Try(0.0, withheld))
                return Outcome(None, tries)
            except Exception as exc:  # every failure is classified, none escapes unrecorded
                error = classify(exc, spec)
                if error.endpoint_fault:
                    breaker.record_failure()
                else:  # the endpoint answered; only this input could not be served
                    breaker.record_success()
                tries.append(Try((self.clock() - started) * 1000, error))
                if not error.retryable or attempt == spec.retries:
                    return Outcome(None, tries)
                await self.sleep(self.backoff(spec, attempt, error))
                continue
            breaker.record_success()
            tries.append(Try((self.clock() - started) * 1000))
            return Outcome(value, tries)
        raise AssertionError("unreachable")  # pragma: no cover

    def backoff(self, spec: ModelSpec, attempt: int, error: ProviderError) -> float:
        ceiling = min(MAX_BACKOFF_S, spec.backoff_s * (2**attempt))
        delay = self.rng.uniform(0, ceiling)
        if error.retry_after is not None:
            delay = max(delay, min(error.retry_after, MAX_BACKOFF_S))
        return delay


def classify(exc: BaseException, spec: ModelSpec) -> ProviderError:
    """Map any exception from a provider call to a ProviderError with a safe message."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, TimeoutError):
        return ProviderError("timeout", f"no answer within {spec.timeout_s:g} s", retryable=True)
    # Unknown failures are not retried: they are bugs or misconfiguration, and their text may
    # carry input data, so only the exception type is kept.
    return ProviderError("provider_crash", f"{type(exc).__name__} in provider", retryable=False)


def build_attempt(
    model: ChainModel,
    t: Try,
    outcome: Literal["valid", "invalid", "error"],
    *,
    repair: bool,
    candidate: Candidate | None = None,
    error: ProviderError | None = None,
    message: str | None = None,
) -> Attempt:
    usage = candidate.usage if candidate else (error.usage if error else None)
    return Attempt(
        provider=model.provider.name,
        model=model.spec.model,
        endpoint=model.provider.endpoint,
        latency_ms=t.latency_ms,
        outcome=outcome,
        error_class=error.error_class if error else None,
        message=str(error) if error else message,
        input_tokens=usage.input_tokens if usage else 0,
        output_tokens=usage.output_tokens if usage else 0,
        cost=usage.cost if usage else 0.0,
        repair=repair,
    )
