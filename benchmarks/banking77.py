"""Local classifier quality on banking77: train on train.csv, score on test.csv.

Usage: python benchmarks/banking77.py [--data ../shared/datasets/banking77]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

from sklearn.metrics import accuracy_score, f1_score

from lockgate.decide.task import parse_task
from lockgate.providers.classifier_training import load_artifact, train_classifier
from lockgate.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "shared/datasets/banking77",
    )
    data = parser.parse_args().data
    if not (data / "train.csv").exists():
        sys.exit(f"banking77 not found in {data}; pass --data DIR")
    categories = json.loads((data / "categories.json").read_text())
    task = parse_task(
        {
            "name": "banking77",
            "input": {"text": {"type": "string"}},
            "output": {"category": {"type": "enum", "values": categories}},
            "models": [{"provider": "local-classifier"}],
        },
        "tasks/banking77.yaml",
    )
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(project_dir=Path(tmp), database_url="sqlite://")
        started = time.perf_counter()
        report = train_classifier(task, data / "train.csv", settings)
        train_s = time.perf_counter() - started
        model = load_artifact(settings, task.name, report.sha256)
        with (data / "test.csv").open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        texts = [model.text({"text": r["text"]}) for r in rows]
        probabilities = model.predict_proba(texts)["category"]
        classes = model.classes("category")
        predicted = [classes[i] for i in probabilities.argmax(axis=1)]
    truth = [r["category"] for r in rows]
    print(
        json.dumps(
            {
                "train_rows": report.n_rows,
                "test_rows": len(rows),
                "holdout_accuracy": round(report.holdout["category"].accuracy, 4),
                "test_accuracy": round(accuracy_score(truth, predicted), 4),
                "test_macro_f1": round(f1_score(truth, predicted, average="macro"), 4),
                "train_seconds": round(train_s, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
