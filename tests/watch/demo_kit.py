"""The project `lockgate init` makes, ready for watching: spot checks on every automated
decision, a gate on accuracy, and a sealed gate dataset of new demo tickets."""

from __future__ import annotations

import csv
from pathlib import Path

from lockgate.decide.decision import input_hash
from lockgate.demo.generator import Ticket, generate_tickets
from lockgate.evals.types import DatasetRow
from lockgate.runtime import Runtime
from lockgate.settings import load_settings

FOLD = {"cards": "cards", "fraud": "fraud", "payments": "payments", "transfers": "payments"}
"""The demo's queues as the `lockgate init` task's queues."""

SETUP = """\
  spot_check_rate: 1.0
evaluation:
  gate_dataset: gate
  gate:
    min_accuracy: 0.7
"""
"""Appended to the `lockgate init` task file (which ends inside its `policy:`)."""


def sealed_gate(root: Path, database_url: str, n: int = 250) -> list[Ticket]:
    """Store `gate`, a sealed dataset of `n` demo tickets (none a training text), for the
    project in `root`; the tickets, in the dataset's order."""
    with (root / "data" / "routing-train.csv").open(encoding="utf-8") as file:
        training = {row["text"] for row in csv.DictReader(file)}
    gate = [t for t in generate_tickets(n, seed=41, id_prefix="G") if t.text not in training]
    runtime = Runtime.open(load_settings(root, database_url=database_url, environ={}))
    try:
        rows = [
            DatasetRow(i, {"text": t.text}, {"queue": FOLD.get(t.queue, "other")},
                       input_hash({"text": t.text}))
            for i, t in enumerate(gate)
        ]  # fmt: skip
        runtime.store.datasets.add("routing", "gate", rows, sealed=True, source=None, actor="t")
    finally:
        runtime.close()
    return gate
