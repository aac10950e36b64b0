"""An eval run: one release scored on one dataset, as the promotion gates read it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


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
