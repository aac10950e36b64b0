"""Changing one value of a task file in place, as a person would: only the value's characters
change; comments, key order, quoting style and blank lines stay as they were.

The file is parsed to find where the value stands (PyYAML's nodes carry their position in the
text); the text is then edited there. A key that is missing is added beside its siblings, with
their indentation (or inside the braces of a flow mapping).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from lockgate.errors import ConfigError


def set_value(text: str, path: tuple[str, str], value: str) -> str:
    """`text` with `section.key` (e.g. `policy.auto_min_confidence`) set to `value`, a YAML
    scalar as it should be written."""
    section, key = path
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is None:
        return f"{section}:\n  {key}: {value}\n"
    if not isinstance(root, MappingNode):
        raise ConfigError("the task file is not a mapping of task keys")
    block = _child(root, section)
    if block is None:
        ending = "" if text.endswith("\n") else "\n"
        return f"{text}{ending}{section}:\n  {key}: {value}\n"
    if isinstance(block, ScalarNode) and block.tag == "tag:yaml.org,2002:null":
        start, end = block.start_mark.index, block.end_mark.index
        return f"{text[:start].rstrip(' ')} {{{key}: {value}}}{text[end:]}"
    if not isinstance(block, MappingNode):
        raise ConfigError(f"{section}: is not a mapping of keys; cannot set {section}.{key}")
    current = _child(block, key)
    if current is not None:
        start, end = current.start_mark.index, current.end_mark.index
        return text[:start] + value + text[end:]
    if block.flow_style or not block.value:
        at = block.start_mark.index + 1  # just after the opening brace
        rest = ", " if block.value else ""
        return f"{text[:at]}{key}: {value}{rest}{text[at:]}"
    first = block.value[0][0].start_mark
    line_start = first.index - first.column
    return f"{text[:line_start]}{' ' * first.column}{key}: {value}\n{text[line_start:]}"


def write_value(path: Path, setting: tuple[str, str], value: str) -> None:
    """Set one value in the task file at `path` (see `set_value`), replacing the file at once."""
    text = path.read_text(encoding="utf-8")
    changed = set_value(text, setting, value)
    if changed == text:
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(changed)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _child(mapping: MappingNode, key: str) -> Node | None:
    for key_node, value_node in mapping.value:
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            return value_node
    return None
