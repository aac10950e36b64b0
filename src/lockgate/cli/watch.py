"""`lockgate history` and `lockgate alerts …`: a task's history over time, and its alerts."""

import getpass
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
from lockgate.errors import InputError, LockgateError

if TYPE_CHECKING:
    from lockgate.watch.alerts import Rule

alerts_app = command_group("Alert rules: list them, test a channel, silence a rule, export.")


def history(
    task: Annotated[str, typer.Argument(help="The task.")],
    since: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Start: an ISO time (2026-11-29T08:00:00Z) or a duration ago (24h); "
            "default: 24h before --to.",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--to", help="End: an ISO time or a duration ago; default: now.", show_default=False
        ),
    ] = None,
    step: Annotated[
        str | None,
        typer.Option(
            "--step",
            help="Bucket size: minute, hour, day or e.g. 5m; default: by the range.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """A task's decisions over time, per bucket and release: counts by route, failures,
    latency p95, cost, verdicts and review backlog (rolled up by `lockgate serve`, or by this
    command when no server does).

    Example: lockgate history routing --from 7d --step 1d
    """
    from lockgate.server.history import catch_up, history_view

    with open_runtime(project, database) as runtime:
        runtime.task(task)
        catch_up(runtime)  # decisions no `lockgate serve` has rolled up yet
        view = history_view(runtime, task, since, until, step)
    if as_json:
        print_json(view)
        return
    typer.echo(f"{task}: {view['from']} to {view['to']}, step {view['step']}")
    if not view["buckets"]:
        typer.echo("no decisions in this range")
        return
    typer.echo(
        f"{'start':<25} {'release':<16} {'decisions':>9} {'auto':>6} {'review':>6} "
        f"{'reject':>6} {'failed':>6} {'p95 ms':>9} {'cost':>10} {'backlog':>7}"
    )
    for b in view["buckets"]:
        p95 = "-" if b["latency_p95_ms"] is None else f"{b['latency_p95_ms']:.1f}"
        backlog = "-" if b["review_backlog"] is None else str(b["review_backlog"])
        typer.echo(
            f"{b['start']:<25} {b['release']:<16} {b['decisions']:>9} {b['auto']:>6} "
            f"{b['review']:>6} {b['reject']:>6} {b['failed']:>6} {p95:>9} "
            f"{b['cost']:>10.4f} {backlog:>7}"
        )


@alerts_app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Every task's alert rules (the defaults, lockgate.yaml's and the task file's), whether
    each is firing, and the silences in force.

    Example: lockgate alerts list --json
    """
    import os

    from lockgate.server.history import alert_rules
    from lockgate.store.readiness import ReadinessRepository
    from lockgate.watch.channels import build_channels

    with open_runtime(project, database) as runtime:
        rules = alert_rules(runtime)
        states = runtime.store.alerts.states()
        silences = runtime.store.alerts.silences()
        tested = ReadinessRepository(runtime.store.engine).channel_tests()
        names = sorted(build_channels(runtime.settings.alert_channels, os.environ))
    channels = {
        name: {"tested_at": tested[name].isoformat() if name in tested else None} for name in names
    }
    items = []
    for rule in rules:
        state = states.get((rule.task, rule.name))
        items.append(
            {
                **rule.summary(),
                "firing": bool(state and state.firing),
                "since": (
                    state.started_at.isoformat()
                    if state and state.firing and state.started_at
                    else None
                ),
                "value": state.value if state else None,
                "silenced_until": next(
                    (
                        s.until.isoformat()
                        for s in silences
                        if s.rule == rule.name and s.task in (None, rule.task)
                    ),
                    None,
                ),
            }
        )
    if as_json:
        print_json({"rules": items, "channels": channels})
        return
    for item in items:
        status = "FIRING" if item["firing"] else "ok"
        quiet = f"  silenced until {item['silenced_until']}" if item["silenced_until"] else ""
        typer.echo(
            f"{item['task']:<20} {item['name']:<22} {status:<7} {item['condition']} "
            f"{item['comparison']} {item['threshold']:g} over {item['window']}, "
            f"{item['severity']}, to {', '.join(item['channels'])}{quiet}"
        )
    for name, channel in channels.items():
        when = channel["tested_at"]
        typer.echo(
            f"channel {name}: "
            + (f"last test notice {when}" if when else "never tested (lockgate alerts test)")
        )


@alerts_app.command()
def test(
    channel: Annotated[str, typer.Argument(help="A channel under alert_channels, or log.")],
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Send a test notice to one channel now; exits non-zero if it cannot be delivered.

    Example: lockgate alerts test oncall
    """
    import os

    from lockgate.decide.decision import utcnow
    from lockgate.settings import load_settings
    from lockgate.watch.alerts import Notice
    from lockgate.watch.channels import build_channels

    settings = load_settings(project, database_url=database)
    channels = build_channels(settings.alert_channels, os.environ)
    if channel not in channels:
        raise InputError(
            f"no alert channel named {channel!r}",
            hint="channels: " + ", ".join(sorted(channels)),
        )
    now = utcnow()
    notice = Notice("test", "test", "-", "test", "above", "info", 1.0, 0.0, "1m", 0, now, now)

    import asyncio

    asyncio.run(channels[channel].send(notice))
    # The readiness report reads when each channel last took a test notice.
    from lockgate.store import Store
    from lockgate.store.readiness import ReadinessRepository

    store = Store(settings.database_url)
    try:
        ReadinessRepository(store.engine).note_channel_tested(channel, now)
    finally:
        store.close()
    typer.echo(f"test notice sent to {channel}")


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise InputError(
            "cannot tell who you are from the system", hint="pass --actor YOUR-NAME"
        ) from None


@alerts_app.command()
def silence(
    rule: Annotated[str, typer.Argument(help="The rule's name (see `lockgate alerts list`).")],
    duration: Annotated[
        str, typer.Option("--for", help="How long: 30m, 2h, 1d.", show_default=False)
    ],
    task: Annotated[
        str | None,
        typer.Option("--task", help="Only for this task; default: every task.", show_default=False),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(
            "--actor",
            help="Who silences it (audited); default: your login name.",
            show_default=False,
        ),
    ] = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Send no notices for a rule for a while (audited); it still changes state.

    Example: lockgate alerts silence failure_rate --for 2h --task routing
    """
    from datetime import timedelta

    from lockgate.decide.decision import utcnow
    from lockgate.decide.sources import duration_seconds
    from lockgate.server.history import alert_rules

    try:
        seconds = duration_seconds(duration)
    except ValueError as exc:
        raise InputError(f"--for: {exc}") from None
    who = _actor(actor)
    with open_runtime(project, database) as runtime:
        known = {r.name for r in alert_rules(runtime) if task is None or r.task == task}
        if rule not in known:
            raise InputError(
                f"no alert rule named {rule!r}" + (f" for task {task!r}" if task else ""),
                hint="rules: " + (", ".join(sorted(known)) or "none"),
            )
        until = utcnow() + timedelta(seconds=seconds)
        runtime.store.alerts.silence(rule, until, who, task)
    typer.echo(f"{rule} silenced until {until.isoformat()}" + (f" for {task}" if task else ""))


def prometheus_rules(rules: "list[Rule]") -> str:
    """The rules that Lockgate's own metrics can measure, as a Prometheus rule file."""
    import yaml

    exported: list[dict[str, Any]] = []
    skipped: set[str] = set()
    for rule in rules:
        promql = rule.condition.prometheus
        if promql is None:
            skipped.add(rule.name)
            continue
        name = "Lockgate" + "".join(
            part.capitalize() for part in rule.name.replace("-", "_").split("_")
        )
        exported.append(
            {
                "alert": name,
                "expr": promql(rule.task, rule.threshold, rule.window),
                "labels": {"severity": rule.severity, "task": rule.task, "rule": rule.name},
                "annotations": {
                    "summary": f"{rule.task}: {rule.name} ({rule.condition.name} "
                    f"{rule.condition.comparison} {rule.threshold:g})",
                    "description": rule.condition.description,
                },
            }
        )
    head = "# Lockgate alert rules on Lockgate's /metrics (lockgate alerts export).\n"
    if skipped:
        head += (
            "# Not exported (no metric measures them; Lockgate's own evaluator does): "
            + ", ".join(sorted(skipped))
            + "\n"
        )
    body = yaml.safe_dump(
        {"groups": [{"name": "lockgate", "rules": exported}]}, sort_keys=False, width=1000
    )
    return head + body


@alerts_app.command()
def export(
    fmt: Annotated[
        str, typer.Option("--format", help="The format: prometheus.", show_default=False)
    ] = "prometheus",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write to this file; default: print.", show_default=False),
    ] = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Write the alert rules as Prometheus alerting rules on Lockgate's metrics.

    Example: lockgate alerts export --format prometheus --out lockgate-rules.yml
    """
    if fmt != "prometheus":
        raise InputError(f"--format {fmt!r} is not supported", hint="use --format prometheus")
    from lockgate.server.history import alert_rules

    with open_runtime(project, database) as runtime:
        text = prometheus_rules(alert_rules(runtime))
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise LockgateError(f"cannot write {out}: {exc.strerror}") from None
    typer.echo(f"wrote {out}")
