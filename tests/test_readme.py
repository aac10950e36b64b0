"""The README's commands run as printed, and the examples in docs/cli.md are commands the CLI
takes.

`test_the_readme_runs_as_printed` runs every ```sh block of README.md, in order, in one shell in
an empty folder, with the installed `lockgate` first on the PATH (as after `source
.venv/bin/activate`). A block that cannot run here (it runs the tests themselves, or needs an
LLM or a PostgreSQL server) is marked in the README by an HTML comment on the line before it,
`<!-- not run by tests/test_readme.py: why -->`, which a reader of the rendered page never sees.
The output the README shows (the decision of the tour, the figures of `calibrate`) is compared
with what the commands printed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
NOT_RUN = "<!-- not run by tests/test_readme.py"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```\n", re.DOTALL | re.MULTILINE)


def blocks(text: str) -> list[tuple[str, str, bool]]:
    """Every fenced block of `text` as (language, body, runnable)."""
    found = []
    for match in BLOCK.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        found.append((match[1], match[2], not before.startswith(NOT_RUN)))
    return found


def test_the_blocks_that_are_not_run_are_few_and_say_why() -> None:
    marked = [line for line in README.read_text().splitlines() if line.startswith(NOT_RUN)]
    assert len(marked) == 4  # make demo/test, the LLM, PostgreSQL, running part of the suite
    assert all(line.endswith("-->") and ":" in line for line in marked)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_readme_runs_as_printed(tmp_path: Path) -> None:
    text = README.read_text()
    shell = [body for language, body, runnable in blocks(text) if language == "sh" and runnable]
    script = "set -euo pipefail\n" + "".join(
        f"echo '::block {i}::'\n{body}" for i, body in enumerate(shell)
    )
    bin_dir = str(Path(sys.executable).parent)
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LOCKGATE_", "OPENAI_", "PYTEST_"))
    }
    environment.update(PATH=f"{bin_dir}{os.pathsep}{environment.get('PATH', '')}", COLUMNS="100")
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=840,
        stdin=subprocess.DEVNULL,
    )
    printed = re.split(r"^::block \d+::\n", result.stdout, flags=re.MULTILINE)[1:]
    assert result.returncode == 0, (
        f"README block {len(printed) - 1} failed:\n{shell[len(printed) - 1]}\n"
        f"--- stdout (end) ---\n{result.stdout[-3000:]}\n--- stderr (end) ---\n"
        f"{result.stderr[-3000:]}"
    )
    assert len(printed) == len(shell)

    # The tour's decision, as the README shows it.
    shown = next(body for language, body, _ in blocks(text) if language == "json")
    decided = _last_json_object(printed[0])
    expected = json.loads(shown)
    rounded = {k: round(v, 2) if k == "confidence" else v for k, v in decided.items()}
    assert {k: rounded[k] for k in expected} == expected

    # The figures of `calibrate`, as the README shows them in comments.
    measure = next(i for i, body in enumerate(shell) if "lockgate calibrate" in body)
    comments = [
        line.removeprefix("# ") for line in shell[measure].splitlines() if line.startswith("# ")
    ]
    assert comments, "the README shows what calibrate prints"
    assert " ".join(comments) in " ".join(printed[measure].split())


def _last_json_object(output: str) -> dict[str, Any]:
    start = output.rindex("\n{\n") + 1 if "\n{\n" in output else output.index("{\n")
    value: dict[str, Any] = json.loads(output[start : output.index("\n}\n", start) + 2])
    return value


def cli_examples(path: Path) -> list[str]:
    """The commands shown as examples in `path`: indented lines that start with lockgate."""
    return [
        line.strip() for line in path.read_text().splitlines() if line.startswith("    lockgate ")
    ]


@pytest.mark.parametrize("example", cli_examples(ROOT / "docs/cli.md"))
def test_every_example_in_docs_cli_is_a_command_the_cli_takes(example: str) -> None:
    """Each example names a command that exists, with options and arguments it accepts."""
    from lockgate.cli.main import build_command

    arguments = shlex.split(example, comments=True)[1:]
    command = build_command()
    path = ["lockgate"]
    while getattr(command, "commands", None) and arguments and arguments[0] in command.commands:
        path.append(arguments[0])
        command = command.commands[arguments.pop(0)]
    assert not getattr(command, "commands", None), f"{example}: names no command"
    context = command.make_context(" ".join(path), list(arguments))
    context.close()
