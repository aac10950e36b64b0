"""Canary releases: a sticky share of keys, metrics by release, and rollback by itself past
the task's limits, said in the audit log."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lockgate.decide.router import bucket, in_canary
from lockgate.errors import Conflict
from lockgate.monitor.telemetry import MetricsObserver
from lockgate.rollout.canary import check_canaries
from tests.rollout.kit import project, task_yaml, texts

LIMITS = """rollout:
  canary_max_failure_rate: 0.05
  canary_max_override_rate: 0.2
  canary_min_decisions: 20
  canary_min_reviews: 5
"""
DEAD_LLM = (
    "  - provider: openai\n    model: gpt-test\n"
    "    base_url: http://127.0.0.1:9/v1\n    retries: 0\n    timeout_s: 5\n"
)


def test_a_key_always_lands_in_the_same_bucket() -> None:
    assert bucket("routing", "ticket-1") == bucket("routing", "ticket-1")
    assert 0 <= bucket("routing", "ticket-1") < 10_000
    assert not in_canary("routing", "ticket-1", 0)
    assert in_canary("routing", "ticket-1", 100)


def test_the_canary_decides_a_sticky_share_of_keys(tmp_path: Path, database_url: str) -> None:
    with project(tmp_path, database_url) as p:
        p.release(task_yaml(), promote=True)
        canary = p.release(task_yaml(confidence=0.85))
        p.store.rollout.start_canary("routing", canary.number, 20, "test")
        n = 2000
        first = p.decide(texts(n))
        by_key = {d.idempotency_key: d.release for d in first}
        share = sum(r == canary.number for r in by_key.values())
        # Binomial(2000, 0.2): mean 400, sd ~17.9; 5 sd either side never fails by chance.
        assert abs(share - 0.2 * n) <= 5 * math.sqrt(n * 0.2 * 0.8)
        for key, release in by_key.items():
            assert (release == canary.number) is in_canary("routing", key, 20)
        # The same keys again (a retry): the stored decisions come back, same releases.
        again = p.decide(texts(n))
        assert {d.idempotency_key: d.release for d in again} == by_key


def test_decision_metrics_are_split_by_release(tmp_path: Path, database_url: str) -> None:
    with project(tmp_path, database_url, observed=True) as p:
        p.release(task_yaml(), promote=True)
        canary = p.release(task_yaml(confidence=0.85))
        p.store.rollout.start_canary("routing", canary.number, 30, "test")
        made = p.decide(texts(300))
        observer = p.runtime.observer
        assert isinstance(observer, MetricsObserver)
        text = observer.metrics.render()[0].decode()
        counts: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            if family.name == "lockgate_decisions":
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        release = sample.labels["release"]
                        counts[release] = counts.get(release, 0) + sample.value
        assert counts == {
            "1": sum(d.release == 1 for d in made),
            str(canary.number): sum(d.release == canary.number for d in made),
        }


def test_a_failing_canary_rolls_back_by_itself_and_says_so_in_the_audit_log(
    tmp_path: Path, database_url: str
) -> None:
    with project(tmp_path, database_url) as p:
        p.release(task_yaml(extra=LIMITS), promote=True)
        canary = p.release(task_yaml(models=DEAD_LLM, extra=LIMITS))
        p.store.rollout.start_canary("routing", canary.number, 25, "test")
        made = p.decide(texts(200))
        failed = [d for d in made if d.release == canary.number]
        assert failed and all(d.status == "failed" for d in failed)

        (check,) = check_canaries(p.store.rollout, "routing")
        assert check.rolled_back
        assert check.health.failure_rate == 1.0
        assert p.store.releases.get("routing", canary.number).stage == "retired"
        (entry,) = p.store.audit.entries("routing", action="release.canary_rollback")
        assert entry.subject == f"routing@{canary.number}"
        assert entry.details["failed"] == len(failed) == entry.details["decisions"]
        assert entry.details["failure_rate"] == 1.0
        assert entry.details["limits"]["canary_max_failure_rate"] == 0.05
        # Traffic is back on the live release.
        after = p.decide(texts(50, start=1000), prefix="after")
        assert {d.release for d in after} == {1}


def test_a_canary_with_too_few_decisions_is_not_judged(tmp_path: Path, database_url: str) -> None:
    with project(tmp_path, database_url) as p:
        p.release(task_yaml(extra=LIMITS), promote=True)
        canary = p.release(task_yaml(models=DEAD_LLM, extra=LIMITS))
        p.store.rollout.start_canary("routing", canary.number, 10, "test")
        p.decide(texts(30))
        (check,) = check_canaries(p.store.rollout, "routing")
        assert check.health.decisions < 20
        assert not check.rolled_back and check.breaches == ()
        assert p.store.releases.get("routing", canary.number).stage == "canary"


def test_a_canary_whose_answers_reviewers_override_rolls_back(
    tmp_path: Path, database_url: str
) -> None:
    with project(tmp_path, database_url) as p:
        p.release(task_yaml(extra=LIMITS), promote=True)
        canary = p.release(task_yaml(confidence=0.85, extra=LIMITS))
        p.store.rollout.start_canary("routing", canary.number, 50, "test")
        made = [d for d in p.decide(texts(200)) if d.release == canary.number]
        assert len(made) >= 20
        for d in made[:3]:
            p.review(d, "approve", d.output)
        p.review(made[3], "correct", {"queue": "other"})
        (check,) = check_canaries(p.store.rollout, "routing")
        assert not check.rolled_back, "4 reviews: fewer than canary_min_reviews, not judged"
        p.review(made[4], "correct", {"queue": "other"})
        p.review(made[5], "reject", None)
        (check,) = check_canaries(p.store.rollout, "routing")
        assert check.rolled_back
        assert check.health.override_rate == pytest.approx(3 / 6)
        (entry,) = p.store.audit.entries("routing", action="release.canary_rollback")
        assert entry.details["overridden"] == 3 and entry.details["reviewed"] == 6
        assert p.store.releases.get("routing", canary.number).stage == "retired"


def test_only_one_canary_at_a_time_and_only_beside_a_live_release(
    tmp_path: Path, database_url: str
) -> None:
    with project(tmp_path, database_url) as p:
        first = p.release(task_yaml())
        with pytest.raises(Conflict, match="no live release"):
            p.store.rollout.start_canary("routing", first.number, 10, "test")
        p.store.releases.promote("routing", first.number, "test")
        a = p.release(task_yaml(confidence=0.85))
        b = p.release(task_yaml(confidence=0.86))
        p.store.rollout.start_canary("routing", a.number, 10, "test")
        with pytest.raises(Conflict, match="already the canary"):
            p.store.rollout.start_canary("routing", b.number, 10, "test")
        stopped = p.store.rollout.stop_canary("routing", "test")
        assert (stopped.stage, stopped.canary_percent) == ("draft", None)
        actions = [e.action for e in p.store.audit.entries("routing")]
        assert actions[-2:] == ["release.canary_started", "release.canary_stopped"]
