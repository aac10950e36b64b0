"""`lockgate init`, `train`, `tasks`, `db upgrade` and `audit verify`."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lockgate.cli.common import (
    DatabaseOption,
    ProjectOption,
    command_group,
    open_runtime,
    print_json,
)
from lockgate.errors import ConfigError

if TYPE_CHECKING:
    from lockgate.decide.records import Record


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the project in.")],
) -> None:
    """Create a working project with one example task and example data.

    Example: lockgate init support
    """
    from lockgate.demo.scaffold import scaffold_project

    created = scaffold_project(directory)
    for path in created:
        typer.echo(f"created {path}")
    typer.echo(
        "\nnext:\n"
        f"  cd {directory}\n"
        "  lockgate train routing --data data/routing-train.csv\n"
        "  lockgate release create routing\n"
        "  lockgate release promote routing@1\n"
        '  lockgate decide routing --input \'{"text": "Someone used my card in Paris"}\''
    )


def train(
    task: Annotated[str, typer.Argument(help="Task name.")],
    data: Annotated[
        list[Path],
        typer.Option(
            "--data",
            help="Labeled examples: .csv or .jsonl, columns named by the task's input and "
            "output fields. Give it several times to train on several files (a later file's "
            "label wins for the same input), or name a folder to use every file in it.",
        ),
    ],
    seed: Annotated[int, typer.Option("--seed", help="Seed for the held-out split.")] = 0,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Train the task's local classifier and print its held-out accuracy. Rows whose input is
    in a sealed dataset of the task are refused.

    Example: lockgate train routing --data data/routing-train.csv --data data/labels.csv
    """
    from lockgate.decide.task import load_tasks
    from lockgate.providers.chain_training import train_chain
    from lockgate.providers.classifier_training import combined_records
    from lockgate.providers.registry import ProviderRegistry
    from lockgate.settings import load_settings
    from lockgate.store import Store

    settings = load_settings(project, database_url=database)
    tasks = load_tasks(settings.tasks_dir, known_providers=ProviderRegistry.discover().names())
    if task not in tasks:
        raise ConfigError(f"no task named {task!r}", hint=f"tasks: {', '.join(sorted(tasks))}")
    store = Store(settings.database_url, project_dir=settings.project_dir)
    try:
        sealed = store.datasets.sealed_inputs(task)
    finally:
        store.close()
    files = _data_files(data)
    records: Path | list[Record] = files[0]
    if len(files) > 1:
        records, dropped = combined_records(tasks[task], files)
        typer.echo(
            f"{len(records)} rows from {len(files)} files"
            + (f" ({dropped} with the same input as a later row left out)" if dropped else ""),
            err=True,
        )
    trained = train_chain(
        tasks[task],
        records,
        settings,
        seed=seed,
        sealed=sealed,
        progress=lambda msg: typer.echo(msg, err=True),
    )
    report = trained.local
    typer.echo(f"trained on {report.n_rows} rows in {report.duration_s:.1f} s")
    for name, metrics in report.holdout.items():
        typer.echo(
            f"held-out {name}: accuracy {metrics.accuracy:.3f}, macro-F1 {metrics.macro_f1:.3f} "
            f"({report.n_holdout} rows not used for fitting)"
        )
    if any(report.unseen_labels.values()):
        for name, labels in report.unseen_labels.items():
            if labels:
                typer.echo(f"warning: {name} values never seen in training: {', '.join(labels)}")
    typer.echo(f"artifact {report.sha256[:12]} (data {report.data_hash[:12]})")
    for index, model_report in trained.models:
        _echo_model_report(index, model_report)
    typer.echo(f"next: lockgate release create {task}")


def _echo_model_report(index: int, report: Any) -> None:
    """The figures of an embedding classifier's or a combined model's training."""
    from lockgate.providers.embedding_classifier import EmbeddingTrainReport

    if isinstance(report, EmbeddingTrainReport):
        for name, accuracy in report.holdout_accuracy.items():
            typer.echo(
                f"models.{index} embedding-classifier: held-out {name} accuracy "
                f"{accuracy:.3f} ({report.n_holdout} rows not used for fitting); "
                f"out-of-scope similarity threshold {report.oos_threshold:.2f}"
            )
        typer.echo(f"models.{index} artifact {report.sha256[:12]}")
        return
    cal = report.calibration
    for name, accuracy in report.holdout_accuracy.items():
        typer.echo(
            f"models.{index} combined ({cal.method}): held-out {name} accuracy {accuracy:.3f}"
        )
    if report.sha256:
        how = f"temperature {cal.temperature:.2f}" if cal.kind == "temperature" else cal.kind
        typer.echo(
            f"models.{index} calibration ({how}, on {cal.n_rows} held-out rows) "
            f"artifact {report.sha256[:12]}"
        )


def _data_files(data: list[Path]) -> list[Path]:
    """The training files named: a folder stands for its .csv and .jsonl files, by name."""
    files: list[Path] = []
    for path in data:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in (".csv", ".jsonl"))
            if not found:
                raise ConfigError(f"{path}: no .csv or .jsonl files in this folder")
            files.extend(found)
        else:
            files.append(path)
    return files


def tasks(
    project: ProjectOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check every task file and list the tasks (all problems are reported at once).

    Example: lockgate tasks --project support
    """
    from lockgate.decide.task import load_tasks
    from lockgate.providers.registry import ProviderRegistry
    from lockgate.settings import load_settings

    settings = load_settings(project)
    found = load_tasks(settings.tasks_dir, known_providers=ProviderRegistry.discover().names())
    if as_json:
        print_json({name: spec.description for name, spec in found.items()})
        return
    for name, spec in found.items():
        chain = " -> ".join(m.label for m in spec.models)
        typer.echo(f"{name}: {spec.description or '(no description)'} [{chain}]")


db = command_group("Database maintenance.")


@db.command("upgrade")
def db_upgrade(project: ProjectOption = None, database: DatabaseOption = None) -> None:
    """Apply pending migrations (every command also does this on start).

    Example: lockgate db upgrade --database postgresql://lockgate@db/lockgate
    """
    from lockgate.settings import load_settings
    from lockgate.store import Store

    settings = load_settings(project, database_url=database)
    store = Store(settings.database_url)
    current, head = store.migration_state()
    store.close()
    typer.echo(f"{store.display_url}: schema at {current} (newest {head})")


audit = command_group("The tamper-evident audit log.")


@audit.command("verify")
def audit_verify(
    anchor_file: Annotated[
        Path | None,
        typer.Option(
            "--anchor",
            metavar="FILE",
            help="An anchor written by `audit anchor` (or the audit_anchor_file setting): "
            "also fail when the entries up to the anchored head are not all there.",
        ),
    ] = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Check the audit log's hash chain; name the first broken entry. With --anchor, deleting
    the newest entries is found too.

    Example: lockgate audit verify --anchor /mnt/offsite/lockgate-anchor.json
    """
    from lockgate.store import anchor

    anchored = anchor.read(anchor_file) if anchor_file is not None else None
    if anchor_file is not None and anchored is None:
        raise ConfigError(
            f"there is no anchor file {anchor_file}",
            hint="write one with `lockgate audit anchor --out FILE`",
        )
    with open_runtime(project, database) as runtime:
        broken = runtime.store.audit.first_break()
        count = len(runtime.store.audit.entries())
        head = runtime.store.audit.head()
        found = runtime.store.audit.hash_of(anchored.id) if anchored is not None else None
    if broken is not None:
        entry = broken.entry
        typer.echo(
            f"audit log broken at entry {entry.id} ({entry.action}, {entry.at.isoformat()}): "
            f"{broken.why}",
            err=True,
        )
        raise typer.Exit(1)
    if anchored is not None:
        problem = anchor.problem(anchored, found, head)
        if problem is not None:
            typer.echo(f"audit log behind its anchor {anchor_file}: {problem}", err=True)
            raise typer.Exit(1)
        typer.echo(f"audit log intact: {count} entries, reaching the anchored entry {anchored.id}")
        return
    typer.echo(f"audit log intact: {count} entries")


@audit.command("anchor")
def audit_anchor(
    out: Annotated[
        Path, typer.Option("--out", help="File to write the head to (keep it off this disk).")
    ],
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Write the audit log's head (id, hash, time) to a file, so that deleting the newest
    entries is found by `audit verify --anchor FILE`.

    Example: lockgate audit anchor --out /mnt/offsite/lockgate-anchor.json
    """
    from lockgate.store import anchor

    with open_runtime(project, database) as runtime:
        head = runtime.store.audit.head()
    if head is None:
        raise ConfigError("the audit log is empty: there is nothing to anchor yet")
    if not anchor.write(out, head):
        raise ConfigError(
            f"{out} holds a newer head than this database's entry {head.id}",
            hint="entries after it were deleted, or the file belongs to another database; "
            "run `lockgate audit verify --anchor FILE`",
        )
    typer.echo(f"anchored entry {head.id} ({head.at.isoformat()}) in {out}")


@audit.command("list")
def audit_list(
    task: Annotated[str | None, typer.Option("--task", help="Only this task.")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only this actor.")] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="Only this action, e.g. release.promote.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=100000, help="The newest N entries.")
    ] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """List audit entries, oldest first (the newest --limit that match the filters).

    Example: lockgate audit list --task routing --action release.promote
    """
    with open_runtime(project, database) as runtime:
        found = runtime.store.audit.entries(task, actor=actor, action=action, limit=limit)
    if as_json:
        print_json(
            [
                {
                    "id": e.id,
                    "at": e.at.isoformat(),
                    "actor": e.actor,
                    "action": e.action,
                    "task": e.task,
                    "subject": e.subject,
                    "details": dict(e.details),
                    "erased": list(e.erased),
                    "hash": e.hash,
                }
                for e in found
            ]
        )
        return
    if not found:
        typer.echo("no audit entries match")
    for e in found:
        typer.echo(
            f"{e.id:>6} {e.at:%Y-%m-%d %H:%M:%S} {e.actor:<16} {e.action:<26} {e.subject or '-'}"
        )
