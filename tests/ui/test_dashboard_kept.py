"""What the dashboard keeps between renders (`server.ui.dashboard.Kept`), with an injected
clock: a stale drift report is shown at once with the time it was computed and computed again
behind the page, once; a value never computed is computed by the render that asks."""

from __future__ import annotations

import threading

from lockgate.server.ui.dashboard import Kept


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_stale_value_is_shown_and_computed_again_behind_the_page_once() -> None:
    clock = Clock()
    kept = Kept(300.0, refresh_behind=True, clock=clock)
    release = threading.Event()
    calls: list[int] = []

    def compute() -> int:
        calls.append(len(calls))
        if len(calls) > 1:  # the refresh waits until the test lets it finish
            assert release.wait(10)
        return len(calls)

    first, _, first_at = kept.get(("routing", "drift", 1), compute)
    assert (first, calls) == (1, [0])  # never computed: computed by the caller
    clock.now = 299.0
    assert kept.get(("routing", "drift", 1), compute)[0] == 1 and calls == [0]
    clock.now = 301.0  # stale: still shown, with its time, while one thread computes again
    for _ in range(3):
        value, _, at = kept.get(("routing", "drift", 1), compute)
        assert (value, at) == (1, first_at)
    release.set()
    for thread in [t for t in threading.enumerate() if t.name == "dashboard-refresh"]:
        thread.join(10)
    assert calls == [0, 1]  # one refresh, however many renders saw the stale value
    assert kept.get(("routing", "drift", 1), compute)[0] == 2


def test_without_refresh_behind_a_stale_value_is_computed_by_the_caller() -> None:
    clock = Clock()
    kept = Kept(10.0, clock=clock)
    values = iter([1, 2])
    assert kept.get("k", lambda: next(values))[0] == 1
    clock.now = 11.0
    assert kept.get("k", lambda: next(values))[0] == 2
