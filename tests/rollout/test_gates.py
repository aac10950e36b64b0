"""Promotion gates: the checks themselves, and `release promote` refusing a release whose eval
does not pass, letting a better one through, and an admin override that is audited."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockgate.decide.task import GateSpec, NonInferioritySpec
from lockgate.errors import Forbidden
from lockgate.rollout.gates import GateFailed, check_gate, promote
from tests.rollout.kit import Project, metrics, project, task_yaml, texts

GATE = """evaluation:
  gate_dataset: gate
  gate:
    min_accuracy: 0.85
    max_latency_p95_ms: 50
    non_inferior_to_live: {metric: accuracy, margin: 0.01}
"""


def test_every_configured_check_reports_its_figure_and_bound() -> None:
    gate = GateSpec(
        min_accuracy=0.9,
        min_auto_accuracy=0.97,
        max_cost_per_decision=0.002,
        max_latency_p95_ms=100,
    )
    result = check_gate(
        gate,
        metrics(accuracy=0.91, auto_accuracy=0.96, cost_per_decision=0.003, latency_p95_ms=80),
        None,
    )
    by_name = {c.name: c for c in result.checks}
    assert [c.name for c in result.checks] == [
        "min_accuracy",
        "min_auto_accuracy",
        "max_cost_per_decision",
        "max_latency_p95_ms",
    ]
    assert (by_name["min_accuracy"].figure, by_name["min_accuracy"].passed) == (0.91, True)
    assert (by_name["min_auto_accuracy"].threshold, by_name["min_auto_accuracy"].passed) == (
        0.97,
        False,
    )
    assert by_name["max_cost_per_decision"].passed is False
    assert by_name["max_latency_p95_ms"].passed is True
    assert not result.passed
    assert "min_auto_accuracy = 0.96 (bound 0.97)" in result.summary()


@pytest.mark.parametrize(
    ("candidate", "live", "passed"),
    [
        pytest.param(0.895, 0.90, True, id="within-margin"),
        pytest.param(0.885, 0.90, False, id="worse-than-margin"),
        pytest.param(0.95, 0.90, True, id="better"),
    ],
)
def test_non_inferiority_allows_the_margin_and_no_more(
    candidate: float, live: float, passed: bool
) -> None:
    gate = GateSpec(non_inferior_to_live=NonInferioritySpec(metric="accuracy", margin=0.01))
    result = check_gate(
        gate, metrics(accuracy=candidate), metrics(accuracy=live), live_ref="routing@1"
    )
    assert result.passed is passed
    assert result.checks[0].threshold == pytest.approx(live - 0.01)


def test_non_inferiority_fails_when_the_live_release_has_no_eval_and_passes_without_one() -> None:
    gate = GateSpec(non_inferior_to_live=NonInferioritySpec())
    assert not check_gate(gate, metrics(), None, live_ref="routing@1").passed
    assert check_gate(gate, metrics(), None, live_ref=None).passed


def test_a_missing_figure_fails_its_check() -> None:
    result = check_gate(GateSpec(min_auto_accuracy=0.9), metrics(auto_accuracy=None), None)
    assert not result.passed
    assert result.checks[0].figure is None


def _two_releases(p: Project) -> tuple[int, int]:
    first = p.release(task_yaml(extra=GATE))
    p.record_eval(first.number, metrics(accuracy=0.90))
    promote(p.store.rollout, first, "test")
    second = p.release(task_yaml(confidence=0.85, extra=GATE))
    return first.number, second.number


def test_a_worse_candidate_is_refused_with_the_failing_numbers(
    tmp_path: Path, database_url: str
) -> None:
    with project(tmp_path, database_url) as p:
        live, candidate = _two_releases(p)
        p.record_eval(candidate, metrics(accuracy=0.86, latency_p95_ms=70))
        with pytest.raises(GateFailed) as refused:
            promote(p.store.rollout, p.store.releases.get("routing", candidate), "test")
        message = refused.value.message
        assert "max_latency_p95_ms = 70 (bound 50)" in message
        assert "non_inferior_to_live.accuracy = 0.86 (bound 0.89)" in message
        assert "min_accuracy" not in message  # 0.86 passes 0.85: only failing checks are named
        assert p.store.releases.live("routing").number == live


def test_a_better_candidate_passes_and_the_audit_entry_holds_the_gate(
    tmp_path: Path, database_url: str
) -> None:
    with project(tmp_path, database_url) as p:
        _, candidate = _two_releases(p)
        p.record_eval(candidate, metrics(accuracy=0.93, latency_p95_ms=30))
        promoted, result = promote(
            p.store.rollout, p.store.releases.get("routing", candidate), "test"
        )
        assert promoted.stage == "live" and result is not None and result.passed
        (entry,) = p.store.audit.entries("routing", action="release.promote", limit=1)
        assert entry.subject == f"routing@{candidate}"
        assert entry.details["gate"]["passed"] is True


def test_an_eval_on_an_older_version_of_the_dataset_does_not_count(
    tmp_path: Path, database_url: str
) -> None:
    with project(tmp_path, database_url) as p:
        _, candidate = _two_releases(p)
        p.record_eval(candidate, metrics(accuracy=0.95))
        p.set_dataset_hash("d2")
        with pytest.raises(GateFailed, match="older version of the gate dataset 'gate'"):
            promote(p.store.rollout, p.store.releases.get("routing", candidate), "test")


def test_an_override_needs_an_admin_and_a_reason_and_is_audited(
    tmp_path: Path, database_url: str
) -> None:
    with project(tmp_path, database_url) as p:
        _, candidate = _two_releases(p)
        p.record_eval(candidate, metrics(accuracy=0.80))
        target = p.store.releases.get("routing", candidate)
        with pytest.raises(Forbidden, match="only an admin"):
            promote(p.store.rollout, target, "op", override_reason="urgent", may_override=False)
        assert p.store.releases.live("routing").number != candidate
        promoted, _ = promote(
            p.store.rollout,
            target,
            "boss",
            override_reason="hotfix for outage",
            may_override=True,
        )
        assert promoted.stage == "live"
        (override,) = p.store.audit.entries("routing", action="release.gate_override")
        assert override.actor == "boss"
        assert override.details["reason"] == "hotfix for outage"
        failing = {c["check"]: c for c in override.details["failing"]}
        assert failing["min_accuracy"]["figure"] == 0.80
        assert failing["min_accuracy"]["threshold"] == 0.85


def test_a_task_without_a_gate_promotes_as_before(tmp_path: Path, database_url: str) -> None:
    with project(tmp_path, database_url) as p:
        release = p.release(task_yaml())
        promoted, result = promote(p.store.rollout, release, "test")
        assert promoted.stage == "live" and result is None


def test_rollback_restores_the_previous_release_and_the_next_decision_uses_it(
    tmp_path: Path, database_url: str
) -> None:
    with project(tmp_path, database_url) as p:
        live, candidate = _two_releases(p)
        p.record_eval(candidate, metrics(accuracy=0.95))
        promote(p.store.rollout, p.store.releases.get("routing", candidate), "test")
        (before,) = p.decide(texts(1), prefix="before")
        assert before.release == candidate
        restored = p.store.releases.rollback("routing", "test", "worse in production")
        assert restored.number == live
        (after,) = p.decide(texts(1, start=1), prefix="after")
        assert after.release == live


def test_a_candidate_cannot_loosen_the_gate_it_is_promoted_under(
    tmp_path: Path, database_url: str
) -> None:
    with project(tmp_path, database_url) as p:
        first = p.release(task_yaml(extra=GATE))
        p.record_eval(first.number, metrics(accuracy=0.90))
        promote(p.store.rollout, first, "test")
        looser = GATE.replace("min_accuracy: 0.85", "min_accuracy: 0.5").replace(
            "max_latency_p95_ms: 50", "max_latency_p95_ms: 5000"
        )
        candidate = p.release(task_yaml(confidence=0.85, extra=looser))
        p.record_eval(candidate.number, metrics(accuracy=0.895, latency_p95_ms=70))
        with pytest.raises(GateFailed) as refused:
            promote(p.store.rollout, candidate, "test")
        # Its own, looser gate passes; the live release's gate does not.
        assert f"routing@{first.number} gate: max_latency_p95_ms = 70 (bound 50)" in (
            refused.value.message
        )
        assert p.store.releases.live("routing").number == first.number


def test_no_gate_accepts_an_eval_on_rows_the_release_was_trained_on() -> None:
    gate = GateSpec(min_accuracy=0.5)
    result = check_gate(gate, metrics(accuracy=1.0, training_overlap=150), None)
    assert not result.passed
    held_out = result.checks[0]
    assert (held_out.name, held_out.figure, held_out.passed) == ("held_out", 150, False)
    assert "150 rows the release was trained on (--allow-overlap): not gate-worthy" in (
        result.summary()
    )


def test_a_live_eval_on_its_own_training_rows_is_no_baseline_for_non_inferiority() -> None:
    gate = GateSpec(non_inferior_to_live=NonInferioritySpec(metric="accuracy", margin=0.01))
    live = metrics(accuracy=1.0, training_overlap=40)
    result = check_gate(gate, metrics(accuracy=0.95), live, live_ref="routing@1")
    assert not result.passed
    assert "routing@1's eval on the gate dataset ran on 40 rows it was trained on" in (
        result.summary()
    )
