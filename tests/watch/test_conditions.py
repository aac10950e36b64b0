"""Each shipped alert condition measures what its rule promises, from a real store (both
backends): backlog and its age against the SLA, dead letters, canary rollbacks, breaker
refusals and a stalled intake (only when traffic was expected)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from lockgate.decide.decision import Attempt, Decision, input_hash, new_id, utcnow
from lockgate.decide.task import TaskSpec
from lockgate.delivery.types import DeliveryResult
from lockgate.store import Store, audit
from lockgate.watch.alerts import CONDITIONS
from lockgate.watch.conditions import AlertContext
from lockgate.watch.history import counts_of

NOW = utcnow().replace(microsecond=0)


@pytest.fixture(scope="module")
def store(module_database_url: str) -> Iterator[Store]:
    opened = Store(module_database_url)
    yield opened
    opened.close()


def task_spec(name: str, sla: float | None = None) -> TaskSpec:
    return TaskSpec.model_validate(
        {
            "name": name,
            "input": {"text": {"type": "string"}},
            "output": {"queue": {"type": "enum", "values": ["a", "b"]}},
            "models": [{"provider": "deterministic"}],
            "policy": {"review_sla_minutes": sla} if sla else {},
        }
    )


def made(
    task: str, n: int, minutes_ago: float, status: str = "decided", **extra: object
) -> Decision:
    route = {"decided": "auto", "pending_review": "review"}[status]
    return Decision(
        id=new_id(), task=task, release=1, idempotency_key=f"{task}-{n}-{minutes_ago}",
        input_hash=input_hash({"n": n}), input={"text": "x"}, redacted_input={"text": "x"},
        output={"queue": "a"}, confidence=0.9, route=route, status=status,  # type: ignore[arg-type]
        reason="r", cost=0.0, latency_ms=5.0,
        created_at=NOW - timedelta(minutes=minutes_ago), **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def measure(store: Store, spec: TaskSpec, condition: str, window: timedelta) -> float | None:
    while store.history.roll_up(lambda d, v: counts_of(d, v, {}), 500):
        pass
    ctx = AlertContext(NOW, {spec.name: spec}, store.history, store.alerts)
    return CONDITIONS[condition].measure(ctx, spec.name, window)


def name() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def test_the_review_backlog_and_its_oldest_age_against_the_sla(store: Store) -> None:
    spec = task_spec(name(), sla=30)
    assert measure(store, spec, "review_backlog", timedelta(minutes=1)) == 0
    assert measure(store, spec, "review_oldest_sla", timedelta(minutes=1)) is None
    store.decisions.save(
        [made(spec.name, 1, 45, "pending_review"), made(spec.name, 2, 5, "pending_review")]
    )
    assert measure(store, spec, "review_backlog", timedelta(minutes=1)) == 2
    assert measure(store, spec, "review_oldest_sla", timedelta(minutes=1)) == pytest.approx(1.5)
    without_sla = task_spec(spec.name)
    assert measure(store, without_sla, "review_oldest_sla", timedelta(minutes=1)) is None


def test_dead_letters_count_the_tasks_dead_deliveries(store: Store) -> None:
    spec = task_spec(name())
    store.decisions.save([made(spec.name, 1, 1)], sinks=["0:webhook"])
    assert measure(store, spec, "dead_letters", timedelta(minutes=1)) == 0
    rows = [r for r in store.outbox.claim("w", 1000, 60) if r.task == spec.name]
    store.outbox.finish("w", [DeliveryResult(r.id, "dead", 8, error="HTTP 410") for r in rows])
    assert measure(store, spec, "dead_letters", timedelta(minutes=1)) == 1


def test_canary_rollbacks_in_the_window(store: Store) -> None:
    spec = task_spec(name())
    assert measure(store, spec, "canary_rolled_back", timedelta(hours=1)) == 0
    with store.engine.begin() as conn:
        audit.append(
            conn, actor="lockgate", action="release.canary_rollback", task=spec.name,
            subject=f"{spec.name}@2", details={"failure_rate": 0.4},
        )  # fmt: skip
    assert measure(store, spec, "canary_rolled_back", timedelta(hours=1)) == 1


def test_calls_refused_by_an_open_breaker(store: Store) -> None:
    spec = task_spec(name())
    refused = Attempt("openai", "m", "http://x", 0.0, "error", "breaker_open")
    store.decisions.save([made(spec.name, n, 2, attempts=(refused,)) for n in range(3)])
    assert measure(store, spec, "breaker_open", timedelta(minutes=15)) == 3
    assert measure(store, spec, "breaker_open", timedelta(minutes=1)) == 0


def test_a_stalled_intake_only_when_traffic_was_expected(store: Store) -> None:
    quiet, busy = task_spec(name()), task_spec(name())
    # Neither has had a decision for an hour; only `busy` had some at this time yesterday.
    for spec in (quiet, busy):
        store.decisions.save([made(spec.name, 1, 60)])
    store.decisions.save([made(busy.name, 2, 24 * 60 + 10)])
    assert measure(store, quiet, "stalled_intake", timedelta(minutes=30)) is None
    value = measure(store, busy, "stalled_intake", timedelta(minutes=30))
    assert value is not None and 59 <= value <= 61
