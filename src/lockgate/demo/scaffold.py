"""`lockgate init`: a working project with one example task, example training data and new
tickets to decide."""

from __future__ import annotations

import csv
from pathlib import Path

from lockgate.demo.generator import generate_tickets
from lockgate.errors import ConfigError

EXAMPLE_TASK = """\
# A task: one repetitive decision. Every key is documented in docs/task-files.md.
name: routing
description: Route a customer message to the queue that can resolve it
owner: support-platform
input:
  text: {type: string, max_length: 4000, pii: true}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
instructions: |
  Route the customer's message to the queue that can resolve it.
models:
  # tried in order: when a model fails or gives an invalid answer, the next one is asked
  - provider: local-classifier
  - provider: rules
    rules:
      - {if_matches: "(?i)stolen|fraud", then: {queue: fraud}}
policy:
  auto_min_confidence: 0.8
  review_when:
    - {field: queue, equals: fraud}
  reject_when:
    - {input: text, empty: true}
"""

SETTINGS = """\
# Project settings. Secrets never go here: use environment variables (OPENAI_API_KEY).
# database_url: postgresql://lockgate@db.internal/lockgate   # default: .lockgate/lockgate.db
# openai_base_url: http://127.0.0.1:8080/v1                  # or set OPENAI_BASE_URL
# prices:                                                    # USD per 1,000 tokens
#   gpt-4o-mini: {input_per_1k: 0.00015, output_per_1k: 0.0006}
batch_size: 500
"""

GITIGNORE = ".lockgate/\nout/\n"

# The demo's fourteen queues folded into the example task's four.
_FOLD = {"cards": "cards", "fraud": "fraud", "payments": "payments", "transfers": "payments"}


def scaffold_project(directory: Path) -> list[Path]:
    """Create the project files; refuse to overwrite an existing task file."""
    task_file = directory / "tasks" / "routing.yaml"
    if task_file.exists():
        raise ConfigError(
            f"{task_file} already exists", hint="choose an empty folder for a new project"
        )
    (directory / "tasks").mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir(exist_ok=True)
    files = {
        task_file: EXAMPLE_TASK,
        directory / "lockgate.yaml": SETTINGS,
        directory / ".gitignore": GITIGNORE,
    }
    created = []
    for path, text in files.items():
        if not path.exists():
            path.write_text(text, encoding="utf-8")
            created.append(path)
    data = directory / "data" / "routing-train.csv"
    if not data.exists():
        _write_examples(data)
        created.append(data)
    tickets = directory / "tickets.csv"
    if not tickets.exists():
        _write_tickets(tickets)
        created.append(tickets)
    return created


def _write_examples(path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "queue"])
        for ticket in generate_tickets(800, seed=7, id_prefix="EX"):
            writer.writerow([ticket.id, ticket.text, _FOLD.get(ticket.queue, "other")])


def _write_tickets(path: Path) -> None:
    """New, unlabeled tickets to decide as a batch (`lockgate run routing tickets.csv`)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        for ticket in generate_tickets(200, seed=8, id_prefix="NEW"):
            writer.writerow([ticket.id, ticket.text])
