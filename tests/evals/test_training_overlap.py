"""`lockgate train` refuses training rows whose input is in a sealed dataset of the task."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from lockgate.errors import ConfigError
from lockgate.evals.datasets import read_dataset
from lockgate.providers.classifier_training import train_classifier
from lockgate.settings import Settings
from tests.cli.kit import lockgate
from tests.evals.kit import project_runtime


def test_train_names_the_rows_that_overlap_a_sealed_dataset(
    tmp_path: Path, database_url: str
) -> None:
    lockgate("init", "support", cwd=tmp_path)
    project = tmp_path / "support"
    with (project / "data/routing-train.csv").open(newline="", encoding="utf-8") as handle:
        train = list(csv.DictReader(handle))
    # Seven training rows (file lines 3, 5, ...) sealed, with white space the pipeline strips.
    picked = [train[i] for i in range(1, 14, 2)]
    with (project / "gate.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "queue"])
        writer.writeheader()
        writer.writerows({"text": f"  {r['text']} ", "queue": r["queue"]} for r in picked)
    lockgate("dataset", "add", "routing", "gate", "gate.csv", "--sealed", cwd=project,
             database=database_url)  # fmt: skip

    result = lockgate("train", "routing", "--data", "data/routing-train.csv", cwd=project,
                      database=database_url, check=False)  # fmt: skip
    assert result.returncode == 2
    assert (
        "error: data/routing-train.csv: 7 rows have the same input as rows of the sealed dataset "
        "gate of task 'routing' (lines 3, 5, 7, 9, 11 and 2 more)"
    ) in result.stderr
    assert "hint: remove those rows from the training data and train again" in result.stderr
    assert "artifact" not in result.stdout  # nothing was trained

    # An open dataset of the same rows does not stop training.
    with project_runtime(project, database_url) as runtime:
        assert set(runtime.store.datasets.sealed_inputs("routing").values()) == {"gate"}
    clean = project / "clean.csv"
    with clean.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(train[0]))
        writer.writeheader()
        writer.writerows(r for i, r in enumerate(train) if i not in range(1, 14, 2))
    trained = lockgate("train", "routing", "--data", "clean.csv", cwd=project,
                       database=database_url)  # fmt: skip
    assert "held-out queue: accuracy" in trained.stdout


def test_train_classifier_refuses_sealed_inputs_given_to_it(tmp_path: Path) -> None:
    lockgate("init", "p", cwd=tmp_path)
    project = tmp_path / "p"
    with project_runtime(project, f"sqlite:///{tmp_path}/db.sqlite") as runtime:
        task = runtime.task("routing")
    rows = read_dataset(task, project / "data/routing-train.csv")
    sealed = {rows[0].input_hash: "gate"}
    settings = Settings(project_dir=project, database_url="sqlite://")
    with pytest.raises(ConfigError, match=r"1 row has the same input .* \(line 2\)"):
        train_classifier(task, project / "data/routing-train.csv", settings, sealed=sealed)


FRESH = [
    ("The ATM in Tromso swallowed my debit card yesterday evening", "cards"),
    ("Please send me a new PIN letter for the replacement card", "cards"),
    ("I paid the electricity bill twice this month, refund one", "payments"),
    ("Somebody I do not know took 400 from my account in Oslo", "fraud"),
    ("Where can I change the address on my statements", "other"),
]


def _trained_release_and_datasets(tmp_path: Path) -> Path:
    """routing@1 trained on the example file; `gate` and `calib`: 20 of its rows and 5 new."""
    lockgate("init", "support", cwd=tmp_path)
    project = tmp_path / "support"
    with (project / "data/routing-train.csv").open(newline="", encoding="utf-8") as handle:
        train = list(csv.DictReader(handle))
    for name in ("gate", "calib"):
        with (project / f"{name}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "queue"])
            writer.writerows((r["text"], r["queue"]) for r in train[500:520])
            writer.writerows(FRESH)
        lockgate("dataset", "add", "routing", name, f"{name}.csv", cwd=project)
    lockgate("train", "routing", "--data", "data/routing-train.csv", cwd=project)
    lockgate("release", "create", "routing", cwd=project)
    return project


def test_eval_and_calibrate_refuse_a_dataset_the_release_was_trained_on(tmp_path: Path) -> None:
    project = _trained_release_and_datasets(tmp_path)

    refused = lockgate("eval", "routing", "--release", "routing@1", "--dataset", "gate",
                       cwd=project, check=False)  # fmt: skip
    assert refused.returncode == 2
    assert (
        "error: 20 of the 25 rows of dataset 'gate' have the same input as rows routing@1 was "
        "trained on: scoring it on them would measure what the model remembers"
    ) in refused.stderr
    assert "--allow-overlap" in refused.stderr
    assert "stored as eval run" not in refused.stdout

    calibration = lockgate("calibrate", "routing", "--release", "routing@1", "--dataset", "calib",
                           "--target-accuracy", "0.5", cwd=project, check=False)  # fmt: skip
    assert calibration.returncode == 2
    assert "20 of the 25 rows of dataset 'calib'" in calibration.stderr
    assert "calibrating on them" in calibration.stderr
    assert "created" not in calibration.stdout


def test_with_allow_overlap_the_eval_is_marked_and_no_gate_accepts_it(tmp_path: Path) -> None:
    project = _trained_release_and_datasets(tmp_path)
    task_file = project / "tasks/routing.yaml"
    task_file.write_text(
        task_file.read_text() + "evaluation:\n  gate_dataset: gate\n  gate: {min_accuracy: 0.5}\n"
    )
    lockgate("release", "create", "routing", cwd=project)  # routing@2: the same model, a gate

    scored = lockgate("eval", "routing", "--release", "2", "--allow-overlap", "--json",
                      cwd=project)  # fmt: skip
    figures = json.loads(scored.stdout)
    assert (figures["training_overlap"], figures["gate_worthy"]) == (20, False)
    assert (
        "warning: 20 rows of this dataset were in routing@2's training data: these figures are "
        "not gate-worthy"
    ) in scored.stderr
    readable = lockgate("eval", "routing", "--release", "2", "--allow-overlap", cwd=project)
    assert "not gate-worthy: 20 rows were in the training data" in readable.stdout

    promoted = lockgate("release", "promote", "routing@2", cwd=project, check=False)
    assert promoted.returncode != 0
    assert "FAIL held_out = 20" in promoted.stderr
    assert "not gate-worthy" in promoted.stderr


def test_after_calibrating_the_calibration_rows_can_be_trained_on_and_the_threshold_stays(
    tmp_path: Path,
) -> None:
    """docs/evaluation.md, "Then train on every row": calibrate, train again on the training
    and calibration rows, and the next release keeps the threshold; the gate still scores it,
    and the calibration set, now training data, is refused for calibrating that release."""
    lockgate("init", "support", cwd=tmp_path)
    project = tmp_path / "support"
    with (project / "data/routing-train.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    held = rows[500:]
    seen = {r["text"].strip() for r in held}
    gate = {r["text"].strip() for r in held[:150]}  # the calibration rows will be trained on
    parts = {
        "train": [r for r in rows[:500] if r["text"].strip() not in seen],
        "gate": held[:150],
        "calib": [r for r in held[150:] if r["text"].strip() not in gate],
    }
    for name, part in parts.items():
        with (project / f"data/{name}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["id", "text", "queue"])
            writer.writeheader()
            writer.writerows(part)
    lockgate("dataset", "add", "routing", "gate", "data/gate.csv", "--sealed", cwd=project)
    lockgate("dataset", "add", "routing", "calib", "data/calib.csv", cwd=project)
    lockgate("train", "routing", "--data", "data/train.csv", cwd=project)
    first = lockgate("release", "create", "routing", cwd=project).stdout
    calibrated = lockgate("calibrate", "routing", "--release", _release(first),
                          "--target-accuracy", "0.9", "--dataset", "calib",
                          cwd=project).stdout  # fmt: skip
    threshold = float(calibrated.split("auto_min_confidence ")[1].split()[0])

    lockgate("train", "routing", "--data", "data/train.csv", "--data", "data/calib.csv",
             cwd=project)  # fmt: skip
    retrained = _release(lockgate("release", "create", "routing", cwd=project).stdout)
    shown = json.loads(lockgate("release", "show", retrained, cwd=project).stdout)
    assert shown["spec"]["policy"]["auto_min_confidence"] == pytest.approx(threshold, abs=1e-4)
    before = json.loads(lockgate("release", "show", _release(first), cwd=project).stdout)
    assert shown["artifacts"] != before["artifacts"], "the retrained release kept the first model"

    gate = json.loads(lockgate("eval", "routing", "--release", retrained, "--dataset", "gate",
                               "--json", cwd=project).stdout)  # fmt: skip
    assert gate["gate_worthy"] is True and gate["n"] == 150
    again = lockgate("calibrate", "routing", "--release", retrained, "--dataset", "calib",
                     "--target-accuracy", "0.9", cwd=project, check=False)  # fmt: skip
    assert again.returncode == 2
    assert "rows of dataset 'calib' have the same input as rows" in again.stderr


def _release(output: str) -> str:
    """The `routing@N` a `release create` or `calibrate` printed it created."""
    return output.split("created ")[1].split()[0]
