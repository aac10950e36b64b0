"""`lockgate keys …`: create, list and revoke API keys for the HTTP API."""

from typing import TYPE_CHECKING, Annotated

import typer

from lockgate.cli.common import (
    ActorOption,
    DatabaseOption,
    ProjectOption,
    command_group,
    print_json,
)
from lockgate.security import ROLES, check_role

if TYPE_CHECKING:
    from lockgate.store import Store

app = command_group("API keys for the HTTP API: one per client, with a role.")


def _store(project: ProjectOption, database: DatabaseOption) -> "Store":
    from lockgate.settings import load_settings
    from lockgate.store import Store

    settings = load_settings(project, database_url=database)
    return Store(settings.database_url, project_dir=settings.project_dir)


@app.command()
def create(
    name: Annotated[str, typer.Option("--name", help="Who or what uses the key, e.g. crm-sync.")],
    role: Annotated[str, typer.Option("--role", help=f"One of: {', '.join(ROLES)}.")],
    task: Annotated[
        list[str] | None,
        typer.Option("--task", help="Limit the key to this task (repeat for more); default: all."),
    ] = None,
    actor: ActorOption = "cli",
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Create a key. It is printed once, alone on the last line, and stored only as a hash.

    Example: lockgate keys create --name crm-sync --role submitter --task routing
    """
    checked = check_role(role)
    store = _store(project, database)
    try:
        key, secret = store.keys.create(name, checked, task or [], actor)
    finally:
        store.close()
    scope = ", ".join(key.tasks) or "all tasks"
    typer.echo(f"created key {key.name} ({key.role}, {scope}), id {key.id}")
    typer.echo("store it now: it is shown only this once")
    typer.echo(secret)


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """List keys (never their secrets), oldest first.

    Example: lockgate keys list
    """
    store = _store(project, database)
    try:
        keys = store.keys.list_all()
    finally:
        store.close()
    if as_json:
        print_json([k.summary() for k in keys])
        return
    if not keys:
        typer.echo("no keys yet; create one: lockgate keys create --name NAME --role viewer")
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        scope = ",".join(k.tasks) or "all"
        typer.echo(f"{k.name:<24} {k.role:<10} {scope:<20} {k.id}  {state}")


@app.command()
def revoke(
    name_or_id: Annotated[str, typer.Argument(help="The key's name or id.")],
    actor: ActorOption = "cli",
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Revoke a key at once: every later request with it gets a 401.

    Example: lockgate keys revoke crm-sync
    """
    store = _store(project, database)
    try:
        key = store.keys.revoke(name_or_id, actor)
    finally:
        store.close()
    typer.echo(f"revoked key {key.name} ({key.id})")
