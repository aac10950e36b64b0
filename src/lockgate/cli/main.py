"""The `lockgate` command: one Typer app assembled from command groups."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
import typer.main

from lockgate.cli import budget as budget_cli
from lockgate.cli import decisions, deliveries, evals, handover, keeping, keys, project, releases
from lockgate.cli import intake as intake_cli
from lockgate.cli import quality as quality_cli
from lockgate.cli import retrain as retrain_cli
from lockgate.cli import reviews as review_cli
from lockgate.cli import watch as watch_cli
from lockgate.cli.common import command_group, readable_help
from lockgate.cli.demo import demo
from lockgate.cli.serve import serve
from lockgate.cli.worker import worker
from lockgate.errors import LockgateError, TaskFileError


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"lockgate {version('lockgate')}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print Lockgate's version and exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
) -> None:
    """Run an AI decision in production: validated, gated, reviewed, measured, reversible."""


def build_app() -> typer.Typer:
    app = command_group(
        "Run an AI decision in production: validated, gated, reviewed, measured, reversible.",
        name="lockgate",
        pretty_exceptions_enable=False,
        add_completion=False,
        # -h everywhere: a sub-command's context inherits its parent's help option names.
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    app.command()(project.init)
    app.command()(project.tasks)
    app.command()(project.train)
    app.command()(decisions.decide)
    app.command()(decisions.run)
    app.command()(demo)
    app.command()(serve)
    app.command()(worker)
    app.add_typer(deliveries.app, name="deliveries")
    app.add_typer(budget_cli.app, name="budget")
    app.command("eval")(evals.eval_)
    app.command()(evals.calibrate)
    app.add_typer(evals.dataset_app, name="dataset")
    app.add_typer(releases.app, name="release")
    app.add_typer(keys.app, name="keys")
    app.add_typer(review_cli.app, name="review")
    app.add_typer(review_cli.labels, name="labels")
    app.add_typer(project.db, name="db")
    app.add_typer(project.audit, name="audit")
    app.add_typer(keeping.retention, name="retention")
    app.command()(keeping.erase)
    app.command()(keeping.backup)
    app.command()(keeping.restore)
    app.add_typer(intake_cli.intake_app, name="intake")
    app.add_typer(intake_cli.sources_app, name="sources")
    app.add_typer(intake_cli.quarantine_app, name="quarantine")
    app.command()(watch_cli.history)
    app.add_typer(watch_cli.alerts_app, name="alerts")
    app.command()(quality_cli.accuracy)
    app.add_typer(quality_cli.spot_checks, name="spot-checks")
    app.command()(retrain_cli.retrain)
    app.command()(quality_cli.drift)
    app.command()(handover.readiness)
    app.command()(handover.runbook)
    app.command("set")(handover.set_)
    return app


def build_command() -> Any:
    """The Click command `lockgate` runs: the Typer app, with readable help (see
    `common.readable_help`)."""
    return readable_help(typer.main.get_command(build_app()))


def main(argv: list[str] | None = None) -> None:
    command = build_command()
    try:
        # Click handles usage errors, --help and Ctrl-C itself and exits; Lockgate's own errors
        # come out here and become one clear message and a non-zero exit code.
        # prog_name: usage lines read `lockgate`, however the command was started.
        command.main(args=argv, prog_name="lockgate")
    except TaskFileError as exc:
        count = len(exc.problems)
        typer.echo(f"error: {count} problem{'s' if count > 1 else ''} in task files:", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        sys.exit(exc.exit_code)
    except LockgateError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            typer.echo(f"hint: {exc.hint}", err=True)
        sys.exit(exc.exit_code)
