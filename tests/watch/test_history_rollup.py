"""Roll-ups equal a direct count over the stored decisions and verdicts, on both backends:
late commits, two replicas rolling up at once, compaction to hours."""

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
from lockgate.store.tables import attempts, decisions, reviews
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
    return out


def rolled(store: Store, task: str, step: int) -> dict[tuple[str, str], dict[str, Any]]:
    cells = store.history.cells(task, T0 - timedelta(days=1), T0 + timedelta(days=2))
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
        }
    return out


def assert_equal(store: Store, task: str, step: int) -> None:
    expected, got = direct(store, task, step), rolled(store, task, step)
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
    # Two replicas at once, without the lease: neither may count a row the other counted.
    threads = [threading.Thread(target=roll_until_done, args=(s, task, limit)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert_equal(a, task, 60)
    assert_equal(a, task, 3600)


def test_compaction_to_hours_keeps_every_count(stores: tuple[Store, Store]) -> None:
    a, _ = stores
    task = f"t{uuid.uuid4().hex[:10]}"
    made = [make(task, n, kind, n * 7, 30.0 * n, 0.1 * (n % 10)) for n, kind in
            enumerate(["auto", "review", "reject", "failed"] * 5)]  # fmt: skip
    a.decisions.save(made)
    roll_until_done(a, task, 1000)
    before = rolled(a, task, 3600)
    # A week later, the minutes are folded into hours: same buckets per hour, fewer cells.
    later = T0 + timedelta(days=8)
    while a.history.compact(later, timedelta(days=7), timedelta(days=90)):
        pass
    cells = a.history.cells(task, T0 - timedelta(days=1), T0 + timedelta(days=2))
    assert cells and {c.step for c in cells} == {"hour"}
    assert rolled(a, task, 3600) == before
    assert_equal(a, task, 3600)
    # And hours into days after 90 days.
    while a.history.compact(T0 + timedelta(days=100), timedelta(days=7), timedelta(days=90)):
        pass
    assert {
        c.step for c in a.history.cells(task, T0 - timedelta(days=1), T0 + timedelta(days=2))
    } == {"day"}
    assert_equal(a, task, 86400)


def test_percentiles_come_from_the_merged_histogram() -> None:
    # 100 decisions: 90 at 20 ms (le_25), 10 at 4 s (le_5000): p50 in (10, 25], p95 in (2500, 5000].
    hist = {"le_25": 90.0, "le_5000": 10.0}
    assert 10 < history.quantile(hist, 0.5) <= 25  # type: ignore[operator]
    assert 2500 < history.quantile(hist, 0.95) <= 5000  # type: ignore[operator]
    assert history.quantile({}, 0.95) is None
