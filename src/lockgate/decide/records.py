"""Reading input records from CSV or JSON Lines files, with errors that name the line, and
writing rows back in the same formats."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lockgate.errors import ConfigError
from lockgate.files import replaced


@dataclass(frozen=True)
class Record:
    """One input record: `id` is the record's `id` column, else its 1-based record number."""

    id: str
    line: int
    values: dict[str, Any]
    source: str = ""
    """The file it came from, where records of several files are read together."""

    @property
    def where(self) -> str:
        """`line N`, or `FILE line N` for a record read together with other files' records."""
        return f"{self.source} line {self.line}" if self.source else f"line {self.line}"


def record_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise ConfigError(
        f"{path}: unknown file type {suffix or '(none)'}",
        hint="use a .csv file with a header row or a .jsonl file with one JSON object per line",
    )


def iter_records(path: str | Path) -> Iterator[Record]:
    """Yield the records of a CSV (header row) or JSONL file in file order."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    fmt = record_format(path)
    with path.open(encoding="utf-8", newline="") as handle:
        if fmt == "csv":
            reader = csv.DictReader(handle)
            for number, row in enumerate(reader, start=1):
                if None in row:
                    raise ConfigError(
                        f"{path}: record {number} (line {reader.line_num}) has more cells "
                        "than the header row",
                        hint="quote values that contain commas",
                    )
                yield _record(row, number, reader.line_num)
        else:
            number = 0
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                number += 1
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(
                        f"{path}: line {line_no} is not valid JSON ({exc.msg} at column "
                        f"{exc.colno})"
                    ) from None
                if not isinstance(row, dict):
                    raise ConfigError(f"{path}: line {line_no} must be a JSON object")
                yield _record(row, number, line_no)


def _record(row: dict[str, Any], number: int, line: int) -> Record:
    raw_id = row.get("id")
    rid = str(raw_id) if raw_id not in (None, "") else str(number)
    return Record(id=rid, line=line, values=row)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_records(
    path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str], fmt: str
) -> None:
    """Write `rows` as CSV (a header of `columns`, nested values as JSON) or JSON Lines
    (`fmt`: csv or jsonl), replacing `path` atomically: a reader never sees half a file."""
    with replaced(path) as file:
        if fmt == "csv":
            writer = csv.DictWriter(file, fieldnames=list(columns))
            writer.writeheader()
            writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
        else:
            for row in rows:
                file.write(json.dumps(row, ensure_ascii=False) + "\n")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Mapping | list):
        return json.dumps(value, ensure_ascii=False)
    return value
