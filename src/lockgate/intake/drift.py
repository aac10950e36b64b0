"""Schema drift: each source remembers the fields it has seen (their types and how often they
were missing) and each batch is compared with that memory.

Events: a new field, a field gone from a whole batch, a changed type, a jump in missing values.
Each is reported once: the memory records what was reported, so the next batch is compared
with the schema as it now is.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, Literal

from lockgate.intake.coerce import is_missing

Kind = Literal["new_field", "missing_field", "type_changed", "missing_jump"]

MIN_TYPED = 5
"""Non-missing values a batch needs before its type of a field counts."""
MIN_ROWS_FOR_JUMP = 10
DOMINANT = 0.9


def value_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, date):
        return "date"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "list"
    text = str(value).strip().replace(",", "")
    try:
        float(text)
    except ValueError:
        return "text"
    return "number"


def _dominant(types: Mapping[str, int]) -> str | None:
    total = sum(types.values())
    if not total:
        return None
    name, count = max(types.items(), key=lambda kv: kv[1])
    return name if count / total >= DOMINANT else None


def profile(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per field: rows where it was present with a value, missing (absent or empty), types."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(str(k) for k in row))
    fields: dict[str, Any] = {}
    for name in names:
        types: dict[str, int] = {}
        present = missing = 0
        for row in rows:
            value = row.get(name)
            if is_missing(value):
                missing += 1
                continue
            present += 1
            kind = value_type(value)
            types[kind] = types.get(kind, 0) + 1
        fields[name] = {"present": present, "missing": missing, "types": types}
    return {"records": len(rows), "fields": fields}


def compare(
    known: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]
) -> tuple[list[tuple[Kind, str, str]], dict[str, Any]]:
    """The drift events of a batch against `known` as (kind, field, detail), and the schema
    with the batch merged in. A source's first batch sets the schema without events."""
    batch = profile(rows)
    merged: dict[str, Any] = copy.deepcopy(dict(known)) if known else {"records": 0, "fields": {}}
    first = not merged["fields"]
    events: list[tuple[Kind, str, str]] = []
    n = batch["records"]
    old_fields: dict[str, Any] = merged["fields"]
    for name, new in batch["fields"].items():
        old = old_fields.get(name)
        if old is None:
            if not first and new["present"]:
                events.append(("new_field", name, f"in {new['present']} of {n} records"))
            old = old_fields[name] = {"present": 0, "missing": 0, "types": {}, "type": None}
            old["missing"] = merged["records"]  # absent from every earlier record
        if old.get("gone") and new["present"]:
            old["gone"] = False
        was_type = old.get("type") or _dominant(old["types"])
        now_type = _dominant(new["types"]) if new["present"] >= MIN_TYPED else None
        if not first and was_type and now_type and now_type != was_type:
            events.append(("type_changed", name, f"was {was_type}, now {now_type}"))
        seen_before = old["present"] + old["missing"]
        share_before = old["missing"] / seen_before if seen_before else 0.0
        share_now = new["missing"] / n if n else 0.0
        if (
            not first
            and old["present"]
            and n >= MIN_ROWS_FOR_JUMP
            and share_before < 0.2
            and share_now >= 0.5
            and not old.get("sparse")
        ):
            events.append(
                ("missing_jump", name, f"missing in {share_now:.0%} (was {share_before:.0%})")
            )
            old["sparse"] = True
        elif share_now < 0.2:
            old["sparse"] = False
        old["present"] += new["present"]
        old["missing"] += new["missing"]
        for kind, count in new["types"].items():
            old["types"][kind] = old["types"].get(kind, 0) + count
        if now_type:
            old["type"] = now_type
        elif not old.get("type"):
            old["type"] = _dominant(old["types"])
    for name, old in old_fields.items():
        if name in batch["fields"]:
            continue
        old["missing"] += n
        if not first and n and old["present"] and not old.get("gone"):
            events.append(("missing_field", name, f"absent from all {n} records of a batch"))
            old["gone"] = True
    merged["records"] = merged["records"] + n
    return events, merged
