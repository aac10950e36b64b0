"""`lockgate release …`: create, list, show, diff, promote, rollback."""

from __future__ import annotations

from typing import Annotated

import typer

from lockgate.cli.common import ActorOption, DatabaseOption, ProjectOption, open_runtime, print_json
from lockgate.errors import ConfigError
from lockgate.release import Release, ReleaseRef, diff_releases
from lockgate.runtime import Runtime

app = typer.Typer(
    help="Immutable, numbered versions of a task, and which one is live.", no_args_is_help=True
)


def _summary(release: Release) -> dict[str, object]:
    return {
        "ref": release.ref,
        "stage": release.stage,
        "content_hash": release.content_hash,
        "artifacts": dict(release.artifacts),
        "created_at": release.created_at.isoformat(),
        "created_by": release.created_by,
    }


def _resolve(runtime: Runtime, ref_text: str) -> Release:
    ref = ReleaseRef.parse(ref_text)
    if isinstance(ref.selector, int):
        return runtime.store.release(ref.task, ref.selector)
    if ref.selector == "live" or ref.selector is None:
        live = runtime.store.live_release(ref.task)
        if live is None:
            raise ConfigError(f"task {ref.task!r} has no live release")
        return live
    raise ConfigError(f"{ref_text!r}: name a release number, e.g. {ref.task}@2")


@app.command()
def create(
    task: Annotated[str, typer.Argument(help="Task name.")],
    actor: ActorOption = "cli",
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Snapshot the task file and its model artifacts as a new immutable release.

    Example: lockgate release create routing
    """
    with open_runtime(project, database) as runtime:
        release, created = runtime.create_release(task, actor)
    if created:
        typer.echo(f"created {release.ref} ({release.content_hash[:12]}), stage draft")
        typer.echo(f"next: lockgate release promote {release.ref}")
    else:
        typer.echo(f"unchanged: {release.ref} already has this content ({release.stage})")


@app.command("list")
def list_(
    task: Annotated[str, typer.Argument(help="Task name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """List a task's releases, oldest first.

    Example: lockgate release list routing
    """
    with open_runtime(project, database) as runtime:
        releases = runtime.store.releases(task)
    if as_json:
        print_json([_summary(r) for r in releases])
        return
    if not releases:
        typer.echo(f"{task} has no releases yet; run: lockgate release create {task}")
    for r in releases:
        typer.echo(f"{r.ref:<24} {r.stage:<8} {r.content_hash[:12]}  {r.created_at:%Y-%m-%d %H:%M}")


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="TASK@N or TASK@live.")],
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Show one release: its stage, hash, pinned artifacts and full task snapshot.

    Example: lockgate release show routing@2
    """
    with open_runtime(project, database) as runtime:
        release = _resolve(runtime, ref)
    print_json({**_summary(release), "spec": dict(release.spec)})


@app.command()
def diff(
    a: Annotated[str, typer.Argument(help="The older release, TASK@N.")],
    b: Annotated[str, typer.Argument(help="The newer release, TASK@N.")],
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Show what changed between two releases, as a unified diff.

    Example: lockgate release diff routing@1 routing@2
    """
    with open_runtime(project, database) as runtime:
        text = diff_releases(_resolve(runtime, a), _resolve(runtime, b))
    typer.echo(text or "no differences")


@app.command()
def promote(
    ref: Annotated[str, typer.Argument(help="TASK@N to make live.")],
    actor: ActorOption = "cli",
    reason: Annotated[str | None, typer.Option("--reason", help="Why (audited).")] = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Make a release live; the release live before it is retired (and can be rolled back to).

    Example: lockgate release promote routing@2
    """
    parsed = ReleaseRef.parse(ref)
    if not isinstance(parsed.selector, int):
        raise ConfigError(f"{ref!r}: name the release to promote, e.g. {parsed.task}@2")
    with open_runtime(project, database) as runtime:
        release = runtime.store.promote(parsed.task, parsed.selector, actor, reason)
    typer.echo(f"{release.ref} is live")


@app.command()
def rollback(
    task: Annotated[str, typer.Argument(help="Task name.")],
    actor: ActorOption = "cli",
    reason: Annotated[str | None, typer.Option("--reason", help="Why (audited).")] = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Make the previous live release live again, at once.

    Example: lockgate release rollback routing --reason "accuracy dropped"
    """
    with open_runtime(project, database) as runtime:
        release = runtime.store.rollback(task, actor, reason)
    typer.echo(f"rolled back: {release.ref} is live again")
