"""`lockgate accuracy` and `lockgate spot-checks …`: live accuracy of the automated share.

Spot-check verdicts act as a real identity, as review commands do: the reviewer's API key,
from `--api-key` or `LOCKGATE_API_KEY`, so the same separation of duties holds as over HTTP.
"""

import json
from typing import TYPE_CHECKING, Annotated

import typer

from lockgate.cli.common import (
    DatabaseOption,
    ProjectOption,
    command_group,
    open_runtime,
    print_json,
)
from lockgate.cli.reviews import IdArgument, JsonOption, KeyOption, authenticate
from lockgate.errors import InputError, LockgateError

if TYPE_CHECKING:
    from pathlib import Path

    from lockgate.runtime import Runtime
    from lockgate.watch.quality import Accuracy, LiveAccuracy
    from lockgate.watch.types import SpotVerdict

spot_checks = command_group(
    "Spot checks: automated decisions a person checks after delivery (live accuracy)."
)


def _swept(runtime: "Runtime") -> int:
    """Queue the spot checks due now (what `lockgate serve` does every minute)."""
    return int(runtime.quality.sweep())


def accuracy(
    task: Annotated[str, typer.Argument(help="Task name.")],
    as_json: JsonOption = False,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Live accuracy of the automated share: spot-check verdicts and feedback against the
    model, per release and per label, with 95% Wilson intervals.

    Example: lockgate accuracy routing --json
    """
    with open_runtime(project, database) as runtime:
        runtime.task(task)
        _swept(runtime)
        report = runtime.quality.accuracy(task)
    if as_json:
        print_json(report.as_dict())
        return
    _print_accuracy(report)


def _print_accuracy(report: "LiveAccuracy") -> None:
    typer.echo(
        f"{report.task}: live accuracy of automated decisions ({report.field}); "
        f"{report.open_spot_checks} spot checks open"
    )
    if not report.releases:
        typer.echo("no judged automated decisions yet: give spot-check verdicts or feedback")
    for r in report.releases:
        typer.echo(
            f"{report.task}@{r.release}: {_figure(r.overall)} "
            f"({r.spot_checks} spot checks, {r.feedback} feedback)"
        )
        for label, figures in sorted(r.labels.items()):
            typer.echo(f"  {label:<24} {_figure(figures)}")
    if report.other_feedback:
        typer.echo(f"{report.other_feedback} feedback on decisions a person decided (not counted)")


def _figure(figures: "Accuracy") -> str:
    low, high = figures.interval
    rate = "-" if figures.rate is None else f"{figures.rate:.3f}"
    return f"{rate} [{low:.3f}, {high:.3f}] n={figures.n}"


@spot_checks.command("list")
def list_(
    task: Annotated[str | None, typer.Argument(help="Only this task.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="At most this many.")] = 50,
    as_json: JsonOption = False,
    key: KeyOption = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Open spot checks, oldest first (personal data masked); queues the ones due first.

    Example: lockgate spot-checks list routing
    """
    with open_runtime(project, database) as runtime:
        principal = authenticate(runtime, key)
        _swept(runtime)
        found = runtime.quality.open_checks(principal, task, limit)
    if as_json:
        print_json(
            [{**d.public(), "input": dict(d.redacted_input), "spot_check": True} for _, d in found]
        )
        return
    if not found:
        typer.echo("no open spot checks")
        return
    for _, d in found:
        output = json.dumps(dict(d.output or {}), ensure_ascii=False)
        text = " | ".join(str(v) for v in d.redacted_input.values() if v not in (None, ""))
        typer.echo(f"{d.id}  {d.task}@{d.release}  spot check  {output}  {text[:60]!r}")


_DONE = {"approve": "approved", "correct": "corrected", "reject": "rejected"}


def _judge(
    kind: "SpotVerdict",
    decision_id: str,
    output: str | None,
    reason: str | None,
    key: str | None,
    project: "Path | None",
    database: str | None,
) -> None:
    new = None
    if output is not None:
        try:
            new = json.loads(output)
        except json.JSONDecodeError:
            raise InputError(
                "--output is not JSON", hint='e.g. --output \'{"queue": "fraud"}\''
            ) from None
    with open_runtime(project, database) as runtime:
        check = runtime.quality.judge(authenticate(runtime, key), decision_id, kind, new, reason)
    done = _DONE[check.verdict or kind]
    typer.echo(f"{decision_id}: spot check {done} (the delivered outcome is unchanged)")


@spot_checks.command()
def approve(
    decision_id: IdArgument,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (optional).")] = None,
    key: KeyOption = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """The model was right.

    Example: lockgate spot-checks approve 0193c2a7f1e04b5d9a8c7e6f5d
    """
    _judge("approve", decision_id, None, reason, key, project, database)


@spot_checks.command()
def correct(
    decision_id: IdArgument,
    output: Annotated[str, typer.Option("--output", help="The right output as a JSON object.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (stored and audited).")],
    key: KeyOption = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """The model was wrong; it should have been OUTPUT.

    Example: lockgate spot-checks correct 0193c2a7f1e0 --output '{"queue": "fraud"}' --reason x
    """
    _judge("correct", decision_id, output, reason, key, project, database)


@spot_checks.command()
def reject(
    decision_id: IdArgument,
    reason: Annotated[str, typer.Option("--reason", help="Why (stored and audited).")],
    key: KeyOption = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """The model was wrong (and no single right output can be given).

    Example: lockgate spot-checks reject 0193c2a7f1e0 --reason "spam, not a ticket"
    """
    _judge("reject", decision_id, None, reason, key, project, database)


_UNITS = {"m": 1 / 60, "h": 1.0, "d": 24.0}


def parse_window(text: str) -> tuple[float | None, int | None]:
    """`24h`, `90m`, `7d` (hours) or `500` (decisions)."""
    value = text.strip().lower()
    try:
        if value[-1:] in _UNITS:
            hours = float(value[:-1]) * _UNITS[value[-1]]
            if hours > 0:
                return hours, None
        elif value.isdigit() and int(value) > 0:
            return None, int(value)
    except ValueError:
        pass
    raise InputError(
        f"--window {text!r} is not a window",
        hint="give hours, minutes or days (24h, 90m, 7d) or a number of decisions (1000)",
    )


def drift(
    task: Annotated[str, typer.Argument(help="Task name.")],
    window: Annotated[
        str | None,
        typer.Option(
            "--window",
            help="24h, 90m, 7d, or a number of decisions; default: drift_window_hours and "
            "drift_window_decisions (whichever holds fewer decisions).",
            show_default=False,
        ),
    ] = None,
    release: Annotated[
        str | None,
        typer.Option("--release", help="TASK@N or N; default: the live release."),
    ] = None,
    as_json: JsonOption = False,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Compare recent decisions with the release's reference profile: each signal's value,
    threshold and verdict (ok, warn or drift), and the window's verdict.

    Example: lockgate drift routing --window 24h --json
    """
    from lockgate.cli.common import release_number
    from lockgate.decide.decision import utcnow
    from lockgate.watch.reference import check_drift

    with open_runtime(project, database) as runtime:
        settings = runtime.settings
        hours: float | None = settings.drift_window_hours
        count = settings.drift_window_decisions
        if window is not None:
            hours, limit = parse_window(window)
            count = limit if limit is not None else 10_000_000
        loaded = runtime.release_runtime(task, release_number(task, release))
        report = check_drift(
            runtime.store.quality, loaded, now=utcnow(), hours=hours, decisions=count
        )
    if as_json:
        print_json(report.as_dict())
        return
    n = report.window.get("n")
    typer.echo(f"{task}@{report.release}: {n} decisions, verdict {report.verdict.upper()}")
    if report.note:
        typer.echo(f"note: {report.note}")
    typer.echo(f"{'SIGNAL':<32} {'VALUE':>8} {'WARN':>6} {'DRIFT':>6}  VERDICT")
    for s in report.signals:
        value = "-" if s.value is None else f"{s.value:.3f}"
        typer.echo(f"{s.name:<32} {value:>8} {s.warn_at:>6} {s.threshold:>6}  {s.verdict}")


def profile_release(runtime: "Runtime", task: str, number: int) -> str:
    """Store the release's reference profile (see `watch.reference`); says what it did."""
    from lockgate.cli.common import run_async
    from lockgate.decide.decision import utcnow
    from lockgate.watch.reference import make_profile, reference_rows

    loaded = runtime.release_runtime(task, number)
    found = reference_rows(runtime.store.datasets, loaded)
    if found is None:
        return (
            f"no reference profile for {task}@{number}: the task has no gate or calibration "
            "dataset (drift needs one)"
        )
    rows, source = found
    try:
        profile = run_async(runtime, lambda: make_profile(loaded, rows, source))
    except LockgateError as exc:  # the release is made; only its profile is missing
        return f"no reference profile for {task}@{number}: {exc.message}"
    runtime.store.quality.save_profile(task, number, profile, utcnow())
    return f"reference profile of {task}@{number}: {len(rows)} rows of {source['dataset']}"
