"""Group commit (`DecisionGroups`) keeps every promise a lone decision keeps.

A real pipeline decides with a rules model and commits to a real store. The store is seen
through `WatchedStore`, a `DecisionStore` that passes every call to the real repository and
records each commit (so a test can count transactions and see which keys went together); on
request it holds a commit until released, or raises for a chosen key or for every commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import pytest
import sqlalchemy as sa

from lockgate.decide.decision import Decision
from lockgate.decide.groups import DecisionGroups
from lockgate.decide.pipeline import DecisionRequest, DecisionStore, Pipeline, Result
from lockgate.decide.router import in_canary
from lockgate.errors import Conflict, InputError, KeyTaken, Unavailable
from tests.pipeline_kit import Kit, build_kit, rules_model

T = TypeVar("T")


class Poisoned(Exception):
    """What `WatchedStore` raises for a commit holding a poisoned key."""


class WatchedStore:
    """The real store's decisions, with every commit recorded (its keys, in order)."""

    def __init__(self, inner: DecisionStore) -> None:
        self.inner = inner
        self.commits: list[list[str]] = []
        """The idempotency keys of every commit tried, in the order they were tried."""
        self.poisoned: set[str] = set()
        """A commit holding any of these keys raises `Poisoned` (and stores nothing)."""
        self.unavailable = False
        """Every commit raises `Unavailable`, as the executor does for a locked database."""
        self.hold_first: asyncio.Event | None = None
        """When set, the first commit waits for this event before it goes to the database."""

    async def find(self, task: str, keys: Sequence[str]) -> Mapping[str, Decision]:
        return await self.inner.find(task, keys)

    async def save(self, batch: Sequence[Decision], sinks: Sequence[str] = ()) -> list[Decision]:
        keys = [d.idempotency_key for d in batch]
        first = not self.commits
        self.commits.append(keys)
        if first and self.hold_first is not None:
            await self.hold_first.wait()
        if self.unavailable:
            raise Unavailable("the database is locked", hint="retry later")
        if self.poisoned & set(keys):
            raise Poisoned("this commit holds a poisoned key")
        return await self.inner.save(batch, sinks)


@dataclass(frozen=True)
class Answer:
    """What one caller got: its decision, and whether it was stored before (replayed)."""

    decision: Decision
    replayed: bool


class Groups:
    """A `DecisionGroups` over a real pipeline and store, and what a test checks with it."""

    def __init__(self, kit: Kit, *, max_items: int = 64, max_wait_s: float = 0.002) -> None:
        self.kit = kit
        self.store = WatchedStore(kit.store.async_decisions)
        self.groups = DecisionGroups(
            Pipeline(self.store), max_items=max_items, max_wait_s=max_wait_s
        )

    def run(self, body: Callable[[], Awaitable[T]]) -> T:
        async def main() -> T:
            try:
                async with asyncio.timeout(60):  # a member never answered fails, not hangs
                    return await body()
            finally:
                await self.groups.aclose()

        return self.kit.run(main)

    async def decide(self, key: str, text: str = "my card was charged twice") -> Answer:
        """Decide in the current group; once answered, the decision must be in the database."""
        result = await self.groups.decide(
            self.kit.runtime, DecisionRequest(input={"text": text}, idempotency_key=key)
        )
        assert result.decision is not None
        stored = self.kit.store.decisions.get(result.decision.id)
        assert stored is not None, "answered before it was committed"
        assert stored.idempotency_key == key
        return Answer(result.decision, result.replayed)

    def stored(self) -> int:
        with self.kit.store.engine.connect() as conn:
            return int(conn.execute(sa.text("select count(*) from decisions")).scalar_one())


@pytest.fixture
def kit(sqlite_database_url: str, tmp_path: Path) -> Iterator[Kit]:
    kit = build_kit(sqlite_database_url, tmp_path, [rules_model()])
    yield kit
    kit.store.close()


@pytest.fixture
def both_kit(database_url: str, tmp_path: Path) -> Iterator[Kit]:
    kit = build_kit(database_url, tmp_path, [rules_model()])
    yield kit
    kit.store.close()


def test_concurrent_requests_share_commits_and_each_gets_its_own_decision(kit: Kit) -> None:
    g = Groups(kit)
    keys = [f"k-{n}" for n in range(50)]

    async def body() -> list[Answer]:
        return await asyncio.gather(*(g.decide(key) for key in keys))

    results = g.run(body)
    assert isinstance(results, list)
    assert [r.decision.idempotency_key for r in results] == keys
    assert not any(r.replayed for r in results)
    assert len({r.decision.id for r in results}) == 50
    assert g.stored() == 50
    assert sorted(k for commit in g.store.commits for k in commit) == sorted(keys)
    assert len(g.store.commits) < 50, "every request had a transaction of its own"


def test_a_lone_request_does_not_wait_for_company(kit: Kit) -> None:
    g = Groups(kit, max_wait_s=3600.0)

    async def body() -> Answer:
        return await asyncio.wait_for(g.decide("alone"), timeout=60)

    result = g.run(body)
    assert isinstance(result, Answer) and not result.replayed
    assert g.store.commits == [["alone"]]


def test_the_same_key_twice_in_one_group_is_one_decision_and_one_replay(kit: Kit) -> None:
    g = Groups(kit)

    async def body() -> tuple[Answer, Answer, Answer]:
        return await asyncio.gather(g.decide("twice"), g.decide("twice"), g.decide("other"))

    first, second, other = g.run(body)
    assert g.store.commits == [["twice", "other"]], "not one group"
    assert (first.replayed, second.replayed, other.replayed) == (False, True, False)
    assert first.decision.id == second.decision.id
    assert g.stored() == 2


def test_the_same_key_with_another_input_in_one_group_is_a_409_for_the_second(kit: Kit) -> None:
    g = Groups(kit)

    async def body() -> tuple[Answer | BaseException, ...]:
        return await asyncio.gather(
            g.decide("same", "my card was stolen"),
            g.decide("same", "my card is blocked"),
            g.decide("next"),
            return_exceptions=True,
        )

    first, second, neighbour = g.run(body)
    assert g.store.commits == [["same", "next"]], "not one group"
    assert isinstance(first, Answer) and not first.replayed
    assert first.decision.input == {"text": "my card was stolen"}
    assert isinstance(second, KeyTaken) and isinstance(second, Conflict)
    assert second.status == 409
    assert isinstance(neighbour, Answer) and not neighbour.replayed
    assert g.stored() == 2


def test_the_same_key_in_a_later_group_is_replayed_or_refused(kit: Kit) -> None:
    g = Groups(kit)

    async def body() -> tuple[Answer, Answer, BaseException | None]:
        made = await g.decide("again", "my card was stolen")
        replayed = await g.decide("again", "my card was stolen")
        try:
            await g.decide("again", "my card is blocked")
        except Conflict as exc:
            return made, replayed, exc
        return made, replayed, None

    made, replayed, refused = g.run(body)
    assert not made.replayed and replayed.replayed
    assert replayed.decision.id == made.decision.id
    assert isinstance(refused, KeyTaken)
    assert g.stored() == 1


def test_the_same_key_in_two_groups_in_flight_at_once_is_decided_once(both_kit: Kit) -> None:
    """The second group looks the key up before the first commits; the database's unique key
    decides, and the loser answers with the winner's decision."""
    g = Groups(both_kit, max_wait_s=0.001)
    g.store.hold_first = asyncio.Event()

    async def body() -> tuple[Answer, Answer]:
        first = asyncio.create_task(g.decide("race", "my card was stolen"))
        await until(lambda: len(g.store.commits) == 1)  # the first group is at its commit
        second = await g.decide("race", "my card was stolen")  # a group of its own, committed
        assert g.store.hold_first is not None
        g.store.hold_first.set()
        return await first, second

    first, second = g.run(body)
    assert g.store.commits == [["race"], ["race"]], "the two requests were not two groups"
    assert first.decision.id == second.decision.id
    assert sorted([first.replayed, second.replayed]) == [False, True]
    assert g.stored() == 1


def test_a_group_that_fails_as_a_whole_is_retried_one_by_one(kit: Kit) -> None:
    g = Groups(kit)
    g.store.poisoned = {"k-3"}
    keys = [f"k-{n}" for n in range(8)]

    async def body() -> list[Answer | BaseException]:
        return await asyncio.gather(*(g.decide(k) for k in keys), return_exceptions=True)

    results = g.run(body)
    assert isinstance(results, list)
    assert g.store.commits[0] == keys, "the requests were not one group"
    assert sorted(map(tuple, g.store.commits[1:])) == sorted((k,) for k in keys)
    for key, result in zip(keys, results, strict=True):
        if key == "k-3":
            assert isinstance(result, Poisoned)
        else:
            assert isinstance(result, Answer) and not result.replayed, (key, result)
    assert g.stored() == 7


def test_a_bad_input_fails_only_its_own_request_and_is_not_retried(kit: Kit) -> None:
    g = Groups(kit)

    async def body() -> tuple[object, ...]:
        bad = g.groups.decide(
            kit.runtime, DecisionRequest(input={"text": 42}, idempotency_key="bad")
        )
        return await asyncio.gather(
            g.decide("good-1"), bad, g.decide("good-2"), return_exceptions=True
        )

    good_1, bad, good_2 = g.run(body)
    assert isinstance(bad, InputError) and bad.status == 422
    assert isinstance(good_1, Answer) and isinstance(good_2, Answer)
    assert g.store.commits == [["good-1", "good-2"]]
    assert g.stored() == 2


def test_an_unavailable_database_reaches_every_member_without_a_retry_each(kit: Kit) -> None:
    g = Groups(kit)
    g.store.unavailable = True
    keys = [f"k-{n}" for n in range(6)]

    async def body() -> list[Answer | BaseException]:
        return await asyncio.gather(*(g.decide(k) for k in keys), return_exceptions=True)

    results = g.run(body)
    assert isinstance(results, list)
    assert all(isinstance(r, Unavailable) and r.status == 503 for r in results), results
    assert g.store.commits == [keys], "the group was retried item by item"
    assert g.stored() == 0


@pytest.mark.parametrize("when", ["before its group leaves", "while its group commits"])
def test_a_member_whose_caller_is_stopped_does_not_stop_the_others(kit: Kit, when: str) -> None:
    g = Groups(kit)
    if when == "while its group commits":
        g.store.hold_first = asyncio.Event()
    keys = [f"k-{n}" for n in range(5)]

    async def body() -> list[Answer | BaseException]:
        tasks = [asyncio.create_task(g.decide(k)) for k in keys]
        if g.store.hold_first is None:
            await asyncio.sleep(0)  # every request has joined the open group
        else:
            await until(lambda: len(g.store.commits) == 1)
        tasks[2].cancel()
        if g.store.hold_first is not None:
            g.store.hold_first.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = g.run(body)
    assert isinstance(results, list)
    assert g.store.commits[0] == keys, "the requests were not one group"
    assert isinstance(results.pop(2), asyncio.CancelledError)
    assert all(isinstance(r, Answer) and not r.replayed for r in results), results
    # The stopped caller's decision was committed with its group: a retry gets it back.
    again = g.run(lambda: g.decide("k-2"))
    assert isinstance(again, Answer) and again.replayed
    assert g.stored() == 5


def test_a_group_never_holds_more_than_max_items(kit: Kit) -> None:
    g = Groups(kit, max_items=4)
    keys = [f"k-{n}" for n in range(30)]

    async def body() -> list[Answer]:
        return await asyncio.gather(*(g.decide(k) for k in keys))

    results = g.run(body)
    assert isinstance(results, list) and len(results) == 30
    sizes = [len(commit) for commit in g.store.commits]
    assert max(sizes) <= 4, sizes
    assert sum(sizes) == 30
    assert 4 in sizes, "no group filled up: the requests did not arrive together"
    assert g.stored() == 30


def test_a_failing_canary_part_does_not_turn_new_live_decisions_into_replays(kit: Kit) -> None:
    g = Groups(kit)
    canary = replace(kit.runtime, release=2)
    split = replace(kit.runtime, canary=canary, canary_percent=50.0)
    candidates = [f"k-{n}" for n in range(40)]
    live = [k for k in candidates if not in_canary(kit.spec.name, k, 50.0)][:3]
    canaried = [k for k in candidates if in_canary(kit.spec.name, k, 50.0)][:3]
    g.store.poisoned = {canaried[0]}

    async def body() -> list[Result | BaseException]:
        requests = [
            DecisionRequest(input={"text": "my card was charged twice"}, idempotency_key=k)
            for k in live + canaried
        ]
        return await asyncio.gather(
            *(g.groups.decide(split, r) for r in requests), return_exceptions=True
        )

    results = g.run(body)
    assert isinstance(results, list)
    # The live and the canary keys are committed apart, in whichever order they finish: the
    # canary's retries one by one may come before or after the live group's commit.
    assert live in g.store.commits and canaried in g.store.commits, g.store.commits
    mixed = [c for c in g.store.commits if set(c) & set(live) and set(c) & set(canaried)]
    assert not mixed, g.store.commits
    by_key = dict(zip(live + canaried, results, strict=True))
    assert isinstance(by_key[canaried[0]], Poisoned)
    for key in live + canaried[1:]:
        result = by_key[key]
        assert isinstance(result, Result) and result.decision is not None, (key, result)
        assert not result.replayed, f"{key} was decided for the first time, answered as a replay"


def test_settings_outside_their_range_are_refused(kit: Kit) -> None:
    with pytest.raises(ValueError, match="max_items"):
        DecisionGroups(Pipeline(kit.store.async_decisions), max_items=0)
    with pytest.raises(ValueError, match="max_wait_s"):
        DecisionGroups(Pipeline(kit.store.async_decisions), max_wait_s=-1)


async def until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Let the event loop run until `condition` holds (a functional bound, not a timing)."""
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.001)
