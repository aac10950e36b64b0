"""Shadow releases: runs queued with live decisions, decided later off the live path, never
delivered, and a report whose figures equal a direct comparison."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from lockgate.providers.base import Candidate, PreparedRequest
from lockgate.rollout.shadow import ShadowWorker, build_shadow_report, sample_disagreements
from lockgate.store.tables import decisions, outbox, shadow_runs
from lockgate.testing.fault_server import FaultServer
from tests.rollout.kit import Project, project, task_yaml, texts

SHADOW_ANSWERS = (("stolen", "fraud"), ("card", "cards"), ("refund", "payments"))


def _count(p: Project, table: object, *where: object) -> int:
    with p.store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def _shadow_answers(p: Project, number: int, items: list[str]) -> list[str]:
    """What the shadow release's model says, asked directly (not through the worker)."""
    loaded = p.runtime.release_runtime("routing", number)
    provider = loaded.models[0].provider
    answers = provider.complete_batch(  # type: ignore[attr-defined]
        [PreparedRequest(loaded.task, {"text": t}) for t in items]
    )
    assert all(isinstance(a, Candidate) for a in answers)
    return [a.output["queue"] for a in answers]


def test_shadow_agreement_equals_a_direct_comparison_over_thousands_of_decisions(
    tmp_path: Path, database_url: str
) -> None:
    with project(tmp_path, database_url) as p:
        p.release(task_yaml(), promote=True)
        shadow = p.release(task_yaml(confidence=0.85, answers=SHADOW_ANSWERS))
        p.store.rollout.start_shadow("routing", shadow.number, "test")
        items = texts(3000)
        live = p.decide(items)
        assert _count(p, shadow_runs, shadow_runs.c.status == "pending") == 3000

        done = p.run(
            lambda: ShadowWorker(p.runtime.store.rollout, p.runtime.release_runtime).run_once(
                "routing"
            )
        )
        assert done == 3000

        # A few human labels: approvals confirm the live output, corrections replace it.
        for d in live[:40]:
            p.review(d, "approve", d.output)
        for d in live[40:60]:
            p.review(d, "correct", {"queue": "other"})
        p.review(live[60], "reject", None)  # a rejection is no label

        report = build_shadow_report(p.store.rollout, p.store.releases, "routing")
        expected_live = [d.output["queue"] for d in live]
        expected_shadow = _shadow_answers(p, shadow.number, items)
        pairs = list(zip(expected_live, expected_shadow, strict=True))
        agree = sum(a == b for a, b in pairs)
        assert 0 < agree < 3000, "the two configurations must differ on some inputs"
        assert report.compared == 3000
        assert report.agreement == round(agree / 3000, 6)
        for label, entry in report.per_label.items():
            mine = [(a, b) for a, b in pairs if a == label]
            assert entry["n"] == len(mine)
            assert entry["agreement"] == round(sum(a == b for a, b in mine) / len(mine), 6)
        confusion = Counter(pairs)
        assert {(a, b): n for a, row in report.confusion.items() for b, n in row.items()} == dict(
            confusion
        )
        truth = {i: expected_live[i] for i in range(40)} | {i: "other" for i in range(40, 60)}
        assert report.labeled == 60
        assert report.live_accuracy == round(
            sum(expected_live[i] == t for i, t in truth.items()) / 60, 6
        )
        assert report.shadow_accuracy == round(
            sum(expected_shadow[i] == t for i, t in truth.items()) / 60, 6
        )
        assert report.runs == {"done": 3000}
        assert report.live["cost"] == 0 and report.shadow["latency_p95_ms"] is not None


def test_shadow_work_stores_no_decision_and_never_touches_the_outbox(
    tmp_path: Path, database_url: str
) -> None:
    with project(tmp_path, database_url) as p:
        p.release(task_yaml(), promote=True)
        shadow = p.release(task_yaml(answers=SHADOW_ANSWERS))
        p.store.rollout.start_shadow("routing", shadow.number, "test")
        p.decide(texts(200))
        stored, queued = _count(p, decisions), _count(p, outbox)
        assert queued > 0, "the task has a sink: automated live decisions are queued for it"
        p.run(
            lambda: ShadowWorker(p.runtime.store.rollout, p.runtime.release_runtime).run_once(
                "routing"
            )
        )
        assert _count(p, shadow_runs, shadow_runs.c.status == "done") == 200
        assert (_count(p, decisions), _count(p, outbox)) == (stored, queued)
        assert _count(p, decisions, decisions.c.release == shadow.number) == 0


def test_the_live_decision_does_not_wait_for_the_shadow_model(
    tmp_path: Path, database_url: str
) -> None:
    """The shadow release asks an LLM server; a live decision is stored and answered without a
    single call to it, and the worker makes the calls later."""
    with FaultServer() as server, project(tmp_path, database_url) as p:
        p.release(task_yaml(), promote=True)
        llm = (
            "  - provider: openai\n    model: gpt-test\n"
            f"    base_url: {server.url}\n    retries: 0\n"
        )
        shadow = p.release(task_yaml(models=llm))
        p.store.rollout.start_shadow("routing", shadow.number, "test")
        live = p.decide(texts(5))
        assert [d.release for d in live] == [1] * 5
        assert server.request_count == 0
        assert _count(p, shadow_runs, shadow_runs.c.status == "pending") == 5
        p.run(
            lambda: ShadowWorker(p.runtime.store.rollout, p.runtime.release_runtime).run_once(
                "routing"
            )
        )
        assert server.request_count == 5
        assert _count(p, shadow_runs, shadow_runs.c.status == "pending") == 0


def test_stopping_a_shadow_drops_its_queued_runs_and_queues_no_more(
    tmp_path: Path, database_url: str
) -> None:
    with project(tmp_path, database_url) as p:
        p.release(task_yaml(), promote=True)
        shadow = p.release(task_yaml(answers=SHADOW_ANSWERS))
        p.store.rollout.start_shadow("routing", shadow.number, "test")
        p.decide(texts(10))
        (stopped,) = p.store.rollout.stop_shadow("routing", "test")
        assert stopped.stage == "draft"
        p.decide(texts(10, start=10), prefix="later")
        assert p.store.rollout.shadow_counts("routing", shadow.number) == {"failed": 10}
        report = build_shadow_report(p.store.rollout, p.store.releases, "routing", shadow.number)
        assert (report.compared, report.confusion) == (0, {}), "dropped runs are not compared"
        actions = [e.action for e in p.store.audit.entries("routing")]
        assert "release.shadow_started" in actions and "release.shadow_stopped" in actions


def test_sampled_disagreements_go_to_review_only_before_delivery_starts(
    tmp_path: Path, database_url: str
) -> None:
    with project(tmp_path, database_url) as p:
        p.release(task_yaml(), promote=True)
        shadow = p.release(task_yaml(answers=SHADOW_ANSWERS))
        p.store.rollout.start_shadow("routing", shadow.number, "test")
        p.decide(texts(400))
        p.run(
            lambda: ShadowWorker(p.runtime.store.rollout, p.runtime.release_runtime).run_once(
                "routing"
            )
        )
        report = build_shadow_report(p.store.rollout, p.store.releases, "routing")
        assert len(report.disagreements) >= 6
        # Delivery already started for one disagreement: it must stay as it is.
        started = report.disagreements[0]
        with p.store.engine.begin() as conn:
            conn.execute(outbox.update().where(outbox.c.decision_id == started).values(tries=1))
        moved = sample_disagreements(
            p.store.rollout, report, len(report.disagreements), "lead", seed=1
        )
        assert started not in moved
        assert len(moved) == len(report.disagreements) - 1
        for decision_id in moved:
            d = p.store.decisions.get(decision_id)
            assert (d.status, d.route) == ("pending_review", "review")
            assert _count(p, outbox, outbox.c.decision_id == decision_id) == 0
        assert p.store.decisions.get(started).status == "decided"
        entries = p.store.audit.entries("routing", action="decision.sampled_for_review")
        assert len(entries) == len(moved)


def test_a_report_without_shadow_runs_says_how_to_start_one(
    tmp_path: Path, database_url: str
) -> None:
    from lockgate.errors import NotFound

    with project(tmp_path, database_url) as p:
        p.release(task_yaml(), promote=True)
        with pytest.raises(NotFound, match="lockgate release shadow routing@N"):
            build_shadow_report(p.store.rollout, p.store.releases, "routing")
