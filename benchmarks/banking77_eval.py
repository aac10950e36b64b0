"""Evaluation and calibration on banking77, run with the `lockgate` command as a user would.

1. A project with a `banking77` task (77 intents, the local classifier).
2. `test.csv` sealed as the gate dataset (`lockgate dataset add --sealed`).
3. `train.csv` split by a seeded shuffle into train (60%), calibration (20%) and check (20%)
   parts with no input in two parts. `lockgate train` on the train part first: it refuses the
   rows whose text is also in the sealed test set, which are then dropped.
4. `lockgate eval` on the sealed test set: accuracy and macro-F1.
5. `lockgate calibrate --target-accuracy 0.97` on the calibration part.
6. `lockgate eval` of the calibrated release on the check part (never used for training or
   calibration): the realised accuracy on the automated items must be >= 0.97; and on the
   sealed test set, for the coverage and accuracy there.

Usage: python benchmarks/banking77_eval.py [--data ../shared/datasets/banking77] [--seed 0]

With `--models` it runs instead the model chains of issue 16 (the embedding classifier, the
combined chains, out of scope, the local LLM): see benchmarks/banking77_models.py, whose
options follow `--models`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lockgate.decide.decision import input_hash

TARGET = 0.97


def lockgate(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "lockgate", *args],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    if check and result.returncode != 0:
        sys.exit(f"lockgate {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "category": r["category"]} for r in rows)


def key(row: dict[str, str]) -> str:
    return input_hash({"text": row["text"].strip()})


def split(
    rows: list[dict[str, str]], seed: int, shares: tuple[float, float]
) -> tuple[list[dict[str, str]], ...]:
    """Train, calibration and check parts; rows with the same input stay in one part."""
    groups: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    cut1 = round(len(keys) * shares[0])
    cut2 = cut1 + round(len(keys) * shares[1])
    parts = (keys[:cut1], keys[cut1:cut2], keys[cut2:])
    return tuple([r for k in part for r in groups[k]] for part in parts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "shared/datasets/banking77",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data: Path = args.data.resolve()
    if not (data / "train.csv").exists():
        sys.exit(f"banking77 not found in {data}; pass --data DIR")
    categories = json.loads((data / "categories.json").read_text())
    figures: dict[str, Any] = {"seed": args.seed, "target_accuracy": TARGET}
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "tasks").mkdir()
        (project / "tasks/banking77.yaml").write_text(
            json.dumps(
                {
                    "name": "banking77",
                    "input": {"text": {"type": "string"}},
                    "output": {"category": {"type": "enum", "values": categories}},
                    "models": [{"provider": "local-classifier"}],
                    "policy": {"auto_min_confidence": 0.5},
                    "evaluation": {"gate_dataset": "test", "calibration_dataset": "calib"},
                }
            )
        )
        train, calib, check = split(read(data / "train.csv"), args.seed, (0.6, 0.2))
        write(project / "train.csv", train)
        write(project / "calib.csv", calib)
        write(project / "check.csv", check)
        lockgate(project, "dataset", "add", "banking77", "test", str(data / "test.csv"), "--sealed")

        refused = lockgate(project, "train", "banking77", "--data", "train.csv", check=False)
        match = re.search(r"(\d+) rows? ha(?:ve|s) the same input", refused.stderr)
        figures["train_rows_refused_overlapping_test"] = int(match[1]) if match else 0
        sealed = {key(r) for r in read(data / "test.csv")}
        train = [r for r in train if key(r) not in sealed]
        write(project / "train.csv", train)
        started = time.perf_counter()
        lockgate(project, "train", "banking77", "--data", "train.csv")
        figures["train_seconds"] = round(time.perf_counter() - started, 1)
        figures["rows"] = {"train": len(train), "calib": len(calib), "check": len(check)}
        lockgate(project, "dataset", "add", "banking77", "calib", "calib.csv")
        lockgate(project, "dataset", "add", "banking77", "check", "check.csv")
        lockgate(project, "release", "create", "banking77")

        started = time.perf_counter()
        gate = json.loads(lockgate(project, "eval", "banking77", "--json").stdout)
        figures["eval_seconds"] = round(time.perf_counter() - started, 1)
        figures["test"] = {k: gate[k] for k in ("n", "accuracy", "macro_f1", "latency_p50_ms",
                                                "latency_p95_ms")}  # fmt: skip

        calibrated = lockgate(
            project, "calibrate", "banking77", "--release", "1",
            "--target-accuracy", str(TARGET), "--confidence", "0.95",
        )  # fmt: skip
        figures["calibrate_says"] = calibrated.stdout.splitlines()[0]
        threshold = float(re.search(r"threshold (\d\.\d+)", calibrated.stdout)[1])  # type: ignore[index]
        figures["threshold"] = threshold
        held_out = json.loads(
            lockgate(project, "eval", "banking77", "--release", "2", "--dataset", "check",
                     "--json").stdout
        )  # fmt: skip
        on_test = json.loads(
            lockgate(project, "eval", "banking77", "--release", "2", "--json").stdout
        )
        figures["check"] = {k: held_out[k] for k in ("n", "coverage", "auto_accuracy")}
        figures["test_at_threshold"] = {k: on_test[k] for k in ("n", "coverage", "auto_accuracy")}
    figures["holds"] = figures["check"]["auto_accuracy"] >= TARGET
    print(json.dumps(figures, indent=2))
    if not figures["holds"]:
        sys.exit(1)


if __name__ == "__main__":
    if "--models" in sys.argv:
        sys.argv.remove("--models")
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from banking77_models import main as models_main

        models_main()
    else:
        main()
