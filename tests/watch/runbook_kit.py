"""Checking the commands a generated document gives: each `lockgate ...` line is parsed by
the real command line (Click's parser, as `lockgate` runs it), placeholders filled with a
value of the right shape, and `lockgate WORDS --help` of its command resolves."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from lockgate.cli.main import build_command

SAMPLES = {
    "TARGET": "0.95",
    "N": "1",
    "M": "2",
    "ID": "12",
    "TIME": "2026-11-29T00:00",
}


def commands_in(markdown: str) -> list[str]:
    """Every line of a code block that runs `lockgate`, and every `lockgate ...` in backticks."""
    found: list[str] = []
    inside = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            inside = not inside
            continue
        if inside and line.startswith("lockgate "):
            found.append(line)
        elif not inside:
            found.extend(re.findall(r"`(lockgate [^`]+)`", line))
    return found


def parse(command: str) -> tuple[list[str], Any]:
    """The command's words (group and sub-commands) and its parsed Click context; raises a
    Click error when an option or argument does not fit."""
    filled = re.sub(r"<([A-Z_0-9]+)>", lambda m: SAMPLES.get(m[1], m[1].lower()), command)
    args = shlex.split(filled)[1:]
    group = build_command()
    words: list[str] = []
    # Typer vendors its own Click: a group is known by its sub-commands, not by its class.
    ctx = group.context_class(group, info_name="lockgate")
    current: Any = group
    while hasattr(current, "get_command"):
        if not args:  # a group named in prose: its --help is checked
            break
        name, args = args[0], args[1:]
        sub = current.get_command(ctx, name)
        assert sub is not None, f"{command}: no command {' '.join([*words, name])}"
        words.append(name)
        current = sub
        if hasattr(sub, "get_command"):
            ctx = sub.context_class(sub, info_name=name, parent=ctx)
        else:
            ctx = sub.make_context(name, list(args), parent=ctx)
    return words, ctx


def assert_every_command_parses(markdown: str) -> list[str]:
    from tests.cli.kit import lockgate

    commands = commands_in(markdown)
    assert commands, "the document gives no lockgate command"
    helped: set[tuple[str, ...]] = set()
    for command in commands:
        words, _ = parse(command)
        if tuple(words) not in helped:
            helped.add(tuple(words))
            result = lockgate(*words, "--help", cwd=Path("."))
            assert f"lockgate {' '.join(words)}" in result.stdout, command
    return commands
