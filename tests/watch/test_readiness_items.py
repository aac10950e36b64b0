"""Single readiness items at their edges, over an in-memory `ReadinessStore`: a channel tested
29 or 31 days ago, a backup 23 or 25 hours old, a runbook of an older release, dead letters,
keys that may or may not review, a calibration that is or is not the threshold in force."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from lockgate.decide.decision import utcnow
from lockgate.decide.task import TaskSpec, parse_task
from lockgate.decide.yaml_loader import load_yaml
from lockgate.demo.scaffold import EXAMPLE_TASK
from lockgate.evals.types import Dataset
from lockgate.rollout.gates import GateCheck, GateResult
from lockgate.rollout.release import Release
from lockgate.security import ApiKey
from lockgate.watch.readiness import Item, Setup, readiness

NOW = utcnow()
HASH = "c" * 64


@dataclass
class Facts:
    """A `ReadinessStore` in memory: the live release routing@2 with the task file's content."""

    keys: list[ApiKey] = field(default_factory=list)
    dead: int = 0
    audit: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)
    backup: datetime | None = None
    tests: dict[str, datetime] = field(default_factory=dict)
    written: Mapping[str, Any] | None = None

    def releases(self, task: str) -> Sequence[Release]:
        return [Release(task, 2, HASH, {}, {}, "live", NOW)]

    def datasets(self, task: str) -> Sequence[Dataset]:
        return [Dataset("d1", task, "gate", True, "e" * 64, 250, None, NOW, "test")]

    def gate(self, release: Release) -> GateResult | None:
        return GateResult((GateCheck("min_accuracy", 0.9, 0.8, True),))

    def api_keys(self) -> Sequence[ApiKey]:
        return self.keys

    def dead_letters(self, task: str) -> int:
        return self.dead

    def audited(
        self, task: str, actions: tuple[str, ...]
    ) -> Sequence[tuple[str, str | None, dict[str, Any]]]:
        return [entry for entry in self.audit if entry[0] in actions]

    def has_profile(self, task: str, number: int) -> bool:
        return True

    def newest_backup(self) -> datetime | None:
        return self.backup

    def channel_tests(self) -> Mapping[str, datetime]:
        return self.tests

    def runbook(self, task: str) -> Mapping[str, Any] | None:
        return self.written


def spec(extra: str = "") -> TaskSpec:
    return parse_task(load_yaml(EXAMPLE_TASK + extra), "tasks/routing.yaml")


def setup(task: TaskSpec | None = None) -> Setup:
    return Setup(
        spec=task or spec(),
        task_file="tasks/routing.yaml",
        draft_hash=HASH,
        draft_problem=None,
        trained_providers=frozenset({"local-classifier"}),
        channels=frozenset({"oncall"}),
        rule_channels={"failure_rate": ("log", "oncall"), "latency_p95_ms": ("log",)},
        overall_budget=False,
        backend="sqlite",
        now=NOW,
    )


def item(facts: Facts, name: str, task: TaskSpec | None = None) -> Item:
    report = readiness(facts, setup(task))
    return next(i for i in report.items if i.name == name)


def key(name: str, role: str, tasks: tuple[str, ...] = (), revoked: bool = False) -> ApiKey:
    return ApiKey(name, name, "h", role, tasks, NOW, NOW if revoked else None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("days", "status"), [(29, "pass"), (31, "fail")])
def test_an_alert_channel_counts_as_tested_for_30_days(days: int, status: str) -> None:
    found = item(Facts(tests={"oncall": NOW - timedelta(days=days)}), "alerts")
    assert found.status == status
    if status == "fail":
        assert found.commands == ("lockgate alerts test oncall",)
    else:
        assert "oncall (tested" in found.evidence


def test_a_channel_no_rule_uses_does_not_count() -> None:
    task = setup()
    facts = Facts(tests={"oncall": NOW})
    report = readiness(facts, replace(task, rule_channels={"failure_rate": ("log",)}))
    found = next(i for i in report.items if i.name == "alerts")
    assert found.status == "fail" and found.commands[0].startswith("lockgate set routing 'alerts=")


@pytest.mark.parametrize(("hours", "status"), [(23, "pass"), (25, "fail")])
def test_a_backup_counts_for_24_hours(hours: int, status: str) -> None:
    found = item(Facts(backup=NOW - timedelta(hours=hours)), "backup")
    assert found.status == status
    assert found.commands == (() if status == "pass" else ("lockgate backup --out <BACKUP_FILE>",))


def test_a_runbook_of_another_release_is_stale() -> None:
    stale = item(Facts(written={"release": "routing@1", "hash": "a" * 64, "at": "x"}), "runbook")
    assert stale.status == "fail" and "routing@1, not routing@2" in stale.evidence
    assert stale.commands == ("lockgate runbook routing --out RUNBOOK-routing.md",)
    fresh = item(Facts(written={"release": "routing@2", "hash": HASH, "at": "x"}), "runbook")
    assert fresh.status == "pass"


def test_dead_letters_fail_the_delivery_item() -> None:
    task = spec("deliver: [{sink: file, path: out/routing.jsonl}]\n")
    assert item(Facts(), "delivery", task).status == "pass"
    found = item(Facts(dead=3), "delivery", task)
    assert found.status == "fail" and "3 dead-lettered deliveries" in found.evidence
    assert found.commands == ("lockgate deliveries list --status dead",)


def test_only_active_keys_that_may_review_this_task_count() -> None:
    keys = [
        key("ana", "reviewer"),
        key("old", "reviewer", revoked=True),
        key("elsewhere", "reviewer", ("billing",)),
        key("app", "submitter"),
        key("viv", "viewer"),
    ]
    found = item(Facts(keys=keys), "reviewers")
    assert found.status == "fail" and "1 key may review (ana)" in found.evidence
    assert found.commands == (
        "lockgate keys create --name <REVIEWER_2> --role reviewer --task routing",
    )
    keys.append(key("bo", "admin", ("routing",)))
    two_person = spec("  two_person_when: [{field: queue, equals: fraud}]\n")
    found = item(Facts(keys=keys), "reviewers", two_person)
    assert found.status == "pass" and "ana, bo" in found.evidence
    assert "two_person_when" in found.evidence


def test_a_calibration_counts_only_for_the_threshold_in_force() -> None:
    calibrated = ("policy.calibrate", "routing@2", {"threshold": 0.8, "target_accuracy": 0.95})
    assert item(Facts(audit=[calibrated]), "calibrated").status == "pass"
    other = ("policy.calibrate", "routing@2", {"threshold": 0.7, "target_accuracy": 0.95})
    found = item(Facts(audit=[other]), "calibrated")
    assert found.status == "fail" and "0.8 was not calibrated" in found.evidence


def test_the_score_counts_a_warning_as_half() -> None:
    report = readiness(Facts(), setup())
    counts = report.counts()
    assert counts["warn"] >= 1  # routing@2 went live without shadow or canary
    expected = round(100 * (counts["pass"] + counts["warn"] / 2) / len(report.items))
    assert report.score == expected
    assert (
        report.next_steps()
        == list(dict.fromkeys(c for i in report.items if i.status != "pass" for c in i.commands))[
            :3
        ]
    )
