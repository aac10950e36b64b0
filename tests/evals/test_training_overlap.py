"""`lockgate train` refuses training rows whose input is in a sealed dataset of the task."""

from __future__ import annotations

import csv
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
