"""Changing one value of a task file in place, as a person would: only the value's characters
change; comments, key order, quoting style and blank lines stay as they were.

The file is parsed to find where the value stands (PyYAML's nodes carry their position in the
text); the text is then edited there. A key that is missing is added beside its siblings, with
their indentation (or inside the braces of a flow mapping).
"""

from __future__ import annotations

from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from lockgate.errors import ConfigError
from lockgate.files import replaced


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
    write_text(path, changed)


def write_text(path: Path, text: str) -> None:
    """Replace the file at `path` with `text` at once (a new file keeps the usual mode)."""
    with replaced(path, keep_mode=True) as handle:
        handle.write(text)


def _child(mapping: MappingNode, key: str) -> Node | None:
    for key_node, value_node in mapping.value:
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            return value_node
    return None


def set_path(text: str, keys: tuple[str | int, ...], value: str) -> str:
    """`text` with the value at `keys` (mapping keys, or list indexes such as `models.0`) set to
    `value`, a YAML value written in flow style (`10`, `{per_day: {calls: 5000}}`). An existing
    value is replaced where it stands; a missing key is added after its siblings, with their
    indentation, and missing parents become a nested flow mapping."""
    if not keys:
        raise ConfigError("name the key to set, e.g. policy.spot_check_rate")
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is None:
        return f"{_nested(keys, value)}\n"
    if not isinstance(root, MappingNode):
        raise ConfigError("the file is not a mapping of keys")
    node: Node = root
    for depth, key in enumerate(keys):
        if isinstance(node, SequenceNode):
            if not isinstance(key, int) or not 0 <= key < len(node.value):
                where = ".".join(map(str, keys[:depth]))
                raise ConfigError(f"{where} has {len(node.value)} entries; there is no {key}")
            child: Node | None = node.value[key]
        elif isinstance(node, MappingNode):
            child = _child(node, str(key))
        else:
            where = ".".join(map(str, keys[:depth]))
            raise ConfigError(f"{where} is not a mapping of keys; cannot set {key} in it")
        if child is None:
            assert isinstance(node, MappingNode)
            return _add(text, node, _nested(keys[depth:], value))
        node = child
    if isinstance(node, ScalarNode) or getattr(node, "flow_style", False):
        start, end = node.start_mark.index, node.end_mark.index
        return text[:start] + value + text[end:]
    raise ConfigError(
        f"{'.'.join(map(str, keys))} is written as a block; edit it in the file, or set one "
        "key inside it"
    )


def _nested(keys: tuple[str | int, ...], value: str) -> str:
    """`a: {b: {c: VALUE}}` for keys (a, b, c)."""
    written = value
    for key in reversed(keys[1:]):
        written = f"{{{key}: {written}}}"
    return f"{keys[0]}: {written}"


def _add(text: str, mapping: MappingNode, entry: str) -> str:
    """`text` with `entry` (`key: value`) added to `mapping`, after its last key."""
    if mapping.flow_style or not mapping.value:
        at = mapping.start_mark.index + 1  # just after the opening brace
        rest = ", " if mapping.value else ""
        return f"{text[:at]}{entry}{rest}{text[at:]}"
    column = mapping.value[0][0].start_mark.column
    end = mapping.value[-1][1].end_mark.index
    if end > 0 and text[end - 1] == "\n":
        at = end
    else:
        newline = text.find("\n", end)
        if newline < 0:
            return f"{text}\n{' ' * column}{entry}\n"
        at = newline + 1
    return f"{text[:at]}{' ' * column}{entry}\n{text[at:]}"
