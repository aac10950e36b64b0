"""The `retention:` key of a task file: durations per kind, checked with clear errors, and not
part of a release's content (changing how long data is kept needs no new release)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lockgate.decide.task import load_task, task_to_dict
from lockgate.errors import TaskFileError
from tests.cli.kit import DETERMINISTIC_TASK

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def task_with(tmp_path: Path, retention: str) -> Path:
    path = tmp_path / "tasks" / "routing.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DETERMINISTIC_TASK + retention)
    return path


def test_each_kind_has_its_own_cutoff_and_a_kind_left_out_is_kept(tmp_path: Path) -> None:
    spec = load_task(task_with(tmp_path, "retention: {inputs: 30d, attempts: 12h}\n"))
    assert spec.retention is not None
    assert spec.retention.cutoffs(NOW) == {
        "inputs": NOW - timedelta(days=30),
        "attempts": NOW - timedelta(hours=12),
    }


@pytest.mark.parametrize(
    ("retention", "says"),
    [
        pytest.param("{inputs: 30 days}", "retention.inputs", id="words"),
        pytest.param("{inputs: 30m}", "retention.inputs", id="minutes"),
        pytest.param("{outputs: 0d}", "at least 1h", id="zero"),
        pytest.param("{input: 30d}", "retention.input", id="unknown-kind"),
    ],
)
def test_a_wrong_duration_or_kind_is_named(tmp_path: Path, retention: str, says: str) -> None:
    with pytest.raises(TaskFileError) as raised:
        load_task(task_with(tmp_path, f"retention: {retention}\n"))
    assert any(says in problem for problem in raised.value.problems), raised.value.problems


def test_retention_is_not_part_of_a_releases_content(tmp_path: Path) -> None:
    without = load_task(task_with(tmp_path / "a", ""))
    with_ = load_task(task_with(tmp_path / "b", "retention: {inputs: 30d}\n"))
    assert task_to_dict(with_) == task_to_dict(without)
