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
ActorOption = Annotated[
    str, typer.Option("--actor", help="Who makes this change (recorded in the audit log).")
]


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
