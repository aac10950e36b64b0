"""Circuit breakers and the retrier, with a fake clock and a sleep that only records."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.decide.chain import MAX_BACKOFF_S, Breakers, CircuitBreaker, Outcome, Retrier
from lockgate.decide.task import ModelSpec
from lockgate.providers.base import ProviderError, fatal, retryable
from tests.pipeline_kit import FakeClock, RecordingSleep


def spec(**options: Any) -> ModelSpec:
    return ModelSpec(provider="openai", model="m", **options)


def opened(clock: FakeClock, failures: int = 3, cooldown: float = 10.0) -> CircuitBreaker:
    breaker = CircuitBreaker(failures, cooldown, clock)
    for _ in range(failures):
        breaker.record_failure()
    assert breaker.state == "open"
    return breaker


class Calls:
    """A provider call that fails with the given errors in turn, then answers "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.count = 0

    async def __call__(self) -> str:
        self.count += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def run_call(
    call: Callable[[], Awaitable[str]],
    model: ModelSpec,
    breaker: CircuitBreaker | None = None,
    *,
    seed: int = 0,
) -> tuple[Outcome[str], list[float]]:
    sleep = RecordingSleep()
    retrier = Retrier(sleep=sleep, rng=random.Random(seed))
    breaker = breaker or CircuitBreaker(1000, 10.0, FakeClock())
    return asyncio.run(retrier.call(call, model, breaker)), sleep.delays


# ---------------------------------------------------------------- circuit breaker


def test_a_breaker_opens_after_n_consecutive_failures() -> None:
    breaker = CircuitBreaker(3, 10.0, FakeClock())
    for _ in range(2):
        breaker.record_failure()
        assert breaker.state == "closed"
        assert breaker.allow()

    breaker.record_failure()

    assert breaker.state == "open"
    assert not breaker.allow()


def test_a_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(3, 10.0, FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()

    assert breaker.state == "closed"


def test_an_open_breaker_refuses_until_the_cooldown_has_passed() -> None:
    clock = FakeClock()
    breaker = opened(clock, cooldown=10.0)

    clock.advance(9.99)

    assert breaker.state == "open"
    assert not breaker.allow()


def test_half_open_lets_exactly_one_probe_through() -> None:
    clock = FakeClock()
    breaker = opened(clock, cooldown=10.0)
    clock.advance(10.0)

    assert breaker.state == "half_open"
    assert breaker.allow()
    assert not breaker.allow()
    assert not breaker.allow()


def test_a_failed_probe_opens_the_breaker_for_another_full_cooldown() -> None:
    clock = FakeClock()
    breaker = opened(clock, cooldown=10.0)
    clock.advance(15.0)
    assert breaker.allow()

    breaker.record_failure()

    assert breaker.state == "open"
    assert not breaker.allow()
    clock.advance(9.99)
    assert not breaker.allow()
    clock.advance(0.01)
    assert breaker.allow()


def test_a_successful_probe_closes_the_breaker() -> None:
    clock = FakeClock()
    breaker = opened(clock, failures=3, cooldown=10.0)
    clock.advance(10.0)
    assert breaker.allow()

    breaker.record_success()

    assert breaker.state == "closed"
    assert all(breaker.allow() for _ in range(5))
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"  # a fresh count: one failure short of opening


def test_breakers_keep_one_breaker_per_endpoint() -> None:
    clock = FakeClock()
    breakers = Breakers(clock=clock)
    model = spec(breaker_failures=1, breaker_cooldown_s=5)

    first = breakers.for_endpoint("openai:a", model)
    first.record_failure()

    assert breakers.for_endpoint("openai:a", spec()) is first
    assert breakers.states() == {"openai:a": "open"}
    assert breakers.for_endpoint("openai:b", model).allow()
    clock.advance(5)
    assert breakers.states()["openai:a"] == "half_open"


# ---------------------------------------------------------------- retrier


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(fatal("bad_request", "HTTP 400"), id="bad-request"),
        pytest.param(fatal("auth", "HTTP 401"), id="auth"),
    ],
)
def test_a_non_retryable_error_is_not_retried(error: ProviderError) -> None:
    call = Calls(error)

    outcome, delays = run_call(call, spec(retries=5))

    assert call.count == 1
    assert delays == []
    assert outcome.value is None
    assert outcome.error is error


def test_a_retryable_error_is_retried_retries_times_then_given_up() -> None:
    call = Calls(*[retryable("server_error", "HTTP 500") for _ in range(10)])

    outcome, delays = run_call(call, spec(retries=3, backoff_s=0.5))

    assert call.count == 4
    assert len(delays) == 3
    assert [t.error.error_class for t in outcome.tries if t.error] == ["server_error"] * 4
    assert outcome.value is None


def test_a_retry_that_succeeds_returns_the_value_and_closes_the_breaker() -> None:
    breaker = CircuitBreaker(4, 10.0, FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    call = Calls(retryable("timeout", "slow"))

    outcome, _ = run_call(call, spec(retries=1), breaker)

    assert outcome.value == "ok"
    assert [t.error is None for t in outcome.tries] == [False, True]
    for _ in range(3):
        breaker.record_failure()
    assert breaker.state == "closed"  # the success reset the count of 3 failures


@settings(max_examples=60, deadline=None)
@given(
    retries=st.integers(min_value=1, max_value=8),
    backoff_s=st.floats(min_value=0.0, max_value=60.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_delays_are_full_jitter_below_a_doubling_capped_ceiling(
    retries: int, backoff_s: float, seed: int
) -> None:
    call = Calls(*[retryable("server_error", "HTTP 500") for _ in range(retries)])

    outcome, delays = run_call(call, spec(retries=retries, backoff_s=backoff_s), seed=seed)

    assert outcome.value == "ok"
    assert len(delays) == retries
    for attempt, delay in enumerate(delays):
        assert 0 <= delay <= min(MAX_BACKOFF_S, backoff_s * 2**attempt)


def test_backoff_is_spread_over_the_whole_interval() -> None:
    retrier = Retrier(rng=random.Random(0))
    error = retryable("server_error", "HTTP 500")

    delays = [retrier.backoff(spec(backoff_s=1.0), 0, error) for _ in range(500)]

    assert min(delays) < 0.05
    assert max(delays) > 0.95
    assert len(set(delays)) > 400


def test_a_retry_after_is_waited_for_even_above_the_backoff() -> None:
    error = ProviderError("rate_limited", "HTTP 429", retryable=True, retry_after=2.0)
    call = Calls(error)

    outcome, delays = run_call(call, spec(retries=1, backoff_s=0.01))

    assert outcome.value == "ok"
    assert len(delays) == 1
    assert delays[0] >= 2.0


def test_a_retry_after_beyond_the_cap_is_capped() -> None:
    error = ProviderError("rate_limited", "HTTP 429", retryable=True, retry_after=3600)

    _, delays = run_call(Calls(error), spec(retries=1))

    assert delays == [MAX_BACKOFF_S]


def test_an_unexpected_exception_is_a_provider_crash_without_its_text() -> None:
    call = Calls(ValueError("card 4111 1111 1111 1111 of jane@example.com"))

    outcome, delays = run_call(call, spec(retries=3))

    assert call.count == 1
    assert delays == []
    error = outcome.error
    assert error is not None
    assert (error.error_class, error.retryable) == ("provider_crash", False)
    assert str(error) == "ValueError in provider"
    assert "4111" not in str(error)
    assert "jane" not in str(error)


def test_a_call_past_its_timeout_is_a_retryable_timeout() -> None:
    count = 0

    async def hang() -> str:
        nonlocal count
        count += 1
        await asyncio.sleep(3600)
        return "never"

    outcome, delays = run_call(hang, spec(retries=1, timeout_s=0.05))

    assert count == 2
    assert len(delays) == 1
    assert [t.error.error_class for t in outcome.tries if t.error] == ["timeout", "timeout"]
    assert all(t.latency_ms >= 40 for t in outcome.tries)


def test_an_open_breaker_refuses_without_calling() -> None:
    call = Calls()

    outcome, delays = run_call(call, spec(retries=3), opened(FakeClock()))

    assert call.count == 0
    assert delays == []
    assert outcome.error is not None
    assert (outcome.error.error_class, outcome.error.retryable) == ("breaker_open", False)
    assert outcome.tries[0].latency_ms == 0


def test_a_breaker_that_opens_during_retries_stops_them() -> None:
    breaker = CircuitBreaker(2, 10.0, FakeClock())
    call = Calls(*[retryable("server_error", "HTTP 500") for _ in range(5)])

    outcome, _ = run_call(call, spec(retries=4), breaker)

    assert call.count == 2
    assert [t.error.error_class for t in outcome.tries if t.error] == [
        "server_error",
        "server_error",
        "breaker_open",
    ]


def test_a_cancelled_probe_lets_the_next_probe_through() -> None:
    clock = FakeClock()
    breaker = opened(clock, cooldown=10.0)
    clock.advance(10.0)
    started = asyncio.Event()

    async def hang() -> str:
        started.set()
        await asyncio.sleep(3600)
        return "never"

    async def cancel_the_probe() -> None:
        task = asyncio.create_task(Retrier().call(hang, spec(retries=0), breaker))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_the_probe())

    assert breaker.state == "half_open"
    assert breaker.allow()
