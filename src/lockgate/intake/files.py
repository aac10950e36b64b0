"""Reading record files: CSV (header row), JSON Lines, JSON (an array of objects) and Excel.

A row that cannot be read becomes an `Incoming` with its problem (it is quarantined, not
dropped); a file that cannot be read at all raises `Unreadable`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from lockgate.intake.coerce import decode
from lockgate.intake.runner import Incoming

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".xlsx": "xlsx"}


class Unreadable(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass
class FileRecords:
    records: Iterator[Incoming]
    encoding: str
    note: str = ""


def read_file(path: Path, data: bytes, *, label: str, encoding: str | None = None) -> FileRecords:
    """The records of one file, `data` being its bytes; `label` names it in positions."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise Unreadable(f"unknown file type {path.suffix or '(none)'}")
    if kind == "xlsx":
        return FileRecords(_xlsx(data, label, path.name), "xlsx")
    try:
        decoded = decode(data, encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        raise Unreadable(f"cannot decode as {encoding}: {type(exc).__name__}") from None
    text = decoded.text
    if kind == "csv":
        records = _csv(text, label, path.name)
    elif kind == "jsonl":
        records = _jsonl(text, label, path.name)
    else:
        records = iter(_json(text, label, path.name))
    return FileRecords(records, decoded.encoding, decoded.note)


def _context(name: str, row: int, line: int | None = None) -> dict[str, Any]:
    return {"file": name, "row": row, **({"line": line} if line is not None else {})}


def _csv(text: str, label: str, name: str) -> Iterator[Incoming]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    row = 0
    for cells in reader:
        if header is None:
            header = _header(cells)
            continue
        if not any(c.strip() for c in cells):
            continue  # a blank line
        row += 1
        position = f"{label} row {row}"
        context = _context(name, row, reader.line_num)
        if len(cells) != len(header):
            problem = (
                f"row {row} (line {reader.line_num}) has {len(cells)} cells, the header has "
                f"{len(header)}" + (" (a truncated line?)" if len(cells) < len(header) else "")
            )
            raw = dict(zip(header, cells, strict=False))
            yield Incoming(position, None, problem, context, unreadable=raw)
            continue
        yield Incoming(position, dict(zip(header, cells, strict=True)), context=context)


def _header(cells: list[str]) -> list[str]:
    names: list[str] = []
    for index, cell in enumerate(cells, start=1):
        name = cell.strip() or f"column {index}"
        while name in names:
            name = f"{name} ({index})"
        names.append(name)
    return names


def _jsonl(text: str, label: str, name: str) -> Iterator[Incoming]:
    row = 0
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row += 1
        position = f"{label} line {line_no}"
        context = _context(name, row, line_no)
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            problem = f"line {line_no} is not valid JSON ({exc.msg} at column {exc.colno})"
            yield Incoming(position, None, problem, context, unreadable=line[:2000])
            continue
        if not isinstance(value, dict):
            yield Incoming(position, None, f"line {line_no} is not a JSON object", context)
            continue
        yield Incoming(position, value, context=context)


def _json(text: str, label: str, name: str) -> list[Incoming]:
    try:
        value = json.loads(text) if text.strip() else []
    except json.JSONDecodeError as exc:
        raise Unreadable(
            f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise Unreadable("a .json file must hold an array of objects")
    out = []
    for row, item in enumerate(value, start=1):
        position = f"{label} item {row}"
        if isinstance(item, dict):
            out.append(Incoming(position, item, context=_context(name, row)))
        else:
            out.append(
                Incoming(position, None, f"item {row} is not an object", _context(name, row))
            )
    return out


def _xlsx(data: bytes, label: str, name: str) -> Iterator[Incoming]:
    try:
        import openpyxl
    except ImportError:
        raise Unreadable("reading .xlsx needs openpyxl: pip install 'lockgate[excel]'") from None
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        rows = list(book.worksheets[0].iter_rows(values_only=True))
        book.close()
    except Exception as exc:  # openpyxl raises many kinds for a damaged workbook
        raise Unreadable(f"cannot read the workbook ({type(exc).__name__})") from None
    return _sheet(rows, label, name)


def _sheet(rows: list[tuple[Any, ...]], label: str, name: str) -> Iterator[Incoming]:
    if not rows:
        return
    header = _header(["" if c is None else str(c) for c in rows[0]])
    row = 0
    for cells in rows[1:]:
        values = [_cell(c) for c in cells]
        if all(v is None or v == "" for v in values):
            continue
        row += 1
        yield Incoming(
            f"{label} row {row}",
            dict(zip(header, values, strict=False)),
            context=_context(name, row),
        )


def _cell(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return value
