"""`lockgate demo`: the whole loop on synthetic tickets."""

from pathlib import Path
from typing import Annotated

import typer

from lockgate.cli.common import stderr


def demo(
    directory: Annotated[
        Path, typer.Option("--dir", help="Folder for the demo project (recreated each run).")
    ] = Path("demo-project"),
    tickets: Annotated[
        int, typer.Option("--tickets", min=100, help="New tickets to decide.")
    ] = 2000,
    train: Annotated[
        int, typer.Option("--train", min=200, help="Labeled tickets to train on.")
    ] = 3000,
) -> None:
    """Generate support tickets, train, release, decide a batch, and report the outcome.

    Example: lockgate demo --dir /tmp/lockgate-demo
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from lockgate.demo.tour import describe, run_demo

    console = stderr()
    with Progress(
        TextColumn("    "), BarColumn(), MofNCompleteColumn(), console=console, transient=True
    ) as progress:
        bar = progress.add_task("decide", total=tickets)
        result = run_demo(
            directory,
            train_n=train,
            incoming_n=tickets,
            echo=typer.echo,
            on_progress=lambda n: progress.advance(bar, n),
        )
    typer.echo(describe(result, directory))
