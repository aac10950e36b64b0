"""A project with a task decided by the shipped `deterministic` provider, so every figure of an
eval can be counted by hand: "card" rows are answered `cards` at 0.95 (automated), "pay" rows
`payments` at 0.7 (below the 0.8 threshold: review), "stolen" rows `fraud` at 0.9 (a rule
sends fraud to review), "hello" rows `other` at 0.6. A file sink would show any delivery."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lockgate.providers.registry import ProviderRegistry
from lockgate.runtime import Runtime
from lockgate.settings import Settings
from lockgate.store import Store

EVAL_TASK = """\
name: routing
input:
  text: {type: string, max_length: 4000, pii: true}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
models:
  - provider: deterministic
    confidence: 0.6
    answers:
      - {if_contains: "stolen", output: {queue: fraud}, confidence: 0.9}
      - {if_contains: "card", output: {queue: cards}, confidence: 0.95}
      - {if_contains: "pay", output: {queue: payments}, confidence: 0.7}
      - {if_contains: "hello", output: {queue: other}, confidence: 0.6}
policy:
  auto_min_confidence: 0.8
  review_when:
    - {field: queue, equals: fraud}
evaluation:
  gate_dataset: gate
  calibration_dataset: calib
deliver:
  - {sink: file, path: out/decisions.jsonl}
"""

ANSWERS = {
    "stolen": ("fraud", 0.9),
    "card": ("cards", 0.95),
    "pay": ("payments", 0.7),
    "hello": ("other", 0.6),
}


def model_answer(text: str) -> tuple[str, float] | None:
    """What the deterministic provider answers for `text` (None: a hash-derived answer)."""
    for word, answer in ANSWERS.items():
        if word in text:
            return answer
    return None


def make_project(root: Path, task_text: str = EVAL_TASK) -> Path:
    (root / "tasks").mkdir(parents=True, exist_ok=True)
    (root / "tasks" / "routing.yaml").write_text(task_text)
    return root


def write_rows(path: Path, rows: Sequence[tuple[str, str]], header: Sequence[str] = ()) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header or ("text", "queue"))
        writer.writerows(rows)
    return path


@contextmanager
def project_runtime(project: Path, database_url: str, **settings: Any) -> Iterator[Runtime]:
    runtime = Runtime(
        Settings(project_dir=project, database_url=database_url, **settings),
        Store(database_url),
        ProviderRegistry.discover(),
    )
    try:
        yield runtime
    finally:
        runtime.close()
