"""Failed API-key checks are limited per client address and per key prefix: past the limit a
429 problem with `Retry-After`; a valid key is never refused; the window ends on its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lockgate.server.attempts import FailedAttempts
from tests.server.kit import Api, running_api

LIMIT = 5
WINDOW = 60.0


class Clock:
    """Monotonic seconds that move only when a test moves them."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[Api]:
    """One API per backend for the module: what these tests count lives in the app's
    `FailedAttempts`, which `api` replaces with a fresh one for each test."""
    with running_api(tmp_path_factory.mktemp("attempts"), module_database_url) as running:
        yield running


@pytest.fixture
def api(shared_api: Api, clock: Clock) -> Api:
    shared_api.client.app.state.failed_attempts = FailedAttempts(LIMIT, WINDOW, clock=clock)  # type: ignore[attr-defined]
    return shared_api


def wrong_keys(api: Api, count: int, prefix: str = "lg_wrong") -> list[int]:
    return [
        api.client.get(
            "/v1/tasks", headers={"Authorization": f"Bearer {prefix}-{n:04d}"}
        ).status_code
        for n in range(count)
    ]


def test_a_burst_of_wrong_keys_gets_429_with_retry_after_past_the_limit(
    api: Api, clock: Clock
) -> None:
    assert wrong_keys(api, LIMIT) == [401] * LIMIT
    clock.now += 15
    refused = api.client.get("/v1/tasks", headers={"Authorization": "Bearer lg_another-one"})
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "45"
    body = refused.json()
    assert body["type"] == "urn:lockgate:problem:too-many-requests"
    assert "lg_another-one" not in refused.text


def test_a_valid_key_from_a_refused_address_still_works(api: Api) -> None:
    assert wrong_keys(api, LIMIT + 3)[-3:] == [429] * 3
    answer = api.client.get("/v1/tasks", headers=api.auth("viewer"))
    assert answer.status_code == 200


def test_successful_requests_are_not_counted(api: Api) -> None:
    for _ in range(LIMIT * 3):
        assert api.client.get("/v1/tasks", headers=api.auth("viewer")).status_code == 200
    assert wrong_keys(api, LIMIT) == [401] * LIMIT


def test_a_request_without_a_key_is_a_401_not_a_counted_failure(api: Api) -> None:
    for _ in range(LIMIT * 2):
        assert api.client.get("/v1/tasks").status_code == 401
    assert wrong_keys(api, LIMIT) == [401] * LIMIT


def test_the_limit_resets_after_the_window(api: Api, clock: Clock) -> None:
    assert wrong_keys(api, LIMIT + 1)[-1] == 429
    clock.now += WINDOW
    assert wrong_keys(api, LIMIT + 1) == [401] * LIMIT + [429]


def test_metrics_counts_failed_keys_too(api: Api) -> None:
    statuses = [
        api.client.get("/metrics", headers={"Authorization": f"Bearer lg_m{n}"}).status_code
        for n in range(LIMIT + 1)
    ]
    assert statuses == [401] * LIMIT + [429]


def test_wrong_keys_sharing_a_prefix_are_limited_across_addresses(clock: Clock) -> None:
    attempts = FailedAttempts(LIMIT, WINDOW, clock=clock)
    same_prefix = "lg_AAAAAAAAA"
    waits = [attempts.failed(f"10.0.0.{n}", f"{same_prefix}{n}") for n in range(LIMIT + 1)]
    assert waits == [None] * LIMIT + [60]


def test_wrong_keys_from_one_address_are_limited_whatever_their_prefix(clock: Clock) -> None:
    attempts = FailedAttempts(LIMIT, WINDOW, clock=clock)
    waits = [attempts.failed("10.0.0.1", f"lg_{n:012d}") for n in range(LIMIT + 1)]
    assert waits == [None] * LIMIT + [60]


def test_memory_stays_bounded_under_many_addresses(clock: Clock) -> None:
    attempts = FailedAttempts(LIMIT, WINDOW, clock=clock, max_tracked=100)
    for n in range(1000):
        attempts.failed(f"10.0.{n // 256}.{n % 256}", f"lg_{n:012d}")
    assert len(attempts._windows) <= 100
