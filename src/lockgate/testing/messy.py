"""A messy-data generator: the files a real inbox receives, for tests and benchmarks.

`write_messy_folder` writes, into one folder, records with missing fields, duplicates (the
same row twice, and the same content under another id), a column renamed mid-stream (a later
file calls `text` `body`), wrong types, a UTF-8 BOM, CRLF line ends, Latin-1 and UTF-16
text, a truncated last line, an empty file, an unreadable `.xlsx` and a readable one. Its
manifest says how many records went in and which ones need the `body` alias to be mapped.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

_VOCABULARY = (
    "card stolen payment transfer refund account locked fee exchange rate atm cash pin "
    "blocked declined balance statement salary direct debit limit travel abroad"
)
WORDS = tuple(_VOCABULARY.split(" "))


@dataclass
class Manifest:
    """What `write_messy_folder` wrote."""

    files: list[str] = field(default_factory=list)
    records_in: int = 0
    """Every record a reader meets: data rows, lines and items, an unreadable file as one."""
    renamed: int = 0
    """Records whose text is in a `body` column: mapped only with the `body` alias."""
    duplicates_at_least: int = 0
    """Records that repeat an earlier record's key or content."""


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9)))


def _csv_text(header: list[str], rows: list[list[str]], newline: str = "\n") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_messy_folder(folder: Path, *, seed: int = 7, rows: int = 40) -> Manifest:
    """Write the messy files into `folder` (created); `rows` sets the size of each file."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest()

    def add(name: str, data: bytes, records: int) -> None:
        (folder / name).write_bytes(data)
        manifest.files.append(name)
        manifest.records_in += records

    # 1. CRLF, duplicates, missing text, wrong types.
    body: list[list[str]] = []
    for i in range(rows):
        kind = i % 10
        text = _sentence(rng)
        amount = f"{rng.randint(1, 999)}.{rng.randint(0, 99):02d}"
        if kind == 3:
            text = ""  # missing required field
        if kind == 5:
            amount = "twelve"  # will not coerce to a number
        body.append([f"a{i}", text, amount])
    repeats = [list(body[1]), [f"a{rows}", body[2][1], body[2][2]]]  # same key; same content
    body += repeats
    manifest.duplicates_at_least += len(repeats)
    add("01-crlf.csv", _csv_text(["id", "text", "amount"], body, "\r\n").encode(), len(body))

    # 2. UTF-8 with a BOM, and an unknown column.
    bom_rows = [[f"b{i}", _sentence(rng), str(i), "x"] for i in range(rows)]
    data = codecs.BOM_UTF8 + _csv_text(["id", "text", "amount", "note"], bom_rows).encode()
    add("02-bom.csv", data, len(bom_rows))

    # 3. The text column renamed mid-stream.
    renamed = [[f"c{i}", _sentence(rng), str(i)] for i in range(rows)]
    add("03-renamed.csv", _csv_text(["id", "body", "amount"], renamed).encode(), len(renamed))
    manifest.renamed = len(renamed)

    # 4. Latin-1, not UTF-8.
    latin = [[f"d{i}", f"{_sentence(rng)} café Müller {i}", str(i)] for i in range(rows)]
    add("04-latin1.csv", _csv_text(["id", "text", "amount"], latin).encode("latin-1"), rows)

    # 5. JSON Lines with a truncated last line.
    lines = [json.dumps({"id": f"e{i}", "text": _sentence(rng)}) for i in range(rows)]
    truncated = json.dumps({"id": f"e{rows}", "text": _sentence(rng)})[:-9]
    add("05-truncated.jsonl", ("\n".join([*lines, truncated])).encode(), rows + 1)

    # 6. An empty file.
    add("06-empty.csv", b"", 0)

    # 7. An unreadable workbook (it counts as one record: it is quarantined whole).
    add("07-broken.xlsx", b"PK\x03\x04 this is not a workbook", 1)

    # 8. A readable workbook, when openpyxl is installed.
    workbook = _workbook([[f"f{i}", _sentence(rng), i] for i in range(rows)])
    if workbook is not None:
        add("08-sheet.xlsx", workbook, rows)

    # 9. A JSON array with an item that is not an object.
    items: list[object] = [{"id": f"g{i}", "text": _sentence(rng)} for i in range(rows)]
    items.insert(rows // 2, "not an object")
    add("09-array.json", json.dumps(items).encode(), len(items))

    # 10. UTF-16 with its BOM.
    wide = [[f"h{i}", _sentence(rng), str(i)] for i in range(rows)]
    add("10-utf16.csv", _csv_text(["id", "text", "amount"], wide).encode("utf-16"), rows)
    return manifest


def _workbook(rows: list[list[object]]) -> bytes | None:
    try:
        import openpyxl
    except ImportError:
        return None
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["id", "text", "amount"])
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
