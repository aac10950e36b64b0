"""The evals domain's persisted types: datasets and their rows (with the content hash that pins
a sealed set) and eval runs (one release scored on one dataset, as the promotion gates read it)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lockgate.decide.decision import canonical_json


@dataclass(frozen=True)
class EvalRun:
    """One release scored on one dataset.

    `metrics` holds the headline figures of the worst run across repeats (n, accuracy,
    macro_f1, coverage, auto_accuracy, review_share, failed, cost, cost_per_decision,
    latency_p50_ms, latency_p95_ms, schema_validity, per_label, ...); `report` holds the rest
    (runs, spread, confusion, coverage_curve, reliability, field, dataset_hash).
    """

    id: str
    task: str
    release: int
    dataset: str
    dataset_hash: str
    repeat: int
    metrics: Mapping[str, Any]
    report: Mapping[str, Any]
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class DatasetRow:
    seq: int
    input: Mapping[str, Any]
    expected: Mapping[str, Any]
    input_hash: str


@dataclass(frozen=True)
class Dataset:
    id: str
    task: str
    name: str
    sealed: bool
    content_hash: str
    rows: int
    source: str | None
    created_at: datetime
    created_by: str

    def summary(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "name": self.name,
            "sealed": self.sealed,
            "rows": self.rows,
            "content_hash": self.content_hash,
            "source": self.source,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


FINGERPRINT_CHARS = 16
"""Hex digits of an input hash kept in a training fingerprint (64 bits: no collision in any
realistic training set, a quarter of the size of the whole hash)."""


def input_fingerprint(input_hash: str) -> str:
    """What a trained model keeps of one training input's hash (`decision.input_hash`)."""
    return input_hash[:FINGERPRINT_CHARS]


def content_hash(rows: Iterable[DatasetRow]) -> str:
    """sha256 over the normalised rows (input and expected output), in order."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(canonical_json({"input": row.input, "expected": row.expected}).encode())
        digest.update(b"\n")
    return digest.hexdigest()
