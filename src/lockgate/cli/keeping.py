"""`lockgate retention run`, `erase`, `backup` and `restore`: what is kept, and for how long."""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lockgate.cli.common import ActorOption, DatabaseOption, ProjectOption, command_group
from lockgate.errors import ConfigError

if TYPE_CHECKING:
    from lockgate.store import Store
    from lockgate.store.retention import Swept

retention = command_group("Blank or delete what tasks keep past their `retention:`.")


@retention.command("run")
def retention_run(
    task: Annotated[str | None, typer.Option("--task", help="Only this task.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what is due; change nothing.")
    ] = False,
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=10000, help="Decisions per transaction.")
    ] = 500,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Blank inputs, outputs and attempts older than each task's `retention:` (in batches, one
    transaction each) and print per table what was blanked or deleted.

    Example: lockgate retention run --task routing --dry-run
    """
    from lockgate.cli.common import open_runtime
    from lockgate.decide.decision import utcnow

    with open_runtime(project, database) as runtime:
        specs = runtime.tasks()
        if task is not None and task not in specs:
            raise ConfigError(f"no task named {task!r}", hint=f"tasks: {', '.join(sorted(specs))}")
        verb = "would blank or delete" if dry_run else "blanked or deleted"
        for name in [task] if task is not None else sorted(specs):
            spec = specs[name].retention
            if spec is None:
                typer.echo(f"{name}: no retention set (add e.g. `retention: {{inputs: 30d}}`)")
                continue
            cutoffs = spec.cutoffs(utcnow())

            def note(_swept: "Swept", name: str = name, batches: list[int] = [0]) -> None:  # noqa: B006
                batches[0] += 1
                if batches[0] % 20 == 0:
                    typer.echo(f"{name}: {batches[0]} batches swept", err=True)

            swept = runtime.store.retention.sweep(
                name, cutoffs, batch=batch, dry_run=dry_run, progress=note
            )
            kinds = ", ".join(
                f"{kind} before {cut:%Y-%m-%d %H:%M}" for kind, cut in cutoffs.items()
            )
            typer.echo(f"{name} ({kinds}): {verb}:")
            for table, count in sorted(swept.done.items()):
                typer.echo(f"  {table}: {count}")
            if not swept.done:
                typer.echo("  nothing")
            for why, count in sorted(swept.kept.items()):
                typer.echo(f"  kept: {count} {why}")


def _subject(where: str) -> tuple[str, str]:
    field, equals, value = where.partition("=")
    if not equals or not field.strip():
        raise ConfigError(
            "--where must be FIELD=VALUE",
            hint="e.g. --where email=jane@example.com, or --where email=- to read the value "
            "from standard input (it then stays out of the shell history)",
        )
    if value == "-":
        value = sys.stdin.readline().rstrip("\n")
    if not value:
        raise ConfigError("--where has an empty value", hint="name the value, e.g. FIELD=VALUE")
    return field.strip(), value


def erase(
    task: Annotated[str, typer.Option("--task", help="The task whose records to search.")],
    where: Annotated[
        str,
        typer.Option(
            "--where",
            metavar="FIELD=VALUE",
            help="The data subject: decisions whose input FIELD equals VALUE; VALUE - reads it "
            "from standard input.",
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be erased; change nothing.")
    ] = False,
    actor: ActorOption = "cli",
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Erase every stored trace of one data subject: its decisions' inputs and outputs,
    attempts, reviews, shadow runs, deliveries, and the value wherever else it is written.
    The audit log gets one entry with a salted hash of the subject, never the value.

    Example: lockgate erase --task routing --where email=jane@example.com --dry-run
    """
    from lockgate.cli.common import open_runtime

    field, value = _subject(where)
    with open_runtime(project, database) as runtime:
        spec = runtime.task(task)
        if field not in spec.input:
            raise ConfigError(
                f"task {task!r} has no input field {field!r}",
                hint=f"input fields: {', '.join(spec.input)}",
            )
        kind = spec.input[field].type
        if kind in ("number", "integer"):
            try:
                float(value)
            except ValueError:
                raise ConfigError(
                    f"input field {field!r} is a {kind}: the value after = must be one",
                    hint="e.g. --where customer_id=4711",
                ) from None
        done = runtime.store.erasure.erase(task, field, value, kind, actor=actor, dry_run=dry_run)
        backend = runtime.store.backend
    verb = "would erase" if dry_run else "erased"
    subject = done.subject_sha256[:16] or "(its hash is made on the first erasure)"
    typer.echo(f"{task}: subject {subject} ({field}): {verb}:")
    for table, count in sorted(done.counts.items()):
        typer.echo(f"  {table}: {count}")
    if not done.counts:
        typer.echo("  nothing: no stored record holds this value")
    if done.log_truncated is False:
        typer.echo(
            "warning: another connection was reading, so SQLite's write-ahead log still holds "
            "old pages; run the same command again when `lockgate serve` is idle",
            err=True,
        )
    if not dry_run and backend == "postgresql":
        typer.echo(
            "note: run VACUUM on the database for old row versions to be removed from its pages "
            "(docs/operations.md)",
            err=True,
        )


def backup(
    out: Annotated[Path, typer.Option("--out", help="File to write the backup to.")],
    pages: Annotated[
        int, typer.Option("--pages", min=1, help="SQLite pages copied per step.")
    ] = 1024,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Copy the project's database while it is in use: SQLite through its online backup API
    (a consistent snapshot, checked), PostgreSQL with pg_dump -Fc.

    Example: lockgate backup --out backups/lockgate-$(date +%F).db
    """
    from lockgate.settings import load_settings
    from lockgate.store import Store, backups

    settings = load_settings(project, database_url=database)
    store = Store(settings.database_url)
    try:
        source = backups.sqlite_file(settings.database_url)
        if source is None:
            _pg_dump(store, settings.database_url, out)
            return
        shown = [-1]

        def progress(copied: int, total: int) -> None:
            percent = 100 * copied // max(total, 1)
            if percent // 10 != shown[0] // 10 or copied == total:
                shown[0] = percent
                typer.echo(f"copied {copied} of {total} pages ({percent}%)", err=True)

        backups.copy_sqlite(source, out, pages=pages, progress=progress)
        checked = backups.check_file(out)
        backups.record(store.engine, "sqlite", str(out.resolve()), checked)
    finally:
        store.close()
    typer.echo(
        f"backup {out}: {checked.decisions} decisions, audit log intact to entry "
        f"{checked.audit_head}, schema {checked.schema}, {checked.bytes / 2**20:.1f} MiB"
    )


def _pg_dump(store: "Store", url: str, out: Path) -> None:
    import os
    import subprocess

    from lockgate.store import audit, backups

    conninfo, env = backups.libpq(url)
    tool = backups.postgres_tool("pg_dump")
    shown = backups.libpq(url)[0]
    if tool is None:
        raise ConfigError(
            "this database is PostgreSQL and pg_dump is not installed here",
            hint=f'run: PGPASSWORD=... pg_dump -Fc -f {out} "{shown}"  '
            "(Debian: apt-get install postgresql-client)",
        )
    typer.echo(f"running {tool} -Fc -f {out} (PostgreSQL's own consistent dump)", err=True)
    done = subprocess.run(
        [tool, "-Fc", "-f", str(out), "--dbname", conninfo],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise ConfigError(f"pg_dump failed: {reason}", hint="check the URL and the server")
    with store.engine.connect() as conn:
        head = audit.head(conn)
    checked = backups.Checked(out, None, None, 0, 0, head.id if head else None, out.stat().st_size)
    backups.record(store.engine, "pg_dump", str(out.resolve()), checked)
    typer.echo(
        f"backup {out}: pg_dump custom format, {checked.bytes / 2**20:.1f} MiB; restore with: "
        f'pg_restore --clean --if-exists --no-owner -d "{shown}" {out}'
    )


def restore(
    file: Annotated[Path, typer.Argument(help="A backup made by `lockgate backup`.")],
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace an existing database (it is kept aside)."),
    ] = False,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Check a SQLite backup (pages, schema version, audit chain) and put it in place of the
    project's database. Stop `lockgate serve` and workers first.

    Example: lockgate restore backups/lockgate-2026-11-29.db --force
    """
    from lockgate.settings import load_settings
    from lockgate.store import backups

    settings = load_settings(project, database_url=database)
    target = backups.sqlite_file(settings.database_url)
    if target is None:
        shown = backups.libpq(settings.database_url)[0]
        raise ConfigError(
            "this project's database is PostgreSQL: restore a pg_dump file with pg_restore",
            hint=f'run: PGPASSWORD=... pg_restore --clean --if-exists --no-owner -d "{shown}" '
            f"{file}",
        )
    checked = backups.check_file(file)
    typer.echo(
        f"{file}: intact, schema {checked.schema}, {checked.decisions} decisions, "
        f"audit log intact ({checked.audit_entries} entries)",
        err=True,
    )
    aside = backups.put_in_place(file, target, force=force)
    if aside is not None:
        typer.echo(f"the previous database is kept at {aside}")
    typer.echo(f"restored {file} to {target}; next: lockgate audit verify")
