"""`lockgate calibrate --cross-fit K`: a threshold calibrated on the training data, each row
decided by the release's chain trained without the row's fold."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from lockgate.errors import ConfigError
from lockgate.evals.cross_fit import check_folds, fold_of, training_records
from lockgate.evals.types import DatasetRow
from tests.cli.kit import lockgate
from tests.evals.kit import project_runtime

QUEUES = ["cards", "payments", "fraud", "other"]


def _write(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "queue"])
        writer.writerows(rows)
    return path


def _project(tmp_path: Path, rows: list[tuple[str, str]], database: str | None = None) -> Path:
    """The example project, `data.csv` (these rows) trained on and added as dataset `train`,
    routing@1 created from it."""
    lockgate("init", "support", cwd=tmp_path)
    project = tmp_path / "support"
    _write(project / "data.csv", rows)
    lockgate("dataset", "add", "routing", "train", "data.csv", cwd=project, database=database)
    lockgate("train", "routing", "--data", "data.csv", cwd=project, database=database)
    lockgate("release", "create", "routing", cwd=project, database=database)
    return project


def _example_rows(project_root: Path) -> list[tuple[str, str]]:
    lockgate("init", "example", cwd=project_root)
    path = project_root / "example/data/routing-train.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        return [(r["text"], r["queue"]) for r in csv.DictReader(handle)]


def test_labels_a_model_only_remembers_get_no_threshold_when_cross_fitted(
    tmp_path: Path,
) -> None:
    """Random labels: the release, trained on them, looks sure of them (it remembers them);
    decided by models trained without them, they are right only by chance, so no threshold
    reaches the target. A fold that leaked its rows into its training would pass."""
    texts = [text for text, _ in _example_rows(tmp_path)][:300]
    pick = random.Random(3)
    project = _project(tmp_path, [(t, pick.choice(QUEUES)) for t in texts])

    remembered = lockgate("calibrate", "routing", "--release", "1", "--dataset", "train",
                          "--target-accuracy", "0.6", "--allow-overlap", cwd=project)  # fmt: skip
    assert "created routing@2" in remembered.stdout

    crossed = lockgate("calibrate", "routing", "--release", "1", "--dataset", "train",
                       "--target-accuracy", "0.6", "--cross-fit", "3", "--errors", "errors.csv",
                       cwd=project, check=False)  # fmt: skip
    assert crossed.returncode == 1
    assert "error: no threshold reaches 60.0% accuracy at 95% confidence on train" in (
        crossed.stderr
    )
    for k in (1, 2, 3):
        assert f"fold {k}/3: training on " in crossed.stderr
    assert "routing@3" not in crossed.stdout
    assert (
        "(lockgate dataset add routing train FILE errors.csv), train with --data FILE --data "
        "errors.csv and calibrate again"
    ) in crossed.stderr
    # The rows the closest threshold gets wrong are named by their row in data.csv, though
    # the folds decided them out of order.
    with (project / "data.csv").open(newline="", encoding="utf-8") as handle:
        data = list(csv.DictReader(handle))
    with (project / "errors.csv").open(newline="", encoding="utf-8") as handle:
        errors = list(csv.DictReader(handle))
    assert errors
    for error in errors:
        row = data[int(error["dataset.row"]) - 1]
        assert (error["text"], error["queue"]) == (row["text"], row["queue"])
        assert error["model.answer"] != error["queue"]
    confidences = [float(e["model.confidence"]) for e in errors]
    assert confidences == sorted(confidences, reverse=True)
    # The list is labeled data too: given after the training file, its rows' labels win.
    trained = lockgate("train", "routing", "--data", "data.csv", "--data", "errors.csv",
                       cwd=project)  # fmt: skip
    unique = len({row["text"] for row in data})  # every listed row is one of data.csv's
    assert (
        f"{unique} rows from 2 files ({len(data) + len(errors) - unique} with the same input "
        in (trained.stderr)
    )


def test_a_cross_fitted_threshold_is_recorded_on_the_release_it_creates(
    tmp_path: Path, database_url: str
) -> None:
    project = _project(tmp_path, _example_rows(tmp_path), database_url)

    done = lockgate("calibrate", "routing", "--release", "1", "--dataset", "train",
                    "--target-accuracy", "0.9", "--cross-fit", "5", "--seed", "3",
                    cwd=project, database=database_url)  # fmt: skip
    assert (
        "of 800 on train, cross-fitted: each row decided by the chain trained without its fold, "
        "5 folds, seed 3)"
    ) in done.stdout
    assert "created routing@2 with auto_min_confidence" in done.stdout
    assert "fold 5/5: training on " in done.stderr
    # Without --cross-fit the same rows are refused: the release was trained on them.
    refused = lockgate("calibrate", "routing", "--release", "1", "--dataset", "train",
                       "--target-accuracy", "0.9", cwd=project, database=database_url,
                       check=False)  # fmt: skip
    assert refused.returncode == 2
    assert "800 of the 800 rows of dataset 'train'" in refused.stderr
    # --seed deals folds: without --cross-fit it is refused, not ignored
    unseeded = lockgate("calibrate", "routing", "--release", "1", "--dataset", "train",
                        "--target-accuracy", "0.9", "--seed", "3", cwd=project,
                        database=database_url, check=False)  # fmt: skip
    assert unseeded.returncode == 2
    assert "error: --seed deals the rows into folds: it needs --cross-fit" in unseeded.stderr

    with project_runtime(project, database_url) as runtime:
        first, second = runtime.store.releases.list_for("routing")
        (entry,) = [e for e in runtime.store.audit.entries("routing")
                    if e.action == "policy.calibrate"]  # fmt: skip
    figures = entry.details
    assert (figures["cross_fit"], figures["seed"], figures["n"]) == (5, 3, 800)
    assert figures["dataset"] == "train"
    assert figures["lower_bound"] >= 0.9
    assert second.spec["policy"]["auto_min_confidence"] == figures["threshold"]
    assert second.artifacts == first.artifacts  # the models trained on every row


@pytest.mark.parametrize(
    ("sealed", "calibrated_on", "message"),
    [
        # the sealed dataset itself: cross-fitting would train on it
        (
            slice(400, None),
            "sealed",
            "error: 'sealed' is a sealed dataset: cross-fitting trains on its rows, and a "
            "sealed dataset is never trained on",
        ),
        # five of the training rows, sealed after training
        (
            slice(0, 5),
            "train",
            "error: dataset 'train': 5 rows have the same input as rows of the sealed dataset "
            "sealed of task 'routing' (lines 1, 2, 3, 4, 5)",
        ),
    ],
)
def test_sealed_rows_are_never_cross_fitted_and_nothing_is_trained(
    tmp_path: Path, sealed: slice, calibrated_on: str, message: str
) -> None:
    rows = _example_rows(tmp_path)
    project = _project(tmp_path, rows[:400])
    _write(project / "sealed.csv", rows[sealed])
    lockgate("dataset", "add", "routing", "sealed", "sealed.csv", "--sealed", cwd=project)

    refused = lockgate("calibrate", "routing", "--release", "1", "--dataset", calibrated_on,
                       "--target-accuracy", "0.9", "--cross-fit", "4", cwd=project,
                       check=False)  # fmt: skip
    assert refused.returncode == 2
    assert message in refused.stderr
    assert "fold 1/4" not in refused.stderr  # refused before any training
    assert "created" not in refused.stdout


def _rows(texts: list[str]) -> list[DatasetRow]:
    return [
        DatasetRow(i + 1, {"text": t}, {"queue": "cards"}, f"hash-{t}") for i, t in enumerate(texts)
    ]


def test_folds_keep_rows_with_the_same_input_together_and_are_balanced() -> None:
    texts = [f"t{i % 40}" for i in range(100)]  # 40 inputs, most of them twice or thrice
    rows = _rows(texts)
    assignment = fold_of(rows, 4, seed=0)
    by_input: dict[str, set[int]] = {}
    for row, fold in zip(rows, assignment, strict=True):
        by_input.setdefault(row.input_hash, set()).add(fold)
    assert all(len(folds) == 1 for folds in by_input.values())
    inputs_per_fold = [sum(1 for f in by_input.values() if f == {k}) for k in range(4)]
    assert inputs_per_fold == [10, 10, 10, 10]
    assert fold_of(rows, 4, seed=0) == assignment  # seeded
    assert fold_of(rows, 4, seed=1) != assignment


def test_out_of_scope_rows_are_decided_but_never_trained_on() -> None:
    rows = _rows(["a", "b", "c"])
    rows[1] = DatasetRow(2, {"text": "b"}, {"queue": "__out_of_scope__"}, "hash-b")
    records = training_records(rows, "train")
    assert [r.values for r in records] == [
        {"text": "a", "queue": "cards"},
        {"text": "c", "queue": "cards"},
    ]
    assert records[1].where == "dataset train line 3"


@pytest.mark.parametrize(
    ("folds", "inputs", "message"),
    [
        (1, 50, "--cross-fit must be between 2 and 20 folds, not 1"),
        (21, 50, "--cross-fit must be between 2 and 20 folds, not 21"),
        (5, 9, "dataset 'd' has 9 distinct inputs: too few for 5 folds"),
    ],
)
def test_fold_counts_that_cannot_work_are_named(folds: int, inputs: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_folds(folds, _rows([f"t{i}" for i in range(inputs)]), "d")
