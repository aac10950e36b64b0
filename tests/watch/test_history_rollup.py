"""Roll-ups equal a direct count over the stored decisions, review verdicts and spot-check
verdicts, on both backends: late commits, two replicas rolling up at once; at each level
(minutes, hours, days), and after old minutes and hours are dropped."""

from __future__ import annotations

import functools
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from lockgate.decide.decision import Attempt, Decision, input_hash, new_id
from lockgate.review.types import Ruling
from lockgate.store import Store
from lockgate.store.tables import attempts, decisions, reviews, spot_checks
from lockgate.watch import history
from lockgate.watch.history import counts_of

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def stores(module_database_url: str) -> Iterator[tuple[Store, Store]]:
    """Two replicas: two stores (two engines, two pools) on one database."""
    a, b = Store(module_database_url), Store(module_database_url, migrate=False)
    yield a, b
    a.close()
    b.close()


def summarize(task: str) -> Any:
    return functools.partial(counts_of, label_fields={task: ("queue",)})


def make(
    task: str,
    n: int,
    kind: str,
    minute: int,
    latency: float,
    conf: float | None,
    cached: bool = False,
) -> Decision:
    route, status, reason = {
        "auto": ("auto", "decided", "confidence 0.9 >= 0.8"),
        "review": ("review", "pending_review", "confidence 0.5 is below auto_min_confidence 0.8"),
        "reject": ("reject", "rejected", "policy.reject_when.0 matched (output queue equals x)"),
        "failed": ("reject", "failed", "every model failed: timeout"),
    }[kind]
    failed = kind == "failed"
    return Decision(
        id=new_id(),
        task=task,
        release=1 + n % 2,
        idempotency_key=f"k{n}",
        input_hash=input_hash({"text": str(n)}),
        input={"text": str(n)},
        redacted_input={"text": str(n)},
        output=None if failed else {"queue": ("cards", "loans")[n % 2]},
        confidence=None if failed else conf,
        route=route,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        reason=reason,
        cost=0.001 * (n % 3),
        latency_ms=latency,
        created_at=T0 + timedelta(minutes=minute, seconds=n % 60),
        cached_from=new_id() if cached and not failed else None,
        attempts=(
            Attempt("p", "m", "e", 1.0, "error", "timeout", None, 3, 0),
            *(() if failed else (Attempt("p", "m", "e", 1.0, "valid", None, None, 7, 2, 0.001),)),
        ),
    )


def direct(store: Store, task: str, step: int) -> dict[tuple[str, str], dict[str, Any]]:
    """The buckets counted straight from the stored rows (no roll-up involved)."""
    out: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {
            "decisions": 0, "auto": 0, "review": 0, "reject": 0, "failed": 0, "cached": 0,
            "cost": 0.0,
            "input_tokens": 0, "output_tokens": 0, "latency": Counter(), "confidence": Counter(),
            "labels": Counter(), "verdicts": Counter(), "failures": Counter(),
            "spot_checks": Counter(),
        }
    )  # fmt: skip
    with store.engine.connect() as conn:
        rows = conn.execute(select(decisions).where(decisions.c.task == task)).mappings().all()
        tokens = Counter[tuple[str, str]]()
        for a in conn.execute(select(attempts)).mappings():
            tokens[(a["decision_id"], "in")] += a["input_tokens"]
            tokens[(a["decision_id"], "out")] += a["output_tokens"]
        releases = {r["id"]: r["release"] for r in rows}
        verdicts = (
            conn.execute(select(reviews).where(reviews.c.task == task).order_by(reviews.c.id))
            .mappings()
            .all()
        )
        s = spot_checks.c
        checks = (
            conn.execute(select(spot_checks).where(s.task == task, s.verdict.is_not(None)))
            .mappings()
            .all()
        )
    first_output: dict[str, Any] = {}
    for v in verdicts:
        first_output.setdefault(v["decision_id"], v["previous_output"])
    for r in rows:
        start = history.bucket_start(r["created_at"].replace(tzinfo=UTC), step).isoformat()
        b = out[(start, f"{task}@{r['release']}")]
        b["decisions"] += 1
        b["cached"] += r["cached_from"] is not None
        if r["status"] == "failed":
            b["failed"] += 1
            b["failures"]["every model failed"] += 1
        else:
            b[r["route"]] += 1
        b["cost"] += r["cost"]
        b["input_tokens"] += tokens[(r["id"], "in")]
        b["output_tokens"] += tokens[(r["id"], "out")]
        b["latency"][history.latency_key(r["latency_ms"])] += 1
        if r["confidence"] is not None:
            b["confidence"][history.confidence_key(r["confidence"])] += 1
        output = first_output.get(r["id"], r["output"])  # the model's, not a correction
        if output:
            b["labels"][output["queue"]] += 1
    for v in verdicts:
        start = history.bucket_start(v["at"].replace(tzinfo=UTC), step).isoformat()
        b = out[(start, f"{task}@{releases[v['decision_id']]}")]
        b["verdicts"][history.VERDICTS[v["verdict"]]] += 1
    for c in checks:
        start = history.bucket_start(c["at"].replace(tzinfo=UTC), step).isoformat()
        out[(start, f"{task}@{c['release']}")]["spot_checks"][c["verdict"]] += 1
    return out


def rolled(
    store: Store, task: str, step: int, level: str | None = None
) -> dict[tuple[str, str], dict[str, Any]]:
    """The buckets from the roll-up's cells, read for buckets of `step` (from the coarsest
    level kept that fits in it); `level`: the cells must all be of that step."""
    cells = store.history.cells(task, T0 - timedelta(days=1), T0 + timedelta(days=2), step)
    if level is not None:
        assert {c.step for c in cells} <= {level}
    out = {}
    for b in history.buckets(task, cells, step):
        out[(b["start"], b["release"])] = {
            **{k: b[k] for k in ("decisions", "auto", "review", "reject", "failed", "cached")},
            **{k: b[k] for k in ("input_tokens", "output_tokens")},
            "cost": b["cost"],
            "latency": Counter(b["latency_histogram_ms"]),
            "confidence": Counter(b["confidence_histogram"]),
            "labels": Counter(b["labels"]),
            "verdicts": +Counter(b["verdicts"]),
            "failures": Counter(b["failures"]),
            "spot_checks": +Counter(b["spot_checks"]),
        }
    return out


def assert_equal(store: Store, task: str, step: int, level: str | None = None) -> None:
    expected, got = direct(store, task, step), rolled(store, task, step, level)
    assert set(got) == set(expected)
    for key, want in expected.items():
        have = got[key]
        assert have["cost"] == pytest.approx(want["cost"], abs=1e-9), key
        assert {k: v for k, v in have.items() if k != "cost"} == {
            k: (+v if isinstance(v, Counter) else v) for k, v in want.items() if k != "cost"
        }, key


def approve(store: Store, decision: Decision, kind: str, at: datetime) -> None:
    assert store.reviews.claim(decision.id, "rita", at, at + timedelta(minutes=5))
    output = {"queue": "loans"} if kind != "reject" else None
    final = {"approve": "approved", "correct": "corrected", "reject": "rejected"}[kind]
    ruling = Ruling(kind, output, None, {}, final, output)  # type: ignore[arg-type]
    assert store.reviews.record(decision.id, "rita", at, lambda _state: ruling) is not None


def spot_check(store: Store, decision: Decision, verdict: str, at: datetime) -> None:
    """Queue a spot check of the decision (as the sweep does) and give it `verdict` at `at`."""
    queued = (decision.id, decision.task, decision.release, decision.created_at)
    store.quality.add_spot_checks([queued], at, f"test-{decision.task}", at)
    output = None if verdict == "approve" else {"queue": "loans"}
    kind: Any = verdict
    judged = store.quality.judge_spot_check(
        decision.id, "sam", kind, output, at, {}, lambda d: None
    )
    assert judged is not None


def roll_until_done(store: Store, task: str, limit: int) -> None:
    while store.history.roll_up(summarize(task), limit):
        pass


stream = st.lists(
    st.tuples(
        st.sampled_from(["auto", "review", "reject", "failed"]),
        st.integers(0, 180),  # minute after T0
        st.sampled_from([0.5, 4.0, 20.0, 99.0, 700.0, 4000.0, 70000.0]),
        st.one_of(st.none(), st.floats(0, 1)),
        st.sampled_from([None, "approve", "correct", "reject"]),
        st.booleans(),  # answered from the decision cache
        st.sampled_from([None, "approve", "correct", "reject"]),  # a spot check's verdict
    ),
    min_size=1,
    max_size=24,
)


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(stream=stream, split=st.integers(0, 24), limit=st.integers(1, 7))
def test_rollups_equal_a_direct_count_with_late_commits_and_two_replicas(
    stores: tuple[Store, Store], stream: list[Any], split: int, limit: int
) -> None:
    a, b = stores
    task = f"t{uuid.uuid4().hex[:10]}"
    made = [make(task, n, *spec[:4], cached=spec[5]) for n, spec in enumerate(stream)]
    # The late ones get ids older than every id counted before they commit.
    made[split:] = [replace(d, id="0" * 6 + d.id[6:]) for d in made[split:]]
    first, late = made[:split], made[split:]
    if first:
        a.decisions.save(first)
    roll_until_done(a, task, limit)
    # Committed after the roll-up passed them, with earlier ids and timestamps than some counted.
    if late:
        b.decisions.save(late)
    for d, spec in zip(made, stream, strict=True):
        if d.status == "pending_review" and spec[4] is not None:
            approve(a, d, spec[4], T0 + timedelta(minutes=spec[1] + 5))
        if d.route == "auto" and spec[6] is not None:
            spot_check(a, d, spec[6], T0 + timedelta(minutes=spec[1] + 30))
    # Two replicas at once, without the lease: neither may count a row the other counted.
    threads = [threading.Thread(target=roll_until_done, args=(s, task, limit)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Each level on its own equals the direct count: the minutes, the hours, the days.
    assert_equal(a, task, 60, "minute")
    assert_equal(a, task, 3600, "hour")
    assert_equal(a, task, 86400, "day")
    # And read per minute, hours and days merge to the same hours and days.
    assert_equal(a, task, 3600)
    assert_equal(a, task, 86400)


def test_dropping_old_minutes_and_hours_keeps_every_count(database_url: str) -> None:
    store = Store(database_url)
    try:
        task = f"t{uuid.uuid4().hex[:10]}"
        made = [make(task, n, kind, n * 7, 30.0 * n, 0.1 * (n % 10)) for n, kind in
                enumerate(["auto", "review", "reject", "failed"] * 5)]  # fmt: skip
        store.decisions.save(made)
        roll_until_done(store, task, 1000)
        before = rolled(store, task, 3600)
        # A week later the minutes are dropped: read per minute, the hours stand in for them.
        later = T0 + timedelta(days=8)
        while store.history.expire(later, timedelta(days=7), timedelta(days=90)):
            pass
        # Complete from the hour 7 days before (T0 + 8 days), the minutes before dropped.
        assert store.history.complete_from()["minute"] == datetime(2026, 11, 3, 9, tzinfo=UTC)
        cells = store.history.cells(task, T0 - timedelta(days=1), T0 + timedelta(days=2))
        assert cells and {c.step for c in cells} == {"hour"}
        assert rolled(store, task, 3600) == before
        assert_equal(store, task, 3600)
        # A decision committed late, in an hour whose minutes are gone: its minute cell is
        # written but read by nobody (its hour and day count it), and dropped next time.
        late = make(task, 99, "auto", 30, 12.0, 0.9)
        store.decisions.save([replace(late, id="0" * 6 + late.id[6:])])
        roll_until_done(store, task, 1000)
        assert_equal(store, task, 3600)
        assert_equal(store, task, 86400, "day")
        assert store.history.expire(later, timedelta(days=7), timedelta(days=90)) > 0
        assert_equal(store, task, 3600)
        # After 90 days the hours go too: the days are left.
        while store.history.expire(T0 + timedelta(days=100), timedelta(days=7), timedelta(90)):
            pass
        cells = store.history.cells(task, T0 - timedelta(days=1), T0 + timedelta(days=2))
        assert cells and {c.step for c in cells} == {"day"}
        assert_equal(store, task, 86400)
    finally:
        store.close()


def test_the_backlog_of_an_hour_and_a_day_is_the_largest_of_their_minutes(
    database_url: str,
) -> None:
    store = Store(database_url)
    try:
        task = f"t{uuid.uuid4().hex[:10]}"
        pending = [make(task, n, "review", 0, 5.0, 0.5) for n in range(0, 8, 2)]  # release 1
        store.decisions.save(pending)
        at = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
        store.history.sample_backlog(at)  # 4 waiting
        for decision in pending[:3]:
            approve(store, decision, "approve", at)
        store.history.sample_backlog(at + timedelta(seconds=30))  # the same minute: 1
        store.history.sample_backlog(at + timedelta(minutes=1))  # 1
        cells = {
            (c.step, c.start): c.value
            for c in store.history.cells(task, at - timedelta(days=1), at + timedelta(days=1))
            + store.history.cells(task, at - timedelta(days=1), at + timedelta(days=1), 3600)
            + store.history.cells(task, at - timedelta(days=1), at + timedelta(days=1), 86400)
            if c.metric == "backlog" and c.key == "count"
        }
        # A minute keeps its latest sample; an hour and a day the largest of their minutes.
        assert cells == {
            ("minute", at): 1.0,
            ("minute", at + timedelta(minutes=1)): 1.0,
            ("hour", at): 1.0,
            ("day", at.replace(hour=0)): 1.0,
        }
        store.history.sample_backlog(at + timedelta(minutes=2))
        pending_more = [make(task, n, "review", 0, 5.0, 0.5) for n in range(10, 16, 2)]
        store.decisions.save(pending_more)
        store.history.sample_backlog(at + timedelta(minutes=3))  # 4 waiting
        hour = store.history.cells(task, at, at + timedelta(hours=1), 3600)
        day = store.history.cells(task, at.replace(hour=0), at + timedelta(days=1), 86400)
        assert [c.value for c in hour if c.metric == "backlog" and c.key == "count"] == [4.0]
        assert [c.value for c in day if c.metric == "backlog" and c.key == "count"] == [4.0]
    finally:
        store.close()


def test_percentiles_come_from_the_merged_histogram() -> None:
    # 100 decisions: 90 at 20 ms (le_25), 10 at 4 s (le_5000): p50 in (10, 25], p95 in (2500, 5000].
    hist = {"le_25": 90.0, "le_5000": 10.0}
    assert 10 < history.quantile(hist, 0.5) <= 25  # type: ignore[operator]
    assert 2500 < history.quantile(hist, 0.95) <= 5000  # type: ignore[operator]
    assert history.quantile({}, 0.95) is None
