"""Where in a task file a validation error is, in the file's own words.

Pydantic locates an error by a path of field names, list indices and, inside a tagged union,
the tag of the member it tried (`deliver.0.file.path`). A person reads the keys they wrote, so
`key_path` walks the model's types along that path: it drops the tags and names each key as it
is written in the file (a field's alias, such as `in`, not its Python name `in_`). For a key
the model does not know, `known_keys` lists the keys valid at that place, for a suggestion.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel


def key_path(model: type[BaseModel], loc: Sequence[str | int]) -> tuple[str, Any]:
    """The dotted path of `loc` as written in the file, and the type found at its parent."""
    shown: list[str] = []
    current: Any = model
    parent: Any = None
    for part in loc:
        if isinstance(part, str) and part.startswith("function-"):
            continue  # a validator's frame, not a key
        parent = current
        current, tag = _step(current, part)
        if not tag:
            shown.append(str(part))
    return ".".join(shown), _unwrap(parent)


def closest_key(model: type[BaseModel], loc: Sequence[str | int]) -> tuple[str | None, list[str]]:
    """For an unknown key at `loc`: the known key closest to it (None when none is close) and
    every key known at that place."""
    _, parent = key_path(model, loc)
    known = known_keys(parent)
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    return (close[0] if close else None), known


def known_keys(model: Any) -> list[str]:
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


def _step(current: Any, part: str | int) -> tuple[Any, bool]:
    """The type one step down `part` from `current`, and whether `part` was a union's tag."""
    current = _unwrap(current)
    if current is None:
        return None, False
    origin = get_origin(current)
    if origin in (Union, types.UnionType):
        for member in get_args(current):
            if _has_tag(member, part):
                return member, True
        return None, False
    if isinstance(current, type) and issubclass(current, BaseModel):
        for name, field in current.model_fields.items():
            if part in (name, field.alias):
                return field.annotation, False
        return None, False
    if isinstance(origin, type) and issubclass(origin, Mapping):
        return get_args(current)[-1], False
    if isinstance(origin, type) and issubclass(origin, Sequence) and isinstance(part, int):
        return get_args(current)[0], False
    return None, False


def _unwrap(current: Any) -> Any:
    """`current` without Annotated and without `| None`."""
    while True:
        origin = get_origin(current)
        if origin is Annotated:
            current = get_args(current)[0]
            continue
        if origin in (Union, types.UnionType):
            members = [a for a in get_args(current) if a is not type(None)]
            if len(members) == 1:
                current = members[0]
                continue
        return current


def _has_tag(member: Any, tag: str | int) -> bool:
    """Is `tag` the value of one of the Literal fields of `member` (a tagged union's member)?"""
    if not (isinstance(member, type) and issubclass(member, BaseModel)):
        return False
    return any(
        get_origin(field.annotation) is Literal and tag in get_args(field.annotation)
        for field in member.model_fields.values()
    )
