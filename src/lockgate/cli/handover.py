"""`lockgate readiness`, `lockgate runbook` and `lockgate set`: is a task ready for production,
how to run it, and the one-line changes of a task file (or lockgate.yaml) the report asks for."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lockgate.cli.common import DatabaseOption, ProjectOption, open_runtime, print_json
from lockgate.errors import ConfigError, InputError, LockgateError

if TYPE_CHECKING:
    from lockgate.watch.readiness import Report

_MARK = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}


def _project_option(project: Path | None) -> tuple[str, ...]:
    return ("--project", str(project)) if project is not None else ()


def readiness(
    task: Annotated[str, typer.Argument(help="The task.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Also write the report as an HTML page.", show_default=False),
    ] = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Check a task's production checklist from the live state: each item pass, warn or fail,
    with what was found and the commands that fix it, a score and what to do next.

    Follow the first item that does not pass, then run the report again. A command's
    <PLACEHOLDER> is a value you give (the report says what it means).

    Example: lockgate readiness routing --html readiness.html
    """
    from lockgate.server.readiness import report as build_report
    from lockgate.server.readiness import report_html

    with open_runtime(project, database) as runtime:
        report = build_report(runtime, task, _project_option(project))
    if html is not None:
        try:
            html.write_text(report_html(report), encoding="utf-8")
        except OSError as exc:
            raise LockgateError(f"cannot write {html}: {exc.strerror}") from None
    if as_json:
        print_json(report.as_dict())
        return
    _print(report)
    if html is not None:
        typer.echo(f"wrote {html}")


def _print(report: "Report") -> None:
    counts = report.counts()
    live = f"live: {report.live}" if report.live else "no live release"
    typer.echo(
        f"{report.task}: readiness {report.score}% ({counts['pass']} pass, {counts['warn']} "
        f"warn, {counts['fail']} fail); {live}"
    )
    placeholders: dict[str, str] = {}
    for item in report.items:
        typer.echo(f"{_MARK[item.status]}  {item.title}")
        typer.echo(f"      {item.evidence}")
        for command in item.commands:
            typer.echo(f"      fix: {command}")
        placeholders.update(item.placeholders)
    steps = report.next_steps()
    if steps:
        typer.echo("what to do next:")
        for n, step in enumerate(steps, 1):
            typer.echo(f"  {n}. {step}")
    else:
        typer.echo("ready: every item passes")
    if placeholders:
        typer.echo("placeholders:")
        for name, meaning in placeholders.items():
            typer.echo(f"  <{name}>: {meaning}")


def runbook(
    task: Annotated[str, typer.Argument(help="The task.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the Markdown to this file; default: print it."),
    ] = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Write the task's runbook (Markdown) from its live configuration: owner and purpose, the
    model chain, each failure mode, each alert with its first steps, and the commands to roll
    back, replay, retrain, rotate keys, restore and erase. Recorded for the readiness report.

    Example: lockgate runbook routing --out RUNBOOK-routing.md
    """
    from lockgate.server.readiness import runbook_markdown
    from lockgate.store.readiness import ReadinessRepository

    with open_runtime(project, database) as runtime:
        text, live = runbook_markdown(runtime, task)
        if out is not None:
            try:
                out.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise LockgateError(f"cannot write {out}: {exc.strerror}") from None
        if live is not None:
            ReadinessRepository(runtime.store.engine).note_runbook(
                task, live.ref, live.content_hash
            )
    if out is None:
        typer.echo(text, nl=False)
        return
    made = f"for {live.ref}" if live is not None else "(no live release yet)"
    typer.echo(f"wrote {out} {made}")


def set_(
    words: Annotated[
        list[str],
        typer.Argument(
            help="TASK then KEY=VALUE pairs (with --settings: KEY=VALUE pairs only). KEY is a "
            "dotted path (policy.spot_check_rate, models.0.timeout_s), VALUE is YAML "
            "({inputs: 90d}).",
            show_default=False,
        ),
    ],
    settings_file: Annotated[
        bool, typer.Option("--settings", help="Change lockgate.yaml instead of a task file.")
    ] = False,
    project: ProjectOption = None,
) -> None:
    """Set values in a task file (or lockgate.yaml), keeping its comments and layout; the
    changed file is checked first and left as it was if it is not valid.

    Example: lockgate set routing policy.spot_check_rate=0.02 models.0.timeout_s=10
    """
    from lockgate.decide.task import task_files

    root = (project or Path(".")).resolve()
    if settings_file:
        path, pairs = root / "lockgate.yaml", words
    else:
        if len(words) < 2:
            raise InputError(
                "name the task and at least one KEY=VALUE",
                hint="e.g. lockgate set routing policy.spot_check_rate=0.02",
            )
        task, pairs = words[0], words[1:]
        found = next((p for p in task_files(root / "tasks") if p.stem == task), None)
        if found is None:
            raise ConfigError(f"no task file for {task!r} in {root / 'tasks'}")
        path = found
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    changed = text
    from lockgate.decide.task_edit import set_path

    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value.strip():
            raise InputError(f"{pair!r} is not KEY=VALUE", hint="e.g. policy.spot_check_rate=0.02")
        keys = tuple(int(k) if k.isdigit() else k for k in key.split("."))
        changed = set_path(changed, keys, value.strip())
    shown = f"{path.parent.name}/{path.name}" if not settings_file else path.name
    _check(changed, root, settings_file, shown)
    from lockgate.decide.task_edit import write_text

    write_text(path, changed)
    typer.echo(f"{shown}: set {', '.join(p.partition('=')[0] for p in pairs)}")


def _check(text: str, root: Path, settings_file: bool, shown: str) -> None:
    """Refuse a change that makes the file invalid, saying why (the file is not touched)."""
    import tempfile

    import yaml

    from lockgate.decide.yaml_loader import load_yaml

    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise InputError(f"{shown}: the change is not valid YAML: {problem}") from None
    if settings_file:
        from lockgate.settings import load_settings
        from lockgate.watch.channels import build_channels

        with tempfile.TemporaryDirectory() as scratch:
            Path(scratch, "lockgate.yaml").write_text(text, encoding="utf-8")
            checked = load_settings(scratch)
            build_channels(checked.alert_channels, {})
        return
    from lockgate.decide.task import parse_task
    from lockgate.providers.registry import ProviderRegistry

    parse_task(data, shown, base_dir=root, known_providers=ProviderRegistry.discover().names())
