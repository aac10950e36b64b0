"""Labeled datasets: read a CSV or JSONL file against a task, normalise it, hash it.

Inputs are normalised exactly as the pipeline normalises them (`validate_input`) and hashed
with `input_hash`, so a dataset row and a decision of the same input share a hash. A dataset's
content hash is the sha256 over its normalised rows in order: it pins a sealed dataset.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lockgate.decide.decision import input_hash
from lockgate.decide.records import Record, iter_records
from lockgate.decide.task import NAME_PATTERN, OUT_OF_SCOPE, OutputField, TaskSpec
from lockgate.decide.validation import validate_input
from lockgate.errors import ConfigError
from lockgate.evals.types import DatasetRow

_EXAMPLES = 5


@dataclass
class _Problems:
    """Problems by (field, kind): what is wrong and on which lines, listed all at once."""

    found: dict[tuple[str, str], tuple[str, list[int]]] = field(default_factory=dict)

    def add(self, key: tuple[str, str], what: str, line: int) -> None:
        self.found.setdefault(key, (what, []))[1].append(line)

    def lines(self, n_rows: int) -> list[str]:
        out = []
        for what, lines in self.found.values():
            shown = ", ".join(str(n) for n in lines[:_EXAMPLES])
            more = f" and {len(lines) - _EXAMPLES} more" if len(lines) > _EXAMPLES else ""
            count = f"{len(lines)} row{'s' if len(lines) != 1 else ''}"
            if len(lines) == n_rows > 1:
                count = f"every row: is the column missing? {count}"
            out.append(f"  - {what} ({count}: line{'s' if len(lines) != 1 else ''} {shown}{more})")
        return out


def check_name(name: str) -> str:
    """A dataset name: lower-case letters, digits, '-' or '_', starting with a letter."""
    if not re.match(NAME_PATTERN, name):
        raise ConfigError(
            f"{name[:80]!r} is not a valid dataset name",
            hint="use lower-case letters, digits, '-' or '_', starting with a letter "
            "(at most 63 characters), e.g. gate or calib-2026",
        )
    return name


def read_dataset(task: TaskSpec, path: str | Path) -> list[DatasetRow]:
    """Read labeled examples for `task`: every problem of every row is reported at once.

    Each row needs the task's input fields (checked like a decision's input) and a value for
    every output field (an enum value, a number, true/false or text, by the field's type).
    Values are never echoed in errors: inputs may hold personal data.
    """
    return rows_from_records(task, iter_records(path), str(path))


@dataclass(frozen=True)
class LaterFile:
    """What a later file of a dataset did: rows whose input was read before give those rows
    their labels (`repeated`, of which `changed` differ); rows with a new input are added."""

    source: str
    repeated: int
    changed: int
    added: int


def read_datasets(
    task: TaskSpec, paths: Sequence[str | Path]
) -> tuple[list[DatasetRow], list[LaterFile]]:
    """Read several files as one dataset. The first file's rows keep their order and numbers.
    A row of a later file whose input was read before relabels every row with that input, in
    place (so a reviewed `--errors` file, its wrong labels corrected, fixes them); a row with
    a new input is added at the end. Every file is checked as `read_dataset` checks one."""
    rows = read_dataset(task, paths[0])
    at: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        at.setdefault(row.input_hash, []).append(i)
    later_files = []
    for path in paths[1:]:
        repeated = changed = added = 0
        for row in read_dataset(task, path):
            if row.input_hash not in at:
                at[row.input_hash] = [len(rows)]
                rows.append(replace(row, seq=len(rows) + 1))
                added += 1
                continue
            repeated += 1
            earlier = at[row.input_hash]
            changed += any(rows[i].expected != row.expected for i in earlier)
            for i in earlier:
                rows[i] = replace(rows[i], expected=row.expected)
        later_files.append(LaterFile(str(path), repeated, changed, added))
    return rows, later_files


def rows_from_records(task: TaskSpec, records: Iterable[Record], source: str) -> list[DatasetRow]:
    problems = _Problems()
    rows: list[DatasetRow] = []
    n_rows = 0
    for record in records:
        n_rows += 1
        clean, input_problems = validate_input(task, record.values)
        bad = False
        for problem in input_problems:
            name, _, what = problem.partition(": ")
            problems.add((name, what), problem, record.line)
            bad = True
        expected: dict[str, Any] = {}
        for name, spec in task.output.items():
            value, wrong = _expected(spec, record.values.get(name))
            if wrong is not None:
                problems.add((name, wrong), f"output.{name}: {wrong}", record.line)
                bad = True
            else:
                expected[name] = value
        if not bad:
            rows.append(DatasetRow(len(rows) + 1, clean, expected, input_hash(clean)))
    if problems.found:
        raise ConfigError(
            f"{source}: cannot use these rows as labeled examples of task {task.name!r}:\n"
            + "\n".join(problems.lines(n_rows)),
            hint="columns are named by the task's input and output fields; fix or drop the "
            "rows listed and add the dataset again",
        )
    if not rows:
        raise ConfigError(f"{source}: no rows", hint="a dataset needs at least one labeled row")
    return rows


def _expected(spec: OutputField, value: Any) -> tuple[Any, str | None]:
    """A label normalised like a validated output, or the problem with it (never the value)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, "is missing"
    if spec.type == "enum":
        text = str(value).strip()
        if text == OUT_OF_SCOPE:  # the reserved "none of these" label, for any enum
            return text, None
        if text not in (spec.values or ()):
            return None, "is not one of the field's values (see output in the task file)"
        return text, None
    if spec.type == "number":
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None, "is not a number"
        if isinstance(value, bool) or not math.isfinite(number):
            return None, "is not a number"
        return number, None
    if spec.type == "boolean":
        if isinstance(value, bool):
            return value, None
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "false", "0", "no"):
            return text in ("true", "1", "yes"), None
        return None, "is not true or false"
    return (value if isinstance(value, str) else str(value)), None


def overlap_lines(
    task: TaskSpec, records: Iterable[Record], sealed: Mapping[str, str]
) -> list[tuple[int, str]]:
    """(line, sealed dataset name) of every record whose normalised input is in `sealed`."""
    found = []
    for record in records:
        clean, _ = validate_input(task, record.values)
        name = sealed.get(input_hash(clean))
        if name is not None:
            found.append((record.line, name))
    return found


def describe_overlap(source: str, task: str, found: Sequence[tuple[int, str]]) -> str:
    names = ", ".join(sorted({name for _, name in found}))
    lines = ", ".join(str(line) for line, _ in found[:_EXAMPLES])
    more = f" and {len(found) - _EXAMPLES} more" if len(found) > _EXAMPLES else ""
    many = len(found) != 1
    return (
        f"{source}: {len(found)} {'rows have' if many else 'row has'} the same input as rows of "
        f"the sealed dataset {names} of task {task!r} ({'lines' if many else 'line'} "
        f"{lines}{more}); a sealed set is for measuring and must never be trained on"
    )
