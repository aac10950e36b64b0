"""Options and helpers shared by the command groups.

The command modules import only Typer and light modules at the top: `lockgate --help` builds
the whole command tree, so anything heavy (the store, the pipeline, scipy) is imported inside
the command that needs it, and types that appear only in annotations under TYPE_CHECKING.
The modules that define commands leave out `from __future__ import annotations`: Typer
evaluates every command's annotations at start-up, and string annotations cost a compile and
an eval each (about half the time of building the command tree); so the TYPE_CHECKING types
are written as strings there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from lockgate.runtime import Runtime

T = TypeVar("T")


def command_group(help: str, **options: Any) -> typer.Typer:
    """A Typer app for one command group, in the house style: no arguments print the help, and
    the help is plain text. Typer's Rich help formatter imports rich.markdown and markdown-it,
    which cost about 0.2 s of CPU on every `lockgate --help`, most of the command's start-up."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None, **options)


_PLACEHOLDERS = {
    "project": "DIR",
    "database": "URL",
    "api_key": "KEY",
    "key": "KEY",
    "input_json": "JSON",
    "release": "TASK@N",
    "out": "FILE",
    "html": "FILE",
    "data": "FILE",
}


def readable_help(command: Any) -> Any:
    """Help a person reads at a glance, for `command` and everything below it: an option's
    value is shown as a word in capitals (`--api-key KEY`, `--database URL`) instead of a type
    (`<str>`), and a command listed in its group's help shows its first sentence whole, never
    cut off mid-sentence."""
    for param in command.params:
        # Typer vendors its own Click: an option is known by its kind, not by its class.
        option = param.param_type_name == "option" and not getattr(param, "is_flag", False)
        if option and param.metavar is None:
            annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
            param.metavar = _placeholder(param.name or "value", annotation)
    if command.help:
        # Click re-wraps every paragraph to the terminal; an example is a command to copy, so
        # its paragraph is marked (\b) to be printed as written.
        command.help = re.sub(r"(^|\n\n)(\s*Example:)", "\\1\b\n\\2", command.help)
    for sub in getattr(command, "commands", {}).values():
        if sub.help and not sub.short_help:
            sub.short_help = _first_sentence(sub.help)
        readable_help(sub)
    return command


def _placeholder(name: str, annotation: Any) -> str:
    if name in _PLACEHOLDERS:
        return _PLACEHOLDERS[name]
    if annotation is int:
        return "N"
    if annotation is float:
        return "NUMBER"
    return name.upper()


def _first_sentence(text: str) -> str:
    paragraph = " ".join(text.strip().split("\n\n")[0].split())
    end = re.search(r"\.\s+(?=[A-Z`])", paragraph)  # not inside "e.g. the ..."
    return paragraph if end is None else paragraph[: end.start() + 1]


ProjectOption = Annotated[
    Path | None,
    typer.Option(
        "--project",
        "-p",
        help="Project folder (holds tasks/); default: the current folder.",
        show_default=False,
    ),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="Database URL, e.g. postgresql://user@host/db; default: LOCKGATE_DATABASE_URL, "
        "else .lockgate/lockgate.db in the project.",
        show_default=False,
    ),
]
ReleaseOption = Annotated[
    str | None,
    typer.Option(
        "--release",
        help="The release to use: TASK@N or N; default: the live one.",
        show_default=False,
    ),
]
ActorOption = Annotated[
    str, typer.Option("--actor", help="Who makes this change (recorded in the audit log).")
]


def release_number(task: str, ref: str | None) -> int | None:
    """The number a `--release` of `task` names (`TASK@N` or `N`); None for the live one."""
    if ref is None or ref in ("live", f"{task}@live"):
        return None
    from lockgate.rollout.release import ReleaseRef

    return ReleaseRef.number_of(task, ref)


def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True)


@contextmanager
def open_runtime(project: Path | None, database: str | None) -> Iterator[Runtime]:
    """Settings, store (migrated) and providers for one command; closed at the end."""
    from lockgate.runtime import Runtime
    from lockgate.settings import load_settings

    settings = load_settings(project, database_url=database)
    runtime = Runtime.open(settings)
    try:
        yield runtime
    finally:
        runtime.close()


def run_async(runtime: Runtime, work: Callable[[], Awaitable[T]]) -> T:
    """Run async work in one event loop, closing the providers it opened in that same loop."""
    import asyncio

    async def main() -> T:
        try:
            return await work()
        finally:
            await runtime.aclose()

    return asyncio.run(main())


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))
