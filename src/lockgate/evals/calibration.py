"""Calibrated automation: the lowest confidence threshold whose automated share is accurate
enough, with a one-sided Clopper-Pearson lower bound on that accuracy.

For a threshold t, the automated items are those with a valid output, no policy rule sending
them to review or reject, and confidence >= t. Their accuracy a(t) is estimated on a
calibration dataset; t qualifies when the exact binomial lower bound on a(t), at the chosen
confidence level, is at or above the target. The lowest qualifying t automates the most.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from scipy.stats import beta

from lockgate.decide.task import TaskSpec
from lockgate.evals.scorers import Scored, ScoringContext
from lockgate.evals.types import DatasetRow


def clopper_pearson_lower(successes: int, trials: int, confidence: float) -> float:
    """One-sided exact lower bound on a binomial proportion: with probability `confidence`
    the true proportion is at least this (0 when there are no successes)."""
    if not 0 <= successes <= trials:
        raise ValueError("successes must be between 0 and trials")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    if successes == 0:
        return 0.0
    return float(beta.ppf(1 - confidence, successes, trials - successes + 1))


@dataclass(frozen=True)
class Threshold:
    threshold: float
    automated: int
    correct: int
    total: int
    lower_bound: float

    @property
    def coverage(self) -> float:
        return self.automated / self.total if self.total else 0.0

    @property
    def accuracy(self) -> float:
        return self.correct / self.automated if self.automated else 0.0

    def figures(self) -> dict[str, float | int]:
        return {
            "threshold": self.threshold,
            "coverage": self.coverage,
            "accuracy": self.accuracy,
            "lower_bound": self.lower_bound,
            "automated": self.automated,
            "correct": self.correct,
            "n": self.total,
        }


def thresholds(
    items: Sequence[Scored], context: ScoringContext, confidence: float
) -> list[Threshold]:
    """Every distinct confidence of an eligible item as a threshold, highest first, with the
    automated count, correct count and lower bound it gives."""
    ranked = sorted(
        (
            (i.confidence, context.correct(i))
            for i in items
            if i.eligible and i.confidence is not None
        ),
        key=lambda pair: -pair[0],
    )
    found: list[Threshold] = []
    automated = correct = 0
    for index, (value, right) in enumerate(ranked):
        automated += 1
        correct += right
        if index + 1 < len(ranked) and ranked[index + 1][0] == value:
            continue  # items of equal confidence are automated together
        bound = clopper_pearson_lower(correct, automated, confidence)
        found.append(Threshold(value, automated, correct, len(items), bound))
    return found


def pick_threshold(
    items: Sequence[Scored], context: ScoringContext, target: float, confidence: float
) -> tuple[Threshold | None, list[Threshold]]:
    """The lowest threshold whose lower bound reaches `target` (None if none does), and every
    threshold considered."""
    considered = thresholds(items, context, confidence)
    passing = [t for t in considered if t.lower_bound >= target]
    return (min(passing, key=lambda t: t.threshold) if passing else None), considered


def confident_errors(automated: Iterable[Scored], context: ScoringContext) -> list[Scored]:
    """The automated items whose answer differs from their label, surest first. Each one costs
    the threshold coverage; where the label is what is wrong (on banking77 most of them are:
    benchmarks/RESULTS.md, issue 16, fifteenth pass), fixing it lets the same target automate
    more."""
    wrong = [i for i in automated if not context.correct(i)]
    return sorted(wrong, key=lambda i: (-(i.confidence or 0.0), i.row))


@dataclass(frozen=True)
class ConfidentError:
    """A dataset row that a threshold automates with another answer than its label."""

    row: DatasetRow
    answer: Any
    confidence: float


ROW_COLUMN, ANSWER_COLUMN, CONFIDENCE_COLUMN = "dataset.row", "model.answer", "model.confidence"
"""The columns an errors file adds to a dataset's own. A field name is an identifier, so none
of them can be a field's: readers of labeled rows ignore them."""


def error_table(
    errors: Sequence[ConfidentError], field: str, task: TaskSpec
) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows of a file listing `errors` for review: the dataset row number, its
    label for the scored `field` (under the field's name), the model's answer and confidence,
    the other labels, then the input fields. Each row is the dataset's row as it was added, so
    a reviewed file, its wrong labels corrected, is itself labeled data: added after the
    original file (`lockgate dataset add`, `lockgate train --data`), its labels win."""
    others = [name for name in task.output if name != field]
    columns = [ROW_COLUMN, field, ANSWER_COLUMN, CONFIDENCE_COLUMN, *others, *task.input]
    rows = []
    for e in errors:
        values = {
            ROW_COLUMN: e.row.seq,
            ANSWER_COLUMN: e.answer,
            CONFIDENCE_COLUMN: round(e.confidence, 6),
            **e.row.expected,
            **e.row.input,
        }
        rows.append({name: values.get(name) for name in columns})
    return columns, rows
