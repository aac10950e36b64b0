"""A source record becomes the task's input: fields found by name or alias, coerced, checked
against the input schema, given its idempotency key and content hash.

A record that cannot be mapped raises `Unmappable` with the reason; the caller quarantines it.
"""

from __future__ import annotations

import hashlib
import re
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lockgate.decide.decision import input_hash, unencodable
from lockgate.decide.sources import FieldMap, SourceBase
from lockgate.decide.task import TaskSpec
from lockgate.decide.validation import validate_input
from lockgate.intake.coerce import CoercionError, coerce, is_missing

_KEY_LIMIT = 200
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Unmappable(Exception):
    """Why a record cannot become an input (never echoing a value)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class Mapped:
    input: dict[str, Any]
    extra: dict[str, Any]
    """Source fields that no input field took: kept beside the record, not given to models."""
    key: str
    """The idempotency key: "SOURCE:" and the source's `key:` template filled in."""
    content_hash: str


def _norm(name: str) -> str:
    return unicodedata.normalize("NFC", name).strip().casefold()


class Mapper:
    """One source's mapping onto one task's input fields."""

    def __init__(self, task: TaskSpec, source: SourceBase) -> None:
        self.task = task
        self.source = source
        self.template = source.key or source.default_key()
        self.rules: dict[str, FieldMap] = {
            name: source.map.get(name, FieldMap()) for name in task.input
        }
        self._found: dict[tuple[Any, ...], dict[str, Any]] = {}

    def map(self, raw: Mapping[str, Any], context: Mapping[str, Any]) -> Mapped:
        if not isinstance(raw, Mapping):
            raise Unmappable("the record is not a set of named fields (a JSON object or a row)")
        sources = self._sources(tuple(raw))
        taken: set[str] = set()
        values: dict[str, Any] = {}
        for target, rule in self.rules.items():
            spec = self.task.input[target]
            names = rule.names(target)
            found = sources[target]
            value = raw[found] if found is not None else None
            if found is not None:
                taken.add(found)
            if is_missing(value):
                value = rule.default
            if is_missing(value):
                if spec.required:
                    looked = ", ".join(names)
                    raise Unmappable(f"missing required field {target} (looked for: {looked})")
                continue
            kind = rule.type or spec.type
            try:
                converted = coerce(value, kind, rule)
                if kind in ("date", "datetime") and spec.type != "string":
                    raise CoercionError(f"is a {kind}, but input.{target} is a {spec.type}")
                if spec.type == "string" and kind in ("number", "integer", "boolean"):
                    converted = coerce(converted, "string", rule)
            except CoercionError as exc:
                raise Unmappable(f"field {target} (from {found}): {exc}") from None
            values[target] = converted
        clean, problems = validate_input(self.task, values)
        if problems:
            raise Unmappable("; ".join(problems))
        extra = {str(k): v for k, v in raw.items() if k not in taken}
        bad = unencodable(clean, "input") or unencodable(extra, "extra")
        if bad is not None:
            raise Unmappable(bad)
        return Mapped(clean, extra, self.key(raw, context, clean), input_hash(clean))

    def _sources(self, fields: tuple[Any, ...]) -> dict[str, Any]:
        """Which source field each input field takes, for records with these fields (rows of
        one file share them, so the answer is kept)."""
        cached = self._found.get(fields)
        if cached is not None:
            return cached
        index: dict[str, Any] = {}
        for name in fields:
            index.setdefault(_norm(str(name)), name)
        present = set(fields)
        found: dict[str, Any] = {}
        for target, rule in self.rules.items():
            names = rule.names(target)
            exact = next((n for n in names if n in present), None)
            found[target] = (
                exact
                if exact is not None
                else next((index[_norm(n)] for n in names if _norm(n) in index), None)
            )
        if len(self._found) >= 256:
            self._found.clear()
        self._found[fields] = found
        return found

    def key(
        self, raw: Mapping[str, Any], context: Mapping[str, Any], clean: Mapping[str, Any]
    ) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            for where in (context, raw, clean):
                if name in where and not is_missing(where[name]):
                    return str(where[name]).strip()
            raise Unmappable(f"the key field {name} is missing (key: {self.template})")

        filled = _PLACEHOLDER.sub(value, self.template)
        prefix = self.source.key_prefix()
        key = f"{prefix}{filled}"
        if len(key) > _KEY_LIMIT and prefix:
            digest = hashlib.sha256(filled.encode()).hexdigest()
            key = f"{prefix}sha256:{digest}"
        return key


def template_fields(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]
