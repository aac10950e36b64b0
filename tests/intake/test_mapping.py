"""Mapping and coercion: fields found by name or alias, typed, normalised, keyed; a record that
cannot be mapped says why without echoing its values."""

from __future__ import annotations

import codecs
import hashlib
from pathlib import Path
from typing import Any

import pytest

from lockgate.decide.task import parse_task
from lockgate.intake.files import scan
from lockgate.intake.mapping import Mapper, Unmappable

TASK: dict[str, Any] = {
    "name": "routing",
    "input": {
        "text": {"type": "string", "max_length": 50},
        "amount": {"type": "number", "required": False},
        "count": {"type": "integer", "required": False},
        "urgent": {"type": "boolean", "required": False},
        "due": {"type": "string", "required": False},
    },
    "output": {"queue": {"type": "enum", "values": ["a", "b"]}},
    "models": [{"provider": "deterministic"}],
}


def mapper(source: dict[str, Any]) -> Mapper:
    spec = parse_task(
        {**TASK, "sources": [{"name": "s", "kind": "folder", "path": "in/", **source}]}, "t"
    )
    return Mapper(spec, spec.sources[0])


CONTEXT = {"file": "a.csv", "row": 1}
BASE = {"map": {"text": {"from": ["text"], "aliases": ["Subject", "title"]}}}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param({"text": " hi "}, {"text": "hi"}, id="trimmed"),
        pytest.param({"title": "hi"}, {"text": "hi"}, id="alias"),
        pytest.param({" SUBJECT ": "hi"}, {"text": "hi"}, id="alias-any-case-and-spaces"),
        pytest.param({"text": "cafe\u0301"}, {"text": "caf\u00e9"}, id="unicode-nfc"),
        pytest.param({"text": "x", "amount": "1,234.5"}, {"text": "x", "amount": 1234.5}, id="n"),
        pytest.param({"text": "x", "count": "7.0"}, {"text": "x", "count": 7}, id="integer"),
        pytest.param({"text": "x", "urgent": "Yes"}, {"text": "x", "urgent": True}, id="bool"),
        pytest.param({"text": "x", "amount": ""}, {"text": "x"}, id="empty-is-missing"),
        pytest.param({"text": 42}, {"text": "42"}, id="number-as-text"),
    ],
)
def test_values_are_found_and_coerced(raw: dict[str, Any], expected: dict[str, Any]) -> None:
    assert mapper(BASE).map(raw, {"file": "f", "row": 1}).input == expected


def test_dates_in_a_stated_format_and_decimal_commas() -> None:
    source = {
        "map": {
            "text": "text",
            "due": {"from": "Datum", "type": "date", "format": "%d.%m.%Y"},
            "amount": {"from": "Betrag", "decimal": ","},
        }
    }
    mapped = mapper(source).map({"text": "x", "Datum": "31.03.2026", "Betrag": "1.234,50"}, CONTEXT)
    assert mapped.input == {"text": "x", "due": "2026-03-31", "amount": 1234.5}


def test_a_default_fills_a_missing_value() -> None:
    source = {"map": {"text": {"from": "text", "default": "(no text)"}}}
    assert mapper(source).map({"text": "  "}, CONTEXT).input == {"text": "(no text)"}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(
            {"body": "x"}, "missing required field text (looked for: text, Subject, title)"
        ),
        pytest.param(
            {"text": "x", "amount": "12 EUR"}, "field amount (from amount): must be a number"
        ),
        pytest.param(
            {"text": "x", "count": "1.5"}, "field count (from count): must be a whole number"
        ),
        pytest.param({"text": "x" * 51}, "input.text: is 51 characters long; at most 50 allowed"),
        pytest.param(
            {"text": ["a"]}, "field text (from text): must be text, not a list or an object"
        ),
    ],
)
def test_a_record_that_cannot_be_mapped_says_why(raw: dict[str, Any], reason: str) -> None:
    with pytest.raises(Unmappable) as caught:
        mapper(BASE).map(raw, CONTEXT)
    assert caught.value.reason == reason
    assert "12 EUR" not in caught.value.reason


def test_unknown_fields_are_kept_beside_the_input() -> None:
    mapped = mapper(BASE).map({"text": "x", "ticket": "T-9", "channel": "mail"}, CONTEXT)
    assert mapped.extra == {"ticket": "T-9", "channel": "mail"}


def test_the_key_template_takes_source_values_and_fields() -> None:
    m = mapper({**BASE, "key": "{file}:{row}:{ticket}"})
    assert m.map({"text": "x", "ticket": "T-9"}, {"file": "a.csv", "row": 3}).key == "s:a.csv:3:T-9"
    with pytest.raises(Unmappable, match="the key field ticket is missing"):
        m.map({"text": "x"}, {"file": "a.csv", "row": 3})
    long = m.map({"text": "x", "ticket": "T" * 300}, {"file": "a.csv", "row": 3}).key
    assert long.startswith("s:sha256:") and len(long) < 100


def test_the_same_input_has_the_same_content_hash_whatever_its_spelling() -> None:
    m = mapper(BASE)
    assert (
        m.map({"text": " hello "}, CONTEXT).content_hash
        == m.map({"title": "hello"}, CONTEXT).content_hash
    )


@pytest.mark.parametrize(
    ("data", "codec", "note"),
    [
        pytest.param("café".encode(), "utf-8", "", id="utf-8"),
        pytest.param(codecs.BOM_UTF8 + "café".encode(), "utf-8-sig", "UTF-8 with BOM", id="bom"),
        pytest.param("café".encode("utf-16"), "utf-16", "UTF-16 (BOM)", id="utf-16"),
        pytest.param("café".encode("latin-1"), "latin-1", "read as Latin-1", id="latin-1"),
    ],
)
def test_encodings_are_detected_and_reported(
    tmp_path: Path, data: bytes, codec: str, note: str
) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    scanned = scan(path)
    assert (scanned.encoding, scanned.sha256) == (codec, hashlib.sha256(data).hexdigest())
    assert note in scanned.note
    assert path.read_text(encoding=scanned.encoding) == "café"


def test_a_file_that_breaks_its_configured_encoding_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"text\n\xff\xfe broken\n")
    scanned = scan(path, "utf-8")
    assert scanned.problem == "not valid utf-8 at byte 5"
