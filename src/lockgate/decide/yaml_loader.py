"""Reading task files with YAML 1.2's core schema: what looks like text stays text.

PyYAML implements YAML 1.1, where `yes`, `no`, `on`, `off`, `y` and `n` are booleans, `012` is
an octal 10, `1:30` is 90 and `2026-01-02` a date. A task file that lists `values: [yes, no]`
or writes a rule `then: {spam: no}` would silently hold booleans where it meant words. Under
YAML 1.2's core schema only `true` and `false` are booleans, `null`, `~` and nothing are null,
numbers are written as numbers (`0o` octal, `0x` hex) and everything else is a string. Where a
task file expects a boolean, the task model still accepts `yes`/`no`/`on`/`off` as text.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import ScalarNode

# (tag, pattern, the characters a matching scalar can start with; "" for the empty scalar)
_CORE_SCHEMA: list[tuple[str, str, list[str]]] = [
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("null", r"^(?:~|null|Null|NULL|)$", [*"~nN", ""]),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+0123456789."),
    ),
    ("merge", r"^(?:<<)$", ["<"]),
]


class TaskLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 core-schema scalars (see the module docstring)."""

    yaml_implicit_resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}


for _name, _pattern, _first in _CORE_SCHEMA:
    TaskLoader.add_implicit_resolver(f"tag:yaml.org,2002:{_name}", re.compile(_pattern), _first)


def _construct_int(loader: TaskLoader, node: ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text)  # YAML 1.2: 012 is twelve, not an octal ten


TaskLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


if hasattr(yaml, "CSafeLoader"):  # PyYAML built with libyaml

    class FastTaskLoader(yaml.CSafeLoader):
        """libyaml's parser (about ten times faster: task files are read on every page and
        many requests) with the same resolvers and constructors as `TaskLoader`."""

        yaml_implicit_resolvers = TaskLoader.yaml_implicit_resolvers
        yaml_constructors = TaskLoader.yaml_constructors

    _FAST: type | None = FastTaskLoader
else:  # pragma: no cover - PyYAML without libyaml
    _FAST = None


def load_yaml(text: str) -> Any:
    """Parse one YAML document with the YAML 1.2 core schema. A document libyaml cannot read
    is read again by `TaskLoader`, whose error (problem, line and column) is the one given."""
    if _FAST is not None:
        try:
            return yaml.load(text, Loader=_FAST)  # a SafeLoader: builds no Python objects
        except yaml.YAMLError:
            pass
    return yaml.load(text, Loader=TaskLoader)
