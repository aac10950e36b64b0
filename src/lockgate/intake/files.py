"""Reading record files: CSV (header row), JSON Lines, JSON (an array of objects) and Excel.

A row that cannot be read becomes an `Incoming` with its problem (it is quarantined, not
dropped); a file that cannot be read at all raises `Unreadable`.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class Scanned:
    """One pass over a file: its content hash and the text encoding its records are read in."""

    sha256: str
    encoding: str
    """A Python codec: utf-8, utf-8-sig (BOM), utf-16, latin-1 or the configured one."""
    note: str = ""
    problem: str | None = None
    """Why the file cannot be decoded with the configured encoding."""


_CHUNK = 1 << 20


def scan(path: Path, encoding: str | None = None) -> Scanned:
    """Hash the file and choose its encoding in one streaming pass: the configured codec,
    UTF-8 with a BOM, UTF-16 by its BOM, UTF-8, else Latin-1 (noted). Memory stays flat."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        head = handle.read(4)
        handle.seek(0)
        if encoding is not None:
            chosen, note = encoding, f"read as {encoding} (configured)"
        elif head.startswith(codecs.BOM_UTF8):
            chosen, note = "utf-8-sig", "UTF-8 with BOM"
        elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            chosen, note = "utf-16", "UTF-16 (BOM)"
        else:
            chosen, note = "utf-8", ""
        try:
            decoder = codecs.getincrementaldecoder(chosen)()
        except LookupError:
            return Scanned("", chosen, problem=f"unknown encoding {encoding}")
        problem: str | None = None
        offset = 0
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
            if problem is None:
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    problem = f"byte {offset + exc.start}"
            offset += len(block)
        if problem is None:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                problem = "the last bytes"
    if problem is None:
        return Scanned(digest.hexdigest(), chosen, note)
    if encoding is not None or chosen != "utf-8":
        return Scanned(digest.hexdigest(), chosen, problem=f"not valid {chosen} at {problem}")
    return Scanned(digest.hexdigest(), "latin-1", f"not valid UTF-8 ({problem}); read as Latin-1")


def read_file(path: Path, scanned: Scanned, *, label: str) -> FileRecords:
    """The records of one file, read lazily (CSV and JSON Lines stream); `label` names it in
    positions."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise Unreadable(f"unknown file type {path.suffix or '(none)'}")
    if kind == "xlsx":
        return FileRecords(_xlsx(path.read_bytes(), label, path.name), "xlsx")
    if scanned.problem is not None:
        raise Unreadable(f"cannot decode: {scanned.problem}")
    if kind == "json":
        text = path.read_text(encoding=scanned.encoding)
        return FileRecords(iter(_json(text, label, path.name)), scanned.encoding, scanned.note)
    reader = _csv if kind == "csv" else _jsonl
    return FileRecords(
        _streamed(path, scanned.encoding, reader, label), scanned.encoding, scanned.note
    )


def _streamed(
    path: Path,
    encoding: str,
    reader: Callable[[Iterable[str], str, str], Iterator[Incoming]],
    label: str,
) -> Iterator[Incoming]:
    with path.open(encoding=encoding, newline="") as handle:
        yield from reader(handle, label, path.name)


def _context(name: str, row: int, line: int | None = None) -> dict[str, Any]:
    return {"file": name, "row": row, **({"line": line} if line is not None else {})}


def _csv(lines: Iterable[str], label: str, name: str) -> Iterator[Incoming]:
    reader = csv.reader(lines)
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


def _jsonl(lines: Iterable[str], label: str, name: str) -> Iterator[Incoming]:
    row = 0
    for line_no, raw_line in enumerate(lines, start=1):
        line = raw_line.rstrip("\r\n")
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
