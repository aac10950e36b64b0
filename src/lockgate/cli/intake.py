"""`lockgate intake run`, `lockgate sources …` and `lockgate quarantine …`: records from
folders, mailboxes and tables, and the ones that could not be mapped."""

import os
import signal
import threading
from typing import TYPE_CHECKING, Annotated, cast

import typer

from lockgate.cli.common import (
    DatabaseOption,
    ProjectOption,
    command_group,
    open_runtime,
    print_json,
    run_async,
)
from lockgate.errors import InputError, NotFound

if TYPE_CHECKING:
    from lockgate.intake.service import IntakeService
    from lockgate.intake.types import QuarantineStatus
    from lockgate.runtime import Runtime

intake_app = command_group("Intake: read records from the task files' sources and decide them.")
sources_app = command_group("Sources: counts, schema events and status of each source.")
quarantine_app = command_group(
    "Quarantine: records that could not be mapped, to replay or discard."
)

TaskOption = Annotated[
    str | None, typer.Option("--task", help="Only this task.", show_default=False)
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _service(runtime: "Runtime") -> "IntakeService":
    from lockgate.intake.service import IntakeService

    return IntakeService(
        runtime.store.async_intake,
        runtime.pipeline,
        runtime.release_runtime,
        runtime.tasks(),
        runtime.settings.project_dir,
        os.environ,
        metrics=runtime.metrics,
        budget=runtime.budgets,
    )


@intake_app.command("run")
def run(
    task: TaskOption = None,
    source: Annotated[
        str | None, typer.Option("--source", help="Only this source.", show_default=False)
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="One pass over each source, then exit.")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, max=3600, help="Seconds between passes.")
    ] = 5.0,
    as_json: JsonOption = False,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Read every polled source (folder, imap, sql) and decide what it holds; repeat every
    --interval seconds until stopped (Ctrl-C), or once with --once. A source that cannot be
    read is retried with backoff; its cursor does not move.

    Example: lockgate intake run --once --source inbox
    """
    with open_runtime(project, database) as runtime:
        service = _service(runtime)
        chosen = service.polled(task, source)
        if not chosen:
            raise NotFound(
                "no polled source matches" if task or source else "no task declares sources",
                hint="add `sources:` to a task file (see docs/task-files.md)",
            )

        async def one_pass(force: bool) -> list[dict[str, object]]:
            return [(await service.run(t, s, force=force)).public() for t, s in chosen]

        if once:
            reports = run_async(runtime, lambda: one_pass(True))
            _print_runs(reports, as_json)
            if any(r["error"] for r in reports):
                raise typer.Exit(1)
            return
        # Ctrl-C is noted here before it interrupts anything: a pass whose event loop takes the
        # interruption as a cancellation that some await absorbs still ends the loop after it.
        stopping = threading.Event()

        def interrupted(signum: int, frame: object) -> None:
            stopping.set()
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGINT, interrupted)
        try:
            while not stopping.is_set():
                _print_runs(run_async(runtime, lambda: one_pass(False)), as_json)
                stopping.wait(interval)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGINT, previous)
        # Each batch is one transaction: a stop between or inside them loses nothing.
        typer.echo("stopped; every committed batch is kept, run again to continue", err=True)


def _print_runs(reports: list[dict[str, object]], as_json: bool) -> None:
    if as_json:
        print_json(reports)
        return
    for r in reports:
        where = f"{r['task']}/{r['source']}"
        if r["skipped"]:
            typer.echo(f"{where}: skipped ({r['skipped']})")
        elif r["paused"]:
            typer.echo(f"{where}: paused: {r['paused']}")
        elif r["error"]:
            failing = " (failing)" if r["failing"] else ""
            typer.echo(f"{where}: cannot read: {r['error']}{failing}", err=True)
        else:
            stopped = f"; stopped: {r['stopped']}" if r["stopped"] else ""
            typer.echo(
                f"{where}: {r['records']} records: {r['decided']} decided, "
                f"{r['duplicates']} duplicates, {r['quarantined']} quarantined{stopped}"
            )


@sources_app.command("show")
def show(
    source: Annotated[str | None, typer.Argument(help="Source name; default: all.")] = None,
    task: TaskOption = None,
    as_json: JsonOption = False,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Show a source's counts (records, decided, duplicates, quarantined, discarded, unknown
    fields), status, last error and recent schema events.

    Example: lockgate sources show inbox --json
    """
    from lockgate.intake.service import find_source

    with open_runtime(project, database) as runtime:
        tasks = runtime.tasks()
        if source is not None:
            pairs = [(find_source(tasks, source, task).name, source)]
        else:
            pairs = [(t.name, s.name) for t in tasks.values() for s in t.sources]
            pairs = [p for p in pairs if task is None or p[0] == task]
        shown = []
        for task_name, name in pairs:
            spec = next(s for s in tasks[task_name].sources if s.name == name)
            state = runtime.store.intake.state(task_name, name)
            counts = dict(state.counts) if state else {}
            shown.append(
                {
                    "task": task_name,
                    "source": name,
                    "kind": spec.kind,
                    "status": state.status if state else "new",
                    "status_reason": state.status_reason if state else "",
                    "failures": state.failures if state else 0,
                    "last_error": state.last_error if state else "",
                    **{k: counts.get(k, 0) for k in _COUNTS},
                    "unknown_fields": counts.get("unknown_fields", {}),
                    "cursor": dict(state.cursor) if state else {},
                    "schema_events": [
                        e.public() for e in runtime.store.intake.events(task_name, name)
                    ],
                }
            )
    if source is not None and as_json:
        print_json(shown[0])
        return
    if as_json:
        print_json(shown)
        return
    for s in shown:
        typer.echo(
            f"{s['task']}/{s['source']} ({s['kind']}, {s['status']}): {s['records']} records, "
            f"{s['decided']} decided, {s['duplicates']} duplicates, "
            f"{s['quarantined']} quarantined, {s['discarded']} discarded"
        )
        if s["status_reason"]:
            typer.echo(f"  status: {s['status_reason']}")
        if s["last_error"]:
            typer.echo(f"  last error: {s['last_error']} ({s['failures']} failed reads in a row)")
        if s["unknown_fields"]:
            fields = ", ".join(f"{k} ({n})" for k, n in s["unknown_fields"].items())
            typer.echo(f"  unknown fields kept beside the records: {fields}")
        for e in s["schema_events"][:10]:
            typer.echo(f"  schema: {e['kind']} {e['field']}: {e['detail']} at {e['at']}")


_COUNTS = ("records", "decided", "duplicates", "quarantined", "discarded")


@sources_app.command("resume")
def resume(
    source: Annotated[str, typer.Argument(help="Source name.")],
    task: TaskOption = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Resume a source stopped or held after schema drift: the schema it has seen becomes the
    expected one. Replay its held records with `lockgate quarantine replay --source S`.

    Example: lockgate sources resume inbox
    """
    from lockgate.intake.service import find_source

    with open_runtime(project, database) as runtime:
        owner = find_source(runtime.tasks(), source, task).name
        runtime.store.intake.set_status(owner, source, "active", "")
    typer.echo(f"{owner}/{source}: active")


@quarantine_app.command("list")
def list_(
    source: Annotated[
        str | None, typer.Option("--source", help="Only this source.", show_default=False)
    ] = None,
    task: TaskOption = None,
    status: Annotated[
        str, typer.Option("--status", help="held, replayed, discarded or all.")
    ] = "held",
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000, help="Most rows.")] = 1000,
    as_json: JsonOption = False,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """List quarantined records, oldest first: id, source, position and reason.

    Example: lockgate quarantine list --source inbox --json
    """
    if status not in ("held", "replayed", "discarded", "all"):
        raise InputError(f"unknown status {status!r}", hint="use held, replayed, discarded or all")
    with open_runtime(project, database) as runtime:
        chosen = None if status == "all" else cast("QuarantineStatus", status)
        items = runtime.store.intake.quarantined(task, source, chosen, limit)
    if as_json:
        print_json([i.public() for i in items])
        return
    if not items:
        typer.echo("nothing in quarantine")
    for i in items:
        typer.echo(f"{i.id:>7}  {i.task}/{i.source}  {i.status:<9} {i.position}: {i.reason}")


@quarantine_app.command("show")
def show_item(
    item_id: Annotated[int, typer.Argument(help="Quarantine id (from `quarantine list`).")],
    clear: Annotated[
        bool,
        typer.Option("--clear", help="Show fields that map to pii: true inputs (redacted)."),
    ] = False,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Show one quarantined record as JSON: position, reason and the raw record (personal data
    redacted; fields that map to `pii: true` inputs hidden unless --clear).

    Example: lockgate quarantine show 12
    """
    from lockgate.intake.service import shown

    with open_runtime(project, database) as runtime:
        item = runtime.store.intake.quarantine_item(item_id)
        if item is None:
            raise NotFound(
                f"no quarantined record {item_id}", hint="see `lockgate quarantine list`"
            )
        print_json(shown(item, runtime.tasks().get(item.task), clear=clear))


@quarantine_app.command("replay")
def replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Quarantine ids.")] = None,
    source: Annotated[
        str | None,
        typer.Option("--source", help="Every held record of this source.", show_default=False),
    ] = None,
    task: TaskOption = None,
    as_json: JsonOption = False,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Map held records again with the task file's current mapping and decide them, through
    the same de-duplication; a record that still cannot be mapped stays, with its new reason.

    Example: lockgate quarantine replay --source inbox
    """
    if not ids and source is None:
        raise InputError("name quarantine ids or --source", hint="see `lockgate quarantine list`")
    with open_runtime(project, database) as runtime:
        service = _service(runtime)
        items = runtime.store.intake.quarantined(task, source, "held", 1_000_000, ids or None)
        outcome = run_async(runtime, lambda: service.replay(items))
    counts = {k: outcome.counts.get(k, 0) for k in ("decided", "duplicates", "quarantined")}
    summary = {"replayed": len(items), **counts}
    if as_json:
        print_json(summary)
    else:
        typer.echo(
            f"{len(items)} replayed: {counts['decided']} decided, {counts['duplicates']} "
            f"duplicates, {counts['quarantined']} still quarantined"
        )


@quarantine_app.command("discard")
def discard(
    ids: Annotated[list[int], typer.Argument(help="Quarantine ids.")],
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Give up on held records: they leave quarantine and are counted as discarded (the
    record of them stays, with status discarded).

    Example: lockgate quarantine discard 12 13
    """
    from lockgate.intake.service import discard as discarding

    with open_runtime(project, database) as runtime:
        items = runtime.store.intake.quarantined(status="held", ids=ids)
        missing = sorted(set(ids) - {i.id for i in items})
        if missing:
            raise NotFound(
                f"not held in quarantine: {', '.join(map(str, missing))}",
                hint="see `lockgate quarantine list --status all`",
            )
        for item in items:
            runtime.store.intake.commit([], discarding(item))
    typer.echo(f"{len(items)} discarded")
