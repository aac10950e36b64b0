"""`lockgate deliveries …`: see the outbox, retry dead deliveries, replay delivered ones."""

import getpass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from lockgate.cli.common import DatabaseOption, ProjectOption, command_group, print_json
from lockgate.errors import InputError

if TYPE_CHECKING:
    from lockgate.delivery.types import OutboxRow
    from lockgate.store import Store

app = command_group("The delivery outbox: one row per final decision and sink.")

STATUSES = ("pending", "delivered", "dead")
OperatorOption = Annotated[
    str | None,
    typer.Option(
        "--actor",
        help="Who does this (recorded in the audit log); default: your login name.",
        show_default=False,
    ),
]


def _store(project: ProjectOption, database: DatabaseOption) -> "Store":
    from lockgate.settings import load_settings
    from lockgate.store import Store

    settings = load_settings(project, database_url=database)
    return Store(settings.database_url, project_dir=settings.project_dir)


def _operator(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise InputError(
            "cannot tell who you are from the system", hint="pass --actor YOUR-NAME"
        ) from None


def _print(rows: list["OutboxRow"], as_json: bool, empty: str) -> None:
    if as_json:
        print_json([r.summary() for r in rows])
        return
    if not rows:
        typer.echo(empty)
    for r in rows:
        when = r.delivered_at or r.next_try_at or r.created_at
        error = f"  {r.last_error}" if r.last_error and r.status != "delivered" else ""
        typer.echo(
            f"{r.id:>8}  {r.decision_id}  {r.task}@{r.release:<4} {r.sink:<12} {r.status:<9} "
            f"tries {r.tries:<3} {when:%Y-%m-%d %H:%M:%S}{error}"
        )


@app.command("list")
def list_(
    status: Annotated[
        str | None,
        typer.Option("--status", help="pending, delivered or dead.", show_default=False),
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", help="Only this task.", show_default=False)
    ] = None,
    decision: Annotated[
        str | None,
        typer.Option("--decision", help="Only this decision's rows.", show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000, help="Most rows.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """List outbox rows, oldest first: id, decision, release, sink, status, tries, last error.

    Example: lockgate deliveries list --status dead --task routing
    """
    if status is not None and status not in STATUSES:
        raise InputError(f"--status must be one of {', '.join(STATUSES)}")
    store = _store(project, database)
    try:
        rows = store.outbox.listing(status=status, task=task, decision_id=decision, limit=limit)
    finally:
        store.close()
    _print(rows, as_json, "no deliveries match")


@app.command()
def retry(
    ids: Annotated[
        list[str],
        typer.Argument(help="Outbox row ids, or decision ids (all their dead rows)."),
    ],
    actor: OperatorOption = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Put dead deliveries back in the queue with fresh tries (audited).

    A running worker sends them at its next poll; or run `lockgate worker --once`.

    Example: lockgate deliveries retry 412 413
    """
    store = _store(project, database)
    try:
        rows = store.outbox.retry(ids, _operator(actor))
    finally:
        store.close()
    typer.echo(f"{len(rows)} deliver{'y' if len(rows) == 1 else 'ies'} queued again")


@app.command()
def replay(
    decision: Annotated[
        str | None,
        typer.Option("--decision", help="Send this decision again.", show_default=False),
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            "--since",
            help="Send again everything delivered at or after this time (UTC unless given).",
            show_default=False,
        ),
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", help="With --since: only this task.")
    ] = None,
    actor: OperatorOption = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Send delivered decisions again, e.g. to a receiver that lost them (audited).

    Receivers see the same Idempotency-Key and de-duplicate; a file sink that already holds
    the decision writes nothing.

    Example: lockgate deliveries replay --since 2026-01-31T00:00 --task routing
    """
    if (decision is None) == (since is None):
        raise InputError("give exactly one of --decision ID or --since TIME")
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    store = _store(project, database)
    try:
        rows = store.outbox.replay(_operator(actor), decision_id=decision, since=since, task=task)
    finally:
        store.close()
    if not rows:
        typer.echo("nothing delivered matches; nothing to replay")
        return
    typer.echo(f"{len(rows)} deliver{'y' if len(rows) == 1 else 'ies'} queued again")
