"""The retraining set: the training data plus every human label, de-duplicated, sealed rows out.

Human labels come from three places, each an input with the output a person (or a downstream
system) said is right:

- review verdicts that made a decision final: approved (the model's output stands) and
  corrected (the reviewer's output); a rejection is no label;
- spot-check verdicts: approve (the model's output) and correct (the reviewer's output);
- feedback: `correct: true` (the decision's output) and `correct: false` with an `output`.

Rows are de-duplicated by their normalised input, the later one winning: the training files in
the order given, then the labels oldest first (a person's later word over an earlier one, and
over the training file). Rows whose input is in a sealed dataset of the task are left out and
counted: a sealed set is for measuring and is never trained on.

`lockgate retrain` (cli/retrain.py) trains on the result, creates a release, evaluates it on
the gate dataset and, if it passes, starts it in shadow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from lockgate.decide.decision import input_hash
from lockgate.decide.records import Record, iter_records
from lockgate.decide.task import TaskSpec
from lockgate.decide.validation import validate_input
from lockgate.errors import ConfigError
from lockgate.review.types import ReviewState
from lockgate.watch.types import Judged


class ReviewedSource(Protocol):
    def reviewed(self, task: str) -> list[ReviewState]: ...


class JudgedSource(Protocol):
    def judged(
        self, task: str, *, since: datetime | None = None, release: int | None = None
    ) -> list[Judged]: ...


@dataclass(frozen=True)
class Label:
    """One human label: where it came from, the input and the output judged right."""

    source: str
    """`review`, `spot_check` or `feedback`."""
    input: Mapping[str, Any]
    output: Mapping[str, Any]
    at: datetime


@dataclass(frozen=True)
class RetrainSet:
    records: list[Record]
    data_rows: int
    labels: Mapping[str, int]
    """Human labels by source (before de-duplication)."""
    duplicates: int
    sealed_left_out: int

    def summary(self) -> str:
        by = ", ".join(f"{n} {source.replace('_', ' ')}" for source, n in self.labels.items())
        return (
            f"{len(self.records)} rows: {self.data_rows} from the training data and "
            f"{sum(self.labels.values())} human labels ({by}); {self.duplicates} duplicates "
            f"left out (the later row wins), {self.sealed_left_out} rows of sealed datasets "
            "left out"
        )


def human_labels(spec: TaskSpec, reviews: ReviewedSource, judged: JudgedSource) -> list[Label]:
    """Every human label of the task, oldest first (see the module's docstring)."""
    found: list[Label] = []
    for state in reviews.reviewed(spec.name):
        decision = state.decision
        if decision.status in ("approved", "corrected") and decision.output is not None:
            at = state.verdicts[-1].at if state.verdicts else decision.created_at
            found.append(Label("review", decision.input, decision.output, at))
    for j in judged.judged(spec.name):
        if j.true_output is not None:
            found.append(Label(j.source, j.input, j.true_output, j.at))
    found.sort(key=lambda label: label.at)
    return found


def retrain_set(
    spec: TaskSpec,
    data: Sequence[Path],
    labels: Sequence[Label],
    sealed: Mapping[str, str],
) -> RetrainSet:
    """The rows to train on: `data` files in order, then `labels`; de-duplicated by input,
    the later winning; sealed inputs left out."""
    rows: dict[str, Record] = {}
    total = data_rows = sealed_out = 0
    counts: dict[str, int] = {"review": 0, "spot_check": 0, "feedback": 0}

    def add(record: Record) -> None:
        nonlocal total, sealed_out
        total += 1
        key = input_hash(validate_input(spec, record.values)[0])
        if key in sealed:
            sealed_out += 1
            return
        rows.pop(key, None)
        rows[key] = record

    for path in data:
        for record in iter_records(path):
            data_rows += 1
            add(Record(record.id, record.line, record.values, str(path)))
    columns = (*spec.input, *spec.output)
    for number, label in enumerate(labels, start=1):
        counts[label.source] = counts.get(label.source, 0) + 1
        values = {**{k: label.input.get(k) for k in spec.input}, **dict(label.output)}
        add(Record(f"label-{number}", number, {k: values.get(k) for k in columns}, "labels"))
    if not rows:
        raise ConfigError(
            f"nothing to train task {spec.name!r} on",
            hint="pass the training data with --data FILE",
        )
    kept = len(rows)
    return RetrainSet(
        records=list(rows.values()),
        data_rows=data_rows,
        labels=counts,
        duplicates=total - sealed_out - kept,
        sealed_left_out=sealed_out,
    )
