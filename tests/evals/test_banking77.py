"""On real data: a threshold calibrated to 97% on one held-out split of banking77 keeps at least
97% accuracy on the automated items of another split it never saw (a reduced version of
benchmarks/banking77_eval.py: 3,000 training rows, 1,500 for calibration, 1,500 to check)."""

from __future__ import annotations

import asyncio
import csv
import json
import random
from pathlib import Path

import pytest

from lockgate.decide.decision import input_hash
from lockgate.evals import service
from lockgate.evals.datasets import read_dataset
from lockgate.providers.classifier_training import train_classifier
from tests.evals.kit import project_runtime

DATA = Path(__file__).resolve().parents[3] / "shared/datasets/banking77"
TARGET = 0.97

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (DATA / "train.csv").exists(),
        reason=f"banking77 is not in {DATA} (the shared datasets folder beside the project)",
    ),
]


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "category": r["category"]} for r in rows)
    return path


def test_a_calibrated_threshold_holds_its_accuracy_on_a_split_it_never_saw(
    tmp_path: Path,
) -> None:
    with (DATA / "train.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_input: dict[str, list[dict[str, str]]] = {}
    for row in rows:  # rows with the same input stay in one split
        by_input.setdefault(input_hash({"text": row["text"].strip()}), []).append(row)
    keys = sorted(by_input)
    random.Random(7).shuffle(keys)
    train, calib, check = (
        [r for k in keys[a:b] for r in by_input[k]] for a, b in ((0, 3000), (3000, 4500),
                                                                  (4500, 6000))
    )  # fmt: skip
    project = tmp_path / "project"
    (project / "tasks").mkdir(parents=True)
    task = {
        "name": "banking77",
        "input": {"text": {"type": "string"}},
        "output": {
            "category": {
                "type": "enum",
                "values": json.loads((DATA / "categories.json").read_text()),
            }
        },
        "models": [{"provider": "local-classifier"}],
        "evaluation": {"calibration_dataset": "calib"},
    }
    (project / "tasks/banking77.yaml").write_text(json.dumps(task))
    with project_runtime(project, f"sqlite:///{tmp_path}/lockgate.db") as runtime:
        spec = runtime.task("banking77")
        train_classifier(spec, _write(tmp_path / "train.csv", train), runtime.settings)
        source, _ = runtime.create_release("banking77", "test")
        for name, part in (("calib", calib), ("check", check)):
            dataset = read_dataset(spec, _write(tmp_path / f"{name}.csv", part))
            runtime.store.datasets.add("banking77", name, dataset, sealed=False, source=None,
                                       actor="test")  # fmt: skip

        async def calibrate_then_check() -> tuple[service.Calibration, service.Evaluation]:
            try:
                calibration = await runtime.eval_service().calibrate(
                    "banking77", release=str(source.number), target=TARGET
                )
                assert calibration.release is not None, "no threshold reached the target"
                checked = await runtime.eval_service().evaluate(
                    "banking77", release=calibration.release.ref, dataset="check"
                )
                return calibration, checked
            finally:
                await runtime.aclose()

        calibration, checked = asyncio.run(calibrate_then_check())
    assert calibration.chosen is not None and calibration.chosen.lower_bound >= TARGET
    realised = checked.run.metrics["auto_accuracy"]
    print(
        f"threshold {calibration.chosen.threshold:.3f}: calibration coverage "
        f"{calibration.chosen.coverage:.1%}; check split coverage "
        f"{checked.run.metrics['coverage']:.1%}, realised accuracy {realised:.2%}"
    )
    assert realised >= TARGET
    assert checked.run.metrics["coverage"] > 0.2  # the threshold automates a useful share
