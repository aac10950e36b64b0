"""Turning what a source sends into typed values (text, numbers, booleans, dates).

Problems are described without echoing the value: values may be personal data.
"""

from __future__ import annotations

import math
import unicodedata
from datetime import date, datetime
from typing import Any

from lockgate.decide.sources import FieldMap

TRUE = ("true", "yes", "y", "1", "on", "ja", "oui")
FALSE = ("false", "no", "n", "0", "off", "nein", "non")


class CoercionError(ValueError):
    """A value that will not become the wanted type; the message never holds the value."""


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def coerce(value: Any, kind: str, rule: FieldMap) -> Any:
    """`value` as `kind` (string, number, integer, boolean, date, datetime)."""
    if isinstance(value, str):
        value = unicodedata.normalize("NFC", value)
        if rule.trim:
            value = value.strip()
    if kind == "string":
        if isinstance(value, bool | int | float):
            return _number_text(value)
        if isinstance(value, datetime | date):
            return value.isoformat()
        if not isinstance(value, str):
            raise CoercionError("must be text, not a list or an object")
        return value
    if kind in ("number", "integer"):
        return _number(value, kind == "integer", rule.decimal)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in TRUE:
            return True
        if text in FALSE:
            return False
        raise CoercionError("must be true or false (yes/no, 1/0)")
    return _date(value, kind, rule.format)


def _number_text(value: bool | int | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number(value: Any, integer: bool, decimal: str) -> int | float:
    what = "a whole number" if integer else "a number"
    if isinstance(value, bool):
        raise CoercionError(f"must be {what}, not true/false")
    if isinstance(value, str):
        text = value.replace("\u00a0", "").replace(" ", "").replace("_", "")
        # The other mark groups thousands: "1.234,5" with decimal "," is 1234.5.
        grouping, mark = (".", ",") if decimal == "," else (",", ".")
        text = text.replace(grouping, "").replace(mark, ".")
        try:
            value = float(text) if any(c in text.lower() for c in ".e") else int(text)
        except ValueError:
            raise CoercionError(f"must be {what}") from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise CoercionError(f"must be {what}")
    if integer:
        if isinstance(value, float):
            if not value.is_integer():
                raise CoercionError("must be a whole number")
            return int(value)
        return value
    return value


def _date(value: Any, kind: str, fmt: str | None) -> str:
    if isinstance(value, datetime):
        return value.isoformat() if kind == "datetime" else value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if not isinstance(value, str):
        raise CoercionError(f"must be a {kind} written as text")
    try:
        parsed = datetime.strptime(value, fmt) if fmt else datetime.fromisoformat(value)
    except ValueError:
        expected = f"in the format {fmt}" if fmt else "in ISO 8601 (2026-03-31)"
        raise CoercionError(f"must be a {kind} {expected}") from None
    return parsed.isoformat() if kind == "datetime" else parsed.date().isoformat()
