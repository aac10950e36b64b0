"""Running the real `lockgate` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DETERMINISTIC_TASK = """\
name: routing
input:
  text: {type: string, max_length: 4000, pii: true}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
models:
  - provider: deterministic
    confidence: 0.9
    answers:
      - {if_contains: "stolen", output: {queue: fraud}}
policy:
  auto_min_confidence: 0.8
  review_when:
    - {field: queue, equals: fraud}
  reject_when:
    - {input: text, empty: true}
"""


def lockgate_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "lockgate", *args]


def lockgate(
    *args: str, cwd: Path, database: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    if database is not None:
        env["LOCKGATE_DATABASE_URL"] = database
    result = subprocess.run(
        lockgate_command(*args), cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"lockgate {' '.join(args)} exited {result.returncode}\n{result.stdout}\n"
            f"{result.stderr}"
        )
    return result


def make_project(root: Path, task_text: str = DETERMINISTIC_TASK) -> Path:
    (root / "tasks").mkdir(parents=True, exist_ok=True)
    (root / "tasks" / "routing.yaml").write_text(task_text)
    return root
