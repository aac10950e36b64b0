"""Labels: every human verdict that made a decision final is a ground-truth example.

`export_labels` writes them in the format `lockgate train` reads and `lockgate init`'s example
data has: one row per decision, its id, then the task's input fields and its output fields as
columns (CSV with a header row, or JSON Lines).
An approved decision's label is the model's output a person accepted; a corrected one's is the
output the reviewer wrote. Rejected decisions carry no label and are left out (and counted).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lockgate.decide.records import record_format, write_records
from lockgate.decide.task import TaskSpec
from lockgate.errors import ConfigError
from lockgate.review.storage import ReviewStore

Format = Literal["csv", "jsonl"]


@dataclass(frozen=True)
class LabelExport:
    path: Path
    format: Format
    rows: int
    approved: int
    corrected: int
    rejected_left_out: int
    columns: tuple[str, ...]

    def summary(self) -> str:
        return (
            f"wrote {self.rows} labels to {self.path} ({self.format}): {self.approved} approved, "
            f"{self.corrected} corrected; {self.rejected_left_out} rejected decisions left out "
            "(a rejection is not a label)"
        )


def label_rows(reviews: ReviewStore, spec: TaskSpec) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The label rows of the task, oldest decision first, and counts by final status."""
    columns_in, columns_out = list(spec.input), list(spec.output)
    rows: list[dict[str, Any]] = []
    counts = {"approved": 0, "corrected": 0, "rejected": 0}
    for state in reviews.reviewed(spec.name):
        decision = state.decision
        counts[decision.status] = counts.get(decision.status, 0) + 1
        if decision.status not in ("approved", "corrected") or decision.output is None:
            continue
        row: dict[str, Any] = {}
        if "id" not in spec.input and "id" not in spec.output:
            row["id"] = decision.id
        row.update({name: decision.input.get(name) for name in columns_in})
        row.update({name: decision.output.get(name) for name in columns_out})
        rows.append(row)
    return rows, counts


def export_labels(
    reviews: ReviewStore, spec: TaskSpec, out: str | Path, fmt: Format | None = None
) -> LabelExport:
    """Write the task's labels to `out` (replaced atomically); the format follows `fmt`, else
    the file's suffix (.csv or .jsonl)."""
    path = Path(out)
    if fmt is None:
        fmt = "csv" if record_format(path) == "csv" else "jsonl"
    chosen: Format = fmt
    # An `id` column first, as in the files `lockgate init` writes, so the two append cleanly.
    own_id = "id" in spec.input or "id" in spec.output
    columns = (*(() if own_id else ("id",)), *spec.input, *spec.output)
    clash = sorted(set(spec.input) & set(spec.output))
    if clash:
        raise ConfigError(
            f"task {spec.name!r} has input and output fields with the same name "
            f"({', '.join(clash)}); a label file cannot hold both"
        )
    rows, counts = label_rows(reviews, spec)
    write_records(path, rows, columns, chosen)
    return LabelExport(
        path=path,
        format=chosen,
        rows=len(rows),
        approved=counts["approved"],
        corrected=counts["corrected"],
        rejected_left_out=counts["rejected"],
        columns=columns,
    )
